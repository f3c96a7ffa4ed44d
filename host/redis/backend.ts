/**
 * The RedisBackend, on gearbox's own connections (connection.ts), for a standalone server (or a
 * sentinel-managed master) and for a Redis Cluster.
 *
 * Per master: one internal connection as the configured user (gearbox's own reads: readers'
 * pages, topology, SCAN, registration state), a small pool of function connections as the
 * function ACL user (functions' call/pipeline), and idle dedicated connections (atomic()), also
 * as the function user. A function command goes to the first function connection that is not
 * draining a big or refused reply nor stalled behind a slow command (a reply awaited over 5 ms),
 * so one execution's huge reply or slow KEYS does not hold up the others.
 *
 * The function user: by default gearbox manages `gearbox-functions` (function-acl.ts): on every
 * master, before its first function connection, it runs `ACL SETUSER gearbox-functions
 * >password rules...` with a random password of its own (added, never reset, so several hosts
 * share the user) and removes that password at close. Where Redis refuses (NOPERM, a managed
 * Redis, ACL disabled) the calls fail with FunctionUserError, whose message prints the line to
 * apply and the `functionUser` option that passes the user.
 *
 * Cluster routing: a command with keys goes to the master owning its first key's slot (our own
 * topology, from CLUSTER SHARDS/SLOTS); a keyless one to `options.shard` or the current shard
 * (the master owning slot 0). MOVED refreshes the topology and retries on the named node; ASK
 * sends ASKING and the command to the named node; both at most MAX_REDIRECTIONS times.
 * Cross-slot commands reach Redis, which answers CROSSSLOT.
 *
 * ioredis is used only for its types and to recognise a Redis/Cluster instance given as the
 * source (its options are copied; it is never sent on).
 */
import { createHash, randomBytes } from 'node:crypto'
import type { ConnectionOptions as TlsOptions } from 'node:tls'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { SLOT_COUNT, keySlot } from '../cluster/slots.js'
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
  FunctionUserError,
  InvalidArgumentError,
  RedisReplyError,
  UnexpectedReplyError,
} from '../errors.js'
import { commandKeyIndexes } from './command-metadata.js'
import { CommandPolicy, type CommandPolicyOptions } from './command-policy.js'
import { commandName, RedisConnection, type ConnectionConfig, type NodeAddress } from './connection.js'
import { DEFAULT_FUNCTION_USERNAME, NEWER_BLOCKING_COMMANDS, functionAclRules } from './function-acl.js'
import type {
  CallOptions,
  DedicatedConnection,
  BlockingConnection,
  DedicatedCallOptions,
  DirectAccess,
  PipelineOptions,
  PreparedCommand,
  RedisArg,
  RedisBackend,
  RedisReply,
  ScanOptions,
  ScanPage,
  Subscription,
  SubscriptionListener,
} from './types.js'

/**
 * Where Redis is: a `redis://` / `rediss://` URL; `{ cluster: [seed URLs] }`; ioredis
 * RedisOptions; or an ioredis Redis or Cluster whose connection options gearbox copies (host,
 * port, username, password, db, tls, sentinels; it opens its own connections and never sends on
 * yours).
 */
export type RedisSource = string | { readonly cluster: readonly string[] } | RedisOptions | Redis | Cluster

/** The Redis user functions' commands run as: gearbox's managed one, or one of your own. */
export type FunctionUser = 'managed' | { readonly username: string; readonly password: string }

