/**
 * Worker side: one run of a job in a fresh realm of the worker's engine. Evaluates the job's
 * scripts, calls its entry, serves the guest's host calls (counting them, bounding payloads,
 * honouring stop requests), resumes the guest as async replies arrive, and reports one outcome.
 * Engine-agnostic: the engine does the language (engine.ts), this file the rules.
 */
import { HOST_STOP, type EngineHost, type GuestEntry, type GuestRealm, type HostAnswer, type RunState } from './engine.js'
import { classifyFailure, cpuLimitError, memoryLimitError, stackLimitError, type GuestFailure } from './guest-errors.js'
import type { DirectCalls, WorkerPort } from './platform.js'
import type { WireError, WireOutcome } from './protocol.js'
import type { ReplyReader } from './reply-channel.js'
import type { RequestWriter } from './request-channel.js'
import { DIRECT_CALLS, REPLY_SPIN, STOP, type InterpreterClock } from './shared-state.js'
import type { GuestScript, Limits } from './types.js'
import { exceedsUtf8Bytes } from './utf8.js'

/** What a run shares with its worker. */
export interface WorkerRunEnv {
  readonly port: WorkerPort
  readonly words: Int32Array
  readonly clock: InterpreterClock
  readonly reply: ReplyReader
  /** Absent when the main side cannot take calls from shared memory: calls are posted. */
  readonly requests: RequestWriter | undefined
}

/** The first part of a run that builds its job's saved realm (see SandboxJob.realm). */
export interface RunSetup {
  /** The realm's scripts the prepared realm does not already hold. */
  readonly scripts: readonly GuestScript[]
  /** Called after them; the run goes on once it returned (or its promise fulfilled). */
  readonly entry: GuestEntry
  /** Saves the realm (engine.save); the run goes on either way. */
  readonly save: () => void
}

/**
 * Candidate results before the sandbox's own limit checks have the last word. `pending` ends the
 * run only when a stop or a limit was recorded (otherwise it keeps waiting for replies).
 */
type Conclusion =
  | { readonly value: string }
  | { readonly thrown: GuestFailure }
  | { readonly error: WireError }
  | { readonly pending: true }

export class WorkerRun implements EngineHost {
  private hostCalls = 0
  private lastCall = 0
  /** The entry returned a promise: the run waits for it. */
  private awaitingEntry = false
  /** A limit the worker detected; wins over the guest's own result. */
  private limitError: WireError | undefined
  /** The main thread stopped this run (it already settled the result). */
  private stopped = false
  private finished = false
  /** Between the setup's start and its entry's return (see {@link finishSetup}). */
  private inSetup = false
  /** Between the guest's atomic.begin and its commit or abort: its commands go to the main thread's MULTI. */
  private inAtomic = false

  constructor(
    readonly id: number,
    private readonly scripts: readonly GuestScript[],
    private readonly entry: GuestEntry,
    private readonly limits: Limits,
    readonly realm: GuestRealm,
    private readonly env: WorkerRunEnv,
    private readonly onFinished: (run: WorkerRun) => void,
    /** Builds the job's saved realm first (SandboxJob.realm), when the worker does not have it. */
    private readonly setup?: RunSetup,
    /** The run now only waits for async host replies: the worker may park it (see {@link park}). */
    private readonly onWaiting?: (run: WorkerRun) => void,
    /** Sends plain `execute` calls to Redis from this thread (the job's host allows it). */
    private readonly direct?: DirectCalls,
  ) {}

  /** Interpreter time used when parked (its clock goes on from there when it resumes). */
  private parkedMs = 0

  /** The worker set this run aside: keep its clock. */
  park(): void {
    this.env.clock.pause()
    this.parkedMs = this.env.clock.elapsedMs()
  }

  /** The worker made this run active again (its realm unparked). */
  resume(): void {
    this.env.clock.restore(this.parkedMs)
  }

  /** Ends a parked run without touching its realm (stopped while parked, or its realm was lost). */
  abandon(error?: WireError): void {
    if (this.finished) return
    this.finished = true
    const outcome: WireOutcome = error === undefined ? { ok: false, stopped: true } : { ok: false, error }
    this.env.port.postMessage({ t: 'done', id: this.id, outcome })
  }

  get done(): boolean {
    return this.finished
  }

  /** Tells the worker when the run only waits for replies. */
  private reportWaiting(): void {
    if (this.finished || !this.awaitingEntry || this.inSetup || this.stopped || this.limitError !== undefined) return
    this.onWaiting?.(this)
  }

