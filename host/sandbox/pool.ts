/**
 * The sandbox pool: worker threads, each running one sandbox run at a time in a fresh interpreter
 * of the job's engine, with a FIFO queue when all are busy. Killed or crashed workers are replaced.
 */
import { AbortedError, ClosedError, InvalidArgumentError, SandboxError } from '../errors.js'
import type { EngineCounters, GuestEntry } from './engine.js'
import { engineTraits, ENGINE_NAMES, isEngineName } from './engines/index.js'
import { DEFAULT_LIMITS, resolveLimits } from './limits.js'
import { SandboxRun } from './sandbox-run.js'
import type { DirectRedisConfig, SandboxPlatform } from './platform.js'
import { PoolWorker, type PoolWorkerOwner } from './pool-worker.js'
import type { HostHandler, Limits, SandboxJob, SandboxRunHandle } from './types.js'

/** Options of {@link SandboxPool.create}. */
export interface SandboxPoolOptions {
  /** Starts the worker threads (e.g. `nodePlatform()` from host/platform/node.ts). */
  readonly platform: SandboxPlatform
  /** Worker threads, i.e. executions running in parallel. Default 2. */
  readonly workers?: number
  /**
   * The `limits.memoryBytes` most jobs use: workers pre-create interpreters capped for it, so
   * those jobs skip creating a capped module (~1 ms). Default `DEFAULT_LIMITS.memoryBytes`.
   */
  readonly memoryBytes?: number
}

/** A snapshot of the pool. */
export interface SandboxPoolStats {
  /** Workers ready to run executions (idle or busy). */
  readonly workers: number
  /** Workers running an execution. */
  readonly busy: number
  /** Executions waiting for a worker. */
  readonly queued: number
  /** Workers replaced after being terminated (limits, abort) or crashing. */
  readonly respawns: number
  /** Executions whose result has settled. */
  readonly executions: number
  /** Sync calls workers sent to Redis themselves (see {@link SandboxPool.enableDirectCalls}). */
  readonly directCalls: number
}

/** After this many failed worker starts in a row with no worker alive, queued jobs fail. */
const MAX_START_FAILURES = 3
const MAX_RESPAWN_DELAY_MS = 10_000

/** Queue with O(1) shift; aborted entries are skipped lazily. */
class Fifo<T> {
  private items: T[] = []
  private head = 0

  push(item: T): void {
    this.items.push(item)
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined
    const item = this.items[this.head++]
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }

  /** Removes and returns everything left. */
  drain(): T[] {
    const rest = this.items.slice(this.head)
    this.items = []
    this.head = 0
    return rest
  }

  count(predicate: (item: T) => boolean): number {
    let n = 0
    for (let i = this.head; i < this.items.length; i++) if (predicate(this.items[i] as T)) n++
    return n
  }
}

export class SandboxPool implements PoolWorkerOwner {
  private readonly workers: PoolWorker[] = []
  private readonly queue = new Fifo<SandboxRun>()
  /** Limits objects already validated (jobs usually share one). */
  private readonly checkedLimits = new WeakMap<Limits, Limits>()
  private readonly respawnTimers = new Set<ReturnType<typeof setTimeout>>()
  private closing: Promise<void> | undefined
  private lastId = 0
  private respawnCount = 0
  private settledCount = 0
  private startFailures = 0
  /** Engine counters of workers that are gone. */
  private goneDirectCalls = 0
  private gone: Required<EngineCounters> = { realmBuilds: 0, snapshotRestores: 0, realmSaves: 0, savedRealmStarts: 0, parks: 0, parkedBytes: 0 }

  private constructor(
    private readonly platform: SandboxPlatform,
    private readonly memoryBytes: number,
  ) {}