export interface RedisBackendOptions {
  /** The policy for functions' commands: options, or a ready CommandPolicy. Default: `new CommandPolicy()`. */
  readonly commandPolicy?: CommandPolicyOptions | CommandPolicy
  /**
   * The ACL user functions' commands run as. `'managed'` (default): gearbox creates or updates
   * `gearbox-functions` on every master (needs a configured user allowed ACL SETUSER). Or
   * `{ username, password }`: a user you created, used as is.
   */
  readonly functionUser?: FunctionUser
  /** How long a call waits for the connection to (re)connect before failing with ConnectionError. Default 5000 ms. */
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
  /** Reply budget of internal calls that give none (`maxReplyBytes`). Default 512 MiB. */
  readonly internalMaxReplyBytes?: number
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5000
const DEFAULT_MAX_RECONNECT_DELAY_MS = 2000
const DEFAULT_DEDICATED_POOL_SIZE = 4
const DEFAULT_INTERNAL_MAX_REPLY_BYTES = 512 * 1024 * 1024
/** Function connections per master: new commands avoid one draining a big reply. */
const FUNCTION_CONNECTIONS = 3
const MAX_REDIRECTIONS = 5
/**
 * Rules added to the function user on top of function-acl.ts for gearbox's own protocol:
 * ASKING (the backend follows ASK redirections on function connections; the host policy still
 * refuses it to functions) and CLIENT ID (read-only, tells connections apart).
 */
const PROTOCOL_ALLOW = ['asking', 'client|id']

/** Creates the backend; connections open in the background (calls wait for them, up to `connectTimeoutMs`). */
export function createRedisBackend(source: RedisSource, options: RedisBackendOptions = {}): RedisBackend {
  return new GearboxRedisBackend(source, options)
}

function positiveOption(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError(`${name} must be a positive number of milliseconds, got ${value}`)
  return value
}

export interface Credentials {
  readonly username?: string | undefined
  readonly password?: string | undefined
}

interface Endpoint extends Credentials {
  readonly host: string
  readonly port: number
  readonly tls?: TlsOptions | undefined
  readonly db?: number | undefined
}

interface SentinelSource extends Credentials {
  readonly sentinels: readonly NodeAddress[]
  readonly name: string
  readonly sentinelUsername?: string | undefined
  readonly sentinelPassword?: string | undefined
  readonly tls?: TlsOptions | undefined
  readonly db?: number | undefined
}

function parseUrl(url: string, what: string): Endpoint {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new InvalidArgumentError(`${what} ${JSON.stringify(url)} is not a redis:// URL`)
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new InvalidArgumentError(`${what} ${JSON.stringify(url)} is not a redis:// or rediss:// URL`)
  }
  const dbText = parsed.pathname.replace(/^\//, '')
  const db = dbText === '' ? undefined : Number(dbText)
  if (db !== undefined && !Number.isInteger(db)) throw new InvalidArgumentError(`${what} ${JSON.stringify(url)}: the path must be a db number`)
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
    ...(db === undefined ? {} : { db }),
  }
}

function fromOptions(o: RedisOptions): Endpoint | SentinelSource {
  const common = {
    ...(o.username === undefined ? {} : { username: o.username }),
    ...(o.password === undefined || o.password === null ? {} : { password: o.password }),
    ...(o.tls === undefined ? {} : { tls: o.tls as TlsOptions }),
    ...(o.db === undefined ? {} : { db: o.db }),
  }
  if (o.sentinels && o.sentinels.length > 0) {
    return {
      ...common,
      sentinels: o.sentinels.map((s) => ({ host: s.host ?? '127.0.0.1', port: s.port ?? 26379 })),
      name: o.name ?? 'mymaster',
      ...(o.sentinelUsername === undefined ? {} : { sentinelUsername: o.sentinelUsername }),
      ...(o.sentinelPassword === undefined ? {} : { sentinelPassword: o.sentinelPassword }),
    }
  }
  return { ...common, host: o.host ?? '127.0.0.1', port: o.port ?? 6379 }
}

/** One master: its internal connection, function connections and idle dedicated ones. */
class Node {
  readonly internal: RedisConnection
  readonly functions: RedisConnection[] = []
  readonly idle: RedisConnection[] = []
  readonly leased = new Set<RedisConnection>()
  functionUserReady: Promise<void> | undefined
  /** The managed user got our password here (removed at close). */
  passwordAdded = false

  constructor(
    readonly key: string,
    readonly address: NodeAddress | (() => Promise<NodeAddress>),
    private readonly backend: GearboxRedisBackend,
  ) {
    this.internal = backend.connect(this, 'internal')
  }

  /**
   * A function connection neither draining a big reply nor stalled behind a slow command; opens
   * one more (up to the pool size) when all are.
   */
  functionConnection(): RedisConnection {
    const pool = this.functions
    for (let i = 0; i < pool.length; i++) {
      const conn = pool[i]!
      if (!conn.isDraining && !conn.isStalled) return conn
    }
    if (pool.length < FUNCTION_CONNECTIONS) {
      const conn = this.backend.connect(this, 'function')
      pool.push(conn)
      return conn
    }
    // All draining: the one with the fewest replies owed.
    return pool.reduce((a, b) => (b.pendingCount < a.pendingCount ? b : a))
  }

  closeAll(): Promise<void>[] {
    const closing = [...this.functions, ...this.idle].map((c) => c.close())
    for (const c of this.leased) closing.push(c.close(false))
    this.functions.length = 0
    this.idle.length = 0
    this.leased.clear()
    return closing
  }
}