  /** Runs the scripts and the entry (after the setup, if any); finishes now or when the entry's promise settles. */
  start(): void {
    const { clock } = this.env
    this.realm.beginRun(this.limits)
    clock.reset()
    if (Atomics.load(this.env.words, STOP) === this.id) {
      this.stopped = true
      this.conclude({ pending: true })
      return
    }
    const setup = this.setup
    if (setup === undefined) {
      this.runScriptsAndEntry(this.scripts, this.entry)
      return
    }
    this.inSetup = true
    this.env.port.postMessage({ t: 'setup', id: this.id, on: true })
    this.runScriptsAndEntry(setup.scripts, setup.entry)
  }

  private runScriptsAndEntry(scripts: readonly GuestScript[], entry: GuestEntry): void {
    const { clock } = this.env
    clock.resume()
    try {
      for (const script of scripts) {
        const thrown = this.realm.evaluate(script)
        if (thrown !== undefined) {
          clock.pause()
          this.conclude({ thrown })
          return
        }
      }
      // Promise jobs the top level queued without handing them to the entry (an un-awaited
      // `Promise.resolve().then(() => execute(...))`) run now, before the entry reports the
      // outcome: the script's writes are never dropped. A job that waits on an async host call
      // continues when the reply comes, while the entry's promise is pending.
      clock.pause()
      this.runContinuations()
      if (this.finished) return
      clock.resume()
      const state = this.realm.callEntry(entry)
      clock.pause()
      if (state.kind === 'pending') {
        this.awaitingEntry = true
        this.runContinuations()
        if (!this.finished) this.checkEntry()
        this.reportWaiting()
      } else {
        this.settle(state)
      }
    } catch (error) {
      clock.pause()
      this.failInHost(error)
    }
  }

  /**
   * The setup entry returned: the realm is saved (when the engine can), and the job's own scripts
   * and entry run with a fresh clock and host-call count.
   */
  private finishSetup(): void {
    const setup = this.setup
    if (setup === undefined) return
    this.inSetup = false
    this.awaitingEntry = false
    this.env.port.postMessage({ t: 'setup', id: this.id, on: false })
    setup.save()
    this.hostCalls = 0
    this.env.clock.reset()
    this.runScriptsAndEntry(this.scripts, this.entry)
  }

  /** An async host call was answered. */
  onReply(call: number, value: string): void {
    if (this.finished) return
    try {
      this.realm.answer(call, value)
      this.runContinuations()
      if (!this.finished) this.checkEntry()
    } catch (error) {
      this.failInHost(error)
      return
    }
    this.reportWaiting()
  }

  /** The main thread stopped the run while it waited for async replies. */
  onStop(): void {
    if (this.finished) return
    this.stopped = true
    this.conclude({ pending: true })
  }

  // EngineHost -------------------------------------------------------------------------------

  /** A blocking host call: waits on the reply channel until the main thread answers. */
  call(op: string, payload: string): HostAnswer {
    if (!this.admit(payload)) return HOST_STOP
    if (op === 'atomic.begin') this.inAtomic = true
    else if (op === 'atomic.commit' || op === 'atomic.abort') this.inAtomic = false
    const { clock, reply, port, requests } = this.env
    clock.pause()
    if (op === 'execute' && this.direct !== undefined) {
      const answer = this.callDirect(payload)
      if (answer !== undefined) {
        clock.resume()
        return answer
      }
    }
    reply.arm()
    if (requests === undefined || !requests.write(op, payload)) port.postMessage({ t: 'call', op, payload })
    const answer = reply.await()
    clock.resume()
    if (answer === undefined) {
      this.stopped = true
      return HOST_STOP
    }
    return answer
  }

  /**
   * A sync `execute` sent by this thread (platform.ts DirectCalls), when the run is past its setup,
   * outside an atomic block, and alone on the machine's cores (REPLY_SPIN: the direct wait spins).
   * Undefined: the call goes to the main thread.
   */
  private callDirect(payload: string): HostAnswer | undefined {
    const direct = this.direct
    if (direct === undefined || this.inSetup || this.inAtomic || Atomics.load(this.env.words, REPLY_SPIN) !== 1) return undefined
    const answer = direct.call(payload, this.limits.maxReplyBytes, () => Atomics.load(this.env.words, STOP) === this.id)
    if (answer === undefined) return undefined
    Atomics.add(this.env.words, DIRECT_CALLS, 1)
    if ('reply' in answer) return answer.reply
    if ('overBudget' in answer) this.limitError = { code: 'ERR_GEARBOX_REPLY_LIMIT', message: answer.overBudget }
    else this.stopped = true
    return HOST_STOP
  }