  /**
   * Starts `workers` threads and waits until each has an interpreter ready.
   * @throws InvalidArgumentError for bad options; SandboxError when the workers cannot start.
   */
  static async create(options: SandboxPoolOptions): Promise<SandboxPool> {
    const count = options.workers ?? 2
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new InvalidArgumentError(`workers must be a positive integer (got ${String(options.workers)})`)
    }
    if (options.platform === undefined || typeof options.platform.spawnWorker !== 'function') {
      throw new InvalidArgumentError('platform must be a SandboxPlatform (e.g. nodePlatform())')
    }
    const { memoryBytes } = resolveLimits({ memoryBytes: options.memoryBytes ?? DEFAULT_LIMITS.memoryBytes })
    const pool = new SandboxPool(options.platform, memoryBytes)
    const starts = Array.from({ length: count }, () => pool.spawn())
    try {
      await Promise.all(starts)
    } catch (error) {
      await pool.close()
      const message = error instanceof Error ? error.message : String(error)
      throw new SandboxError(`sandbox workers failed to start: ${message}`, { cause: error })
    }
    return pool
  }

  /**
   * Queues `job`; it runs as soon as a worker is free.
   * @throws ClosedError after {@link close}; InvalidArgumentError for a malformed job.
   */
  start(job: SandboxJob, host: HostHandler): SandboxRunHandle {
    if (this.closing !== undefined) throw new ClosedError('sandbox pool is closed')
    const checked = this.checkJob(job)
    if (host === null || typeof host !== 'object' || typeof host.call !== 'function') {
      throw new InvalidArgumentError('host must be a HostHandler with a call(op, payload, mode) method')
    }
    // Ids fit the shared stop word (Int32, 0 = none).
    this.lastId = this.lastId >= 0x7fffffff ? 1 : this.lastId + 1
    const execution = new SandboxRun(this.lastId, checked, host, () => this.settledCount++)
    this.queue.push(execution)
    this.dispatch()
    return { result: execution.result, abort: (reason?: string) => this.abort(execution, reason) }
  }

  stats(): SandboxPoolStats {
    let workers = 0
    let busy = 0
    for (const worker of this.workers) {
      if (worker.status === 'idle' || worker.status === 'busy') workers++
      if (worker.status === 'busy') busy++
    }
    return {
      workers,
      busy,
      queued: this.queue.count((execution) => !execution.settled),
      respawns: this.respawnCount,
      executions: this.settledCount,
      directCalls: this.directCallCount(),
    }
  }

  /**
   * The engines' counters summed over the workers, gone ones included: `realmBuilds` (realms
   * built from scratch: flat while the preloaded scripts stay the same) and `snapshotRestores`
   * (one per execution when the snapshot path is taken), `realmSaves` (session realms saved after
   * their top level) and `savedRealmStarts` (runs that started from one). A worker publishes them right after it
   * reported a result, so they may trail the results by a moment.
   */
  engineCounters(): Required<EngineCounters> {
    return this.workers.reduce((sum, worker) => addCounters(sum, worker.counters()), this.gone)
  }

  /**
   * Stops everything: queued and running executions reject with AbortedError, the threads are
   * terminated. Idempotent; later {@link start} calls throw ClosedError.
   */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing
    for (const timer of this.respawnTimers) clearTimeout(timer)
    this.respawnTimers.clear()
    for (const execution of this.queue.drain()) {
      execution.reject(new AbortedError('sandbox pool closed before the execution started'))
    }
    const workers = this.workers.splice(0)
    const error = new AbortedError('sandbox pool closed')
    this.closing = Promise.all(workers.map((worker) => worker.close(error))).then(() => undefined)
    return this.closing
  }

  // PoolWorkerOwner --------------------------------------------------------------------------

  onIdle(): void {
    this.dispatch()
  }

  directConfig: DirectRedisConfig | undefined

  /**
   * Lets workers send the plain commands of executions whose host handler allows it
   * (HostHandler.directCalls) to Redis themselves, on a connection of their own as
   * `config.username`: one thread hop less per call (platform.ts DirectCalls). Needs a platform
   * whose workers implement it (Node's); elsewhere every call goes through this thread as before.
   */
  enableDirectCalls(config: DirectRedisConfig): void {
    this.directConfig = config
    for (const worker of this.workers) worker.sendDirectConfig(config)
  }

  /** Sync calls workers sent to Redis themselves (gone workers included). */
  directCallCount(): number {
    return this.workers.reduce((sum, worker) => sum + worker.directCalls, this.goneDirectCalls)
  }

  othersBusy(worker: PoolWorker): boolean {
    return this.workers.some((other) => other !== worker && other.status === 'busy')
  }

  onGone(worker: PoolWorker, startFailed: boolean, error: Error | undefined): void {
    const index = this.workers.indexOf(worker)
    if (index >= 0) {
      this.workers.splice(index, 1)
      // What a gone worker had parked is gone with it.
      this.gone = addCounters(this.gone, { ...worker.counters(), parkedBytes: 0 })
      this.goneDirectCalls += worker.directCalls
    }
    if (this.closing !== undefined) return
    if (startFailed) this.startFailures++
    if (startFailed && this.startFailures >= MAX_START_FAILURES && this.stats().workers === 0) {
      const reason = error?.message ?? 'unknown error'
      for (const execution of this.queue.drain()) {
        execution.reject(new SandboxError(`no sandbox worker could start: ${reason}`, { cause: error }))
      }
    }
    const delayMs = startFailed ? Math.min(1000 * this.startFailures, MAX_RESPAWN_DELAY_MS) : 0
    const timer = setTimeout(() => {
      this.respawnTimers.delete(timer)
      if (this.closing !== undefined) return
      this.respawnCount++
      void this.spawn().catch(() => {
        // Reported through onGone.
      })
    }, delayMs)
    this.respawnTimers.add(timer)
  }

  // Internals --------------------------------------------------------------------------------

  private spawn(): Promise<void> {
    const worker = new PoolWorker(this.platform, this, this.memoryBytes, DEFAULT_LIMITS.maxReplyBytes)
    this.workers.push(worker)
    const started = worker.start()
    started.then(
      () => {
        this.startFailures = 0
        this.dispatch()
      },
      () => {
        // Reported through onGone.
      },
    )
    return started
  }

  private dispatch(): void {
    for (;;) {
      const worker = this.pickIdleWorker()
      if (worker === undefined) return
      let execution = this.queue.shift()
      while (execution?.settled) execution = this.queue.shift()
      if (execution === undefined) return
      worker.run(execution)
    }
  }

  /**
   * An idle worker, preferring one whose next interpreter is already built, else the one idle
   * longest (furthest into building it: a worker spends ~0.2 ms after each execution disposing
   * the old interpreter and creating the next).
   */
  private pickIdleWorker(): PoolWorker | undefined {
    let fallback: PoolWorker | undefined
    for (const worker of this.workers) {
      if (worker.status !== 'idle') continue
      if (worker.prepared) return worker
      if (fallback === undefined || worker.idleSinceMs < fallback.idleSinceMs) fallback = worker
    }
    return fallback
  }

  private abort(execution: SandboxRun, reason: string | undefined): void {
    if (execution.settled) return
    const error = new AbortedError(reason === undefined ? 'execution aborted' : `execution aborted: ${reason}`)
    if (execution.stopRunning !== undefined) execution.stopRunning(error)
    else execution.reject(error)
  }

  private checkJob(job: SandboxJob): SandboxJob {
    if (job === null || typeof job !== 'object') throw new InvalidArgumentError('job must be an SandboxJob object')
    if (!isEngineName(job.engine)) {
      throw new InvalidArgumentError(`job.engine must be one of ${ENGINE_NAMES.map((name) => `'${name}'`).join(', ')} (got ${String(job.engine)})`)
    }
    if (!Array.isArray(job.scripts)) throw new InvalidArgumentError('job.scripts must be an array of {name, code}')
    for (const script of job.scripts) {
      if (script === null || typeof script !== 'object' || typeof script.name !== 'string' || typeof script.code !== 'string') {
        throw new InvalidArgumentError('job.scripts must be an array of {name: string, code: string}')
      }
    }
    if (!isGuestEntry(job.entry)) {
      throw new InvalidArgumentError('job.entry must be {entry: string, args: array of strings, finite numbers, booleans or null}')
    }
    if (job.preload !== undefined && (!Number.isSafeInteger(job.preload) || job.preload < 0 || job.preload > job.scripts.length)) {
      throw new InvalidArgumentError(`job.preload must be an integer from 0 to job.scripts.length (got ${String(job.preload)})`)
    }
    if (job.realm !== undefined) checkRealm(job)
    const known = this.checkedLimits.get(job.limits)
    const limits = known ?? resolveLimits(job.limits)
    // resolveLimits bounds the stack by the default engine; the job's engine may allow less.
    const maxStackBytes = engineTraits(job.engine).maxStackBytes
    if (limits.stackBytes > maxStackBytes) {
      throw new InvalidArgumentError(`limits.stackBytes must be at most ${maxStackBytes} bytes on ${job.engine} (got ${limits.stackBytes})`)
    }
    if (known === undefined) {
      if (job.limits !== null && typeof job.limits === 'object') this.checkedLimits.set(job.limits, limits)
      this.checkedLimits.set(limits, limits)
    }
    return limits === job.limits ? job : { ...job, limits }
  }
}

