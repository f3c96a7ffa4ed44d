/**
 * The RedisBackend on ioredis 6, for a standalone server (or sentinel-managed master) and for a
 * Redis Cluster.
 *
 * Connections: gearbox always opens its own (from a URL, seed URLs, options, or the options of a
 * Redis/Cluster instance you pass, which it never sends on). They speak RESP2 (`protocol: 2`:
 * ioredis 6 defaults to RESP3, whose reply shapes differ) and carry the reply tap of
 * reply-tap.ts, which keeps status replies apart from bulk strings and big integers exact.
 *
 * Failures: an error reply rejects with RedisReplyError (Redis's text); no reply (connection
 * lost mid-call, not connected within `connectTimeoutMs`, `commandTimeoutMs` passed) rejects
 * with ConnectionError and is never resent. ioredis reconnects in the background, so later calls
 * work again once Redis is back.
 *
 * Cluster routing: a command with keys goes to the master owning its first key's slot (computed
 * here; ioredis follows MOVED/ASK); a keyless one goes to `options.shard` or the current shard
 * (the master owning slot 0). Cross-slot commands reach Redis, which answers CROSSSLOT.
 *
 * Throughput: commands go out with `sendCommand`, one write per connection per tick
 * (write-batch.ts), instead of ioredis auto-pipelining, which only covers its command methods,
 * breaks `callBuffer` (ioredis#1923) and refuses cross-slot batches in a cluster.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { Socket } from 'node:net'
import { keySlot } from '../cluster/slots.js'
import {
  STANDALONE_SHARD_ID,
  parseClusterShards,
  parseClusterSlots,
  shardOwningSlot,
  standaloneShard,
  type ShardInfo,
} from '../cluster/topology.js'
import {
  ClosedError,
  ConnectionError,
  InvalidArgumentError,
  RedisReplyError,
  UnexpectedReplyError,
} from '../errors.js'
import { commandKeyIndexes } from './command-metadata.js'
import { CommandPolicy, type CommandPolicyOptions } from './command-policy.js'
import { toGearboxError, type ErrorContext } from './connection-errors.js'
import { TappedCommand, TappedSentinelConnector, TappedStandaloneConnector } from './reply-tap.js'
import type {
  CallOptions,
  DedicatedConnection,
  PipelineOptions,
  PreparedCommand,
  RedisArg,
  RedisBackend,
  RedisReply,
  ScanOptions,
  ScanPage,
} from './types.js'
import { WriteBatcher } from './write-batch.js'

/**
 * Where Redis is: a `redis://` / `rediss://` URL; `{ cluster: [seed URLs] }`; ioredis
 * RedisOptions; or a connected ioredis Redis or Cluster whose connection options gearbox copies
 * (it opens its own connections and never sends on yours; `keyPrefix` is not copied).
 */
export type RedisSource = string | { readonly cluster: readonly string[] } | RedisOptions | Redis | Cluster

export interface RedisBackendOptions {
  /** The policy for functions' commands: options, or a ready CommandPolicy. Default: `new CommandPolicy()`. */
  readonly commandPolicy?: CommandPolicyOptions | CommandPolicy
  /**
   * How long a call waits for the connection to (re)connect before failing with
   * ConnectionError; also ioredis's `connectTimeout`. Default 5000 ms.
   */
  readonly connectTimeoutMs?: number
  /** Longest pause between reconnection attempts (they back off from 50 ms). Default 2000 ms. */
  readonly maxReconnectDelayMs?: number
  /**
   * Fail a command with ConnectionError when its reply has not arrived after this long.
   * Default: no limit (a long Lua script or a slow KEYS is legitimate).
   */
  readonly commandTimeoutMs?: number
  /** Idle dedicated connections kept per master for reuse. Default 4. */
  readonly dedicatedPoolSize?: number
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5000
const DEFAULT_MAX_RECONNECT_DELAY_MS = 2000
const DEFAULT_DEDICATED_POOL_SIZE = 4

type Client = Redis | Cluster
/** RedisOptions as gearbox passes them on (replyMapping is RESP3-only; gearbox pins RESP2). */
type ConnectionOptions = Omit<RedisOptions, 'replyMapping'>

/** Creates the backend; connections open in the background (calls wait for them, up to `connectTimeoutMs`). */
export function createRedisBackend(source: RedisSource, options: RedisBackendOptions = {}): RedisBackend {
  return new IoredisBackend(source, options)
}

function positiveOption(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError(`${name} must be a positive number of milliseconds, got ${value}`)
  return value
}

function seedFromUrl(url: string): { host: string; port: number; username?: string; password?: string; tls: boolean } {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new InvalidArgumentError(`cluster seed ${JSON.stringify(url)} is not a redis:// URL`)
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new InvalidArgumentError(`cluster seed ${JSON.stringify(url)} is not a redis:// or rediss:// URL`)
  }
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    tls: parsed.protocol === 'rediss:',
  }
}