  /** An async host call: the main thread answers with a `reply` message. */
  callAsync(op: string, payload: string): number | typeof HOST_STOP {
    if (!this.admit(payload)) return HOST_STOP
    const call = ++this.lastCall
    this.env.port.postMessage({ t: 'start', id: this.id, call, op, payload })
    return call
  }

  /** Polled by the engine while guest code runs; `true` stops the guest. */
  shouldInterrupt(): boolean {
    if (this.stopped || this.limitError !== undefined) return true
    if (Atomics.load(this.env.words, STOP) === this.id) {
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
   * Whether a host call may go out. A refused call answers {@link HOST_STOP} (the engine turns it
   * into an error its prelude raises, never a host exception); a limit breach also sets
   * {@link limitError}, so the next interrupt poll ends the run and the outcome reports the
   * limit whatever the guest does.
   */
  private admit(payload: string): boolean {
    if (this.stopped || this.limitError !== undefined) return false
    if (Atomics.load(this.env.words, STOP) === this.id) {
      this.stopped = true
      return false
    }
    if (++this.hostCalls > this.limits.maxHostCalls) {
      this.limitError = {
        code: 'ERR_GEARBOX_HOST_CALL_LIMIT',
        message: `execution exceeded limits.maxHostCalls (${this.limits.maxHostCalls} host calls)`,
      }
      return false
    }
    if (exceedsUtf8Bytes(payload, this.limits.maxReplyBytes)) {
      this.limitError = {
        code: 'ERR_GEARBOX_REPLY_LIMIT',
        message: `host call payload exceeded limits.maxReplyBytes (${this.limits.maxReplyBytes} bytes)`,
      }
      return false
    }
    return true
  }

  /** Runs queued guest continuations with the clock running. */
  private runContinuations(): void {
    this.env.clock.resume()
    let escaped: GuestFailure | undefined
    try {
      escaped = this.realm.runContinuations(() => !this.stopped && this.limitError === undefined)
    } finally {
      this.env.clock.pause()
    }
    if (escaped !== undefined) this.conclude({ thrown: escaped })
  }

  /** Checks an entry that returned a promise; reading a rejection runs guest getters, so the clock runs. */
  private checkEntry(): void {
    if (!this.awaitingEntry) return
    if (this.stopped || this.limitError !== undefined) {
      this.conclude({ pending: true })
      return
    }
    this.env.clock.resume()
    let state: RunState
    try {
      state = this.realm.entryState()
    } finally {
      this.env.clock.pause()
    }
    if (state.kind !== 'pending') this.settle(state) // Else it waits for async replies (or the wall limit).
  }

  private settle(state: Exclude<RunState, { kind: 'pending' }>): void {
    switch (state.kind) {
      case 'value':
        if (this.inSetup) this.finishSetup()
        else this.conclude({ value: state.value })
        return
      case 'thrown':
        this.conclude({ thrown: state.failure })
        return
      case 'not-a-string':
        this.conclude({ error: nonStringResult(state.got) })
        return
    }
  }

  /** A JS exception in the host-side glue (V8 stack overflow, engine abort): the instance is suspect. */
  private failInHost(error: unknown): void {
    this.realm.markBroken()
    if (error instanceof RangeError && /call stack/i.test(error.message)) {
      this.conclude({ error: stackLimitError(this.limits) })
      return
    }
    const message = error instanceof Error ? error.message : String(error)
    this.conclude({ error: { code: 'ERR_GEARBOX_SANDBOX', message: `guest engine failure: ${message}` } })
  }

  /** Applies the sandbox's own findings, reports the outcome, and releases the realm. */
  private conclude(conclusion: Conclusion): void {
    if (this.finished) return
    if (!this.stopped && 'pending' in conclusion && this.limitError === undefined) return
    this.finished = true
    const outcome = this.outcomeOf(conclusion)
    this.env.port.postMessage({ t: 'done', id: this.id, outcome })
    this.realm.endRun()
    this.onFinished(this)
  }

  private outcomeOf(conclusion: Conclusion): WireOutcome {
    if (this.stopped) return { ok: false, stopped: true }
    if (this.limitError !== undefined) return { ok: false, error: this.limitError }
    const observed = this.realm.observations(this.limits)
    if (observed.memoryCapHit) return { ok: false, error: memoryLimitError(this.limits) }
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
    if ('thrown' in conclusion) return { ok: false, error: classifyFailure(conclusion.thrown, this.limits, observed) }
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
