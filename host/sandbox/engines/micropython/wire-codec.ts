import type { WireCodec } from '../../engine.js'
import { QUICKJS_WIRE_CODEC } from '../quickjs/wire-codec.js'

/**
 * MicroPython's wire codec. The host's replies and the guests' payloads use the same text format
 * as QuickJS's (engines/quickjs/wire-codec.ts: tagged JSON, bytes as latin1 characters inside
 * `{"\u0000b": ...}`): the runtime handler answers every guest in it. Strings cross the glue as
 * UTF-8, so a latin1 character survives the trip, and the Python prelude (guest/py/00_prelude.py)
 * turns it into bytes with `bytes(map(ord, text))` (MicroPython's `str.encode` has no latin-1).
 */
export const MICROPYTHON_WIRE_CODEC: WireCodec = QUICKJS_WIRE_CODEC