/** Awaits `client`'s `ready` (shared by concurrent callers), failing after `timeoutMs`. */
class ReadyWaiter {
  private pending: Promise<void> | undefined
  constructor(
    private readonly client: Client,
    private readonly timeoutMs: number,
    private readonly describe: () => string,
  ) {}

  wait(): Promise<void> {
    this.pending ??= new Promise<void>((resolve, reject) => {
      const onReady = (): void => {
        clearTimeout(timer)
        this.pending = undefined
        resolve()
      }
      const timer = setTimeout(() => {
        this.client.off('ready', onReady)
        this.pending = undefined
        reject(new ConnectionError(`Redis ${this.describe()} is not reachable: not connected within connectTimeoutMs (${this.timeoutMs} ms)`))
      }, this.timeoutMs)
      this.client.once('ready', onReady)
    })
    return this.pending
  }
}

interface PooledConnection {
  readonly redis: Redis
  readonly waiter: ReadyWaiter
}

class IoredisBackend implements RedisBackend {
  readonly mode: 'standalone' | 'cluster'
  private readonly policy: CommandPolicy
  private readonly connectTimeoutMs: number
  private readonly maxReconnectDelayMs: number
  private readonly commandTimeoutMs: number | undefined
  private readonly dedicatedPoolSize: number
  private readonly client: Client
  private readonly clientReady: ReadyWaiter
  /** Options for extra connections (dedicated ones); in a cluster, host and port are added per master. */
  private readonly nodeOptions: ConnectionOptions
  private readonly batcher = new WriteBatcher()
  private readonly idle = new Map<string, PooledConnection[]>()
  private readonly leased = new Set<PooledConnection>()
  private topology: Promise<ShardInfo[]> | undefined
  private lastError: Error | undefined
  private closed = false