class GearboxRedisBackend implements RedisBackend {
  readonly mode: 'standalone' | 'cluster'
  private readonly policy: CommandPolicy
  private readonly connectTimeoutMs: number
  private readonly maxReconnectDelayMs: number
  private readonly commandTimeoutMs: number | undefined
  private readonly dedicatedPoolSize: number
  private readonly internalMaxReplyBytes: number
  private readonly credentials: Credentials
  private readonly tls: TlsOptions | undefined
  private readonly db: number | undefined
  private readonly functionUser: { readonly username: string; readonly password: string; readonly managed: boolean }
  private readonly nodes = new Map<string, Node>()
  /** Subscriber connections (keyspace notifications) and blocking ones (stream reads), closed with the backend. */
  private readonly subscribers = new Set<RedisConnection>()
  /** Standalone: the one node. Cluster: the seeds, tried in turn for the topology. */
  private readonly seeds: Node[] = []
  private topology: Promise<ShardInfo[]> | undefined
  /** The last topology read, by slot (cluster routing without awaiting). */
  private slotOwners: (ShardInfo | undefined)[] | undefined
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
    this.internalMaxReplyBytes = options.internalMaxReplyBytes ?? DEFAULT_INTERNAL_MAX_REPLY_BYTES
    const user = options.functionUser ?? 'managed'
    if (user === 'managed') {
      this.functionUser = { username: managedUsername(this.policy), password: randomBytes(24).toString('hex'), managed: true }
    } else if (typeof user === 'object' && user !== null && typeof user.username === 'string' && typeof user.password === 'string') {
      this.functionUser = { username: user.username, password: user.password, managed: false }
    } else {
      throw new InvalidArgumentError("functionUser must be 'managed' or { username, password }")
    }

    if (source instanceof Cluster || (typeof source === 'object' && source !== null && 'cluster' in source && Array.isArray(source.cluster))) {
      this.mode = 'cluster'
      let seeds: Endpoint[]
      if (source instanceof Cluster) {
        const base = fromOptions(source.options.redisOptions ?? {})
        const known = source.nodes('all').map((n) => ({ host: n.options.host ?? '127.0.0.1', port: n.options.port ?? 6379 }))
        const startup = (source as unknown as { startupNodes?: { host: string; port: number }[] }).startupNodes ?? []
        seeds = (known.length > 0 ? known : startup).map((hp) => ({ ...base, host: hp.host, port: hp.port }))
      } else {
        const urls = (source as { readonly cluster: readonly string[] }).cluster
        if (urls.length === 0) throw new InvalidArgumentError('cluster: give at least one seed URL')
        seeds = urls.map((u) => parseUrl(u, 'cluster seed'))
      }
      const first = seeds[0]
      if (!first) throw new InvalidArgumentError('cluster: no seed node')
      this.credentials = { username: first.username, password: first.password }
      this.tls = first.tls
      this.db = undefined
      for (const seed of seeds) this.seeds.push(this.nodeAt(seed.host, seed.port))
    } else {
      this.mode = 'standalone'
      let endpoint: Endpoint | SentinelSource
      if (typeof source === 'string') {
        if (!/^rediss?:\/\//.test(source)) throw new InvalidArgumentError(`${JSON.stringify(source)} is not a redis:// or rediss:// URL`)
        endpoint = parseUrl(source, 'redis')
      } else if (source instanceof Redis) {
        endpoint = fromOptions(source.options)
      } else if (typeof source === 'object' && source !== null) {
        endpoint = fromOptions(source as RedisOptions)
      } else {
        throw new InvalidArgumentError('redis must be a URL, {cluster: [urls]}, RedisOptions or an ioredis client')
      }
      this.credentials = { username: endpoint.username, password: endpoint.password }
      this.tls = endpoint.tls
      this.db = endpoint.db
      if ('sentinels' in endpoint) {
        const sentinel = endpoint
        const node = new Node('sentinel', () => this.resolveSentinelMaster(sentinel), this)
        this.nodes.set(node.key, node)
        this.seeds.push(node)
      } else {
        this.seeds.push(this.nodeAt(endpoint.host, endpoint.port))
      }
    }
  }

  private nodeAt(host: string, port: number): Node {
    const key = `${host}:${port}`
    let node = this.nodes.get(key)
    if (!node) {
      node = new Node(key, { host, port }, this)
      this.nodes.set(key, node)
    }
    return node
  }

  /** @internal A connection to `node` as the configured user (internal) or the function user. */
  connect(node: Node, kind: 'internal' | 'function' | 'dedicated'): RedisConnection {
    const asFunction = kind !== 'internal'
    const config: ConnectionConfig = {
      address: node.address,
      tls: this.tls,
      ...(asFunction ? { username: this.functionUser.username, password: this.functionUser.password } : this.credentials),
      db: this.db,
      connectTimeoutMs: this.connectTimeoutMs,
      commandTimeoutMs: this.commandTimeoutMs,
      maxReconnectDelayMs: this.maxReconnectDelayMs,
      reconnect: kind !== 'dedicated',
      prepare: asFunction ? () => this.ensureFunctionUser(node) : undefined,
      onError: (error) => {
        this.lastError = error
        // A restarted server lost the managed user: set it up again on the next connect.
        if (asFunction && /WRONGPASS|NOAUTH/.test(error.message)) node.functionUserReady = undefined
        if (this.mode === 'cluster') this.invalidateTopology()
      },
    }
    return new RedisConnection(config)
  }

