/**
 * Worker side: one execution in a fresh realm. Evaluates the job's scripts and entry, serves the
 * guest's host calls, pumps promise jobs as async replies arrive, and reports one outcome.
 */
import type { QuickJSContext, QuickJSDeferredPromise, QuickJSHandle } from 'quickjs-emscripten-core'
import { classifyFailure, cpuLimitError, describeThrown, memoryLimitError, stackLimitError, type GuestFailure } from './guest-errors.js'
import type { WorkerPort } from './platform.js'
import type { WireError, WireOutcome } from './protocol.js'
import type { Realm } from './quickjs-engine.js'
import type { ReplyReader } from './reply-channel.js'
import type { RequestWriter } from './request-channel.js'
import { STOP, type InterpreterClock } from './shared-state.js'
import type { GuestScript, Limits } from './types.js'
import { exceedsUtf8Bytes } from './utf8.js'

/** What an execution shares with its worker. */
export interface ExecutionEnv {
  readonly port: WorkerPort
  readonly words: Int32Array
  readonly clock: InterpreterClock
  readonly reply: ReplyReader
  /** Absent when the main side cannot take calls from shared memory: calls are posted. */
  readonly requests: RequestWriter | undefined
}

const GLOBAL_EVAL = { type: 'global' } as const
const ENTRY_FILENAME = 'entry.js'

/**
 * Candidate results before the sandbox's own limit checks have the last word. `pending` ends the
 * execution only when a stop or a limit was recorded (otherwise it keeps waiting for replies).
 */
type Conclusion =
  | { readonly value: string }
  | { readonly thrown: GuestFailure }
  | { readonly error: WireError }
  | { readonly pending: true }

export class GuestExecution {
  private hostCalls = 0
  private lastCall = 0
  private readonly deferreds = new Map<number, QuickJSDeferredPromise>()
  private entryPromise: QuickJSHandle | undefined
  /** A limit the worker detected; wins over the guest's own result. */
  private limitError: WireError | undefined
  /** The main thread stopped this execution (it already settled the result). */
  private stopped = false
  private finished = false

  constructor(
    readonly id: number,
    private readonly scripts: readonly GuestScript[],
    private readonly entry: string,
    private readonly limits: Limits,
    readonly realm: Realm,
    private readonly env: ExecutionEnv,
    private readonly onFinished: (execution: GuestExecution) => void,
  ) {}

  /** Runs the scripts and the entry; finishes now or when the entry's promise settles. */
  start(): void {
    const { rt, ctx, module } = this.realm
    rt.setMaxStackSize(this.limits.stackBytes)
    module.armStackGuard(this.limits.stackBytes)
    this.env.clock.reset()
    if (Atomics.load(this.env.words, STOP) !== 0) {
      this.stopped = true
      this.conclude({ pending: true })
      return
    }
    this.env.clock.resume()
    try {
      for (const script of this.scripts) {
        const result = ctx.evalCode(script.code, script.name, GLOBAL_EVAL)
        if (result.error) {
          this.env.clock.pause()
          this.conclude({ thrown: this.describe(result.error) })
          return
        }
        result.value.dispose()
      }
      // Promise jobs the top level queued without handing them to the entry (an un-awaited
      // `Promise.resolve().then(() => execute(...))`) run now, before the entry reports the
      // outcome: the script's writes are never dropped. A job that waits on an async host call
      // continues when the reply comes, while the entry's promise is pending.
      this.env.clock.pause()
      this.pumpJobs()
      if (this.finished) return
      this.env.clock.resume()
      const result = ctx.evalCode(this.entry, ENTRY_FILENAME, GLOBAL_EVAL)
      this.env.clock.pause()
      if (result.error) this.conclude({ thrown: this.describe(result.error) })
      else this.settleWith(result.value)
    } catch (error) {
      this.env.clock.pause()
      this.failInHost(error)
    }
  }

  /** An async host call was answered. */
  onReply(call: number, value: string): void {
    const deferred = this.deferreds.get(call)
    if (deferred === undefined || this.finished) return
    this.deferreds.delete(call)
    try {
      this.realm.ctx.newString(value).consume((handle) => deferred.resolve(handle))
      deferred.dispose()
      this.pumpJobs()
      if (!this.finished) this.checkEntryPromise()
    } catch (error) {
      this.failInHost(error)
    }
  }

  /** The main thread stopped the execution while it waited for async replies. */
  onStop(): void {
    if (this.finished) return
    this.stopped = true
    this.conclude({ pending: true })
  }

