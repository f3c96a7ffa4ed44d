/**
 * gearbox's own state in the Redis it serves, under one reserved hashtag prefix
 * (redis/reserved-keys.ts; in a cluster every key below is on the one slot of `{gearbox}`):
 *
 * - `{gearbox}:sessions`       hash: session id → the stored session (JSON, {@link StoredSession})
 * - `{gearbox}:version`        counter: bumped on every change of the sessions hash
 * - `{gearbox}:changes`        channel: `<version> <host id>` published on every change
 * - `{gearbox}:hosts`          counter: each host process takes a number (its registration id range)
 * - `{gearbox}:lease:<shard>`  a keyspace-event lease: the id of the host that processes that shard's events
 *
 * Everything goes through the host's internal connection (the configured user), never the
 * function user, whose ACL excludes the prefix. Writes that change the sessions hash bump the
 * version and publish in one Lua script, so another host never reads a change without hearing of it.
 */
import { StoreError } from '../errors.js'
import { RESERVED_PREFIX } from '../redis/reserved-keys.js'
import type { RedisBackend, RedisReply, Subscription } from '../redis/types.js'
import type { RecordedHostCall } from '../runtime/replay.js'
import type { GearsLogger } from '../runtime/logger.js'
import type { Limits } from '../sandbox/types.js'
import type { CompiledRegistration } from './flow.js'
import type { KeyEventFeed } from './registrations.js'

export const SESSIONS_KEY = `${RESERVED_PREFIX}sessions`
export const VERSION_KEY = `${RESERVED_PREFIX}version`
export const CHANGES_CHANNEL = `${RESERVED_PREFIX}changes`
export const HOSTS_KEY = `${RESERVED_PREFIX}hosts`

/** The lease key of `shardId`'s keyspace events. */
export function leaseKey(shardId: string): string {
  return `${RESERVED_PREFIX}lease:${shardId}`
}

/** How a stored session's format is marked (a later format can read or refuse older ones). */
export const STORED_SESSION_FORMAT = 1

/** One session as stored: what restoring it needs (its top level is re-run under replay of `recording`). */
export interface StoredSession {
  readonly format: number
  readonly id: string
  readonly description: string | null
  /** The guest language of `source` ('js'; a later guest restores only its own). */
  readonly language: string
  readonly source: string
  readonly limits: Limits
  /** The top level's host calls in its first run (runtime/replay.ts). */
  readonly recording: readonly RecordedHostCall[]
  /** Its register() calls in order: the id each returned and what it compiled to. */
  readonly registrations: readonly { readonly id: string; readonly compiled: CompiledRegistration }[]
  /** Registrations unregistered since (not restored). */
  readonly unregistered: readonly string[]
  /** Changes on every write: a host holding the same rev has this version. */
  readonly rev: string
  /** When it was first registered (ms since the epoch): restores go oldest first. */
  readonly createdAt: number
}

// HSET (or HDEL), INCR the version, PUBLISH it: one step, so readers never miss a change.
const PUT_SCRIPT = `
if ARGV[1] == 'put' then redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) else redis.call('HDEL', KEYS[1], ARGV[2]) end
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[4], v .. ' ' .. ARGV[5])
return v`

const utf8 = new TextDecoder()

function text(reply: RedisReply): string {
  if (reply instanceof Uint8Array) return utf8.decode(reply)
  return typeof reply === 'string' ? reply : String(reply)
}

/** Reads a stored session; undefined (and a log line) for what does not parse. */
export function parseStoredSession(json: string): StoredSession | undefined {
  try {
    const value = JSON.parse(json) as Partial<StoredSession>
    if (
      value.format !== STORED_SESSION_FORMAT ||
      typeof value.id !== 'string' ||
      typeof value.source !== 'string' ||
      typeof value.language !== 'string' ||
      typeof value.rev !== 'string' ||
      !Array.isArray(value.recording) ||
      !Array.isArray(value.registrations) ||
      !Array.isArray(value.unregistered) ||
      typeof value.limits !== 'object' ||
      value.limits === null
    ) {
      return undefined
    }
    return value as StoredSession
  } catch {
    return undefined
  }
}

/** The stored sessions and the change channel, for one host. */
export class SessionStore {
  #subscription: Subscription | undefined

  constructor(
    private readonly backend: RedisBackend,
    private readonly logger: GearsLogger,
    /** This host's id, in the change messages it publishes (it skips its own). */
    readonly hostId: string,
  ) {}

