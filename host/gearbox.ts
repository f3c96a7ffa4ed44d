/**
 * The library front door: a Gearbox runs RedisGears-style function scripts in sandboxed QuickJS
 * interpreters (a pool of worker threads) against one Redis or Redis Cluster.
 *
 * @example
 * const gearbox = await Gearbox.create({ redis: 'redis://127.0.0.1:6379' })
 * await gearbox.execute(`execute('SET', 'greeting', 'hello')`)   // 'OK'
 * await gearbox.close()
 */
import type { Cluster, Redis } from 'ioredis'
import { ClosedError, InvalidArgumentError } from './errors.js'
import { coreSetting } from './gears/batch-run.js'
import { DEFAULT_MAX_EXECUTIONS, ExecutionRegistry, type ExecutionInfo, type ExecutionResults, type ExecutionSummary } from './gears/executions.js'
import { executeScript, outcomeReply, type ExecuteReply, type SessionDeps } from './gears/session.js'
import { pythonSource } from './gears/jobs.js'
import { KeyspaceFeed } from './gears/keyspace.js'
import { REGISTRATION_QUEUE_SIZE, RegistrationRegistry, type RegistrationInfo } from './gears/registrations.js'
import type { WireValue } from './runtime/wire.js'
import { nodePlatform } from './platform/node.js'
import { createRedisBackend, type FunctionUser } from './redis/index.js'
import type { RedisBackend } from './redis/types.js'
import { DEFAULT_ATOMIC_RETRIES } from './runtime/handler.js'
import { consoleLogger, type GearsLogger } from './runtime/logger.js'
import { resolveLimits } from './sandbox/limits.js'
import { startServer, type ServeOptions, type ServerHandle } from './server/index.js'
import type { SandboxPlatform } from './sandbox/platform.js'
import { SandboxPool } from './sandbox/pool.js'
import type { Limits } from './sandbox/types.js'

/** Where Gearbox sends the functions' Redis commands. */
export type RedisTarget =
  /** A URL: `redis://[user:password@]host:port[/db]`. */
  | string
  /** Seed nodes of a Redis Cluster (URLs); the rest of the cluster is discovered. */
  | { readonly cluster: readonly string[] }
  /** An ioredis client you created; it stays yours: `close()` does not quit it. */
  | Redis
  | Cluster
  /** A backend you built with `createRedisBackend`; it stays yours: `close()` does not close it. */
  | RedisBackend

export interface GearboxOptions {
  /** The Redis or Redis Cluster functions run against. */
  readonly redis: RedisTarget
  /** Per-execution limits; missing ones take {@link DEFAULT_LIMITS}. */
  readonly limits?: Partial<Limits>
  /** Where guest `log()` lines go. Default: `GEARS: <message>` on stderr. */
  readonly logger?: GearsLogger
  /** Sandbox worker threads: executions running in parallel. Default 2. */
  readonly workers?: number
  /**
   * The "extra config" dictionary `configGet()` and `gearsConfigGet()` read (values are strings).
   * RedisGears core settings (MaxExecutions, ExecutionThreads, ...) are never visible to guests.
   */
  readonly config?: Readonly<Record<string, string>>
  /** Commands functions may not send, e.g. `['FLUSHALL', 'CONFIG SET']`. Default: the policy's list. */
  readonly denyCommands?: readonly string[]
  /** Commands the built-in policy refuses that functions may run anyway, e.g. `['EVAL']` or `['@scripting']`. Default: none. */
  readonly allowCommands?: readonly string[]
  /**
   * The Redis ACL user functions' commands run as (README "Command policy"). `'managed'`
   * (default): gearbox creates or updates `gearbox-functions` on every master with ACL SETUSER
   * (the configured user needs that right; elsewhere Gearbox.create fails with
   * ERR_GEARBOX_FUNCTION_USER, printing the line to apply). `{ username, password }`: a user you
   * created, used as is. Not for a RedisBackend you built (pass it to createRedisBackend).
   */
  readonly functionUser?: FunctionUser
  /** Re-runs of a conflicting `atomic()` block before it fails with ERR_GEARBOX_ATOMIC_CONFLICT. Default 16. */
  readonly atomicRetries?: number
  /** How sandbox workers are started. Default: Node worker threads. */
  readonly platform?: SandboxPlatform
  /**
   * Records per reader batch of a run() (SCAN COUNT, XRANGE COUNT, records per host call). Bigger
   * batches mean fewer host calls and more memory per batch. Default 1000.
   */
  readonly batchSize?: number
  /**
   * Let KeysReader and KeysOnlyReader read each SCAN page with a small Lua script inside Redis
   * (SCAN, MGET, and the page encoded as JSON by Redis), which takes the per-key work off this
   * host. Falls back to plain commands by itself when Redis refuses EVAL or a page holds binary
   * data. Default true.
   */
  readonly serverSideReads?: boolean
  /**
   * Events one registration holds at most (queued or running); more are dropped and counted in
   * its `numDropped` (keyspace events are at most once). Default 10,000 (REGISTRATION_QUEUE_SIZE).
   */
  readonly registrationQueueSize?: number
}

