import { NestingLimitError, ReplyLimitError } from '../../../errors.js'
import { MAX_NESTING_DEPTH, type WireCodec, type WireValue } from '../../engine.js'

/**
 * QuickJS's wire codec: how values and host replies cross into its guests. QuickJS strings hold
 * any UTF-16, so bytes travel as latin1 strings (one char per byte) inside JSON; another engine
 * has its own codec (MicroPython's `str.encode` has no latin-1).
 *
 * The wire format between the guest prelude (guest/js/00_prelude.js) and the host: JSON text where the values JSON
 * cannot carry are one-key objects whose key starts with U+0000 (no JSON a guest builds from
 * ordinary data collides with it by accident, and the prelude refuses such keys from guests):
 *   {"\u0000b": "<latin1 string>"}  bytes (Uint8Array), one char per byte
 *   {"\u0000n": "<decimal>"}        a bigint
 *
 * A host reply is one string: a one-character tag, then the body.
 *   'v' JSON value with no special objects (the guest just JSON.parses it)
 *   'x' JSON value that contains special objects (the guest revives them)
 *   'e' a GearsError message (Redis error text or a spec error text)
 *   'c' JSON {code, message}: a coded host error (ERR_GEARBOX_...), raised as GearsError with .code
 */

export const BYTES_KEY = '\u0000b'
export const BIGINT_KEY = '\u0000n'

/** Bytes to a latin1 string (one char per byte), chunked to keep argument lists short. */
export function bytesToLatin1(bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i < bytes.length; i += 8192) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[])
  }
  return out
}

export function latin1ToBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff
  return out
}

/** Encodes a value as wire JSON; `special` tells whether the guest must revive it. */
export function encodeWire(value: WireValue): { json: string; special: boolean } {
  let special = false
  const json = boundedJson(() => JSON.stringify(value, function (this: unknown, key: string, v: unknown) {
    // The holder's own value: JSON.stringify has already applied toJSON (a Node Buffer's
    // turns it into {type, data}), so check what was there before that.
    const raw = (this as Record<string, unknown>)[key]
    if (raw instanceof Uint8Array) {
      special = true
      return { [BYTES_KEY]: bytesToLatin1(raw) }
    }
    if (typeof v === 'bigint') {
      special = true
      return { [BIGINT_KEY]: v.toString() }
    }
    return v
  }))
  return { json: json === undefined ? 'null' : json, special }
}

/** Decodes wire JSON sent by the guest (payloads), reviving bytes and bigints. */
export function decodeWire(json: string): WireValue {
  return boundedJson(() => JSON.parse(json, (_key, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>
      const b = o[BYTES_KEY]
      if (typeof b === 'string' && Object.keys(o).length === 1) return latin1ToBytes(b)
      const n = o[BIGINT_KEY]
      if (typeof n === 'string' && Object.keys(o).length === 1) return BigInt(n)
    }
    return v
  }) as WireValue)
}

/**
 * Runs a JSON conversion whose recursion V8 bounds by its own stack: what overflows it, or V8's
 * longest string, becomes a coded error (both are V8's own conditions, observed host-side).
 */
function boundedJson<T>(convert: () => T): T {
  try {
    return convert()
  } catch (error) {
    if (error instanceof RangeError && /call stack/i.test(error.message)) {
      throw new NestingLimitError(`a value nested too deeply to convert (more than ${MAX_NESTING_DEPTH} levels are refused)`)
    }
    if (error instanceof RangeError && /string length/i.test(error.message)) {
      throw new ReplyLimitError('a value too large to convert to text')
    }
    throw error
  }
}

/** A successful host reply carrying `value`. */
export function replyValue(value: WireValue): string {
  const { json, special } = encodeWire(value)
  return (special ? 'x' : 'v') + json
}

/** A host reply that raises `GearsError(message)` in the guest. */
export function replyGearsError(message: string): string {
  return 'e' + message
}

/** A host reply that raises a coded host error in the guest. */
export function replyCodedError(code: string, message: string): string {
  return 'c' + JSON.stringify({ code, message })
}

export const QUICKJS_WIRE_CODEC: WireCodec = Object.freeze({
  encode(value: WireValue) {
    const { json, special } = encodeWire(value)
    return { text: json, special }
  },
  decode: decodeWire,
  replyValue,
  replyGearsError,
  replyCodedError,
})
