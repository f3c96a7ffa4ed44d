/**
 * The engines this build has, by name: what the main side needs of each (traits, wire codec).
 * The worker side makes engines through factory.ts. The only place outside engines/<engine>/
 * that names an engine's folder.
 */
import type { EngineName, EngineTraits, WireCodec } from '../engine.js'
import { MICROPYTHON_TRAITS } from './micropython/traits.js'
import { MICROPYTHON_WIRE_CODEC } from './micropython/wire-codec.js'
import { QUICKJS_TRAITS } from './quickjs/traits.js'
import { QUICKJS_WIRE_CODEC } from './quickjs/wire-codec.js'

/** The engine jobs use unless they name another (the JavaScript guest). */
export const DEFAULT_ENGINE: EngineName = 'quickjs'

const TRAITS: { readonly [E in EngineName]: EngineTraits } = { quickjs: QUICKJS_TRAITS, micropython: MICROPYTHON_TRAITS }
const CODECS: { readonly [E in EngineName]: WireCodec } = { quickjs: QUICKJS_WIRE_CODEC, micropython: MICROPYTHON_WIRE_CODEC }

export function isEngineName(name: unknown): name is EngineName {
  return typeof name === 'string' && Object.hasOwn(TRAITS, name)
}

export function engineTraits(name: EngineName): EngineTraits {
  return TRAITS[name]
}

/** How values and replies cross into `name`'s guests. */
export function wireCodec(name: EngineName): WireCodec {
  return CODECS[name]
}

/** Names of every engine, for error messages. */
export const ENGINE_NAMES: readonly EngineName[] = Object.freeze(Object.keys(TRAITS) as EngineName[])