  /**
   * @internal A connection for the RESP server's forwarding (gearbox serve): to `address` (default:
   * the standalone master), as `credentials` (default: the configured user), selecting the URL's
   * db unless `selectDb` is false. A client's commands run on it with that client's rights.
   */
  proxyConnection(
    address: NodeAddress | undefined,
    credentials: Credentials | undefined,
    options: { readonly reconnect: boolean; readonly selectDb: boolean; readonly protocol?: 2 | 3 },
  ): RedisConnection {
    this.assertOpen()
    return new RedisConnection({
      protocol: options.protocol,
      keepNullArrays: true,
      coalesceWrites: true,
      address: address ?? this.seeds[0]!.address,
      tls: this.tls,
      ...(credentials ?? this.credentials),
      db: options.selectDb ? this.db : undefined,
      connectTimeoutMs: this.connectTimeoutMs,
      commandTimeoutMs: undefined,
      maxReconnectDelayMs: this.maxReconnectDelayMs,
      reconnect: options.reconnect,
    })
  }

  /** @internal The RESP server saw a MOVED: read the slot map again on the next routing. */
  forgetTopology(): void {
    if (this.mode === 'cluster') this.invalidateTopology()
  }

  private async resolveSentinelMaster(source: SentinelSource): Promise<NodeAddress> {
    const errors: string[] = []
    for (const sentinel of source.sentinels) {
      const conn = new RedisConnection({
        address: sentinel,
        tls: source.tls,
        username: source.sentinelUsername,
        password: source.sentinelPassword,
        connectTimeoutMs: this.connectTimeoutMs,
        maxReconnectDelayMs: this.maxReconnectDelayMs,
        reconnect: false,
      })
      try {
        const reply = await conn.send(['SENTINEL', 'get-master-addr-by-name', source.name], 64 * 1024)
        if (Array.isArray(reply) && reply.length === 2) {
          const [host, port] = reply.map((v) => (v instanceof Uint8Array ? new TextDecoder().decode(v) : String(v)))
          return { host: host!, port: Number(port) }
        }
        errors.push(`${sentinel.host}:${sentinel.port}: no master named ${source.name}`)
      } catch (error) {
        errors.push(`${sentinel.host}:${sentinel.port}: ${(error as Error).message}`)
      } finally {
        void conn.close(false)
      }
    }
    throw new ConnectionError(`no sentinel named the master ${JSON.stringify(source.name)}: ${errors.join('; ')}`)
  }

  async directAccess(): Promise<DirectAccess | undefined> {
    const node = this.seeds[0]
    if (this.mode !== 'standalone' || this.tls !== undefined || node === undefined || typeof node.address === 'function') return undefined
    this.assertOpen()
    await this.ensureFunctionUser(node)
    const { username, password } = this.functionUser
    return { host: node.address.host, port: node.address.port, username, password, db: this.db ?? 0, commands: this.policy.directCommands() }
  }

  // ---- the function user -------------------------------------------------------------------

  private ensureFunctionUser(node: Node): Promise<void> {
    if (!this.functionUser.managed) return Promise.resolve()
    if (this.closed) return Promise.reject(new ClosedError('the Redis backend is closed'))
    const ready = (node.functionUserReady ??= this.setUpFunctionUser(node))
    ready.catch(() => {
      if (node.functionUserReady === ready) node.functionUserReady = undefined
    })
    return ready
  }

  /** The function user's rules, with only the command names this server knows. */
  private async rulesFor(node: Node): Promise<string[]> {
    const policy = policyAcl(this.policy)
    // Categories (`@scripting`) are no command names: COMMAND INFO does not know them, ACL SETUSER does.
    const named = [...new Set([...NEWER_BLOCKING_COMMANDS, ...policy.deny, ...policy.allow])].filter((c) => !c.startsWith('@'))
    const info = named.length === 0 ? [] : await node.internal.send(['COMMAND', 'INFO', ...named], this.internalMaxReplyBytes)
    const found = new Set(named.filter((_, i) => Array.isArray(info) && info[i] !== null && info[i] !== undefined))
    const known = (c: string): boolean => c.startsWith('@') || found.has(c)
    return [
      ...functionAclRules({ deny: policy.deny.filter(known), allow: policy.allow.filter(known), protocol: this.protocolAllow() }),
      ...NEWER_BLOCKING_COMMANDS.filter(known).map((c) => `-${c}`),
    ]
  }

  /** {@link PROTOCOL_ALLOW}, and SELECT when the connections select a db (their handshake sends it). */
  private protocolAllow(): string[] {
    return this.db !== undefined && this.db !== 0 ? [...PROTOCOL_ALLOW, 'select'] : PROTOCOL_ALLOW
  }