/** Guest languages: JavaScript (QuickJS) and Python (MicroPython). */
export type GuestLanguage = 'js' | 'python'

export interface ExecuteOptions {
  /** The script's language. Default `'js'`. */
  readonly language?: GuestLanguage
  /** Limits for this execution, over the Gearbox's. */
  readonly limits?: Partial<Limits>
  /**
   * Aborts the execution: it rejects with AbortedError. A run() it started is aborted too while
   * execute() is pending (the reply is then `[results so far, [..., 'execution aborted']]`).
   */
  readonly signal?: AbortSignal
  /**
   * When the script calls run(): resolve with the execution's id as soon as it started, instead
   * of `[results, errors]` when it finished (RG.PYEXECUTE UNBLOCKING). Read the results with
   * `gearbox.executions`. Default false.
   */
  readonly unblocking?: boolean
  /**
   * Measure the per-step durations of the run() this script starts (`executions.get(id).steps`).
   * Default: the `ProfileExecutions` config value is `'1'`.
   */
  readonly profile?: boolean
}

/**
 * The batch executions run() started (RedisGears RG.DUMPEXECUTIONS, RG.GETEXECUTION,
 * RG.GETRESULTS, RG.GETRESULTSBLOCKING, RG.DROPEXECUTION, RG.ABORTEXECUTION). A blocking run's
 * execution is listed while it runs and dropped once it replied; an unblocking one stays until
 * dropped, or until MaxExecutions (the `config` option, default 1000) pushes the oldest finished
 * ones out.
 */
export interface Executions {
  /** Every kept execution, oldest first. */
  list(): ExecutionSummary[]
  /** Status, counts, errors and per-step durations. @throws ExecutionNotFoundError `execution plan does not exist` */
  get(id: string): ExecutionInfo
  /**
   * The records as the guest produced them (objects stay objects) and the error texts.
   * @throws ExecutionNotFoundError `execution plan does not exist`
   * @throws ExecutionRunningError `execution is still running`
   */
  results(id: string): ExecutionResults
  /** As results(), once the execution finished. @throws ExecutionNotFoundError `execution plan does not exist` */
  resultsBlocking(id: string): Promise<ExecutionResults>
  /**
   * Forgets a finished execution.
   * @throws ExecutionNotFoundError `execution plan does not exist`
   * @throws ExecutionRunningError `can not drop a not yet finished execution, abort it first.`
   */
  drop(id: string): void
  /**
   * Stops a running execution (its sandboxes are killed; results so far are kept, status
   * `aborted`, error `execution aborted`) and resolves once it stopped. A finished one is left as it is.
   * @throws ExecutionNotFoundError `execution does not exist`
   */
  abort(id: string): Promise<void>
}

/**
 * The registrations scripts made with `register()` (RedisGears RG.DUMPREGISTRATIONS,
 * RG.UNREGISTER, RG.CLEARREGISTRATIONSSTATS), held in this host's memory.
 */
