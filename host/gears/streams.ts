/**
 * StreamReader registrations: each stream matching the registration's prefix gets the consumer
 * group `__gears_consumer_group__` (XGROUP CREATE ... <fromId> MKSTREAM), and this host reads it
 * as one consumer of that group (a name unique to the process and the registration), on a
 * connection of its own per master (RedisBackend.blockingConnection): a blocked XREADGROUP holds
 * up no function's command. Acknowledgements, claims and trims go on gearbox's internal
 * connection, so they never wait behind a blocked read. In a cluster each stream is read on the
 * master owning it. Batches of one stream run one after another, in order; streams go on
 * independently of each other (a stream retrying a batch holds up no other).
 *
 * At least once: an entry is acknowledged (XACK, then XDEL with trimStream) only after the
 * execution of its batch succeeded, or after the onFailedPolicy gave up on it (`continue`; the
 * optional dead-letter stream then gets it with the error). Entries delivered to this consumer
 * and not acknowledged stay in the group's pending list: a host that died leaves them there, and
 * any host reading the stream takes them over (XAUTOCLAIM) once they were idle `claimIdleMs`;
 * a live host keeps the entries it holds fresh (XCLAIM JUSTID) so they are not taken from it.
 * At most `batch` entries per stream are held (read, not yet acknowledged) by one consumer, which
 * bounds what a crash can make run twice.
 *
 * Streams are found when created (keyspace events through the registry, when the feed runs) and
 * by a periodic `SCAN ... TYPE stream` of every master, so none is missed when events are lost.
 */
import { keySlot } from '../cluster/slots.js'
import { shardOwningSlot } from '../cluster/topology.js'
import { GearboxError, RedisReplyError } from '../errors.js'
import type { BlockingConnection, RedisArg, RedisBackend, RedisReply, ShardInfo } from '../redis/types.js'
import type { GearsLogger } from '../runtime/logger.js'
import type { WireValue } from '../runtime/wire.js'
import { prefixMatches, type StreamRegistrationArgs } from './flow.js'

/** The consumer group of every stream a registration reads (RedisGears' name). */
export const STREAM_CONSUMER_GROUP = '__gears_consumer_group__'
/** The longest a read blocks (XREADGROUP BLOCK): bounds how late a paused or stopped reader notices. */
export const STREAM_BLOCK_MS = 1000

/**
 * Removes the group's gearbox consumers (named `gearbox-...`, other than ARGV[2]) that hold no
 * entry and did not read for ARGV[3] ms: those of hosts that stopped, whose entries were taken
 * over. In one script, so a consumer cannot read entries between the check and its removal (which
 * would drop them from the pending list). A live host's consumer removed anyway (a long batch) is
 * created again by its next read. Consumers not named by gearbox are the user's and stay.
 */
const SWEEP_SCRIPT = `local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f.name ~= ARGV[2] and string.sub(f.name, 1, 8) == 'gearbox-' and f.pending == 0 and f.idle >= tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f.name)
    removed = removed + 1
  end
end
return removed`
/** How often every master is scanned for new streams (SCAN TYPE stream), besides keyspace events. */
export const STREAM_SCAN_INTERVAL_MS = 5000
/** Reads of a master whose streams span several slots (no BLOCK across slots): a pause between empty rounds. */
const MULTI_SLOT_POLL_MS = 50
/** The longest a read blocks while a batch of another stream of the master runs (its stream is read again soon after). */
const BUSY_BLOCK_MS = 100
/** The pause after a failed read before the next. */
const READ_ERROR_BACKOFF_MS = 500

/** Consumer names' default host part: a restarted host is a new consumer (its old entries are reclaimed). */
const PROCESS_CONSUMER = `gearbox-${globalThis.crypto.randomUUID().slice(0, 8)}`

/** What a stream registration's executions report back. */
export interface StreamBatchOutcome {
  readonly errors: readonly string[]
}