  // Guest hooks ------------------------------------------------------------------------------

  /** `__gearbox_host_call(op, payload)`: blocks until the main thread answers. */
  hostCall(ctx: QuickJSContext, opHandle: QuickJSHandle | undefined, payloadHandle: QuickJSHandle | undefined): QuickJSHandle {
    const { op, payload } = this.readCall(ctx, opHandle, payloadHandle, '__gearbox_host_call')
    const { clock, reply, port, requests } = this.env
    clock.pause()
    reply.arm()
    if (requests === undefined || !requests.write(op, payload)) port.postMessage({ t: 'call', op, payload })
    const answer = reply.await()
    clock.resume()
    if (answer === undefined) {
      this.stopped = true
      throw new Error('execution stopped')
    }
    return ctx.newString(answer)
  }

  /** `__gearbox_host_start(op, payload)`: a promise the main thread settles later. */
  hostStart(ctx: QuickJSContext, opHandle: QuickJSHandle | undefined, payloadHandle: QuickJSHandle | undefined): QuickJSHandle {
    const { op, payload } = this.readCall(ctx, opHandle, payloadHandle, '__gearbox_host_start')
    const call = ++this.lastCall
    const deferred = ctx.newPromise()
    this.deferreds.set(call, deferred)
    this.env.port.postMessage({ t: 'start', id: this.id, call, op, payload })
    // The host-function wrapper disposes the handle it returns; the deferred keeps its resolvers.
    return deferred.handle
  }

  /** Polled by QuickJS every ~10 000 bytecode ticks; `true` raises an uncatchable interrupt. */
  shouldInterrupt(): boolean {
    if (this.stopped || this.limitError !== undefined) return true
    if (Atomics.load(this.env.words, STOP) !== 0) {
      this.stopped = true
      return true
    }
    if (this.env.clock.elapsedMs() > this.limits.cpuMs) {
      this.limitError = cpuLimitError(this.limits)
      return true
    }
    return false
  }

  // Internals --------------------------------------------------------------------------------

  /**
   * Validates a host call. Errors thrown here reach the guest as catchable exceptions; limit
   * breaches also set {@link limitError}, so the next interrupt poll ends the execution and the
   * outcome reports the limit whatever the guest does.
   */
  private readCall(
    ctx: QuickJSContext,
    opHandle: QuickJSHandle | undefined,
    payloadHandle: QuickJSHandle | undefined,
    fn: string,
  ): { op: string; payload: string } {
    if (this.stopped || this.limitError !== undefined) throw new Error('execution stopped')
    if (Atomics.load(this.env.words, STOP) !== 0) {
      this.stopped = true
      throw new Error('execution stopped')
    }
    if (++this.hostCalls > this.limits.maxHostCalls) {
      this.limitError = {
        code: 'ERR_GEARBOX_HOST_CALL_LIMIT',
        message: `execution exceeded limits.maxHostCalls (${this.limits.maxHostCalls} host calls)`,
      }
      throw new Error('host call limit reached')
    }
    if (opHandle === undefined || payloadHandle === undefined || ctx.typeof(opHandle) !== 'string' || ctx.typeof(payloadHandle) !== 'string') {
      throw new TypeError(`${fn}(op, payload) takes two strings`)
    }
    const op = ctx.getString(opHandle)
    const payload = ctx.getString(payloadHandle)
    if (exceedsUtf8Bytes(payload, this.limits.maxReplyBytes)) {
      this.limitError = {
        code: 'ERR_GEARBOX_REPLY_LIMIT',
        message: `host call payload exceeded limits.maxReplyBytes (${this.limits.maxReplyBytes} bytes)`,
      }
      throw new Error('host call payload too large')
    }
    return { op, payload }
  }

  /** The entry's completion value: a string, or a promise to wait for. Takes `value`. */
  private settleWith(value: QuickJSHandle): void {
    const ctx = this.realm.ctx
    const type = ctx.typeof(value)
    if (type === 'string') {
      const text = ctx.getString(value)
      value.dispose()
      this.conclude({ value: text })
      return
    }
    if (type === 'object') {
      const state = ctx.getPromiseState(value)
      if (state.type === 'fulfilled' && state.notAPromise === true) {
        value.dispose()
        this.conclude({ error: nonStringResult('object') })
        return
      }
      if (state.type === 'fulfilled') state.value.dispose()
      else if (state.type === 'rejected') state.error.dispose()
      this.entryPromise = value
      this.pumpJobs()
      if (!this.finished) this.checkEntryPromise()
      return
    }
    value.dispose()
    this.conclude({ error: nonStringResult(type) })
  }