  private async setUpFunctionUser(node: Node): Promise<void> {
    let rules: string[]
    try {
      rules = await this.rulesFor(node)
      await node.internal.send(['ACL', 'SETUSER', this.functionUser.username, `>${this.functionUser.password}`, ...rules], 64 * 1024)
      node.passwordAdded = true
    } catch (error) {
      if (!(error instanceof RedisReplyError)) throw error
      throw new FunctionUserError(this.functionUserMessage(node.internal.description, error.message))
    }
  }

  private functionUserMessage(where: string, answer: string): string {
    const policy = policyAcl(this.policy)
    const rules = functionAclRules({ deny: policy.deny, allow: policy.allow, protocol: this.protocolAllow() })
    const name = this.functionUser.username
    return (
      `gearbox could not set up the Redis user functions' commands run as on ${where} (Redis answered: ${answer}). ` +
      `As an admin, apply on every master:\n  ACL SETUSER ${name} >'<a password>' ${rules.join(' ')}\n` +
      `then pass that user with the functionUser option: Gearbox.create({ redis, functionUser: { username: '${name}', ` +
      `password: '<that password>' } }) (createRedisBackend(source, { functionUser }) for a backend of your own)`
    )
  }

  // ---- routing ------------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('the Redis backend is closed')
  }

  prepareCommand(args: readonly RedisArg[]): PreparedCommand {
    return this.policy.prepare(args)
  }

  private budgetOf(options: { readonly internal?: boolean; readonly maxReplyBytes?: number }): [number, string] {
    if (options.maxReplyBytes !== undefined) return [options.maxReplyBytes, `limits.maxReplyBytes (${options.maxReplyBytes} bytes)`]
    if (options.internal) return [this.internalMaxReplyBytes, `internalMaxReplyBytes (${this.internalMaxReplyBytes} bytes)`]
    return [Infinity, '']
  }

  call(args: readonly RedisArg[], options: CallOptions = {}): Promise<RedisReply> {
    try {
      this.assertOpen()
      if (args.length === 0) throw new InvalidArgumentError('a command needs at least its name')
      const prepared: PreparedCommand = options.internal ? { args } : this.policy.prepare(args)
      const [budget, budgetName] = this.budgetOf(options)
      const internal = options.internal === true
      let reply: Promise<RedisReply>
      if (this.mode === 'standalone') {
        const node = this.seeds[0]!
        if (options.shard !== undefined && options.shard !== STANDALONE_SHARD_ID) throw unknownShard(options.shard, [STANDALONE_SHARD_ID])
        reply = (internal ? node.internal : node.functionConnection()).send(prepared.args, budget, budgetName)
      } else {
        reply = this.clusterCall(prepared.args, options.shard, internal, budget, budgetName)
      }
      return prepared.adaptReply ? reply.then(prepared.adaptReply) : reply
    } catch (err) {
      return Promise.reject(err)
    }
  }

  private clusterCall(args: readonly RedisArg[], shard: string | undefined, internal: boolean, budget: number, budgetName: string): Promise<RedisReply> {
    const keys = commandKeyIndexes(args)
    if (keys.length > 0) {
      const slot = keySlot(args[keys[0]!]!)
      const owner = this.slotOwners?.[slot]
      if (owner) return this.sendRedirected(this.nodeAt(owner.host, owner.port), args, internal, budget, budgetName)
      return this.shards().then((shards) => {
        const found = shardOwningSlot(shards, slot)
        if (!found) throw new UnexpectedReplyError(`no master owns slot ${slot}`)
        return this.sendRedirected(this.nodeAt(found.host, found.port), args, internal, budget, budgetName)
      })
    }
    return this.shardNode(shard).then((node) => this.sendRedirected(node, args, internal, budget, budgetName))
  }

  /** Sends on `node`, following MOVED (after a topology refresh) and ASK (ASKING first). */
  private async sendRedirected(start: Node, args: readonly RedisArg[], internal: boolean, budget: number, budgetName: string): Promise<RedisReply> {
    let node = start
    let asking = false
    for (let redirections = 0; ; redirections++) {
      const conn = internal ? node.internal : node.functionConnection()
      try {
        if (!asking) return await conn.send(args, budget, budgetName)
        const [askingReply, reply] = conn.sendMany([['ASKING'], args], budget, budgetName)
        askingReply!.catch(() => undefined)
        return await reply!
      } catch (error) {
        if (!(error instanceof RedisReplyError)) throw error
        const redirect = /^(MOVED|ASK) \d+ (.+):(\d+)$/.exec(error.message)
        if (!redirect) throw error
        if (redirections >= MAX_REDIRECTIONS) {
          throw new ConnectionError(`${commandName(args)}: too many cluster redirections (${MAX_REDIRECTIONS}); the last: ${error.message}`)
        }
        node = this.nodeAt(redirect[2]!, Number(redirect[3]))
        asking = redirect[1] === 'ASK'
        if (!asking) this.invalidateTopology()
      }
    }
  }

  private invalidateTopology(): void {
    this.topology = undefined
    this.slotOwners = undefined
  }

  /** The node of a shard id (default: the current shard). */
  private async shardNode(shardId: string | undefined): Promise<Node> {
    if (this.mode === 'standalone') {
      if (shardId !== undefined && shardId !== STANDALONE_SHARD_ID) throw unknownShard(shardId, [STANDALONE_SHARD_ID])
      return this.seeds[0]!
    }
    const shard = shardId === undefined ? await this.currentShard() : await this.shardById(shardId)
    return this.nodeAt(shard.host, shard.port)
  }

  private async shardById(shardId: string): Promise<ShardInfo> {
    let shards = await this.shards()
    let shard = shards.find((s) => s.id === shardId)
    if (!shard) {
      // The topology may have changed since it was read.
      this.invalidateTopology()
      shards = await this.shards()
      shard = shards.find((s) => s.id === shardId)
    }
    if (!shard) throw unknownShard(shardId, shards.map((s) => s.id))
    return shard
  }

  shards(): Promise<readonly ShardInfo[]> {
    if (this.closed) return Promise.reject(new ClosedError('the Redis backend is closed'))
    if (this.mode === 'standalone') {
      const node = this.seeds[0]!
      if (typeof node.address === 'function') {
        // Sentinel: the master's address is known once connected.
        const [host, port] = node.internal.description.split(/:(?=\d+$)/)
        return Promise.resolve([standaloneShard(host ?? '127.0.0.1', Number(port ?? 6379))])
      }
      return Promise.resolve([standaloneShard(node.address.host, node.address.port)])
    }
    const topology = (this.topology ??= this.readTopology())
    topology.then(
      (shards) => {
        if (this.topology !== topology) return
        const owners = new Array<ShardInfo | undefined>(SLOT_COUNT)
        for (const shard of shards) for (const [from, to] of shard.slots) for (let s = from; s <= to; s++) owners[s] = shard
        this.slotOwners = owners
      },
      () => {
        if (this.topology === topology) this.topology = undefined
      },
    )
    return topology
  }

  private async readTopology(): Promise<ShardInfo[]> {
    // Any known node can answer: the seeds first, then the masters seen since.
    const candidates = [...new Set([...this.seeds, ...this.nodes.values()])]
    let lastError: unknown
    for (const node of candidates) {
      try {
        let shards: ShardInfo[]
        try {
          shards = parseClusterShards(await node.internal.send(['CLUSTER', 'SHARDS'], this.internalMaxReplyBytes))
        } catch (err) {
          // CLUSTER SHARDS is Redis 7.0+; older servers answer with an error reply.
          if (!(err instanceof RedisReplyError)) throw err
          shards = parseClusterSlots(await node.internal.send(['CLUSTER', 'SLOTS'], this.internalMaxReplyBytes))
        }
        if (shards.length === 0) throw new UnexpectedReplyError('the cluster reports no master that owns slots')
        return shards
      } catch (error) {
        lastError = error
        if (!(error instanceof ConnectionError)) throw error
      }
    }
    throw lastError instanceof Error ? lastError : new ConnectionError('no cluster node is reachable')
  }

  async currentShard(): Promise<ShardInfo> {
    const shards = await this.shards()
    return shardOwningSlot(shards, 0) ?? shards[0]!
  }

  // ---- dedicated connections ------------------------------------------------------------------

  async dedicated(slot: number): Promise<DedicatedConnection> {
    this.assertOpen()
    if (!Number.isInteger(slot) || slot < 0 || slot > 16383) throw new InvalidArgumentError(`dedicated: slot must be an integer in 0..16383, got ${slot}`)
    const shards = await this.shards()
    const shard = shardOwningSlot(shards, slot)
    if (!shard) throw new UnexpectedReplyError(`no master owns slot ${slot}`)
    const node = this.mode === 'standalone' ? this.seeds[0]! : this.nodeAt(shard.host, shard.port)
    let conn: RedisConnection | undefined
    while ((conn = node.idle.pop())) {
      if (!conn.isClosed) break
    }
    conn ??= this.connect(node, 'dedicated')
    node.leased.add(conn)
    return new Dedicated(this, node, conn)
  }

  /**
   * @internal Takes a dedicated connection back. Only a known-idle one (no reply owed, no
   * transaction or watch left: DISCARD/UNWATCH answered) goes back to the pool; others close.
   */
  releaseDedicated(node: Node, conn: RedisConnection, reset: RedisArg[] | undefined): void {
    node.leased.delete(conn)
    const keep = (): void => {
      if (this.closed || conn.isClosed || conn.pendingCount > 0 || node.idle.length >= this.dedicatedPoolSize) {
        void conn.close(false)
        return
      }
      node.idle.push(conn)
    }
    if (this.closed || conn.isClosed || conn.pendingCount > 0) {
      void conn.close(false)
      return
    }
    if (!reset) return keep()
    conn.send(reset, 1024, 'reset').then(
      (reply) => (reply === 'OK' ? keep() : void conn.close(false)),
      () => void conn.close(false),
    )
  }

  // ---- pipeline and SCAN --------------------------------------------------------------------

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
      const [budget, budgetName] = this.budgetOf(options)
      return this.shardNode(shardId).then((node) => {
        const conn = options.internal ? node.internal : node.functionConnection()
        const replies = conn.sendMany(prepared.map((p) => p.args), budget, budgetName)
        return Promise.all(
          replies.map((reply, i) => {
            const adapt = prepared[i]!.adaptReply
            return (adapt ? reply.then(adapt) : reply).catch((err: unknown) => {
              if (err instanceof RedisReplyError) return err
              throw err
            })
          }),
        )
      })
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
    const node = await this.shardNode(shardId)
    const reply = await node.internal.send(args, this.internalMaxReplyBytes, `internalMaxReplyBytes (${this.internalMaxReplyBytes} bytes)`)
    const [next, keys] = Array.isArray(reply) ? reply : []
    if (!(next instanceof Uint8Array) || !Array.isArray(keys) || !keys.every((k) => k instanceof Uint8Array)) {
      throw new UnexpectedReplyError(`SCAN on ${node.internal.description} answered with a reply that is not [cursor, [keys]]`)
    }
    return { cursor: new TextDecoder().decode(next), keys: keys as Uint8Array[] }
  }

  /** A reconnecting connection of gearbox's own (the configured user, the URL's db) to `address`: subscribers, blocking readers. */
  private ownConnectionBase(address: ConnectionConfig['address']) {
    return {
      address,
      tls: this.tls,
      ...this.credentials,
      db: this.db,
      connectTimeoutMs: this.connectTimeoutMs,
      maxReconnectDelayMs: this.maxReconnectDelayMs,
      reconnect: true,
    } as const
  }

  async subscribe(shardId: string, patterns: readonly string[], listener: SubscriptionListener): Promise<Subscription> {
    if (this.closed) throw new ClosedError('the Redis backend is closed')
    const node = await this.shardNode(shardId)
    let readyCount = 0
    let firstSubscribed!: () => void
    const subscribedOnce = new Promise<void>((resolve) => (firstSubscribed = resolve))
    const conn: RedisConnection = new RedisConnection({
      ...this.ownConnectionBase(node.address),
      onError: (error) => {
        this.lastError = error
      },
      onPush: (message) => {
        // ['message', channel, payload] or ['pmessage', pattern, channel, payload]
        const channel = message[message.length - 2]
        const payload = message[message.length - 1]
        if (channel instanceof Uint8Array && payload instanceof Uint8Array) listener.message(channel, payload)
      },
      onReady: () => {
        const resubscribed = readyCount++ > 0
        // Sent while ready (first in line): the reply is the subscription's confirmation.
        void conn.send(['PSUBSCRIBE', ...patterns], 64 * 1024, 'the subscribe budget').then(
          () => {
            listener.subscribed(resubscribed)
            firstSubscribed()
          },
          () => undefined,
        )
      },
    })
    this.subscribers.add(conn)
    const subscription: Subscription = {
      close: async () => {
        this.subscribers.delete(conn)
        await conn.close(false)
      },
    }
    const timeout = new Promise<never>((_, reject) => {
      const timer = setTimeout(
        () => reject(new ConnectionError(`could not subscribe on Redis ${conn.description} within connectTimeoutMs (${this.connectTimeoutMs} ms)`)),
        this.connectTimeoutMs,
      )
      void subscribedOnce.then(() => clearTimeout(timer))
    })
    try {
      await Promise.race([subscribedOnce, timeout])
    } catch (error) {
      await subscription.close()
      throw error
    }
    return subscription
  }

  async blockingConnection(shardId: string): Promise<BlockingConnection> {
    this.assertOpen()
    const node = await this.shardNode(shardId)
    // No command timeout: a BLOCK read waits by design (its callers bound BLOCK themselves).
    const conn = new RedisConnection({
      ...this.ownConnectionBase(node.address),
      onError: (error) => {
        this.lastError = error
        if (this.mode === 'cluster') this.invalidateTopology()
      },
    })
    this.subscribers.add(conn)
    const budget = this.internalMaxReplyBytes
    return {
      description: node.key,
      call: (args, options = {}) =>
        options.maxReplyBytes === undefined
          ? conn.send(args, budget, `internalMaxReplyBytes (${budget} bytes)`)
          : conn.send(args, options.maxReplyBytes, `maxReplyBytes (${options.maxReplyBytes} bytes)`),
      close: async () => {
        this.subscribers.delete(conn)
        await conn.close(false)
      },
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all([...this.subscribers].map((conn) => conn.close(false)))
    this.subscribers.clear()
    const nodes = [...this.nodes.values()]
    const closing: Promise<void>[] = []
    for (const node of nodes) closing.push(...node.closeAll())
    await Promise.all(closing)
    // Our password leaves the shared managed user; other hosts' passwords stay.
    await Promise.all(
      nodes
        .filter((node) => node.passwordAdded)
        .map((node) =>
          Promise.race([
            node.internal.send(['ACL', 'SETUSER', this.functionUser.username, `<${this.functionUser.password}`], 1024).catch(() => undefined),
            new Promise((resolve) => setTimeout(resolve, 1000)),
          ]),
        ),
    )
    await Promise.all(nodes.map((node) => node.internal.close()))
  }

  /** For messages: the last connection failure seen. */
  get lastFailure(): Error | undefined {
    return this.lastError
  }
}

