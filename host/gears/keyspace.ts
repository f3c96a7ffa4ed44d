/**
 * The keyspace-notification feed of KeysReader registrations: on every master, the classes they
 * need are added to `notify-keyspace-events` (CONFIG SET through the internal connection), and a
 * subscriber connection (PSUBSCRIBE `__keyspace@*__:*`) hands each event to the registry with the
 * shard it happened on. Pub/sub keeps nothing for a disconnected subscriber: after a reconnection
 * the feed resubscribes and reports the gap (keyspace triggers are at most once, as in RedisGears).
 */
import { KeyspaceNotificationsError, RedisReplyError } from '../errors.js'
import type { RedisBackend, RedisReply, ShardInfo, Subscription } from '../redis/types.js'
import type { GearsLogger } from '../runtime/logger.js'
import type { KeyEventFeed } from './registrations.js'

/**
 * The notification classes KeysReader registrations need: K (keyspace channel), every type's
 * events (g $ l s h z t), expired (x), evicted (e), key misses (m).
 */
export const REQUIRED_KEYSPACE_CLASSES = 'Kg$lshzxetm'
/** What `A` stands for in notify-keyspace-events. */
const ALL_ALIAS = 'g$lshzxetd'

/** The notify-keyspace-events value that adds what `current` lacks of {@link REQUIRED_KEYSPACE_CLASSES}, or undefined when nothing lacks. */
export function keyspaceEventsValue(current: string): string | undefined {
  const present = new Set(current.includes('A') ? [...current, ...ALL_ALIAS] : [...current])
  const missing = [...REQUIRED_KEYSPACE_CLASSES].filter((c) => !present.has(c))
  return missing.length === 0 ? undefined : current + missing.join('')
}

export interface KeyEventSink {
  /** `event` happened to `key` on `shard`; `local`: the shard this host's async_local registrations serve. */
  event(shard: ShardInfo, local: boolean, key: string, event: string): void
  /** The subscriber of `shardId` reconnected: events in between were lost. */
  gap(shardId: string): void
}

const KEYSPACE_PREFIX = '__keyspace@'
const utf8 = new TextDecoder('utf-8')

export class KeyspaceFeed implements KeyEventFeed {
  readonly #subscriptions: Subscription[] = []
  #closed = false

  constructor(
    private readonly backend: RedisBackend,
    private readonly logger: GearsLogger,
    private readonly sink: KeyEventSink,
  ) {}

  async start(): Promise<void> {
    const backend = this.backend
    if (backend.subscribe === undefined) {
      throw new KeyspaceNotificationsError('this Redis backend cannot subscribe (no subscribe()): KeysReader registrations need keyspace notifications')
    }
    const shards = await backend.shards()
    const current = await backend.currentShard()
    for (const shard of shards) await this.#configure(shard)
    try {
      for (const shard of shards) {
        const local = shard.id === current.id
        const subscription = await backend.subscribe(shard.id, [`${KEYSPACE_PREFIX}*__:*`], {
          message: (channel, payload) => this.#message(shard, local, channel, payload),
          subscribed: (resubscribed) => {
            if (resubscribed) this.sink.gap(shard.id)
          },
        })
        if (this.#closed) await subscription.close()
        else this.#subscriptions.push(subscription)
      }
    } catch (error) {
      await this.close()
      this.#closed = false
      throw error
    }
  }

  async #configure(shard: ShardInfo): Promise<void> {
    const where = `${shard.host}:${shard.port}`
    const reply = await this.backend.call(['CONFIG', 'GET', 'notify-keyspace-events'], { internal: true, shard: shard.id })
    const current = Array.isArray(reply) ? text(reply[1] ?? null) : ''
    const wanted = keyspaceEventsValue(current)
    if (wanted === undefined) return
    try {
      await this.backend.call(['CONFIG', 'SET', 'notify-keyspace-events', wanted], { internal: true, shard: shard.id })
      this.logger.log('notice', `notify-keyspace-events on ${where} set to '${wanted}' (was '${current}') for KeysReader registrations`)
    } catch (error) {
      if (!(error instanceof RedisReplyError)) throw error
      throw new KeyspaceNotificationsError(
        `KeysReader registrations need keyspace notifications, and Redis ${where} refused CONFIG SET notify-keyspace-events ` +
          `(${error.message}): configure notify-keyspace-events to '${wanted}' on every master (it needs the classes ` +
          `${REQUIRED_KEYSPACE_CLASSES}), or let gearbox's user run CONFIG SET`,
      )
    }
  }

  #message(shard: ShardInfo, local: boolean, channel: Uint8Array, payload: Uint8Array): void {
    // __keyspace@<db>__:<key>
    const name = utf8.decode(channel)
    if (!name.startsWith(KEYSPACE_PREFIX)) return
    const end = name.indexOf('__:', KEYSPACE_PREFIX.length)
    if (end < 0) return
    this.sink.event(shard, local, name.slice(end + 3), utf8.decode(payload))
  }

  async close(): Promise<void> {
    this.#closed = true
    const subscriptions = this.#subscriptions.splice(0)
    await Promise.all(subscriptions.map((s) => s.close()))
  }
}

function text(reply: RedisReply): string {
  if (reply instanceof Uint8Array) return utf8.decode(reply)
  return typeof reply === 'string' ? reply : ''
}