function addCounters(a: Required<EngineCounters>, b: Required<EngineCounters>): Required<EngineCounters> {
  return {
    realmBuilds: a.realmBuilds + b.realmBuilds,
    snapshotRestores: a.snapshotRestores + b.snapshotRestores,
    realmSaves: a.realmSaves + b.realmSaves,
    savedRealmStarts: a.savedRealmStarts + b.savedRealmStarts,
    parks: a.parks + b.parks,
    parkedBytes: a.parkedBytes + b.parkedBytes,
  }
}

function checkRealm(job: SandboxJob): void {
  const realm = job.realm
  if (realm === null || typeof realm !== 'object') throw new InvalidArgumentError('job.realm must be {key, scripts, entry, setupHost}')
  if (typeof realm.key !== 'string' || realm.key === '') throw new InvalidArgumentError('job.realm.key must be a non-empty string')
  const preload = job.preload ?? 0
  if (!Number.isSafeInteger(realm.scripts) || realm.scripts < preload || realm.scripts > job.scripts.length) {
    throw new InvalidArgumentError(`job.realm.scripts must be an integer from job.preload to job.scripts.length (got ${String(realm.scripts)})`)
  }
  if (!isGuestEntry(realm.entry)) throw new InvalidArgumentError('job.realm.entry must be {entry: string, args: array of data}')
  if (typeof realm.setupHost !== 'function') throw new InvalidArgumentError('job.realm.setupHost must be a function returning a HostHandler')
}

/** A {@link GuestEntry}: a name and data arguments every engine can pass to its language. */
function isGuestEntry(entry: unknown): entry is GuestEntry {
  if (entry === null || typeof entry !== 'object') return false
  const { entry: name, args } = entry as { entry?: unknown; args?: unknown }
  if (typeof name !== 'string' || name === '' || !Array.isArray(args)) return false
  return args.every(
    (arg: unknown) => arg === null || typeof arg === 'string' || typeof arg === 'boolean' || (typeof arg === 'number' && Number.isFinite(arg)),
  )
}
