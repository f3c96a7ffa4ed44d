/**
 * Main side of one sandbox worker: starts it, hands it executions, answers its host calls, and
 * enforces the limits the worker cannot enforce on itself (wall time; CPU time spent inside
 * builtins the interrupt handler never reaches; stuck workers).
 */
import { CpuLimitError, GearboxError, ReplyLimitError, SandboxError, WallLimitError } from '../errors.js'
import type { SandboxRun } from './sandbox-run.js'
import type { EngineCounters } from './engine.js'
import type { DirectRedisConfig, PlatformWorker, SandboxPlatform } from './platform.js'
import { errorFromWire, type FromWorkerMessage, type WireOutcome, type WireScript } from './protocol.js'
import { newReplyBuffer, ReplyWriter, type GrowableSharedArrayBuffer } from './reply-channel.js'
import { newRequestBuffer, RequestReader, requestChannelSupported } from './request-channel.js'
import { clockWords, DIRECT_CALLS, nowMs, PREPARED, readInterpreterMs, PARKED_KIB, PARKS, REALM_BUILDS, REALM_SAVES, REPLY_SPIN, SAVED_REALM_STARTS, SNAPSHOT_RESTORES, STATE_BYTES, stateWords, STOP } from './shared-state.js'
import type { GuestScript, HostHandler } from './types.js'
import { exceedsUtf8Bytes } from './utf8.js'

/**
 * Interpreter time past `cpuMs` before the watchdog terminates the worker. The interrupt handler
 * normally stops the guest within a few ms of `cpuMs` (50 ms deadline → 50–56 ms, up to ~160 ms
 * on a loaded machine); this catches builtins (sort, split/join, JSON) that never poll it.
 */
export const CPU_GRACE_MS = 100

/** After a stop request, how long a worker may take to unwind before it is terminated. */
export const STOP_GRACE_MS = 100

/**
 * After answering a sync call, how long the main thread spins for the same worker's next call
 * before it returns to its event loop (only when no other worker is busy). A guest's next call
 * usually comes within 5–20 µs; waking a parked event loop costs ~20 µs on 2 vCPUs.
 */
export const SPIN_FOR_NEXT_CALL_MS = 0.05

/** How long a new worker may take to load QuickJS and report ready. */
export const STARTUP_TIMEOUT_MS = 30_000

/** Scripts at least this long are cached in the worker and sent once. */
const CACHE_MIN_CHARS = 2048
/** Cached scripts per worker (least recently used are replaced). */
const CACHE_SLOTS = 32

export type PoolWorkerStatus = 'starting' | 'idle' | 'busy' | 'dead'

/** What a worker reports to its pool. */
export interface PoolWorkerOwner {
  /** The worker finished an execution (or its start) and can take the next one. */
  onIdle(worker: PoolWorker): void
  /** Whether a worker other than `worker` is running an execution (then the main thread must not spin). */
  othersBusy(worker: PoolWorker): boolean
  /** The worker is gone (terminated or crashed); `startFailed` when it never became ready. */
  onGone(worker: PoolWorker, startFailed: boolean, error: Error | undefined): void
  /** Where workers may send plain commands themselves (SandboxPool.enableDirectCalls), if anywhere. */
  readonly directConfig: DirectRedisConfig | undefined
}

type Timer = ReturnType<typeof setTimeout>

