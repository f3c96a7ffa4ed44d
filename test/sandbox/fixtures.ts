/** Shared pieces of the sandbox suites: a fake host handler, job builders, error capture. */
import { GearboxError } from '../../host/errors.js'
import { resolveLimits, type ExecutionJob, type GuestEntry, type GuestScript, type HostHandler, type Limits } from '../../host/sandbox/index.js'

/**
 * Small memory and size caps so hostile guests fail fast, with a CPU budget generous enough that
 * only the limit under test can trip, even on a loaded machine.
 */
export const SMALL_LIMITS: Limits = resolveLimits({
  memoryBytes: 8 * 1024 * 1024,
  cpuMs: 5000,
  wallMs: 10000,
  maxHostCalls: 1000,
  maxReplyBytes: 1024 * 1024,
})

/** For the CPU-limit guests. */
export const CPU_LIMITS: Limits = resolveLimits({ ...SMALL_LIMITS, cpuMs: 300 })

/** For builtin-heavy guests that need room to allocate their working set. */
export const ROOMY_CPU_LIMITS: Limits = resolveLimits({ ...CPU_LIMITS, memoryBytes: 48 * 1024 * 1024 })

/**
 * A job whose result is the completion value of `code`. Entries are data (a function name and
 * arguments), so the suites call the guest's own global `eval` with the code as its argument: an
 * indirect eval, at global scope, like the evaluation of a script.
 */
export function job(code: string, limits: Limits = SMALL_LIMITS, scripts: readonly GuestScript[] = []): ExecutionJob {
  return { engine: 'quickjs', scripts, entry: evalEntry(code), limits }
}

/** The entry that evaluates `code` in the guest and returns its completion value. */
export function evalEntry(code: string): GuestEntry {
  return { entry: 'eval', args: [code] }
}

/** A call the fake host received. */
export interface ReceivedCall {
  readonly op: string
  readonly payload: string
  readonly mode: 'sync' | 'async'
}

/**
 * A fake host (the suites test the sandbox, not Redis). Ops:
 *   echo → the payload; upper → the payload upper-cased; noop → ''
 *   big → 'x' repeated Number(payload) times
 *   slow → the payload, after Number(op delay) ms (always async)
 *   never → a promise that never settles
 *   fail → throws FakeHostError
 */
export class FakeHost implements HostHandler {
  readonly calls: ReceivedCall[] = []

  call(op: string, payload: string, mode: 'sync' | 'async'): Promise<string> | string {
    this.calls.push({ op, payload, mode })
    switch (op) {
      case 'echo':
        return mode === 'sync' ? payload : Promise.resolve(payload)
      case 'upper':
        return payload.toUpperCase()
      case 'noop':
        return ''
      case 'big':
        return 'x'.repeat(Number(payload))
      case 'slow':
        return new Promise((resolve) => setTimeout(() => resolve(payload), 150))
      case 'never':
        return new Promise<string>(() => {})
      case 'fail':
        throw new FakeHostError(`host failed on ${payload}`)
      default:
        throw new Error(`FakeHost: unknown op ${op}`)
    }
  }
}

/** A coded error a host handler throws; the execution must reject with this very object. */
export class FakeHostError extends GearboxError {
  constructor(message: string) {
    super('ERR_FAKE_HOST', message)
  }
}

/** Awaits a promise that must reject with a GearboxError; returns the error. */
export async function failure(result: Promise<string>): Promise<GearboxError> {
  try {
    const value = await result
    throw new Error(`expected a failure, got result ${JSON.stringify(value.slice(0, 200))}`)
  } catch (error) {
    if (error instanceof GearboxError) return error
    throw error
  }
}