  /** Every stored session, oldest first; entries that do not parse are logged and skipped. */
  async loadAll(): Promise<StoredSession[]> {
    const reply = await this.backend.call(['HGETALL', SESSIONS_KEY], { internal: true })
    const flat = Array.isArray(reply) ? reply : []
    const out: StoredSession[] = []
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const field = text(flat[i] ?? null)
      const parsed = parseStoredSession(text(flat[i + 1] ?? null))
      if (parsed === undefined || parsed.id !== field) this.logger.log('warning', `stored session ${field} in ${SESSIONS_KEY} cannot be read: skipped`)
      else out.push(parsed)
    }
    return out.sort((a, b) => a.createdAt - b.createdAt)
  }

  /** Stores (or replaces) a session and tells the other hosts. */
  async put(session: StoredSession): Promise<void> {
    await this.#change('put', session.id, JSON.stringify(session))
  }

  /** Removes a session and tells the other hosts. */
  async remove(id: string): Promise<void> {
    await this.#change('del', id, '')
  }

  async #change(kind: 'put' | 'del', id: string, json: string): Promise<void> {
    await this.backend.call(['EVAL', PUT_SCRIPT, '2', SESSIONS_KEY, VERSION_KEY, kind, id, json, CHANGES_CHANNEL, this.hostId], { internal: true })
  }

  /** A number no other host process got: this host's registration ids are taken from its own range. */
  async hostNumber(): Promise<number> {
    const reply = await this.backend.call(['INCR', HOSTS_KEY], { internal: true })
    const n = typeof reply === 'number' ? reply : Number(text(reply))
    if (!Number.isSafeInteger(n)) throw new StoreError(`INCR ${HOSTS_KEY} answered ${String(reply)}`)
    return n
  }

  /**
   * Calls `changed` when another host changed the stored sessions, and after the subscriber
   * reconnected (messages may have been lost meanwhile). False when the backend cannot subscribe.
   */
  async watch(changed: () => void): Promise<boolean> {
    const backend = this.backend
    if (backend.subscribe === undefined) return false
    const shard = await backend.currentShard()
    // PUBLISH reaches every node of a cluster: one subscriber is enough.
    this.#subscription = await backend.subscribe(shard.id, [CHANGES_CHANNEL], {
      message: (_channel, payload) => {
        const from = utf8.decode(payload).split(' ')[1]
        if (from !== this.hostId) changed()
      },
      subscribed: (resubscribed) => {
        if (resubscribed) changed()
      },
    })
    return true
  }

  async close(): Promise<void> {
    const subscription = this.#subscription
    this.#subscription = undefined
    await subscription?.close()
  }
}

// Take the lease when it is free, renew it when this host holds it; 1 when this host holds it after.
const LEASE_SCRIPT = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`

// Let go of a lease this host holds (on close), so another host takes over at once.
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/** Default {@link KeyspaceLeases} time to live. */
export const DEFAULT_LEASE_MS = 5000

/**
 * Keyspace-event duty per shard: every shard's notifications reach every host, and only the host
 * holding that shard's lease processes them. A lease is a key with a TTL, taken with SET NX PX
 * when free and renewed (a compare-and-renew Lua script) every third of its TTL by its holder; a
 * holder that dies stops renewing, and another host takes the lease once it expired.
 *
 * A host counts a lease as held until a safety margin before it could have expired in Redis (from
 * the time it sent the renewal), so two live hosts never both count one lease as theirs unless
 * their clocks drift apart by more than that margin (a fifth of the TTL).
 */
export class KeyspaceLeases {
  /** Until when (performance.now()) this host counts each shard's lease as its own. */
  readonly #heldUntil = new Map<string, number>()
  #timer: ReturnType<typeof setTimeout> | undefined
  #closed = false
  #started: Promise<void> | undefined

  constructor(
    private readonly backend: RedisBackend,
    private readonly logger: GearsLogger,
    private readonly hostId: string,
    private readonly ttlMs: number = DEFAULT_LEASE_MS,
  ) {}

  /** Tries every shard's lease once, then keeps renewing (or trying) every third of the TTL. */
  start(): Promise<void> {
    this.#started ??= this.#tick()
    return this.#started
  }

  /** True while this host holds `shardId`'s lease: it processes that shard's keyspace events. */
  holds(shardId: string): boolean {
    const until = this.#heldUntil.get(shardId)
    return until !== undefined && performance.now() < until
  }

  async #tick(): Promise<void> {
    if (this.#closed) return
    try {
      const shards = await this.backend.shards()
      await Promise.all(shards.map((s) => this.#renew(s.id)))
    } catch (error) {
      this.logger.log('warning', `keyspace leases could not be renewed: ${error instanceof Error ? error.message : String(error)}`)
    }
    if (this.#closed) return
    this.#timer = setTimeout(() => void this.#tick(), Math.max(10, Math.floor(this.ttlMs / 3)))
    // Leases alone do not keep the process alive (close() stops them).
    ;(this.#timer as { unref?: () => void }).unref?.()
  }

  async #renew(shardId: string): Promise<void> {
    const sent = performance.now()
    let held = false
    try {
      const reply = await this.backend.call(['EVAL', LEASE_SCRIPT, '1', leaseKey(shardId), this.hostId, String(this.ttlMs)], { internal: true })
      held = reply === 1
    } catch (error) {
      this.logger.log('warning', `keyspace lease of shard ${shardId}: ${error instanceof Error ? error.message : String(error)}`)
    }
    const had = this.holds(shardId)
    if (held) this.#heldUntil.set(shardId, sent + this.ttlMs - Math.ceil(this.ttlMs / 5))
    else this.#heldUntil.delete(shardId)
    if (held && !had) this.logger.log('notice', `this host (${this.hostId}) now processes the keyspace events of shard ${shardId}`)
  }

  /** Stops renewing and lets go of the leases this host holds. */
  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    await this.#started?.catch(() => {})
    const held = [...this.#heldUntil.keys()]
    this.#heldUntil.clear()
    await Promise.allSettled(held.map((id) => this.backend.call(['EVAL', RELEASE_SCRIPT, '1', leaseKey(id), this.hostId], { internal: true })))
  }
}

/** A keyspace feed whose start also starts the leases (and whose close lets go of them). */
export function leasedFeed(feed: KeyEventFeed, leases: KeyspaceLeases): KeyEventFeed {
  return {
    async start() {
      await leases.start()
      await feed.start()
    },
    async close() {
      await feed.close()
      await leases.close()
    },
  }
}
