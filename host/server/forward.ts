/**
 * Forwarding of clients' ordinary commands to the backend, with each client's own credentials so
 * that Redis ACLs govern what it may do, in the client's protocol (a RESP3 client's commands go
 * on RESP3 connections, so Redis' RESP3 replies pass through): stateless commands share one
 * pipelined connection per (protocol, credentials, master); a stateful client gets a pinned connection of its own. In a cluster,
 * keyed commands go to their slot's master, MOVED and ASK are followed here, and a multi-key
 * command whose keys hash to different slots gets Redis' CROSSSLOT error.
 */
import { RedisReplyError } from '../errors.js'
import { keySlot } from '../cluster/slots.js'
import { shardOwningSlot } from '../cluster/topology.js'
import { forgetTopology, proxyConnection, type Credentials } from '../redis/backend.js'
import { commandKeyIndexes } from '../redis/command-metadata.js'
import type { NodeAddress, RedisConnection } from '../redis/connection.js'
import type { RedisArg, RedisBackend, RedisReply } from '../redis/types.js'

const MAX_REDIRECTIONS = 5
export const CROSSSLOT_TEXT = "CROSSSLOT Keys in request don't hash to the same slot"

/** A client's credentials as given to AUTH / HELLO AUTH (username absent: the default user). */
export interface ClientCredentials {
  readonly username?: string
  readonly password: string
}

function credentialsKey(credentials: ClientCredentials | undefined): string {
  return credentials === undefined ? '' : `${credentials.username ?? 'default'}\u0000${credentials.password}`
}

function toBackendCredentials(credentials: ClientCredentials | undefined): Credentials | undefined {
  if (credentials === undefined) return undefined
  return { username: credentials.username, password: credentials.password }
}

export class Forwarder {
  readonly #backend: RedisBackend
  /** Shared connections by credentials and master. */
  readonly #shared = new Map<string, RedisConnection>()
  /** The master each pinned connection was opened to (cluster). */
  readonly #pinnedAt = new WeakMap<RedisConnection, string>()
  #closed = false

  constructor(backend: RedisBackend) {
    this.#backend = backend
  }

  get mode(): 'standalone' | 'cluster' {
    return this.#backend.mode
  }

  /** Standalone, default user: the shared connection per protocol (the hot path, no key to build). */
  readonly #plain: (RedisConnection | undefined)[] = [undefined, undefined]

  #sharedConnection(credentials: ClientCredentials | undefined, address: NodeAddress | undefined, protocol: 2 | 3): RedisConnection {
    if (credentials === undefined && address === undefined) {
      const cached = this.#plain[protocol - 2]
      if (cached !== undefined && !cached.isClosed) return cached
    }
    const key = `${protocol}:${credentialsKey(credentials)}@${address === undefined ? '' : `${address.host}:${address.port}`}`
    let conn = this.#shared.get(key)
    if (conn === undefined || conn.isClosed) {
      conn = proxyConnection(this.#backend, address, toBackendCredentials(credentials), { reconnect: true, selectDb: true, protocol })
      this.#shared.set(key, conn)
    }
    if (credentials === undefined && address === undefined) this.#plain[protocol - 2] = conn
    return conn
  }

  /**
   * The fast path's connection (standalone only): the shared connection of these credentials and
   * protocol when it is ready, else undefined (the command takes the ordinary path, which waits).
   */
  readyConnection(credentials: ClientCredentials | undefined, protocol: 2 | 3): RedisConnection | undefined {
    if (this.#backend.mode !== 'standalone' || this.#closed) return undefined
    const conn = this.#sharedConnection(credentials, undefined, protocol)
    return conn.isReady ? conn : undefined
  }

  /**
   * Where a command goes: standalone → undefined (the master); cluster → the owner of its keys'
   * slot, or of slot 0 for keyless commands. Throws RedisReplyError(CROSSSLOT) for keys in
   * different slots.
   */
  async route(args: readonly RedisArg[]): Promise<NodeAddress | undefined> {
    if (this.#backend.mode === 'standalone') return undefined
    const indexes = commandKeyIndexes(args)
    let slot = 0
    if (indexes.length > 0) {
      slot = keySlot(args[indexes[0]!]!)
      for (const i of indexes) if (keySlot(args[i]!) !== slot) throw new RedisReplyError(CROSSSLOT_TEXT)
    }
    const shards = await this.#backend.shards()
    const owner = shardOwningSlot(shards, slot)
    return owner === undefined ? undefined : { host: owner.host, port: owner.port }
  }

  /** A stateless command on a shared connection; MOVED and ASK are followed (cluster). */
  async call(args: readonly RedisArg[], credentials: ClientCredentials | undefined, protocol: 2 | 3 = 2): Promise<RedisReply> {
    if (this.#backend.mode === 'standalone') return this.#sharedConnection(credentials, undefined, protocol).send(args)
    let address = await this.route(args)
    let asking = false
    for (let redirections = 0; ; redirections++) {
      const conn = this.#sharedConnection(credentials, address, protocol)
      try {
        if (!asking) return await conn.send(args)
        const [askingReply, reply] = conn.sendMany([['ASKING'], args])
        askingReply!.catch(() => undefined)
        return await reply!
      } catch (error) {
        if (!(error instanceof RedisReplyError) || redirections >= MAX_REDIRECTIONS) throw error
        const redirect = /^(MOVED|ASK) \d+ (.+):(\d+)$/.exec(error.message)
        if (!redirect) throw error
        address = { host: redirect[2]!, port: Number(redirect[3]) }
        asking = redirect[1] === 'ASK'
        // A MOVED means the slot map changed: read it again for the next commands.
        if (!asking) forgetTopology(this.#backend)
      }
    }
  }

  /** A connection of the client's own (MULTI, SELECT, blocking commands, pub/sub ...), to the master of `args`' keys. */
  async pin(args: readonly RedisArg[], credentials: ClientCredentials | undefined, protocol: 2 | 3 = 2): Promise<RedisConnection> {
    const address = await this.route(args).catch(() => undefined)
    const conn = proxyConnection(this.#backend, address, toBackendCredentials(credentials), { reconnect: false, selectDb: true, protocol })
    if (address !== undefined) this.#pinnedAt.set(conn, `${address.host}:${address.port}`)
    return conn
  }

  /**
   * Cluster: true when `args` has keys whose slot another master than `pinned`'s owns (the command
   * then goes to that master's shared connection: a pinned connection does not follow MOVED).
   */
  async elsewhere(pinned: RedisConnection, args: readonly RedisArg[]): Promise<boolean> {
    if (this.#backend.mode === 'standalone' || commandKeyIndexes(args).length === 0) return false
    const at = this.#pinnedAt.get(pinned)
    const address = await this.route(args).catch(() => undefined)
    return at !== undefined && address !== undefined && `${address.host}:${address.port}` !== at
  }

  /**
   * Checks credentials the way Redis does: AUTH on a fresh connection (no SELECT before it, which
   * would need them); resolves with Redis' reply, rejects with its error (WRONGPASS ...).
   */
  async authenticate(authArgs: readonly RedisArg[]): Promise<RedisReply> {
    const probe = proxyConnection(this.#backend, (await this.route(['PING'])) ?? undefined, {}, { reconnect: false, selectDb: false })
    try {
      return await probe.send(authArgs, 64 * 1024)
    } finally {
      void probe.close(false)
    }
  }

  /** Closes the shared connections (pinned ones belong to their clients). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const closing = [...this.#shared.values()].map((c) => c.close())
    this.#shared.clear()
    await Promise.all(closing)
  }
}