  /** Runs queued promise jobs (guest continuations) with the clock running. */
  private pumpJobs(): void {
    const { rt } = this.realm
    this.env.clock.resume()
    try {
      while (!this.stopped && this.limitError === undefined && rt.hasPendingJob()) {
        const result = rt.executePendingJobs()
        if (result.error) {
          // Promise jobs turn guest exceptions into rejections; what escapes a job is an engine
          // condition (interrupt, out of memory) that no guest code can observe afterwards.
          this.conclude({ thrown: this.describe(result.error) })
          return
        }
      }
    } finally {
      this.env.clock.pause()
    }
  }

  private checkEntryPromise(): void {
    const promise = this.entryPromise
    if (promise === undefined) return
    if (this.stopped || this.limitError !== undefined) {
      this.conclude({ pending: true })
      return
    }
    const ctx = this.realm.ctx
    const state = ctx.getPromiseState(promise)
    if (state.type === 'pending') return // Waits for async replies (or the wall limit).
    if (state.type === 'rejected') {
      this.conclude({ thrown: this.describe(state.error) })
      return
    }
    const type = ctx.typeof(state.value)
    if (type !== 'string') {
      state.value.dispose()
      this.conclude({ error: nonStringResult(`a promise of ${type}`) })
      return
    }
    const text = ctx.getString(state.value)
    state.value.dispose()
    this.conclude({ value: text })
  }

  /** Reads a thrown value; its getters are guest code, so the clock runs (and the CPU limit holds). */
  private describe(thrown: QuickJSHandle): GuestFailure {
    this.env.clock.resume()
    try {
      return describeThrown(this.realm.ctx, this.realm.describer, thrown)
    } finally {
      this.env.clock.pause()
    }
  }

  /** A JS exception in the host-side glue (V8 stack overflow, engine abort): the module is suspect. */
  private failInHost(error: unknown): void {
    this.realm.module.broken = true
    if (error instanceof RangeError && /call stack/i.test(error.message)) {
      this.conclude({ error: stackLimitError(this.limits) })
      return
    }
    const message = error instanceof Error ? error.message : String(error)
    this.conclude({ error: { code: 'ERR_GEARBOX_SANDBOX', message: `QuickJS engine failure: ${message}` } })
  }

  /** Applies the sandbox's own findings, reports the outcome, and releases the realm. */
  private conclude(conclusion: Conclusion): void {
    if (this.finished) return
    if (!this.stopped && 'pending' in conclusion && this.limitError === undefined) return
    this.finished = true
    const outcome = this.outcomeOf(conclusion)
    this.env.port.postMessage({ t: 'done', id: this.id, outcome })
    for (const deferred of this.deferreds.values()) deferred.dispose()
    this.deferreds.clear()
    if (this.entryPromise?.alive) this.entryPromise.dispose()
    this.entryPromise = undefined
    this.onFinished(this)
  }

  private outcomeOf(conclusion: Conclusion): WireOutcome {
    if (this.stopped) return { ok: false, stopped: true }
    if (this.limitError !== undefined) return { ok: false, error: this.limitError }
    if (this.realm.module.capHit) return { ok: false, error: memoryLimitError(this.limits) }
    if ('value' in conclusion) {
      if (exceedsUtf8Bytes(conclusion.value, this.limits.maxReplyBytes)) {
        return {
          ok: false,
          error: {
            code: 'ERR_GEARBOX_REPLY_LIMIT',
            message: `execution result exceeded limits.maxReplyBytes (${this.limits.maxReplyBytes} bytes)`,
          },
        }
      }
      return { ok: true, value: conclusion.value }
    }
    if ('thrown' in conclusion) {
      const observed = { memoryCapHit: false, stackLimitHit: this.realm.module.stackGuardTouched(this.limits.stackBytes) }
      return { ok: false, error: classifyFailure(conclusion.thrown, this.limits, observed) }
    }
    if ('error' in conclusion) return { ok: false, error: conclusion.error }
    return { ok: false, error: { code: 'ERR_GEARBOX_SANDBOX', message: 'execution ended without a result' } }
  }
}

function nonStringResult(got: string): WireError {
  return {
    code: 'ERR_GEARBOX_SANDBOX',
    message: `the execution entry must evaluate to a string or a promise of a string, got ${got}`,
  }
}