export class PoolWorker {
  status: PoolWorkerStatus = 'starting'
  /** Epoch ms when the worker last became idle (it has been building its next interpreter since). */
  idleSinceMs = 0
  private platformWorker: PlatformWorker | undefined
  private readonly state = new SharedArrayBuffer(STATE_BYTES)
  private readonly words = stateWords(this.state)
  private readonly clock = clockWords(this.state)
  private readonly reply: ReplyWriter
  /** Sync calls from shared memory; undefined where `Atomics.waitAsync` is missing (calls are posted). */
  private readonly requests: RequestReader | undefined
  private readonly requestData: SharedArrayBuffer | undefined
  /** Messages received from the worker (compared with what it posted; see request-channel.ts). */
  private received = 0
  /** A `whenPending` wait is outstanding. */
  private listening = false
  /** {@link PoolWorker.takeRequests} is on the stack. */
  private taking = false
  private current: SandboxRun | undefined
  /** Every run handed to this worker that it has not reported done: the current one, parked ones, ones waiting there. */
  private readonly assigned = new Map<number, SandboxRun>()
  /**
   * The job sent last, until the worker reported it active, parked or done. A worker that was
   * running a resumed run when it arrived starts it later, with an `active` message; one that was
   * idle starts it at once, without one: when the run main thought current parks or ends, this
   * job is what the worker runs.
   */
  private expected: SandboxRun | undefined
  /** Wall-limit timers of parked runs (the watchdog watches the current run only). */
  private readonly parkTimers = new Map<number, Timer>()
  /** Answers the current run's host calls while it builds its saved realm (SandboxJob.realm.setupHost). */
  private setupHost: HostHandler | undefined
  /** A sync host call is being answered (the worker is blocked on the reply channel). */
  private syncPending = false
  private watchdog: Timer | undefined
  private killTimer: Timer | undefined
  private readonly scriptSlots = new Map<string, number>()
  private readyWaiter: { resolve(): void; reject(error: Error): void } | undefined

  constructor(
    private readonly platform: SandboxPlatform,
    private readonly owner: PoolWorkerOwner,
    private readonly memoryBytes: number,
    replyBytes: number,
  ) {
    this.reply = new ReplyWriter(this.words, newReplyBuffer(replyBytes))
    if (requestChannelSupported()) {
      this.requestData = newRequestBuffer()
      this.requests = new RequestReader(this.words, this.requestData)
    }
  }

