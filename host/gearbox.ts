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
import { DEFAULT_MAX_EXECUTIONS, DEFAULT_MAX_EXECUTIONS_PER_REGISTRATION, ExecutionRegistry, type ExecutionInfo, type ExecutionResults, type ExecutionSummary } from './gears/executions.js'
import { outcomeReply, type ExecuteReply, type SessionDeps } from './gears/session.js'
import { pythonSource } from './gears/jobs.js'
import { KeyspaceFeed } from './gears/keyspace.js'
import { REGISTRATION_QUEUE_SIZE, RegistrationRegistry, type RegistrationInfo } from './gears/registrations.js'
import { SessionManager, type SessionInfo } from './gears/sessions.js'
import { DEFAULT_LEASE_MS, KeyspaceLeases, leasedFeed, SessionStore } from './gears/store.js'
import type { WireValue } from './runtime/wire.js'
import { nodePlatform } from './platform/node.js'
import { createRedisBackend, type FunctionUser } from './redis/index.js'
import { isReserved, RESERVED_PREFIX } from './redis/reserved-keys.js'
import type { RedisBackend } from './redis/types.js'
import { DEFAULT_ATOMIC_RETRIES } from './runtime/handler.js'
import { consoleLogger, type GearsLogger } from './runtime/logger.js'
import { resolveLimits } from './sandbox/limits.js'
import { startServer, type ServeOptions, type ServerHandle } from './server/index.js'
import type { SandboxPlatform } from './sandbox/platform.js'
import { SandboxPool, type SandboxPoolStats } from './sandbox/pool.js'
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
  /**
   * Store sessions and their registrations in the Redis they serve (under `{gearbox}:`), restore
   * them when a Gearbox is created on that Redis, follow the changes other hosts make there, and
   * share keyspace-event duty with them through per-shard leases (README "Sessions, persistence
   * and several hosts"). `false`: registrations live in this process only, and this host
   * processes every keyspace event it hears. Default true.
   */
  readonly persist?: boolean
  /**
   * Time to live of a keyspace-event lease, in milliseconds: when the host holding a shard's lease
   * dies, another takes over within about this long (events in between are lost: keyspace
   * triggers are at most once). Default 5000.
   */
  readonly keyspaceLeaseMs?: number
  /**
   * Registration executions start from the interpreter their session's top level left, saved per
   * worker (default true). false: every execution evaluates the script again with its top level
   * replayed (slower; kept to measure against).
   */
  readonly savedRealms?: boolean
  /**
   * Against a standalone Redis over TCP: each sandbox worker sends a function's plain commands
   * (those the command policy passes unchanged) on a connection of its own, as the function user,
   * instead of through the main thread (default true): one thread hop less per `execute()` when a
   * worker runs alone. false: every call goes through the main thread.
   */
  readonly directCalls?: boolean
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
  /**
   * The script's session id (RG.PYEXECUTE ID: letters, digits, `-`, `_`). An id in use is refused
   * (`Session <id> already exists`) unless `upgrade`. Default: 40 random hex characters.
   */
  readonly id?: string
  /** The session's description (RG.PYEXECUTE DESCRIPTION), shown by `sessions.list()`. */
  readonly description?: string
  /**
   * Replace session `id` when it exists (RG.PYEXECUTE UPGRADE): once the new script's top level
   * finished, its registrations take the old ones' place in one step (events already queued or
   * running finish on the old version). A script that throws leaves the old version. Default false.
   */
  readonly upgrade?: boolean
  /**
   * Replace the existing session `replaceWith` with this new one (RG.PYEXECUTE REPLACE_WITH), as
   * `upgrade` does, under a new id.
   */
  readonly replaceWith?: string
}