/**
 * The managed user's name: `gearbox-functions` for the default policy; a policy of its own
 * (another deny list) gets a user of its own, `gearbox-functions-<hash>`, so that hosts with
 * different policies on one Redis do not overwrite each other's rules.
 */
function managedUsername(policy: CommandPolicy): string {
  const mine = policyAcl(policy)
  const standard = policyAcl(new CommandPolicy())
  const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i])
  if (same(mine.deny, standard.deny) && same(mine.allow, standard.allow)) return DEFAULT_FUNCTION_USERNAME
  const hash = createHash('sha256').update(JSON.stringify(mine)).digest('hex').slice(0, 8)
  return `${DEFAULT_FUNCTION_USERNAME}-${hash}`
}

/** The policy's allow and deny entries for the function ACL, lowercase ACL names. */
function policyAcl(policy: CommandPolicy): { deny: readonly string[]; allow: readonly string[] } {
  const acl = policy.aclOptions()
  return { deny: acl.deny ?? [], allow: acl.allow ?? [] }
}

function unknownShard(shardId: string, known: readonly string[]): InvalidArgumentError {
  return new InvalidArgumentError(`no shard with id ${JSON.stringify(shardId)}; the shards are: ${known.join(', ')}`)
}

const TRANSACTION_END = new Set(['EXEC', 'DISCARD'])