  /** Spawns the thread and waits until its first interpreter is ready. */
  async start(): Promise<void> {
    const ready = new Promise<void>((resolve, reject) => {
      this.readyWaiter = { resolve, reject }
    })
    // It may be rejected (crash, close) before it is awaited below.
    ready.catch(() => {})
    const timeout = setTimeout(() => this.fail(new SandboxError(`sandbox worker did not start within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS)
    try {
      const worker = await this.platform.spawnWorker({
        message: (message) => this.onMessage(message),
        exit: (error) => this.onExit(error),
      })
      this.platformWorker = worker
      if (this.status === 'dead') {
        await worker.terminate()
        throw new SandboxError('sandbox worker stopped while starting')
      }
      const { state, requestData, memoryBytes } = this
      const replyData = this.reply.buffer
      worker.postMessage(requestData === undefined ? { t: 'init', state, replyData, memoryBytes } : { t: 'init', state, replyData, requestData, memoryBytes })
      const direct = this.owner.directConfig
      if (direct !== undefined) this.sendDirectConfig(direct)
      this.listen()
      await ready
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)))
      throw error
    } finally {
      clearTimeout(timeout)
    }
  }

  /** Sync calls the worker sent to Redis itself (platform.ts DirectCalls). */
  get directCalls(): number {
    return Atomics.load(this.words, DIRECT_CALLS)
  }

  /** Tells the worker where it may send plain commands itself; its runs may then do so (see run()). */
  sendDirectConfig(config: DirectRedisConfig): void {
    if (this.status === 'dead') return
    this.platformWorker?.postMessage({ t: 'direct', config })
  }

  /** The engine counters the worker last published (see worker-loop.ts). */
  counters(): Required<EngineCounters> {
    return {
      realmBuilds: Atomics.load(this.words, REALM_BUILDS),
      snapshotRestores: Atomics.load(this.words, SNAPSHOT_RESTORES),
      realmSaves: Atomics.load(this.words, REALM_SAVES),
      savedRealmStarts: Atomics.load(this.words, SAVED_REALM_STARTS),
      parks: Atomics.load(this.words, PARKS),
      parkedBytes: Atomics.load(this.words, PARKED_KIB) * 1024,
    }
  }

  /** Whether the worker holds a fresh interpreter (its next job skips the ~0.1 ms setup). */
  get prepared(): boolean {
    return Atomics.load(this.words, PREPARED) === 1
  }

  /** Hands `execution` to this idle worker. */
  run(execution: SandboxRun): void {
    const worker = this.platformWorker
    if (worker === undefined || this.status !== 'idle') throw new Error('PoolWorker.run on a worker that is not idle')
    this.status = 'busy'
    this.current = execution
    this.expected = execution
    this.assigned.set(execution.id, execution)
    execution.stopRunning = (error) => this.stop(execution, error)
    Atomics.store(this.words, STOP, 0)
    Atomics.store(this.words, REPLY_SPIN, this.owner.othersBusy(this) ? 0 : 1)
    const { job } = execution
    const limits = job.limits
    let replyData: GrowableSharedArrayBuffer | undefined
    if (limits.maxReplyBytes > this.reply.capacity) {
      replyData = newReplyBuffer(limits.maxReplyBytes)
      this.reply.replaceBuffer(replyData)
    }
    const scripts = this.wireScripts(job.scripts)
    const preload = job.preload ?? 0
    this.setupHost = undefined
    const realm = job.realm === undefined ? undefined : { key: job.realm.key, scripts: job.realm.scripts, entry: job.realm.entry }
    worker.postMessage({
      t: 'run',
      id: execution.id,
      engine: job.engine,
      scripts,
      entry: job.entry,
      limits,
      preload,
      ...(replyData === undefined ? {} : { replyData }),
      ...(realm === undefined ? {} : { realm }),
      ...(execution.host.directCalls === true && this.owner.directConfig !== undefined ? { direct: true as const } : {}),
    })
    execution.startedAtMs = nowMs()
    this.listen()
    this.armWatchdog(execution, Math.min(limits.wallMs, limits.cpuMs + CPU_GRACE_MS))
  }

  /**
   * Ends `execution` from the main side: settles it with `error` now, asks the worker to unwind
   * (interrupt poll, reply channel, or message, whichever it is waiting on), and terminates the
   * worker if it has not unwound within {@link STOP_GRACE_MS}.
   */
  stop(execution: SandboxRun, error: GearboxError): void {
    if (execution.settled) return
    execution.reject(error)
    if (execution !== this.current) {
      // Parked, or waiting in the worker: it ends there without running again.
      this.clearParkTimer(execution.id)
      if (this.assigned.has(execution.id)) this.platformWorker?.postMessage({ t: 'stop', id: execution.id })
      return
    }
    if (this.platformWorker === undefined) return
    this.clearWatchdog()
    Atomics.store(this.words, STOP, execution.id)
    if (this.syncPending) {
      this.syncPending = false
      this.reply.writeStopped()
    }
    this.platformWorker.postMessage({ t: 'stop', id: execution.id })
    this.listen()
    this.killTimer ??= setTimeout(() => {
      if (this.current === execution) this.kill(undefined)
    }, STOP_GRACE_MS)
  }

  /** Terminates the thread (the pool replaces it); settles the running execution with `error`. */
  kill(error: GearboxError | undefined): void {
    if (this.status === 'dead') return
    this.markDead(error ?? new SandboxError('sandbox worker terminated'))
    void this.platformWorker?.terminate()
    this.owner.onGone(this, false, undefined)
  }

  /** Terminates the thread for good (pool close); settles the running execution with `error`. */
  async close(error: GearboxError): Promise<void> {
    if (this.status !== 'dead') this.markDead(error)
    this.readyWaiter?.reject(error)
    await this.platformWorker?.terminate()
  }

  // Messages ---------------------------------------------------------------------------------

  private onMessage(message: FromWorkerMessage): void {
    this.received++
    this.dispatchMessage(message)
    // A call written after this message waited for it (see takeRequests).
    if (this.requests?.pending === true) this.takeRequests()
  }

  private dispatchMessage(message: FromWorkerMessage): void {
    switch (message.t) {
      case 'ready':
        if (this.status === 'starting') {
          this.status = 'idle'
          this.readyWaiter?.resolve()
          this.readyWaiter = undefined
        }
        break
      case 'call':
        this.onSyncCall(message.op, message.payload)
        break
      case 'start':
        this.onAsyncCall(message.id, message.call, message.op, message.payload)
        break
      case 'done':
        this.onDone(message)
        break
      case 'parked':
        this.onParked(message.id)
        break
      case 'active':
        this.onActive(message.id)
        break
      case 'setup': {
        const execution = this.current
        if (execution === undefined || execution.id !== message.id) break
        this.setupHost = message.on ? execution.job.realm?.setupHost() : undefined
        break
      }
    }
  }

  /** The current run waits for async replies, set aside in the worker: the worker takes other jobs. */
  private onParked(id: number): void {
    const execution = this.current
    if (execution === undefined || execution.id !== id) return
    this.clearWatchdog()
    this.current = undefined
    this.setupHost = undefined
    this.syncPending = false
    if (!execution.settled) {
      const wallMs = execution.job.limits.wallMs
      const leftMs = Math.max(0, execution.startedAtMs + wallMs - nowMs())
      this.parkTimers.set(
        id,
        setTimeout(() => {
          this.parkTimers.delete(id)
          this.stop(execution, new WallLimitError(`execution exceeded limits.wallMs (${wallMs} ms)`))
        }, leftMs),
      )
    }
    if (this.expected === execution) this.expected = undefined
    if (this.takeExpected()) return
    this.status = 'idle'
    this.idleSinceMs = nowMs()
    this.owner.onIdle(this)
  }

  /** After the current run parked or ended: the job the worker runs next, if one was sent meanwhile. */
  private takeExpected(): boolean {
    const next = this.expected
    if (next === undefined || !this.assigned.has(next.id)) {
      this.expected = undefined
      return false
    }
    this.current = next
    this.status = 'busy'
    const { wallMs, cpuMs } = next.job.limits
    this.armWatchdog(next, Math.max(0, Math.min(next.startedAtMs + wallMs - nowMs(), cpuMs + CPU_GRACE_MS)))
    this.listen()
    return true
  }

  /** The worker runs `id` now (a parked run resumed, or a job that waited there). */
  private onActive(id: number): void {
    const execution = this.assigned.get(id)
    if (execution === undefined || this.status === 'dead') return
    this.clearParkTimer(id)
    this.clearWatchdog()
    if (this.expected === execution) this.expected = undefined
    this.current = execution
    this.setupHost = undefined
    this.status = 'busy'
    const { wallMs, cpuMs } = execution.job.limits
    const wallLeftMs = execution.startedAtMs + wallMs - nowMs()
    this.armWatchdog(execution, Math.max(0, Math.min(wallLeftMs, cpuMs + CPU_GRACE_MS - readInterpreterMs(this.clock))))
    this.listen()
  }

  private clearParkTimer(id: number): void {
    const timer = this.parkTimers.get(id)
    if (timer !== undefined) clearTimeout(timer)
    this.parkTimers.delete(id)
  }

  private onDone(message: Extract<FromWorkerMessage, { t: 'done' }>): void {
    const finished = this.assigned.get(message.id)
    this.assigned.delete(message.id)
    this.clearParkTimer(message.id)
    if (this.expected === finished) this.expected = undefined
    if (finished !== undefined && finished !== this.current) {
      // A parked run stopped or lost in the worker, or a waiting job stopped there.
      settle(finished, message.outcome)
      return
    }
    const execution = this.current
    if (execution === undefined || execution.id !== message.id || this.status !== 'busy') return
    this.clearWatchdog()
    if (this.killTimer !== undefined) clearTimeout(this.killTimer)
    this.killTimer = undefined
    this.current = undefined
    this.setupHost = undefined
    this.syncPending = false
    settle(execution, message.outcome)
    if (this.takeExpected()) return
    this.status = 'idle'
    this.idleSinceMs = nowMs()
    this.owner.onIdle(this)
  }

  private onSyncCall(op: string, payload: string): void {
    const execution = this.current
    if (execution === undefined || execution.settled) {
      this.reply.writeStopped()
      return
    }
    this.syncPending = true
    let answer: Promise<string> | string
    try {
      answer = (this.setupHost ?? execution.host).call(op, payload, 'sync')
    } catch (error) {
      this.stop(execution, hostFailure(error))
      return
    }
    if (typeof answer === 'string') this.answerSync(execution, answer)
    else
      Promise.resolve(answer).then(
        (value) => this.answerSync(execution, value),
        (error: unknown) => this.stop(execution, hostFailure(error)),
      )
  }

  private answerSync(execution: SandboxRun, value: unknown): void {
    if (execution.settled || execution !== this.current) return
    if (typeof value !== 'string') {
      this.stop(execution, new SandboxError(`HostHandler.call must return a string, got ${typeof value}`))
      return
    }
    const maxBytes = execution.job.limits.maxReplyBytes
    if (!this.reply.write(value, maxBytes, !this.owner.othersBusy(this))) {
      this.stop(execution, replyTooLarge(maxBytes))
      return
    }
    this.syncPending = false
    if (!this.taking) this.takeRequests()
  }

  // Request channel (see request-channel.ts) -------------------------------------------------

  /** Waits, off the event loop's critical path, for the worker's next call. Idempotent. */
  private listen(): void {
    const requests = this.requests
    if (requests === undefined || this.listening || this.status === 'dead') return
    this.listening = true
    void requests.whenPending().then(() => {
      this.listening = false
      this.takeRequests()
    })
  }

  /**
   * Serves calls from the channel until one has to wait (for Redis, or for the worker). Loops
   * instead of recursing: a call answered at once is followed by the next without a stack frame.
   */
  private takeRequests(): void {
    const requests = this.requests
    if (requests === undefined || this.taking || this.syncPending || this.status === 'dead') return
    this.taking = true
    try {
      for (;;) {
        if (!requests.pending) {
          if (this.spinForNextCall(requests)) continue
          this.listen()
          return
        }
        // Posted messages (async calls) come first; onMessage resumes here once they arrived.
        // (Checked only with a call waiting: onMessage looks for one, not for a new call later.)
        if (this.received < requests.posted) return
        const request = requests.take()
        if (request === undefined) return
        this.onSyncCall(request.op, request.payload)
        if (this.syncPending) return
      }
    } finally {
      this.taking = false
    }
  }

  /**
   * Spins up to {@link SPIN_FOR_NEXT_CALL_MS} for the worker's next call, when nothing else needs
   * this thread. @returns true when a call is waiting.
   */
  private spinForNextCall(requests: RequestReader): boolean {
    if (this.current === undefined || this.owner.othersBusy(this)) return false
    const posted = requests.posted
    const until = nowMs() + SPIN_FOR_NEXT_CALL_MS
    while (!requests.pending) {
      // A posted message (the execution's end, an async call) needs the event loop.
      if (requests.posted !== posted || nowMs() > until) return false
    }
    return true
  }

  private onAsyncCall(id: number, call: number, op: string, payload: string): void {
    // The run may be parked by the time the reply comes: replies go by run id.
    const execution = this.assigned.get(id)
    if (execution === undefined || execution.settled) return
    let answer: Promise<string> | string
    try {
      answer = (this.setupHost ?? execution.host).call(op, payload, 'async')
    } catch (error) {
      this.stop(execution, hostFailure(error))
      return
    }
    Promise.resolve(answer).then(
      (value: unknown) => {
        if (execution.settled || this.assigned.get(id) !== execution) return
        if (typeof value !== 'string') {
          this.stop(execution, new SandboxError(`HostHandler.call must return a string, got ${typeof value}`))
          return
        }
        const maxBytes = execution.job.limits.maxReplyBytes
        if (exceedsUtf8Bytes(value, maxBytes)) {
          this.stop(execution, replyTooLarge(maxBytes))
          return
        }
        this.platformWorker?.postMessage({ t: 'reply', id, call, value })
      },
      (error: unknown) => this.stop(execution, hostFailure(error)),
    )
  }

  private onExit(error: Error | undefined): void {
    if (this.status === 'dead') return
    const startFailed = this.status === 'starting'
    const reason = error ?? new Error('sandbox worker exited')
    this.markDead(new SandboxError(`sandbox worker crashed: ${reason.message}`, { cause: reason }))
    this.readyWaiter?.reject(reason)
    this.owner.onGone(this, startFailed, reason)
  }

  // Limits -----------------------------------------------------------------------------------

  private armWatchdog(execution: SandboxRun, delayMs: number): void {
    this.watchdog = setTimeout(() => this.checkLimits(execution), delayMs)
  }

  private clearWatchdog(): void {
    if (this.watchdog !== undefined) clearTimeout(this.watchdog)
    this.watchdog = undefined
  }

  private checkLimits(execution: SandboxRun): void {
    this.watchdog = undefined
    if (execution !== this.current || execution.settled) return
    const { wallMs, cpuMs } = execution.job.limits
    const wallLeftMs = execution.startedAtMs + wallMs - nowMs()
    if (wallLeftMs <= 0) {
      this.stop(execution, new WallLimitError(`execution exceeded limits.wallMs (${wallMs} ms)`))
      return
    }
    const cpuLeftMs = cpuMs + CPU_GRACE_MS - readInterpreterMs(this.clock)
    if (cpuLeftMs <= 0) {
      // Still running past the deadline + grace: the guest is inside a builtin the interrupt
      // handler never reaches. Only terminating the thread stops it.
      this.kill(new CpuLimitError(`execution exceeded limits.cpuMs (${cpuMs} ms of interpreter time)`))
      return
    }
    this.armWatchdog(execution, Math.max(5, Math.min(wallLeftMs, cpuLeftMs)))
  }

  // Helpers ----------------------------------------------------------------------------------

  private fail(error: Error): void {
    if (this.status === 'dead') return
    const startFailed = this.status === 'starting'
    this.markDead(new SandboxError(error.message, { cause: error }))
    this.readyWaiter?.reject(error)
    void this.platformWorker?.terminate()
    this.owner.onGone(this, startFailed, error)
  }

  private markDead(error: GearboxError): void {
    this.status = 'dead'
    // Settles the outstanding wait, so nothing is left pending on the dead worker's buffer.
    this.requests?.wake()
    this.clearWatchdog()
    if (this.killTimer !== undefined) clearTimeout(this.killTimer)
    this.killTimer = undefined
    const execution = this.current
    this.current = undefined
    execution?.reject(error)
    for (const run of this.assigned.values()) run.reject(error)
    this.assigned.clear()
    for (const timer of this.parkTimers.values()) clearTimeout(timer)
    this.parkTimers.clear()
  }

  /** Large scripts go to a worker once; later jobs name their cache slot. */
  private wireScripts(scripts: readonly GuestScript[]): WireScript[] {
    const out: WireScript[] = []
    for (const { name, code } of scripts) {
      if (code.length < CACHE_MIN_CHARS) {
        out.push({ name, code })
        continue
      }
      const cached = this.scriptSlots.get(code)
      if (cached !== undefined) {
        this.scriptSlots.delete(code) // re-insert: Map order is the LRU order
        this.scriptSlots.set(code, cached)
        out.push({ name, slot: cached })
        continue
      }
      let slot = this.scriptSlots.size
      if (slot >= CACHE_SLOTS) {
        const [oldestCode, oldestSlot] = this.scriptSlots.entries().next().value as [string, number]
        this.scriptSlots.delete(oldestCode)
        slot = oldestSlot
      }
      this.scriptSlots.set(code, slot)
      out.push({ name, code, slot })
    }
    return out
  }
}

/** Settles `execution` with what the worker reported. */
function settle(execution: SandboxRun, outcome: WireOutcome): void {
  if (outcome.ok) execution.resolve(outcome.value)
  else if ('error' in outcome) execution.reject(errorFromWire(outcome.error))
  else execution.reject(new SandboxError('execution stopped'))
}

function hostFailure(error: unknown): GearboxError {
  if (error instanceof GearboxError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new SandboxError(`host handler failed: ${message}`, { cause: error })
}

function replyTooLarge(maxBytes: number): ReplyLimitError {
  return new ReplyLimitError(`host reply exceeded limits.maxReplyBytes (${maxBytes} bytes)`)
}