/** The sessions (RG.PYDUMPSESSIONS): scripts running now, and scripts that have registrations. */
export interface Sessions {
  /** Every session with RG.PYDUMPSESSIONS' fields, oldest first. */
  list(): SessionInfo[]
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
  /**
   * Stops a registration (executions running finish; with `abortPending`, a StreamReader
   * registration's running executions are aborted and their entries left pending in the consumer
   * group). The promise settles once the store (and so every other host) has it and its stream
   * reader stopped.
   * @throws RegistrationNotFoundError `execution is not registered`
   */
  unregister(id: string, options?: { readonly abortPending?: boolean }): Promise<void>
  /**
   * Pauses a StreamReader registration (RG.PAUSEREGISTRATIONS): it stops reading, a running batch
   * finishes; entries it holds stay pending until unpause().
   * @throws RegistrationNotFoundError `Execution <id> does not exists on shard <shard>`;
   * RegistrationPauseError `Reader KeysReader does not support pause`
   */
  pause(id: string): Promise<void>
  /** Reads again after pause(), a `PAUSE...` error or onFailedPolicy abort (RG.UNPAUSEREGISTRATIONS). Errors as pause(). */
  unpause(id: string): Promise<void>
  /** Zeroes every registration's counters and lastError. */
  clearStats(): void
}

interface GearboxParts {
  readonly sessions: SessionManager
  readonly store: SessionStore | undefined
  readonly hostId: string
}

export class Gearbox {
  readonly #deps: SessionDeps & { readonly registrations: RegistrationRegistry }
  readonly #parts: GearboxParts
  readonly #pool: SandboxPool
  readonly #limits: Limits
  readonly #closeBackend: boolean
  #closing: Promise<void> | undefined
  /** The batch executions run() started. */
  readonly executions: Executions
  /** What scripts registered. */
  readonly registrations: Registrations
  /** The sessions (scripts running, and scripts with registrations). */
  readonly sessions: Sessions
  /** This host's id: in its keyspace leases (`{gearbox}:lease:<shard>`) and change messages. */
  readonly hostId: string

