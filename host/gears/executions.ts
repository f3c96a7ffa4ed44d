/**
 * Batch executions (one per run()): their state while they run and their results after, in
 * memory, capped by MaxExecutions (the oldest finished ones are dropped first). Ids are
 * `<40-char shard id>-<counter>` as in RedisGears.
 */
import { ExecutionNotFoundError, ExecutionRunningError } from '../errors.js'
import type { ExecutionHandle } from '../sandbox/types.js'
import type { WireValue } from '../runtime/wire.js'
import type { PlanStep, RunDescription } from './plan.js'

/** Default for {@link ExecutionRegistryOptions.maxExecutions} (RedisGears' MaxExecutions). */
export const DEFAULT_MAX_EXECUTIONS = 1000

/**
 * `running` while any part of it runs; `done` when it finished (with or without errors);
 * `aborted` when abort() stopped it (its results so far are kept).
 */
export type ExecutionStatus = 'running' | 'done' | 'aborted'

/** One entry of {@link ExecutionRegistry.list} (RG.DUMPEXECUTIONS). */
export interface ExecutionSummary {
  readonly id: string
  readonly status: ExecutionStatus
  /** True for an execution of a registration (kept up to MaxExecutionsPerRegistration per registration). */
  readonly registered: boolean
}

/** A step of the plan with the time spent in it (0 unless the execution was profiled). */
export interface StepInfo extends PlanStep {
  /** Time spent in the step's callbacks, summed over shards, in milliseconds. */
  readonly durationMs: number
}

/** What {@link ExecutionRegistry.get} reports (RG.GETEXECUTION). */
export interface ExecutionInfo {
  readonly id: string
  /** The shard that started it (40 characters). */
  readonly shardId: string
  readonly status: ExecutionStatus
  readonly registered: boolean
  /** The registration it is an execution of, or null for a run(). */
  readonly registration: string | null
  readonly reader: string
  readonly description: string | null
  readonly mode: 'async' | 'async_local'
  /** Shards the execution ran on. */
  readonly shardsReceived: number
  /** Shards that finished their part. */
  readonly shardsCompleted: number
  /** How many results it produced; -1 while it runs. */
  readonly results: number
  readonly errors: readonly string[]
  /** Records the host readers delivered so far (generator readers run inside the guest and are not counted). */
  readonly recordsRead: number
  /** From start to end (or to now while running), in milliseconds. */
  readonly totalDurationMs: number
  /** Time the guest waited for its input batches (reader or routed records), summed over shards, in milliseconds. */
  readonly readDurationMs: number
  /** True when per-step durations were measured (ProfileExecutions or the run's profile option). */
  readonly profiled: boolean
  /** The plan's steps in execution order, reader first (RG.GETEXECUTION lists them last to first). */
  readonly steps: readonly StepInfo[]
}

/** `[results, errors]` of a finished execution. */
export interface ExecutionResults {
  readonly results: readonly WireValue[]
  readonly errors: readonly string[]
}

/** One execution's mutable state; the gears layer updates it, callers see {@link ExecutionInfo}. */
export class Execution {
  readonly id: string
  readonly shardId: string
  readonly plan: RunDescription
  readonly profiled: boolean
  readonly results: WireValue[] = []
  readonly errors: string[] = []
  readonly stepMs: number[]
  readonly startedAt = Date.now()
  /** The registration it is an execution of, or undefined for a run(). */
  readonly registration: string | undefined
  status: ExecutionStatus = 'running'
  recordsRead = 0
  readMs = 0
  shardsReceived = 1
  shardsCompleted = 0
  #endedAt: number | undefined
  #stopped = false
  #resultBytes = 0
  readonly #handles = new Set<ExecutionHandle>()
  readonly #done: Promise<void>
  #resolveDone!: () => void

  constructor(id: string, shardId: string, plan: RunDescription, profiled: boolean, registration?: string) {
    this.id = id
    this.registration = registration
    this.shardId = shardId
    this.plan = plan
    this.profiled = profiled
    this.stepMs = plan.steps.map(() => 0)
    this.#done = new Promise((resolve) => (this.#resolveDone = resolve))
  }

  get finished(): boolean {
    return this.#endedAt !== undefined
  }

  get aborted(): boolean {
    return this.status === 'aborted'
  }

  /** True once abort() or stop() ended it early: nothing more runs, failures of its sandboxes are expected. */
  get stopped(): boolean {
    return this.#stopped
  }

  /** Resolves when the execution finished or was aborted. */
  whenDone(): Promise<void> {
    return this.#done
  }