  constructor(source: RedisSource, options: RedisBackendOptions) {
    this.policy = options.commandPolicy instanceof CommandPolicy ? options.commandPolicy : new CommandPolicy(options.commandPolicy)
    this.connectTimeoutMs = positiveOption(options.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS, 'connectTimeoutMs')
    this.maxReconnectDelayMs = positiveOption(options.maxReconnectDelayMs, DEFAULT_MAX_RECONNECT_DELAY_MS, 'maxReconnectDelayMs')
    this.commandTimeoutMs = options.commandTimeoutMs === undefined ? undefined : positiveOption(options.commandTimeoutMs, 0, 'commandTimeoutMs')
    const poolSize = options.dedicatedPoolSize ?? DEFAULT_DEDICATED_POOL_SIZE
    if (!Number.isInteger(poolSize) || poolSize < 0) throw new InvalidArgumentError(`dedicatedPoolSize must be an integer ≥ 0, got ${poolSize}`)
    this.dedicatedPoolSize = poolSize

    const connection: ConnectionOptions = {
      protocol: 2,
      connectTimeout: this.connectTimeoutMs,
      ...(this.commandTimeoutMs === undefined ? {} : { commandTimeout: this.commandTimeoutMs }),
      // Calls wait for `ready` themselves (bounded by connectTimeoutMs) instead of queueing
      // inside ioredis, and a command in flight when the connection drops is failed, not resent.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      enableAutoPipelining: false,
    }
    const retryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times - 1, 10), this.maxReconnectDelayMs)

    if (source instanceof Cluster || (typeof source === 'object' && source !== null && 'cluster' in source && Array.isArray(source.cluster))) {
      this.mode = 'cluster'
      let seeds: { host: string; port: number }[]
      let clusterOptions: ClusterOptions
      if (source instanceof Cluster) {
        const known = source.nodes('all').map((n) => ({ host: n.options.host ?? '127.0.0.1', port: n.options.port ?? 6379 }))
        const startup = (source as unknown as { startupNodes?: { host: string; port: number }[] }).startupNodes ?? []
        seeds = known.length > 0 ? known : startup
        clusterOptions = { ...source.options }
      } else {
        const parsed = (source as { readonly cluster: readonly string[] }).cluster.map(seedFromUrl)
        if (parsed.length === 0) throw new InvalidArgumentError('cluster: give at least one seed URL')
        seeds = parsed.map(({ host, port }) => ({ host, port }))
        const first = parsed[0]!
        clusterOptions = {
          redisOptions: {
            ...(first.username === undefined ? {} : { username: first.username }),
            ...(first.password === undefined ? {} : { password: first.password }),
            ...(first.tls ? { tls: {} } : {}),
          },
        }
      }
      const { keyPrefix: _ignored, replyMapping: _resp3, ...redisOptions } = clusterOptions.redisOptions ?? {}
      const { keyPrefix: _ignoredToo, redisOptions: _merged, ...clusterRest } = clusterOptions
      this.nodeOptions = { ...redisOptions, ...connection, Connector: TappedStandaloneConnector }
      this.client = new Cluster(seeds, {
        ...clusterRest,
        redisOptions: this.nodeOptions,
        scaleReads: 'master',
        enableOfflineQueue: false,
        // ioredis would resend a command whose connection closed, even one already sent (and
        // failed to its caller with ConnectionError): a second INCR nobody asked for.
        retryDelayOnFailover: 0,
        enableAutoPipelining: false,
        lazyConnect: false,
        clusterRetryStrategy: retryStrategy,
      })
      this.client.on('refresh', () => (this.topology = undefined))
      this.client.on('+node', () => (this.topology = undefined))
      this.client.on('-node', () => (this.topology = undefined))
    } else {
      this.mode = 'standalone'
      let base: RedisOptions
      if (typeof source === 'string') {
        if (!/^rediss?:\/\//.test(source)) throw new InvalidArgumentError(`${JSON.stringify(source)} is not a redis:// or rediss:// URL`)
        base = {}
      } else if (source instanceof Redis) {
        base = { ...source.options }
      } else {
        base = { ...(source as RedisOptions) }
      }
      const { keyPrefix: _ignored, Connector: _replaced, replyMapping: _resp3, ...rest } = base
      const standalone: ConnectionOptions = {
        ...rest,
        ...connection,
        Connector: rest.sentinels ? TappedSentinelConnector : TappedStandaloneConnector,
        retryStrategy,
        lazyConnect: false,
      }
      this.client = typeof source === 'string' ? new Redis(source, standalone) : new Redis(standalone)
      // Dedicated connections reuse the resolved options (URL parts included, sentinels too).
      const { replyMapping: _mapping, ...resolved } = this.client.options
      this.nodeOptions = resolved
    }
    this.client.on('error', (err: Error) => (this.lastError = err))
    this.clientReady = new ReadyWaiter(this.client, this.connectTimeoutMs, () => this.describeClient())
  }

  private describeClient(): string {
    const detail = this.lastError ? ` (last error: ${this.lastError.message})` : ''
    if (this.client instanceof Cluster) return `cluster${detail}`
    return `${this.client.options.host ?? '127.0.0.1'}:${this.client.options.port ?? 6379}${detail}`
  }

  private context(command: string, where: string): ErrorContext {
    return { command, where, connectTimeoutMs: this.connectTimeoutMs, commandTimeoutMs: this.commandTimeoutMs }
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('the Redis backend is closed')
  }

  /** Resolves when the main client is ready (at once in the common case). */
  private ready(): Promise<void> | undefined {
    if (this.client.status === 'ready') return undefined
    if (this.client.status === 'end') {
      return Promise.reject(new ConnectionError(`the connection to Redis ${this.describeClient()} has ended`))
    }
    return this.clientReady.wait()
  }

  /** Sends on `redis` (a standalone connection or a cluster node) and maps the outcome. */
  private send(redis: Redis, command: TappedCommand, where: string): Promise<RedisReply> {
    if (redis.status === 'ready') this.batcher.hold(redis.stream as Socket)
    void redis.sendCommand(command)
    return command.reply.catch((err: unknown) => {
      throw toGearboxError(err, this.context(command.name, where))
    })
  }

  private sendToCluster(cluster: Cluster, command: TappedCommand): Promise<RedisReply> {
    for (const node of cluster.nodes('master')) if (node.status === 'ready') this.batcher.hold(node.stream as Socket)
    void cluster.sendCommand(command)
    return command.reply.catch((err: unknown) => {
      throw toGearboxError(err, this.context(command.name, 'cluster'))
    })
  }

  prepareCommand(args: readonly RedisArg[]): PreparedCommand {
    return this.policy.prepare(args)
  }

  call(args: readonly RedisArg[], options: CallOptions = {}): Promise<RedisReply> {
    try {
      this.assertOpen()
      const prepared: PreparedCommand = options.internal ? { args } : this.policy.prepare(args)
      if (options.internal && args.length === 0) throw new InvalidArgumentError('a command needs at least its name')
      const reply = this.dispatch(prepared.args, options.shard)
      return prepared.adaptReply ? reply.then(prepared.adaptReply) : reply
    } catch (err) {
      return Promise.reject(err)
    }
  }

  private dispatch(args: readonly RedisArg[], shard: string | undefined): Promise<RedisReply> {
    const client = this.client
    if (client instanceof Redis) {
      const waiting = this.ready()
      if (!waiting) return this.send(client, new TappedCommand(args), this.describeClient())
      return waiting.then(() => this.send(client, new TappedCommand(args), this.describeClient()))
    }
    const keys = commandKeyIndexes(args)
    if (keys.length > 0) {
      const slot = keySlot(args[keys[0]!]!)
      const waiting = this.ready()
      if (!waiting) return this.sendToCluster(client, new TappedCommand(args, slot))
      return waiting.then(() => this.sendToCluster(client, new TappedCommand(args, slot)))
    }
    return this.nodeFor(shard).then(({ redis, where }) => this.send(redis, new TappedCommand(args), where))
  }

  /** The connection for a shard id (default: the current shard). */
  private async nodeFor(shardId: string | undefined): Promise<{ redis: Redis; where: string; shard: ShardInfo }> {
    const client = this.client
    if (client instanceof Redis) {
      if (shardId !== undefined && shardId !== STANDALONE_SHARD_ID) throw unknownShard(shardId, [STANDALONE_SHARD_ID])
      await this.ready()
      return { redis: client, where: this.describeClient(), shard: (await this.shards())[0]! }
    }
    await this.ready()
    const shard = shardId === undefined ? await this.currentShard() : await this.shardById(shardId)
    const find = (): Redis | undefined =>
      client.nodes('master').find((n) => n.options.port === shard.port && n.options.host === shard.host && n.status !== 'end')
    let redis = find()
    if (!redis) {
      // ioredis drops a node's connection when it closes and recreates it on the next slots
      // refresh: ask for one now instead of waiting for a MOVED to trigger it.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.connectTimeoutMs)
        client.refreshSlotsCache(() => {
          clearTimeout(timer)
          resolve()
        })
      })
      redis = find()
    }
    if (!redis) {
      throw new ConnectionError(
        `no connection to the master ${shard.id} at ${shard.host}:${shard.port}: the cluster client does not list it ` +
          `(not even after a slots refresh within connectTimeoutMs, ${this.connectTimeoutMs} ms)`,
      )
    }
    return { redis, where: `${shard.host}:${shard.port}`, shard }
  }

  private async shardById(shardId: string): Promise<ShardInfo> {
    let shards = await this.shards()
    let shard = shards.find((s) => s.id === shardId)
    if (!shard) {
      // The topology may have changed since it was read.
      this.topology = undefined
      shards = await this.shards()
      shard = shards.find((s) => s.id === shardId)
    }
    if (!shard) throw unknownShard(shardId, shards.map((s) => s.id))
    return shard
  }

  shards(): Promise<readonly ShardInfo[]> {
    if (this.closed) return Promise.reject(new ClosedError('the Redis backend is closed'))
    const client = this.client
    if (client instanceof Redis) {
      return Promise.resolve([standaloneShard(client.options.host ?? '127.0.0.1', client.options.port ?? 6379)])
    }
    const topology = (this.topology ??= this.readTopology(client))
    topology.catch(() => {
      if (this.topology === topology) this.topology = undefined
    })
    return topology
  }

  private async readTopology(cluster: Cluster): Promise<ShardInfo[]> {
    await this.ready()
    let shards: ShardInfo[]
    try {
      shards = parseClusterShards(await this.sendToCluster(cluster, new TappedCommand(['CLUSTER', 'SHARDS'])))
    } catch (err) {
      // CLUSTER SHARDS is Redis 7.0+; older servers answer with an error reply.
      if (!(err instanceof RedisReplyError)) throw err
      shards = parseClusterSlots(await this.sendToCluster(cluster, new TappedCommand(['CLUSTER', 'SLOTS'])))
    }
    if (shards.length === 0) throw new UnexpectedReplyError('the cluster reports no master that owns slots')
    return shards
  }

  async currentShard(): Promise<ShardInfo> {
    const shards = await this.shards()
    return shardOwningSlot(shards, 0) ?? shards[0]!
  }

  async dedicated(slot: number): Promise<DedicatedConnection> {
    this.assertOpen()
    if (!Number.isInteger(slot) || slot < 0 || slot > 16383) throw new InvalidArgumentError(`dedicated: slot must be an integer in 0..16383, got ${slot}`)
    const shards = await this.shards()
    const shard = shardOwningSlot(shards, slot)
    if (!shard) throw new UnexpectedReplyError(`no master owns slot ${slot}`)
    const key = `${shard.host}:${shard.port}`
    const pool = this.idle.get(key) ?? []
    let conn: PooledConnection | undefined
    while ((conn = pool.pop())) {
      if (conn.redis.status === 'ready' || conn.redis.status === 'connect' || conn.redis.status === 'connecting') break
      conn.redis.disconnect()
    }
    if (!conn) {
      const redis = new Redis({
        ...this.nodeOptions,
        ...(this.mode === 'cluster' ? { host: shard.host, port: shard.port } : {}),
        // A dropped dedicated connection has lost its WATCH state: never reconnect it.
        retryStrategy: () => null,
        lazyConnect: false,
      })
      redis.on('error', (err: Error) => (this.lastError = err))
      conn = { redis, waiter: new ReadyWaiter(redis, this.connectTimeoutMs, () => key) }
    }
    this.leased.add(conn)
    return new Dedicated(this, conn, key)
  }

  /** @internal Sends one command on a dedicated connection. */
  async sendDedicated(conn: PooledConnection, args: readonly RedisArg[], where: string): Promise<RedisReply> {
    if (args.length === 0) throw new InvalidArgumentError('a command needs at least its name')
    if (conn.redis.status !== 'ready') {
      if (conn.redis.status === 'end' || conn.redis.status === 'close') {
        throw new ConnectionError(`the dedicated connection to Redis ${where} was lost; take a new one with dedicated()`)
      }
      await conn.waiter.wait()
    }
    return this.send(conn.redis, new TappedCommand(args), where)
  }

  /** @internal Returns a dedicated connection to its pool (or closes it). */
  releaseDedicated(conn: PooledConnection, key: string, reset: RedisArg[] | undefined): void {
    this.leased.delete(conn)
    const pool = this.idle.get(key) ?? []
    if (this.closed || conn.redis.status !== 'ready' || pool.length >= this.dedicatedPoolSize) {
      conn.redis.disconnect()
      return
    }
    // DISCARD/UNWATCH run before anything the next user sends on this connection.
    if (reset) void this.send(conn.redis, new TappedCommand(reset), key).catch(() => conn.redis.disconnect())
    pool.push(conn)
    this.idle.set(key, pool)
  }

  pipeline(
    shardId: string,
    commands: readonly (readonly RedisArg[])[],
    options: PipelineOptions = {},
  ): Promise<(RedisReply | RedisReplyError)[]> {
    try {
      this.assertOpen()
      const prepared = commands.map((args): PreparedCommand => {
        if (args.length === 0) throw new InvalidArgumentError('pipeline: every command needs at least its name')
        return options.internal ? { args } : this.policy.prepare(args)
      })
      if (prepared.length === 0) return Promise.resolve([])
      return this.nodeFor(shardId).then(({ redis, where }) =>
        Promise.all(
          prepared.map(({ args, adaptReply }) => {
            const reply = this.send(redis, new TappedCommand(args), where)
            const adapted = adaptReply ? reply.then(adaptReply) : reply
            return adapted.catch((err: unknown) => {
              if (err instanceof RedisReplyError) return err
              throw err
            })
          }),
        ),
      )
    } catch (err) {
      return Promise.reject(err)
    }
  }

  async scanShard(shardId: string, cursor: string, options: ScanOptions = {}): Promise<ScanPage> {
    this.assertOpen()
    const args: RedisArg[] = ['SCAN', cursor]
    if (options.match !== undefined) args.push('MATCH', options.match)
    if (options.count !== undefined) args.push('COUNT', String(options.count))
    if (options.type !== undefined) args.push('TYPE', options.type)
    const { redis, where } = await this.nodeFor(shardId)
    const reply = await this.send(redis, new TappedCommand(args), where)
    const [next, keys] = Array.isArray(reply) ? reply : []
    if (!(next instanceof Uint8Array) || !Array.isArray(keys) || !keys.every((k) => k instanceof Uint8Array)) {
      throw new UnexpectedReplyError(`SCAN on ${where} answered with a reply that is not [cursor, [keys]]`)
    }
    return { cursor: new TextDecoder().decode(next), keys: keys as Uint8Array[] }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const quits: Promise<unknown>[] = []
    for (const pool of this.idle.values()) for (const conn of pool) quits.push(quitOrDisconnect(conn.redis))
    this.idle.clear()
    for (const conn of this.leased) conn.redis.disconnect()
    this.leased.clear()
    quits.push(quitOrDisconnect(this.client))
    await Promise.all(quits)
  }
}