export interface StreamProcessorHost {
  readonly backend: RedisBackend
  readonly logger: GearsLogger
  /** Runs the registration's steps over `records` on `shard` (the registry counts it); aborted by `signal`. */
  execute(records: WireValue[], shard: ShardInfo, signal: AbortSignal): Promise<StreamBatchOutcome>
  /** Stream scans' interval. Default {@link STREAM_SCAN_INTERVAL_MS}. */
  readonly scanIntervalMs?: number
  /**
   * The host's part of consumer names (`<host>-<registration id>`): unique per Gearbox, since a
   * registration restored from the store keeps its id on every host. Default: one per process.
   */
  readonly consumerHost?: string
}

export type StreamStatus = 'OK' | 'PAUSED' | 'ABORTED'

/** One entry as read: its id, the record's value, and its fields as Redis gave them (for the dead-letter stream). */
interface Entry {
  readonly id: string
  readonly value: Record<string, WireValue>
  readonly raw: readonly Uint8Array[]
}

/** One stream this processor reads. */
class StreamState {
  /** '>' for new entries; otherwise the id after which this consumer's own pending entries are read again. */
  readFrom = '0'
  readonly buffer: Entry[] = []
  /** When the first buffered entry arrived (for `duration`). */
  bufferSince = 0
  /** When the buffered entries were last claimed again (kept fresh against XAUTOCLAIM). */
  touchedAt = 0
  /** When this consumer last looked for entries of dead consumers. */
  reclaimedAt = 0
  /** When this consumer last removed gearbox consumers that stopped reading (see {@link SWEEP_SCRIPT}). */
  sweptAt = Date.now()
  /** A batch of it runs (it is not read meanwhile). */
  running: Promise<void> | undefined
  /** The last batch's XACK (and XDEL) while the next batch already runs (see acknowledgeBehind). */
  acking: Promise<void> = Promise.resolve()
  constructor(
    readonly name: string,
    readonly slot: number,
  ) {}
}

/** The streams of one master, read on one blocking connection. */
class ShardReader {
  readonly streams = new Map<string, StreamState>()
  conn: BlockingConnection | undefined
  loop: Promise<void> | undefined
  /** Batches running. */
  readonly running = new Set<Promise<void>>()
  /** A blocking read is on the connection (stop() may cut it: nothing runs). */
  inBlockingRead = false
  #wake: (() => void) | undefined
  #woken = false

  constructor(readonly shard: ShardInfo) {}

  wake(): void {
    this.#woken = true
    this.#wake?.()
  }

  /** Waits `ms` or until woken. */
  sleep(ms: number): Promise<void> {
    if (this.#woken) {
      this.#woken = false
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms))
      const self = this
      function done(): void {
        clearTimeout(timer)
        self.#wake = undefined
        self.#woken = false
        resolve()
      }
      this.#wake = done
    })
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })
const loose = new TextDecoder('utf-8')

function text(reply: RedisReply): string {
  if (reply instanceof Uint8Array) return loose.decode(reply)
  return typeof reply === 'string' || typeof reply === 'number' ? String(reply) : ''
}

/** A bulk reply as text (UTF-8), or the bytes when they are not UTF-8. */
function bulk(reply: RedisReply): WireValue {
  if (reply instanceof Uint8Array) {
    try {
      return utf8.decode(reply)
    } catch {
      return reply
    }
  }
  return typeof reply === 'string' || typeof reply === 'number' ? reply : null
}

/** `[id, [field, value, ...]]` entries (a deleted entry, `[id, nil]`, has no fields). */
function parseEntries(reply: RedisReply): Entry[] {
  if (!Array.isArray(reply)) return []
  const out: Entry[] = []
  for (const item of reply) {
    if (!Array.isArray(item)) continue
    const id = text(item[0] ?? null)
    const flat = Array.isArray(item[1]) ? item[1] : []
    const value: Record<string, WireValue> = {}
    const raw: Uint8Array[] = []
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const f = flat[i] ?? null
      const v = flat[i + 1] ?? null
      value[String(bulk(f))] = bulk(v)
      if (f instanceof Uint8Array && v instanceof Uint8Array) raw.push(f, v)
    }
    if (id !== '') out.push({ id, value, raw })
  }
  return out
}

/** The milliseconds part of a stream id. */
function idTime(id: string): number {
  const ms = Number(id.slice(0, id.indexOf('-')))
  return Number.isFinite(ms) ? ms : Date.now()
}