  /** Tracks a running sandbox execution of this run so abort() can stop it. */
  track(handle: ExecutionHandle): void {
    if (this.#stopped) handle.abort('execution stopped')
    else this.#handles.add(handle)
  }

  untrack(handle: ExecutionHandle): void {
    this.#handles.delete(handle)
  }

  /** Adds a guest's profile numbers (per-step milliseconds by step index, read time). */
  addProfile(steps: readonly unknown[], readMs: unknown): void {
    for (let i = 0; i < steps.length && i < this.stepMs.length; i++) {
      const ms = steps[i]
      if (typeof ms === 'number' && Number.isFinite(ms) && ms > 0) this.stepMs[i] = (this.stepMs[i] ?? 0) + ms
    }
    if (typeof readMs === 'number' && Number.isFinite(readMs) && readMs > 0) this.readMs += readMs
  }

  /** Marks the end (idempotent). */
  finish(): void {
    if (this.#endedAt !== undefined) return
    this.#endedAt = Date.now()
    if (this.status === 'running') this.status = 'done'
    this.#handles.clear()
    this.#resolveDone()
  }

  /**
   * Counts `bytes` of results; false (and the execution is stopped with an error naming the
   * limit) once they exceed `maxBytes`: results are held in host memory.
   */
  addResultBytes(bytes: number, maxBytes: number): boolean {
    this.#resultBytes += bytes
    if (this.#resultBytes <= maxBytes) return true
    this.stop(`the results exceeded limits.maxReplyBytes (${maxBytes} bytes): raise it, or reduce the results (limit(), aggregate)`)
    return false
  }

  /** Stops every running part through the sandbox (the worker is terminated when busy); keeps the results so far. */
  abort(): void {
    if (this.finished || this.#stopped) return
    this.status = 'aborted'
    this.stop('execution aborted')
  }

  /** Ends it early with `error` (status stays `done` unless aborted); its sandboxes are stopped. */
  stop(error: string): void {
    if (this.finished || this.#stopped) return
    this.#stopped = true
    this.errors.push(error)
    for (const handle of this.#handles) handle.abort(error)
    this.#handles.clear()
  }

  info(): ExecutionInfo {
    const end = this.#endedAt ?? Date.now()
    return {
      id: this.id,
      shardId: this.shardId,
      status: this.status,
      registered: this.registration !== undefined,
      registration: this.registration ?? null,
      reader: this.plan.reader,
      description: this.plan.desc,
      mode: this.plan.mode,
      shardsReceived: this.shardsReceived,
      shardsCompleted: this.shardsCompleted,
      results: this.finished ? this.results.length : -1,
      errors: [...this.errors],
      recordsRead: this.recordsRead,
      totalDurationMs: end - this.startedAt,
      readDurationMs: this.readMs,
      profiled: this.profiled,
      steps: this.plan.steps.map((s, i) => ({ ...s, durationMs: this.stepMs[i] ?? 0 })),
    }
  }
}

export interface ExecutionRegistryOptions {
  /** How many executions are kept; when a new one exceeds it, the oldest finished ones are dropped. Default 1000. */
  readonly maxExecutions?: () => number
  /**
   * How many executions of one registration are kept (RedisGears' MaxExecutionsPerRegistration);
   * they do not count toward maxExecutions. Default {@link DEFAULT_MAX_EXECUTIONS_PER_REGISTRATION}.
   */
  readonly maxExecutionsPerRegistration?: () => number
}

/** Default for {@link ExecutionRegistryOptions.maxExecutionsPerRegistration} (RedisGears' MaxExecutionsPerRegistration). */
export const DEFAULT_MAX_EXECUTIONS_PER_REGISTRATION = 100

/** The executions of one Gearbox. */
export class ExecutionRegistry {
  readonly #executions = new Map<string, Execution>()
  readonly #maxExecutions: () => number
  readonly #maxPerRegistration: () => number
  /** The kept executions of each registration, oldest first. */
  readonly #byRegistration = new Map<string, Execution[]>()
  #counter = 0

  constructor(options: ExecutionRegistryOptions = {}) {
    this.#maxExecutions = options.maxExecutions ?? (() => DEFAULT_MAX_EXECUTIONS)
    this.#maxPerRegistration = options.maxExecutionsPerRegistration ?? (() => DEFAULT_MAX_EXECUTIONS_PER_REGISTRATION)
  }

  /**
   * Registers a running execution of registration `registration` (listed with `registered`);
   * past MaxExecutionsPerRegistration, that registration's oldest finished ones are dropped.
   */
  createRegistered(shardId: string, plan: RunDescription, registration: string): Execution {
    const execution = new Execution(`${shardId}-${++this.#counter}`, shardId, plan, false, registration)
    this.#executions.set(execution.id, execution)
    let kept = this.#byRegistration.get(registration)
    if (kept === undefined) this.#byRegistration.set(registration, (kept = []))
    kept.push(execution)
    const max = Math.max(1, this.#maxPerRegistration())
    while (kept.length > max) {
      // The oldest finished one (or one drop() removed already); running ones stay.
      const index = kept.findIndex((e) => e.finished || this.#executions.get(e.id) !== e)
      if (index < 0) break
      const [old] = kept.splice(index, 1)
      if (old !== undefined && this.#executions.get(old.id) === old) this.#executions.delete(old.id)
    }
    return execution
  }

  /** Forgets the kept executions of a registration that was unregistered or replaced (an upgrade). */
  forgetRegistration(registration: string): void {
    const kept = this.#byRegistration.get(registration)
    if (kept === undefined) return
    this.#byRegistration.delete(registration)
    for (const e of kept) {
      if (this.#executions.get(e.id) !== e) continue
      if (e.finished) this.#executions.delete(e.id)
      // One still running goes once it finished (nothing else would drop it).
      else
        void e.whenDone().then(() => {
          if (this.#executions.get(e.id) === e) this.#executions.delete(e.id)
        })
    }
  }

  /** Registers a new running execution started on `shardId`. */
  create(shardId: string, plan: RunDescription, profiled: boolean): Execution {
    const execution = new Execution(`${shardId}-${++this.#counter}`, shardId, plan, profiled)
    this.#executions.set(execution.id, execution)
    this.#enforceCap()
    return execution
  }

  /** Every kept execution, oldest first (RG.DUMPEXECUTIONS). */
  list(): ExecutionSummary[] {
    return [...this.#executions.values()].map((e) => ({ id: e.id, status: e.status, registered: e.registration !== undefined }))
  }

  /** @throws ExecutionNotFoundError `execution plan does not exist` */
  get(id: string): ExecutionInfo {
    return this.#find(id).info()
  }

  /** @internal the live execution (the gears layer and the CLI's progress display). */
  find(id: string): Execution | undefined {
    return this.#executions.get(id)
  }

  /**
   * @throws ExecutionNotFoundError `execution plan does not exist`
   * @throws ExecutionRunningError `execution is still running`
   */
  results(id: string): ExecutionResults {
    const execution = this.#find(id)
    if (!execution.finished) throw new ExecutionRunningError()
    return { results: execution.results, errors: execution.errors }
  }

  /** Waits until the execution finished. @throws ExecutionNotFoundError `execution plan does not exist` */
  async resultsBlocking(id: string): Promise<ExecutionResults> {
    const execution = this.#find(id)
    await execution.whenDone()
    return { results: execution.results, errors: execution.errors }
  }

  /**
   * Forgets a finished execution.
   * @throws ExecutionNotFoundError `execution plan does not exist`
   * @throws ExecutionRunningError `can not drop a not yet finished execution, abort it first.`
   */
  drop(id: string): void {
    const execution = this.#find(id)
    if (!execution.finished) throw new ExecutionRunningError('can not drop a not yet finished execution, abort it first.')
    this.#executions.delete(id)
  }

  /**
   * Stops a running execution (no-op for a finished one) and resolves once it stopped.
   * @throws ExecutionNotFoundError `execution does not exist`
   */
  async abort(id: string): Promise<void> {
    const execution = this.#executions.get(id)
    if (execution === undefined) throw new ExecutionNotFoundError('execution does not exist')
    execution.abort()
    await execution.whenDone()
  }

  /** @internal drops an execution whatever its state (a blocking run, once its reply is sent). */
  forget(execution: Execution): void {
    if (this.#executions.get(execution.id) === execution) this.#executions.delete(execution.id)
  }

  #find(id: string): Execution {
    const execution = this.#executions.get(id)
    if (execution === undefined) throw new ExecutionNotFoundError()
    return execution
  }

  #enforceCap(): void {
    const max = Math.max(1, this.#maxExecutions())
    // Registrations' executions have their own cap (MaxExecutionsPerRegistration).
    let runs = 0
    for (const e of this.#executions.values()) if (e.registration === undefined) runs++
    if (runs <= max) return
    for (const [id, execution] of this.#executions) {
      if (runs <= max) break
      if (execution.finished && execution.registration === undefined) {
        this.#executions.delete(id)
        runs--
      }
    }
  }
}