class Dedicated implements DedicatedConnection {
  private released = false
  private inMulti = false
  private watching = false

  constructor(
    private readonly backend: GearboxRedisBackend,
    private readonly node: Node,
    private readonly conn: RedisConnection,
  ) {}

  call(args: readonly RedisArg[], options: DedicatedCallOptions = {}): Promise<RedisReply> {
    if (this.released) return Promise.reject(new ClosedError('this dedicated connection was released; take a new one with dedicated()'))
    if (args.length === 0) return Promise.reject(new InvalidArgumentError('a command needs at least its name'))
    const name = commandName(args)
    if (name === 'MULTI') this.inMulti = true
    else if (name === 'WATCH') this.watching = true
    else if (name === 'UNWATCH') this.watching = false
    else if (TRANSACTION_END.has(name)) this.inMulti = this.watching = false
    const budget = options.maxReplyBytes
    return budget === undefined ? this.conn.send(args) : this.conn.send(args, budget, `limits.maxReplyBytes (${budget} bytes)`)
  }

  release(): void {
    if (this.released) return
    this.released = true
    this.backend.releaseDedicated(this.node, this.conn, this.inMulti ? ['DISCARD'] : this.watching ? ['UNWATCH'] : undefined)
  }
}

/**
 * A forwarding connection of gearbox's own backend (see GearboxRedisBackend.proxyConnection); the
 * RESP server needs a backend made by createRedisBackend (Gearbox.create makes one).
 */
export function proxyConnection(
  backend: RedisBackend,
  address: NodeAddress | undefined,
  credentials: Credentials | undefined,
  options: { readonly reconnect: boolean; readonly selectDb: boolean; readonly protocol?: 2 | 3 },
): RedisConnection {
  if (!(backend instanceof GearboxRedisBackend)) {
    throw new InvalidArgumentError('gearbox serve forwards through a backend made by createRedisBackend (or Gearbox.create)')
  }
  return backend.proxyConnection(address, credentials, options)
}

/** The RESP server followed a MOVED: the backend reads the cluster's slot map again when next asked. */
export function forgetTopology(backend: RedisBackend): void {
  if (backend instanceof GearboxRedisBackend) backend.forgetTopology()
}