export interface Registrations {
  /** Every registration with RG.DUMPREGISTRATIONS' fields, oldest first. */
  list(): RegistrationInfo[]
  /** Stops a registration (executions running finish). @throws RegistrationNotFoundError `execution is not registered` */
  unregister(id: string): void
  /** Zeroes every registration's counters and lastError. */
  clearStats(): void
}

export class Gearbox {
  readonly #deps: SessionDeps & { readonly registrations: RegistrationRegistry }
  readonly #pool: SandboxPool
  readonly #limits: Limits
  readonly #closeBackend: boolean
  #closing: Promise<void> | undefined
  /** The batch executions run() started. */
  readonly executions: Executions
  /** What scripts registered. */
  readonly registrations: Registrations

  private constructor(deps: SessionDeps & { readonly registrations: RegistrationRegistry }, pool: SandboxPool, limits: Limits, closeBackend: boolean) {
    this.#deps = deps
    this.#pool = pool
    this.#limits = limits
    this.#closeBackend = closeBackend
    const registry = deps.executions
    this.executions = Object.freeze({
      list: () => registry.list(),
      get: (id: string) => registry.get(id),
      results: (id: string) => registry.results(id),
      resultsBlocking: (id: string) => registry.resultsBlocking(id),
      drop: (id: string) => registry.drop(id),
      abort: (id: string) => registry.abort(id),
    })
    const registrations = deps.registrations
    this.registrations = Object.freeze({
      list: () => registrations.list(),
      unregister: (id: string) => registrations.unregister(id),
      clearStats: () => registrations.clearStats(),
    })
  }