/** A glob pattern matching exactly the keys starting with `prefix`. */
function globPrefix(prefix: string): string {
  return prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`) + '*'
}

function failureText(error: unknown): string {
  if (error instanceof GearboxError) return `${error.code}: ${error.message}`
  return error instanceof Error ? error.message : String(error)
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(finish, ms)
    signal.addEventListener('abort', finish, { once: true })
    function finish(): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', finish)
      resolve()
    }
  })
}

/** Keyspace events that may make a stream appear under a key, and those that make it go. */
const APPEAR_EVENTS = new Set(['xadd', 'xgroup-create', 'xsetid', 'rename_to', 'restore', 'copy_to'])
const GONE_EVENTS = new Set(['del', 'expired', 'evicted', 'rename_from', 'unlink'])

/**
 * The reading side of one StreamReader registration: consumer groups, reads, batches,
 * the failure policy, acknowledgement, trimming, reclaiming and the dead-letter stream.
 */
export class StreamProcessor {
  readonly #args: StreamRegistrationArgs
  readonly #host: StreamProcessorHost
  readonly #registrationId: string
  readonly #consumer: string
  readonly #local: boolean
  readonly #batch: number
  readonly #readers = new Map<string, ShardReader>()
  /** Acknowledgements in flight (stop() waits for them). */
  readonly #acks = new Set<Promise<void>>()
  /** Stopping: reads end; with abortPending, running executions are aborted too. */
  readonly #stop = new AbortController()
  readonly #abortRunning = new AbortController()
  #scanTimer: ReturnType<typeof setInterval> | undefined
  #scanning: Promise<void> | undefined
  #status: StreamStatus = 'OK'
  #lastLagMs = 0
  #totalLagMs = 0
  #lagCount = 0
  /** Read failures (connection lost, MOVED, ...), retried. */
  numReadErrors = 0
  /** Entries written to the dead-letter stream. */
  numDeadLettered = 0

  constructor(registrationId: string, args: StreamRegistrationArgs, mode: string, host: StreamProcessorHost) {
    this.#registrationId = registrationId
    this.#args = args
    this.#host = host
    this.#local = mode === 'async_local'
    this.#batch = Math.max(1, Math.floor(args.batch))
    this.#consumer = `${host.consumerHost === undefined ? PROCESS_CONSUMER : `gearbox-${host.consumerHost}`}-${registrationId}`
  }

  /** The consumer name this registration reads as. */
  get consumer(): string {
    return this.#consumer
  }

  get status(): StreamStatus {
    return this.#status
  }

  /** RG.DUMPREGISTRATIONS' lag fields: from an entry's id time to its acknowledgement. */
  get lag(): { readonly lastEstimatedLagMS: number; readonly avgEstimatedLagMS: number } {
    return { lastEstimatedLagMS: this.#lastLagMs, avgEstimatedLagMS: this.#lagCount === 0 ? 0 : this.#totalLagMs / this.#lagCount }
  }

  /** The streams being read, by name. */
  get streams(): string[] {
    return [...this.#readers.values()].flatMap((r) => [...r.streams.keys()])
  }

  clearStats(): void {
    this.#lastLagMs = this.#totalLagMs = this.#lagCount = 0
    this.numReadErrors = this.numDeadLettered = 0
  }

  /** RG.DUMPREGISTRATIONS' args of a StreamReader registration. */
  args(): WireValue[] {
    const a = this.#args
    return ['batchSize', a.batch, 'durationMS', a.durationMs, 'stream', a.prefix, 'trimStream', a.trimStream ? 1 : 0, 'onFailedPolicy', a.onFailedPolicy, 'retryInterval', a.onFailedRetryIntervalSec]
  }

  /** Finds the streams there are and starts reading them; then scans periodically. */
  async start(): Promise<void> {
    const backend = this.#host.backend
    const shards = await backend.shards()
    const current = await backend.currentShard()
    for (const shard of shards) {
      if (this.#local && shard.id !== current.id) continue
      this.#readers.set(shard.id, new ShardReader(shard))
    }
    await this.#scan()
    const interval = this.#host.scanIntervalMs ?? STREAM_SCAN_INTERVAL_MS
    this.#scanTimer = setInterval(() => {
      this.#scanning ??= this.#scan().finally(() => (this.#scanning = undefined))
    }, interval)
    this.#scanTimer.unref?.()
  }

  /** Every stream under the prefix on every master this registration reads (an exact name: that key, created when missing). */
  async #scan(): Promise<void> {
    const prefix = this.#args.prefix
    try {
      if (!prefix.endsWith('*')) {
        await this.#discover(prefix)
        return
      }
      for (const reader of this.#readers.values()) {
        let cursor = '0'
        // Bounded: a SCAN ends when its cursor returns to 0; the count bounds a misbehaving server.
        for (let page = 0; page < 1_000_000 && !this.#stop.signal.aborted; page++) {
          const result = await this.#host.backend.scanShard(reader.shard.id, cursor, { match: globPrefix(prefix.slice(0, -1)), count: 1000, type: 'stream' })
          for (const key of result.keys) {
            const name = loose.decode(key)
            if (!this.#known(name)) await this.#discover(name)
          }
          cursor = result.cursor
          if (cursor === '0') break
        }
      }
    } catch (error) {
      if (!this.#stop.signal.aborted) this.#host.logger.log('warning', `stream registration ${this.#registrationId}: scanning for streams failed: ${failureText(error)}`)
    }
  }

  #known(name: string): boolean {
    for (const reader of this.#readers.values()) if (reader.streams.has(name)) return true
    return false
  }

  /** A keyspace event: a stream under the prefix appeared (read it), went away (forget it), or got entries (wake its reader). */
  keyEvent(key: string, event: string): void {
    if (this.#stop.signal.aborted || !prefixMatches(this.#args.prefix, key)) return
    const lowered = event.toLowerCase()
    if (GONE_EVENTS.has(lowered)) {
      for (const reader of this.#readers.values()) if (reader.streams.delete(key)) reader.wake()
      return
    }
    if (!APPEAR_EVENTS.has(lowered)) return
    if (this.#known(key)) {
      for (const reader of this.#readers.values()) if (reader.streams.has(key)) reader.wake()
      return
    }
    void this.#discover(key).catch((error: unknown) => {
      this.#host.logger.log('warning', `stream registration ${this.#registrationId}: could not read stream ${key}: ${failureText(error)}`)
    })
  }

  /** Creates the consumer group on `name` (a no-op when it is there) and starts reading it on its master. */
  async #discover(name: string): Promise<void> {
    if (this.#stop.signal.aborted) return
    const backend = this.#host.backend
    const slot = keySlot(new TextEncoder().encode(name))
    const owner = async (): Promise<ShardReader | undefined> => {
      const shard = backend.mode === 'standalone' ? await backend.currentShard() : shardOwningSlot(await backend.shards(), slot)
      // None: another master's stream for an async_local registration.
      return shard === undefined ? undefined : this.#readers.get(shard.id)
    }
    if ((await owner()) === undefined) return
    try {
      await backend.call(['XGROUP', 'CREATE', name, STREAM_CONSUMER_GROUP, this.#args.fromId, 'MKSTREAM'], { internal: true })
    } catch (error) {
      if (!(error instanceof RedisReplyError) || !error.message.startsWith('BUSYGROUP')) {
        this.#host.logger.log('warning', `stream registration ${this.#registrationId}: XGROUP CREATE on ${name} failed: ${failureText(error)}`)
        return
      }
    }
    // Asked again: a redirection followed by XGROUP CREATE refreshed the slot map.
    const reader = await owner()
    if (reader === undefined || reader.streams.has(name) || this.#stop.signal.aborted) return
    reader.streams.set(name, new StreamState(name, slot))
    this.#ensureLoop(reader)
    reader.wake()
  }

  #ensureLoop(reader: ShardReader): void {
    reader.loop ??= this.#run(reader)
  }

  /** One master's read loop: until stopped. */
  async #run(reader: ShardReader): Promise<void> {
    const signal = this.#stop.signal
    // Bounded by the stop signal; every iteration waits (a read's BLOCK or a sleep) when idle.
    while (!signal.aborted) {
      if (this.#status !== 'OK' || reader.streams.size === 0) {
        await reader.sleep(STREAM_BLOCK_MS)
        continue
      }
      try {
        reader.conn ??= await this.#host.backend.blockingConnection!(reader.shard.id)
        await this.#round(reader, reader.conn)
      } catch (error) {
        if (signal.aborted) break
        this.numReadErrors++
        const message = failureText(error)
        this.#host.logger.log('warning', `stream registration ${this.#registrationId}: reading on ${reader.shard.host}:${reader.shard.port} failed: ${message}`)
        this.#readFailed(reader, message)
        await reader.sleep(READ_ERROR_BACKOFF_MS)
      }
    }
  }

  /**
   * After a failed read: what was delivered is read again from this consumer's pending list
   * (a reply lost with a connection still delivered its entries), a stream gone is forgotten,
   * and a stream that moved (MOVED) is looked up again.
   */
  #readFailed(reader: ShardReader, message: string): void {
    const gone = /No such key '(.*)' or consumer group/.exec(message)?.[1]
    if (gone !== undefined) {
      reader.streams.delete(gone)
      void this.#discoverIfStream(gone)
    }
    const moved = message.startsWith('MOVED')
    for (const state of reader.streams.values()) {
      state.buffer.length = 0
      state.readFrom = '0'
      if (moved) {
        reader.streams.delete(state.name)
        void this.#discover(state.name).catch(() => undefined)
      }
    }
  }

  /** A stream whose group went (deleted and created again): read it again if it is a stream. */
  async #discoverIfStream(name: string): Promise<void> {
    try {
      const type = await this.#host.backend.call(['TYPE', name], { internal: true })
      if (text(type) === 'stream') await this.#discover(name)
    } catch {
      // The periodic scan finds it.
    }
  }

  /** One round on a master: reclaim, read, then run the batches that are ready and wait for them. */
  async #round(reader: ShardReader, conn: BlockingConnection): Promise<void> {
    const all = [...reader.streams.values()]
    const busy = all.some((s) => s.running !== undefined)
    const streams = all.filter((s) => s.running === undefined)
    const now = Date.now()
    const claimIdle = this.#args.claimIdleMs
    for (const state of streams) {
      if (state.buffer.length === 0 && state.readFrom === '>' && now - state.reclaimedAt >= Math.max(100, claimIdle / 2)) {
        state.reclaimedAt = now
        await this.#reclaim(state)
        if (now - state.sweptAt >= Math.max(1000, claimIdle)) {
          state.sweptAt = now
          await this.#sweepConsumers(state)
        }
      }
    }
    // Buffered entries (running streams' next batches too) stay claimed while they wait.
    for (const state of all) {
      if (state.buffer.length > 0 && now - state.touchedAt >= claimIdle / 3) await this.#touch(state, state.buffer)
    }
    let waitMs = busy ? BUSY_BLOCK_MS : STREAM_BLOCK_MS
    let ready = false
    for (const state of streams) {
      if (state.buffer.length >= this.#batch) ready = true
      else if (state.buffer.length > 0 && this.#args.durationMs > 0) {
        const left = state.bufferSince + this.#args.durationMs - now
        if (left <= 0) ready = true
        else waitMs = Math.min(waitMs, left)
      }
    }
    if (this.#stop.signal.aborted) return
    if (!ready && !(await this.#read(reader, conn, streams, waitMs))) {
      // Every stream runs a batch or has a full buffer. The running ones' next batches are read
      // meanwhile, without BLOCK (a blocked read would hold up the next batch once one ends), so a
      // stream's next batch starts the moment its batch ends; then wait for a batch to end.
      const prefetch = all.filter((s) => s.running !== undefined && s.readFrom === '>')
      if (!(await this.#read(reader, conn, prefetch, waitMs, false))) await reader.sleep(waitMs)
    }
    // Paused (or aborted) while the read waited: what it delivered stays held, pending, until unpause.
    if (this.#status !== 'OK' || this.#stop.signal.aborted) return
    const after = Date.now()
    for (const state of streams) {
      if (state.buffer.length === 0) continue
      const due = state.buffer.length >= this.#batch || (this.#args.durationMs > 0 && after - state.bufferSince >= this.#args.durationMs)
      if (!due) continue
      const entries = state.buffer.splice(0, this.#batch)
      state.bufferSince = Date.now()
      const running: Promise<void> = this.#process(reader.shard, state, entries)
        .catch((error: unknown) => this.#notAcknowledged(state, error))
        .finally(() => {
          state.running = undefined
          reader.running.delete(running)
          reader.wake()
        })
      state.running = running
      reader.running.add(running)
    }
  }

  /**
   * XREADGROUP for the streams whose buffer is not full: one call per slot (Redis Cluster refuses
   * keys of several slots). False when there was nothing to read.
   */
  async #read(reader: ShardReader, conn: BlockingConnection, streams: StreamState[], waitMs: number, mayBlock = true): Promise<boolean> {
    const wanted = streams.filter((s) => s.buffer.length < this.#batch)
    if (wanted.length === 0) return false
    const bySlot = new Map<number, StreamState[]>()
    for (const s of wanted) {
      const key = this.#host.backend.mode === 'cluster' ? s.slot : 0
      const list = bySlot.get(key)
      if (list === undefined) bySlot.set(key, [s])
      else list.push(s)
    }
    const groups = [...bySlot.values()]
    // A blocking read only when one call covers every stream, and none is re-reading its pending entries.
    const block = mayBlock && groups.length === 1 && wanted.every((s) => s.readFrom === '>')
    let got = 0
    for (const group of groups) {
      const count = Math.max(1, this.#batch - Math.max(...group.map((s) => s.buffer.length)))
      const args: RedisArg[] = ['XREADGROUP', 'GROUP', STREAM_CONSUMER_GROUP, this.#consumer, 'COUNT', String(count)]
      if (block) args.push('BLOCK', String(Math.max(1, Math.round(waitMs))))
      args.push('STREAMS', ...group.map((s) => s.name), ...group.map((s) => s.readFrom))
      reader.inBlockingRead = block
      let reply: RedisReply
      try {
        reply = await conn.call(args)
      } finally {
        reader.inBlockingRead = false
      }
      got += this.#deliver(group, reply)
    }
    if (!block && got === 0) await reader.sleep(Math.min(waitMs, MULTI_SLOT_POLL_MS))
    return true
  }

  /** Puts what a read delivered into the streams' buffers; returns how many entries came. */
  #deliver(group: StreamState[], reply: RedisReply): number {
    if (!Array.isArray(reply)) return 0
    let got = 0
    for (const item of reply) {
      if (!Array.isArray(item)) continue
      const state = group.find((s) => s.name === text(item[0] ?? null))
      if (state === undefined) continue
      const entries = parseEntries(item[1] ?? null)
      if (state.readFrom !== '>') {
        // This consumer's own pending entries, after the last one read; none left: new entries next.
        const last = entries[entries.length - 1]
        state.readFrom = last === undefined ? '>' : last.id
      }
      this.#buffer(state, entries)
      got += entries.length
    }
    return got
  }

  #buffer(state: StreamState, entries: Entry[]): void {
    if (entries.length === 0) return
    if (state.buffer.length === 0) {
      state.bufferSince = Date.now()
      state.touchedAt = Date.now()
    }
    state.buffer.push(...entries)
  }

  /** Takes over entries that stayed pending on any consumer for claimIdleMs (a host that died). */
  async #reclaim(state: StreamState): Promise<void> {
    const reply = await this.#internal(['XAUTOCLAIM', state.name, STREAM_CONSUMER_GROUP, this.#consumer, String(Math.round(this.#args.claimIdleMs)), '0-0', 'COUNT', String(this.#batch)])
    if (!Array.isArray(reply)) return
    const entries = parseEntries(reply[1] ?? null)
    if (entries.length > 0) {
      this.#host.logger.log('notice', `stream registration ${this.#registrationId}: took over ${entries.length} pending entries of ${state.name} idle for ${this.#args.claimIdleMs} ms`)
    }
    this.#buffer(state, entries)
  }

  /** Removes consumers of stopped hosts once their entries were taken over (SWEEP_SCRIPT). */
  async #sweepConsumers(state: StreamState): Promise<void> {
    const idleMs = 2 * this.#args.claimIdleMs + STREAM_BLOCK_MS
    let removed: RedisReply
    try {
      removed = await this.#internal(['EVAL', SWEEP_SCRIPT, '1', state.name, STREAM_CONSUMER_GROUP, this.#consumer, String(Math.round(idleMs))])
    } catch (error) {
      // Housekeeping only: reading goes on; the next sweep tries again.
      this.#host.logger.log('warning', `stream registration ${this.#registrationId}: removing consumers of stopped hosts from ${state.name} failed: ${failureText(error)}`)
      return
    }
    if (typeof removed === 'number' && removed > 0) {
      this.#host.logger.log('notice', `stream registration ${this.#registrationId}: removed ${removed} consumers of stopped hosts from ${state.name} (nothing pending, idle ${idleMs} ms)`)
    }
  }

  /** Resets the idle time of entries this consumer holds, so that no other host takes them over. */
  async #touch(state: StreamState, entries: readonly Entry[]): Promise<void> {
    state.touchedAt = Date.now()
    const first = entries[0]
    const last = entries[entries.length - 1]
    if (first === undefined || last === undefined) return
    // Only entries still pending on this consumer: one another host took over (this host stalled
    // past claimIdleMs) is not taken back.
    const pending = await this.#internal(['XPENDING', state.name, STREAM_CONSUMER_GROUP, first.id, last.id, String(entries.length), this.#consumer])
    const mine = Array.isArray(pending) ? pending.flatMap((p) => (Array.isArray(p) ? [text(p[0] ?? null)] : [])) : []
    if (mine.length === 0) return
    await this.#internal(['XCLAIM', state.name, STREAM_CONSUMER_GROUP, this.#consumer, '0', ...mine, 'JUSTID'])
  }

  /** Runs one batch under the onFailedPolicy; acknowledges it when it succeeded or the policy moves on. */
  async #process(shard: ShardInfo, state: StreamState, entries: Entry[]): Promise<void> {
    const records: WireValue[] = entries.map((e) => ({ key: state.name, id: e.id, value: e.value }))
    // A long execution (or retries) keeps its entries claimed: no other host takes them meanwhile.
    const keepEvery = Math.max(50, this.#args.claimIdleMs / 3)
    const keeper = setInterval(() => void this.#touch(state, entries).catch(() => undefined), keepEvery)
    try {
      // Bounded: every attempt but the last ends in a retry wait, which stopping and pausing end.
      for (let attempt = 0; ; attempt++) {
        if (this.#abortRunning.signal.aborted) return
        const outcome = await this.#host.execute(records, shard, this.#abortRunning.signal)
        if (this.#abortRunning.signal.aborted) return // unregistered with abortPending: the entries stay pending
        const error = outcome.errors[0]
        if (error === undefined) {
          this.#acknowledgeBehind(state, entries)
          return
        }
        if (error.startsWith('PAUSE')) {
          // RedisGears: a flat_error starting with PAUSE pauses the registration; the batch runs again after unpause.
          this.#status = 'PAUSED'
          this.#putBack(state, entries)
          return
        }
        switch (this.#args.onFailedPolicy) {
          case 'continue':
            if (this.#args.deadLetter !== null) await this.#deadLetter(state, entries, error)
            await this.#acknowledge(state, entries)
            return
          case 'abort':
            this.#status = 'ABORTED'
            this.#putBack(state, entries)
            this.#host.logger.log('warning', `stream registration ${this.#registrationId} aborted (onFailedPolicy abort) on ${state.name}: ${error}`)
            return
          case 'retry':
            await delay(Math.max(0, this.#args.onFailedRetryIntervalSec * 1000), this.#stop.signal)
            if (this.#stop.signal.aborted) return
            if (this.#status !== 'OK') {
              this.#putBack(state, entries)
              return
            }
        }
      }
    } finally {
      clearInterval(keeper)
    }
  }

  /** Entries not acknowledged go back in front of the buffer (they run again on unpause). */
  #putBack(state: StreamState, entries: Entry[]): void {
    state.buffer.unshift(...entries)
    state.bufferSince = Date.now()
  }

  /** A command of gearbox's own on the internal connection of the key's master (never behind a blocked read). */
  #internal(args: readonly RedisArg[]): Promise<RedisReply> {
    return this.#host.backend.call(args, { internal: true })
  }

  /**
   * Acknowledges a batch that succeeded without holding up the next one: its XACK (and XDEL) goes
   * out while the next batch starts (one round trip less between batches; at least once holds:
   * the entries stay pending until acknowledged). A stream's acknowledgements stay in order; a
   * failed one re-reads this consumer's pending entries, as a failed batch does.
   */
  #acknowledgeBehind(state: StreamState, entries: readonly Entry[]): void {
    const previous = state.acking
    const ack = previous
      .then(() => this.#acknowledge(state, entries))
      .catch((error: unknown) => this.#notAcknowledged(state, error))
    state.acking = ack
    this.#acks.add(ack)
    void ack.finally(() => this.#acks.delete(ack))
  }

  /** A batch not acknowledged (e.g. the connection failed): read again from this consumer's pending entries. */
  #notAcknowledged(state: StreamState, error: unknown): void {
    this.#host.logger.log('warning', `stream registration ${this.#registrationId}: a batch of ${state.name} was not acknowledged: ${failureText(error)}`)
    state.buffer.length = 0
    state.readFrom = '0'
  }

  async #acknowledge(state: StreamState, entries: readonly Entry[]): Promise<void> {
    const ids = entries.map((e) => e.id)
    const ack = this.#internal(['XACK', state.name, STREAM_CONSUMER_GROUP, ...ids])
    // Only this batch's entries are deleted: entries other consumers hold are never trimmed.
    const trim = this.#args.trimStream ? this.#internal(['XDEL', state.name, ...ids]) : undefined
    await ack
    await trim
    const now = Date.now()
    const last = entries[entries.length - 1]
    if (last !== undefined) {
      this.#lastLagMs = Math.max(0, now - idTime(last.id))
      this.#totalLagMs += this.#lastLagMs
      this.#lagCount++
    }
  }

  /** XADD to the dead-letter stream: the entry's fields, after where it came from and the error. */
  async #deadLetter(state: StreamState, entries: readonly Entry[], error: string): Promise<void> {
    const stream = this.#args.deadLetter
    if (stream === null) return
    for (const entry of entries) {
      const args: RedisArg[] = ['XADD', stream, '*', 'gearbox:stream', state.name, 'gearbox:id', entry.id, 'gearbox:error', error, 'gearbox:registration', this.#registrationId, ...entry.raw]
      await this.#host.backend.call(args, { internal: true })
      this.numDeadLettered++
    }
  }

  /** Stops reading (RG.PAUSEREGISTRATIONS): a running batch finishes; the entries held stay pending until unpause. */
  pause(): void {
    if (this.#status === 'OK') this.#status = 'PAUSED'
  }

  /** Reads again after pause() or a PAUSE error; an aborted registration reads again too. */
  unpause(): void {
    this.#status = 'OK'
    for (const reader of this.#readers.values()) reader.wake()
  }

  /**
   * Stops reading and closes the connections. With `abortPending`, running executions are aborted
   * (their entries stay pending, for another consumer after claimIdleMs); otherwise they finish
   * and are acknowledged.
   */
  async stop(abortPending = false): Promise<void> {
    if (this.#scanTimer !== undefined) clearInterval(this.#scanTimer)
    this.#stop.abort()
    if (abortPending) this.#abortRunning.abort()
    const readers = [...this.#readers.values()]
    for (const reader of readers) reader.wake()
    // A blocked read is cut at once: closing its connection rejects it (the loop then sees the stop).
    await Promise.all(
      readers.map(async (reader) => {
        // A blocked read is cut at once; running batches finish and acknowledge (aborted with abortPending).
        if (!reader.inBlockingRead) await reader.loop?.catch(() => undefined)
        await reader.conn?.close()
        await reader.loop?.catch(() => undefined)
        await Promise.allSettled([...reader.running])
      }),
    )
    await Promise.allSettled([...this.#acks])
    await this.#scanning
  }
}