  private constructor(deps: SessionDeps & { readonly registrations: RegistrationRegistry }, parts: GearboxParts, pool: SandboxPool, limits: Limits, closeBackend: boolean) {
    this.#deps = deps
    this.#parts = parts
    this.hostId = parts.hostId
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
      unregister: (id: string, options?: { readonly abortPending?: boolean }) => {
        try {
          return parts.sessions.unregister(id, options)
        } catch (error) {
          return Promise.reject(error)
        }
      },
      pause: (id: string) => registrations.pause(id),
      unpause: (id: string) => registrations.unpause(id),
      clearStats: () => registrations.clearStats(),
    })
    this.sessions = Object.freeze({ list: () => parts.sessions.list() })
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
    const executions = new ExecutionRegistry({
      maxExecutions: () => maxExecutions(config),
      maxExecutionsPerRegistration: () => positiveSetting(config, 'MaxExecutionsPerRegistration', DEFAULT_MAX_EXECUTIONS_PER_REGISTRATION),
    })
    const leaseMs = options.keyspaceLeaseMs ?? DEFAULT_LEASE_MS
    if (!Number.isSafeInteger(leaseMs) || leaseMs < 30) {
      throw new InvalidArgumentError(`keyspaceLeaseMs must be an integer of at least 30 (got ${String(options.keyspaceLeaseMs)})`)
    }
    const persist = options.persist ?? true
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
    if (options.directCalls !== false) {
      // Optional speed-up: when it cannot be set up, every call takes the main thread's path (which reports any problem).
      const access = await backend.directAccess?.().catch(() => undefined)
      if (access !== undefined) pool.enableDirectCalls({ ...access, reservedPrefix: RESERVED_PREFIX })
    }
    const serverSideReads = options.serverSideReads ?? true
    const queueSize = options.registrationQueueSize ?? REGISTRATION_QUEUE_SIZE
    if (!Number.isSafeInteger(queueSize) || queueSize < 1) {
      await pool.close()
      if (owned) await backend.close()
      throw new InvalidArgumentError(`registrationQueueSize must be a positive integer (got ${String(options.registrationQueueSize)})`)
    }
    // The keyspace feed starts with the first KeysReader registration (CONFIG SET, subscribers).
    // With a store, only the host holding a shard's lease processes that shard's events.
    const hostId = randomHostId()
    const leases = persist ? new KeyspaceLeases(backend, logger, hostId, leaseMs) : undefined
    let registrations: RegistrationRegistry | undefined = undefined
    const keyspace = new KeyspaceFeed(backend, logger, {
      event: (shard, local, key, event) => {
        // gearbox's own keys (the store, the leases) trigger nothing.
        if (isReserved(key)) return
        if (leases === undefined || leases.holds(shard.id)) registrations?.keyEvent(shard, local, key, event)
      },
      gap: (shardId) => registrations?.subscriberGap(shardId),
    })
    const feed = leases === undefined ? keyspace : leasedFeed(keyspace, leases)
    registrations = new RegistrationRegistry(
      { pool, backend, logger, config, atomicRetries, batchSize, queueSize, executions, hostId, ...(options.savedRealms === false ? { savedRealms: false } : {}) },
      feed,
    )
    const deps = { pool, backend, logger, config, atomicRetries, executions, batchSize, serverSideReads, registrations }
    const store = persist ? new SessionStore(backend, logger, hostId) : undefined
    const sessions = new SessionManager(deps, store, logger)
    try {
      if (store !== undefined) {
        // Each host process numbers its registrations in its own range of a million.
        registrations.idsFrom((await store.hostNumber()) * 1_000_000)
        // Follow other hosts' changes first, then restore: no change falls in between.
        const watching = await store.watch(() => {
          sessions.sync().catch((error: unknown) => logger.log('warning', `stored sessions could not be read: ${error instanceof Error ? error.message : String(error)}`))
        })
        if (!watching) logger.log('warning', "this Redis backend cannot subscribe: registrations made by other hosts reach this one only when it restarts")
        await sessions.sync()
      }
    } catch (error) {
      await sessions.close()
      await store?.close()
      await registrations.close()
      await pool.close()
      if (owned) await backend.close()
      throw error
    }
    return new Gearbox(deps, { sessions, store, hostId }, pool, limits, owned)
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
    const outcome = await this.#parts.sessions.execute(
      language === 'python' ? pythonSource(source) : source,
      {
        limits,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        ...(options.unblocking === undefined ? {} : { unblocking: options.unblocking }),
        ...(options.profile === undefined ? {} : { profile: options.profile }),
      },
      {
        ...(options.id === undefined ? {} : { id: options.id }),
        ...(options.description === undefined ? {} : { description: options.description }),
        ...(options.upgrade === undefined ? {} : { upgrade: options.upgrade }),
        ...(options.replaceWith === undefined ? {} : { replaceWith: options.replaceWith }),
      },
    )
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

  /** The sandbox pool's counters: workers, busy, queued, respawns, settled executions, direct calls. */
  sandboxStats(): SandboxPoolStats {
    return this.#pool.stats()
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
        execute: (source, executeOptions) => this.execute(source, executeOptions),
        executions: this.executions,
        config,
        shards: () => this.#deps.backend.shards(),
        mode: this.#deps.backend.mode,
        sandboxMemory,
        trigger: (name, args, key) => (key === undefined ? this.trigger(name, ...args) : this.triggerOnKey(name, key, ...args)),
        registrations: this.registrations,
        sessions: this.sessions,
        commandPath: this.#deps.registrations,
      },
      this.#deps.backend,
      options,
    )
  }

  /** Stops the workers (aborting running executions) and closes the Redis connections gearbox opened. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#parts.sessions.close()
        await this.#parts.store?.close()
        await this.#deps.registrations.close()
        await this.#pool.close()
      } finally {
        if (this.#closeBackend) await this.#deps.backend.close()
      }
    })()
    return this.#closing
  }
}

/** A positive integer core setting from the `config` option, else `fallback`. */
function positiveSetting(config: Readonly<Record<string, string>>, name: string, fallback: number): number {
  const value = Number(coreSetting(config, name))
  return Number.isSafeInteger(value) && value > 0 ? value : fallback
}

function randomHostId(): string {
  const bytes = new Uint8Array(10)
  globalThis.crypto.getRandomValues(bytes)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
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