  /**
   * Connects to Redis and starts the sandbox workers.
   * @throws InvalidArgumentError for bad options; ConnectionError when Redis cannot be reached.
   */
  static async create(options: GearboxOptions): Promise<Gearbox> {
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('Gearbox.create expects an options object')
    const limits = resolveLimits(options.limits)
    const config = checkConfig(options.config)
    const atomicRetries = options.atomicRetries ?? DEFAULT_ATOMIC_RETRIES
    if (!Number.isSafeInteger(atomicRetries) || atomicRetries < 0) {
      throw new InvalidArgumentError(`atomicRetries must be a non-negative integer (got ${String(options.atomicRetries)})`)
    }
    const logger = options.logger ?? consoleLogger
    if (typeof logger !== 'object' || logger === null || typeof logger.log !== 'function') {
      throw new InvalidArgumentError('logger must be an object with a log(level, message) method')
    }
    const batchSize = options.batchSize ?? 1000
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw new InvalidArgumentError(`batchSize must be a positive integer (got ${String(options.batchSize)})`)
    }
    const executions = new ExecutionRegistry({ maxExecutions: () => maxExecutions(config) })
    const { backend, owned } = await connect(options)
    let pool: SandboxPool
    try {
      pool = await SandboxPool.create({
        platform: options.platform ?? nodePlatform(),
        // Workers pre-create interpreters capped for the default memory limit.
        memoryBytes: limits.memoryBytes,
        ...(options.workers === undefined ? {} : { workers: options.workers }),
      })
    } catch (error) {
      if (owned) await backend.close()
      throw error
    }
    const serverSideReads = options.serverSideReads ?? true
    const queueSize = options.registrationQueueSize ?? REGISTRATION_QUEUE_SIZE
    if (!Number.isSafeInteger(queueSize) || queueSize < 1) {
      await pool.close()
      if (owned) await backend.close()
      throw new InvalidArgumentError(`registrationQueueSize must be a positive integer (got ${String(options.registrationQueueSize)})`)
    }
    // The keyspace feed starts with the first KeysReader registration (CONFIG SET, subscribers).
    let registrations: RegistrationRegistry | undefined = undefined
    const feed = new KeyspaceFeed(backend, logger, {
      event: (shard, local, key, event) => registrations?.keyEvent(shard, local, key, event),
      gap: (shardId) => registrations?.subscriberGap(shardId),
    })
    registrations = new RegistrationRegistry({ pool, backend, logger, config, atomicRetries, batchSize, queueSize }, feed)
    return new Gearbox(
      { pool, backend, logger, config, atomicRetries, executions, batchSize, serverSideReads, registrations },
      pool,
      limits,
      owned,
    )
  }

  /**
   * Runs a function script: its top level once, then what it started (runCoroutine work).
   * Resolves with the RG.PYEXECUTE-style reply: `'OK'` for a script that only ran top-level code;
   * for a script whose top level called `GB(...)....run()`, `[results, errors]` once the execution
   * finished (records failing in a step leave their error text and skip the later steps), or the
   * execution id with `unblocking`. A script that registers (`register()`) resolves `'OK'` once its
   * registrations applied (see `gearbox.registrations`).
   *
   * @throws GuestError (ERR_GEARBOX_GUEST) when the script throws; a limit error
   *   (ERR_GEARBOX_CPU_LIMIT, ...) when it exceeds one; AbortedError; ClosedError after close();
   *   InvalidArgumentError for an unsupported language.
   */
  async execute(source: string, options: ExecuteOptions = {}): Promise<ExecuteReply> {
    if (this.#closing !== undefined) throw new ClosedError()
    if (typeof source !== 'string') throw new InvalidArgumentError('execute expects the script source as a string')
    const language = options.language ?? 'js'
    if (language !== 'js' && language !== 'python') {
      throw new InvalidArgumentError(`unknown language '${String(language)}' (supported: 'js', 'python')`)
    }
    const limits = options.limits === undefined ? this.#limits : resolveLimits({ ...this.#limits, ...options.limits })
    const outcome = await executeScript(this.#deps, language === 'python' ? pythonSource(source) : source, {
      limits,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.unblocking === undefined ? {} : { unblocking: options.unblocking }),
      ...(options.profile === undefined ? {} : { profile: options.profile }),
    })
    return outcomeReply(outcome)
  }

  /**
   * RG.TRIGGER: runs the CommandReader registration `trigger: name` over the record
   * `[name, ...args]` (on the current shard). Resolves with its results.
   * @throws TriggerNotFoundError `ERR subcommand not found`; RegistrationError carrying the
   *   execution's first error when it had any.
   */
  trigger(name: string, ...args: string[]): Promise<WireValue[]> {
    if (this.#closing !== undefined) return Promise.reject(new ClosedError())
    if (typeof name !== 'string' || !args.every((a) => typeof a === 'string')) {
      return Promise.reject(new InvalidArgumentError('trigger expects a name and string arguments'))
    }
    return this.#deps.registrations.trigger(name, args)
  }

  /** RG.TRIGGERONKEY: as {@link trigger}, with the record `[name, key, ...args]`, run on the key's shard. */
  triggerOnKey(name: string, key: string, ...args: string[]): Promise<WireValue[]> {
    if (this.#closing !== undefined) return Promise.reject(new ClosedError())
    if (typeof name !== 'string' || typeof key !== 'string' || !args.every((a) => typeof a === 'string')) {
      return Promise.reject(new InvalidArgumentError('triggerOnKey expects a name, a key and string arguments'))
    }
    return this.#deps.registrations.trigger(name, args, key)
  }

  /**
   * Serves RESP on `options.port` (default: a free one) of `options.bind` (default 127.0.0.1):
   * ordinary commands go to this Gearbox's Redis, RG.* commands run here (README "gearbox serve").
   * `close()` on the handle drains and stops the server; the Gearbox stays open.
   */
  serve(options: ServeOptions = {}): Promise<ServerHandle> {
    if (this.#closing !== undefined) return Promise.reject(new ClosedError())
    const config = this.#deps.config as Record<string, string>
    const pool = this.#pool
    const memoryBytes = this.#limits.memoryBytes
    let peak = 0
    const sandboxMemory = (): { total: number; peak: number; current: number } => {
      // Each running sandbox may hold up to limits.memoryBytes: that reservation is what is counted.
      const stats = pool.stats()
      const current = stats.busy * memoryBytes
      peak = Math.max(peak, current)
      return { total: stats.executions * memoryBytes, peak, current }
    }
    return startServer(
      {
        execute: (source, executeOptions) =>
          this.execute(source, { unblocking: executeOptions.unblocking, ...(executeOptions.language === undefined ? {} : { language: executeOptions.language }) }),
        executions: this.executions,
        config,
        shards: () => this.#deps.backend.shards(),
        mode: this.#deps.backend.mode,
        sandboxMemory,
        trigger: (name, args, key) => (key === undefined ? this.trigger(name, ...args) : this.triggerOnKey(name, key, ...args)),
        registrations: this.registrations,
      },
      this.#deps.backend,
      options,
    )
  }

  /** Stops the workers (aborting running executions) and closes the Redis connections gearbox opened. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#deps.registrations.close()
        await this.#pool.close()
      } finally {
        if (this.#closeBackend) await this.#deps.backend.close()
      }
    })()
    return this.#closing
  }
}

/** MaxExecutions from the `config` option (RedisGears' setting), else 1000. */
function maxExecutions(config: Readonly<Record<string, string>>): number {
  const value = Number(coreSetting(config, 'MaxExecutions'))
  return Number.isSafeInteger(value) && value > 0 ? value : DEFAULT_MAX_EXECUTIONS
}

function checkConfig(config: Readonly<Record<string, string>> | undefined): Readonly<Record<string, string>> {
  if (config === undefined) return Object.create(null) as Record<string, string>
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new InvalidArgumentError('config must be an object of string values')
  }
  const copy: Record<string, string> = Object.create(null) as Record<string, string>
  for (const [key, value] of Object.entries(config)) {
    if (typeof value !== 'string') throw new InvalidArgumentError(`config.${key} must be a string (got ${typeof value})`)
    copy[key] = value
  }
  // Not frozen: RG.CONFIGSET (gearbox serve) writes it; guests read it at each configGet().
  return copy
}

function isBackend(value: object): value is RedisBackend {
  const v = value as Partial<RedisBackend>
  return (v.mode === 'standalone' || v.mode === 'cluster') && typeof v.dedicated === 'function' && typeof v.currentShard === 'function'
}

async function connect(options: GearboxOptions): Promise<{ backend: RedisBackend; owned: boolean }> {
  const target = options.redis
  if (typeof target !== 'string' && (typeof target !== 'object' || target === null)) {
    throw new InvalidArgumentError('redis must be a URL, {cluster: [urls]}, an ioredis client or a RedisBackend')
  }
  if (typeof target === 'object' && isBackend(target)) {
    if (options.denyCommands !== undefined || options.allowCommands !== undefined) {
      throw new InvalidArgumentError('denyCommands and allowCommands cannot apply to a RedisBackend you built: pass them to createRedisBackend instead')
    }
    if (options.functionUser !== undefined) {
      throw new InvalidArgumentError('functionUser cannot apply to a RedisBackend you built: pass it to createRedisBackend instead')
    }
    return { backend: target, owned: false }
  }
  // A URL, cluster seeds, or an ioredis client whose options the backend copies (it opens its
  // own connections, so closing the backend leaves the client to its owner).
  const backend = createRedisBackend(target, {
    ...(options.denyCommands === undefined && options.allowCommands === undefined
      ? {}
      : {
          commandPolicy: {
            ...(options.denyCommands === undefined ? {} : { denyCommands: options.denyCommands }),
            ...(options.allowCommands === undefined ? {} : { allowCommands: options.allowCommands }),
          },
        }),
    ...(options.functionUser === undefined ? {} : { functionUser: options.functionUser }),
  })
  try {
    // Fail here, with the address in the message, rather than in the first guest's execute().
    await backend.call(['PING'], { internal: true })
    // And here when the function user cannot be set up or log in (FunctionUserError).
    await backend.call(['PING'])
  } catch (error) {
    await backend.close()
    throw error
  }
  return { backend, owned: true }
}