/** QUIT (lets pending replies arrive), or a hard disconnect when that fails or takes over 1 s. */
function quitOrDisconnect(client: Client): Promise<void> {
  if (client.status === 'end') return Promise.resolve()
  if (client.status !== 'ready') {
    client.disconnect()
    return Promise.resolve()
  }
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      client.disconnect()
      resolve()
    }, 1000)
    client.quit().then(
      () => {
        clearTimeout(timer)
        resolve()
      },
      () => {
        clearTimeout(timer)
        client.disconnect()
        resolve()
      },
    )
  })
}

function unknownShard(shardId: string, known: readonly string[]): InvalidArgumentError {
  return new InvalidArgumentError(`no shard with id ${JSON.stringify(shardId)}; the shards are: ${known.join(', ')}`)
}

const TRANSACTION_END = new Set(['exec', 'discard'])

class Dedicated implements DedicatedConnection {
  private released = false
  private inMulti = false
  private watching = false

  constructor(
    private readonly backend: IoredisBackend,
    private readonly conn: PooledConnection,
    private readonly where: string,
  ) {}

  call(args: readonly RedisArg[]): Promise<RedisReply> {
    if (this.released) return Promise.reject(new ClosedError('this dedicated connection was released; take a new one with dedicated()'))
    const name = (typeof args[0] === 'string' ? args[0] : new TextDecoder().decode(args[0])).toLowerCase()
    if (name === 'multi') this.inMulti = true
    else if (name === 'watch') this.watching = true
    else if (name === 'unwatch') this.watching = false
    else if (TRANSACTION_END.has(name)) this.inMulti = this.watching = false
    return this.backend.sendDedicated(this.conn, args, this.where)
  }

  release(): void {
    if (this.released) return
    this.released = true
    this.backend.releaseDedicated(this.conn, this.where, this.inMulti ? ['DISCARD'] : this.watching ? ['UNWATCH'] : undefined)
  }
}
