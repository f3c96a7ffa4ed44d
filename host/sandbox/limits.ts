import { InvalidArgumentError } from '../errors.js'
import { DEFAULT_ENGINE, engineTraits } from './engines/index.js'
import type { Limits } from './types.js'

const KiB = 1024
const MiB = 1024 * KiB

const ENGINE = engineTraits(DEFAULT_ENGINE)

/** Largest `limits.stackBytes` (the default engine's ceiling: 256 KiB on QuickJS). */
export const MAX_STACK_BYTES = ENGINE.maxStackBytes

/**
 * Linear memory every interpreter of the default engine starts with. `limits.memoryBytes` is
 * granted on top of it.
 */
export const INTERPRETER_BASE_BYTES = ENGINE.baseMemoryBytes

/** The defaults of every limit (units in the names). */
export const DEFAULT_LIMITS: Limits = Object.freeze({
  memoryBytes: 64 * MiB,
  cpuMs: 5000,
  wallMs: 30000,
  stackBytes: MAX_STACK_BYTES,
  maxHostCalls: 1_000_000,
  maxReplyBytes: 64 * MiB,
})

/** Largest accepted value per limit, with the unit used in error messages. */
const BOUNDS: { readonly [K in keyof Limits]: { readonly max: number; readonly unit: string } } = {
  memoryBytes: { max: ENGINE.maxMemoryBytes - INTERPRETER_BASE_BYTES, unit: 'bytes' },
  // setTimeout's largest delay.
  cpuMs: { max: 2 ** 31 - 1, unit: 'milliseconds' },
  wallMs: { max: 2 ** 31 - 1, unit: 'milliseconds' },
  stackBytes: { max: MAX_STACK_BYTES, unit: 'bytes' },
  maxHostCalls: { max: Number.MAX_SAFE_INTEGER, unit: 'calls' },
  // V8 strings stop at ~2^29 UTF-16 units; 1 GiB of UTF-8 covers every string the host can hold.
  maxReplyBytes: { max: 1024 * MiB, unit: 'bytes' },
}

const LIMIT_NAMES = Object.keys(BOUNDS) as (keyof Limits)[]

/**
 * Fills the missing limits from {@link DEFAULT_LIMITS} and validates all of them.
 *
 * @param partial - limits to override; `undefined` values mean "use the default".
 * @returns a complete, frozen {@link Limits}.
 * @throws InvalidArgumentError naming the option (`limits.cpuMs`, ...) when a value is not a
 *   positive safe integer, is above its maximum (`stackBytes` ≤ 256 KiB), or the name is unknown.
 */
export function resolveLimits(partial?: Partial<Limits>): Limits {
  if (partial === undefined || partial === null) return DEFAULT_LIMITS
  if (typeof partial !== 'object') throw new InvalidArgumentError('limits must be an object')
  for (const key of Object.keys(partial)) {
    if (!(key in BOUNDS)) {
      throw new InvalidArgumentError(`unknown limit limits.${key} (known: ${LIMIT_NAMES.join(', ')})`)
    }
  }
  const out: Record<string, number> = {}
  for (const name of LIMIT_NAMES) {
    const given: unknown = partial[name]
    if (given === undefined) {
      out[name] = DEFAULT_LIMITS[name]
      continue
    }
    const { max, unit } = BOUNDS[name]
    if (typeof given !== 'number' || !Number.isSafeInteger(given) || given <= 0) {
      throw new InvalidArgumentError(`limits.${name} must be a positive integer number of ${unit} (got ${String(given)})`)
    }
    if (given > max) {
      throw new InvalidArgumentError(`limits.${name} must be at most ${max} ${unit} (got ${given})`)
    }
    out[name] = given
  }
  return Object.freeze(out as unknown as Limits)
}
