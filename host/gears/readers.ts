/**
 * Host-side readers: each reads one shard in batches and hands the guest ready-made wire JSON (one
 * `gears.read` reply per batch). {@link prefetching} keeps exactly one batch in flight ahead of the
 * guest, so Redis I/O overlaps the guest's work while host memory stays bounded by two batches.
 *
 * KeysReader / KeysOnlyReader pages, fastest first:
 * - {@link PAGE_SCRIPT}: one EVAL per SCAN page reads the keys' values inside Redis and returns the
 *   page as JSON encoded by Redis; the host forwards the text. Measured (scripts/bench/batch.ts):
 *   ~0.7-0.9x a raw ioredis SCAN+MGET count loop standalone, ~1.7-1.9x raw per-master pipelined GETs
 *   on a 3-master cluster.
 * - Plain commands, when Redis refuses EVAL, a page holds non-UTF-8 bytes, or `noScan`: SCAN COUNT
 *   n, then the values in one round trip (MGET in standalone; in a cluster MGET refuses keys of
 *   different slots, so one pipelined GET per key on the page's master), then the keys that are
 *   not strings by TYPE and their type's read command. ~0.4x the raw loops.
 */
import { createHash } from 'node:crypto'
import { keySlot } from '../cluster/slots.js'
import { RedisReplyError, ReplyLimitError, UnexpectedReplyError } from '../errors.js'
import type { RedisArg, RedisBackend, RedisReply, ShardInfo } from '../redis/types.js'
import { isReserved, RESERVED_PREFIX } from '../redis/reserved-keys.js'
import { DEFAULT_LIMITS } from '../sandbox/limits.js'
import { GuestFacingError } from '../runtime/guest-facing-error.js'
import {
  bulkJson,
  bulkText,
  JsonBatch,
  KeyValueColumns,
  pairsObjectJson,
  streamEntriesJson,
  streamEntryJson,
  zsetJson,
} from './record-json.js'

/** One batch for the guest: the `gears.read` reply text and how many records it holds. */
export interface RecordBatch {
  readonly reply: string
  readonly count: number
}

/** A source of record batches; `next()` resolves null after the last batch. */
export interface BatchSource {
  next(): Promise<RecordBatch | null>
  close(): void
}

/** What the guest asks a host reader for (validated: it comes from guest code). */
export type ReaderOpen =
  | { readonly reader: 'KeysReader'; readonly pattern: string; readonly noScan: boolean; readonly readValue: boolean }
  | { readonly reader: 'KeysOnlyReader'; readonly pattern: string; readonly noScan: boolean; readonly count: number }
  | { readonly reader: 'StreamReader'; readonly stream: string; readonly fromId: string }
  | { readonly reader: 'ShardsIDReader' }

export interface ReaderContext {
  readonly backend: RedisBackend
  /** The shard this reader reads. */
  readonly shard: ShardInfo
  /** Records per batch: SCAN COUNT for key readers, XRANGE COUNT for streams. */
  readonly batchSize: number
  /** Read key pages with {@link PAGE_SCRIPT} when Redis allows EVAL. Default true. */
  readonly serverSideReads?: boolean
  /** The run's limits.maxReplyBytes: the page script refuses larger values. Default: DEFAULT_LIMITS'. */
  readonly maxReplyBytes?: number
}

/** The largest SCAN COUNT a guest can ask for (KeysOnlyReader `count`). */
export const MAX_SCAN_COUNT = 10_000

/** Checks a guest's `open` request. */
export function parseReaderOpen(value: unknown): ReaderOpen {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new GuestFacingError('gears.read: open must be an object')
  const o = value as Record<string, unknown>
  const str = (name: string): string => {
    const v = o[name]
    if (typeof v !== 'string') throw new GuestFacingError(`gears.read: ${name} must be a string`)
    return v
  }
  const bool = (name: string): boolean => {
    const v = o[name]
    if (typeof v !== 'boolean') throw new GuestFacingError(`gears.read: ${name} must be a boolean`)
    return v
  }
  switch (o['reader']) {
    case 'KeysReader':
      return { reader: 'KeysReader', pattern: str('pattern'), noScan: bool('noScan'), readValue: bool('readValue') }
    case 'KeysOnlyReader': {
      const count = o['count']
      if (typeof count !== 'number' || !Number.isInteger(count) || count < 1) throw new GuestFacingError('gears.read: count must be a positive integer')
      // SCAN COUNT is work Redis does in one call: a huge one would stall Redis for everyone.
      return { reader: 'KeysOnlyReader', pattern: str('pattern'), noScan: bool('noScan'), count: Math.min(count, MAX_SCAN_COUNT) }
    }
    case 'StreamReader':
      return { reader: 'StreamReader', stream: str('stream'), fromId: str('fromId') }
    case 'ShardsIDReader':
      return { reader: 'ShardsIDReader' }
    default:
      throw new GuestFacingError('gears.read: unknown host reader')
  }
}

/** The reader `open` asks for, on `ctx.shard`. */
export function openReader(open: ReaderOpen, ctx: ReaderContext, standalone: boolean): BatchSource {
  switch (open.reader) {
    case 'KeysReader':
      return new KeysSource(ctx, open.pattern, open.noScan, open.readValue ? 'values' : 'records', ctx.batchSize, standalone)
    case 'KeysOnlyReader':
      return new KeysSource(ctx, open.pattern, open.noScan, 'names', open.count, standalone)
    case 'StreamReader':
      return new StreamSource(ctx, open.stream, open.fromId)
    case 'ShardsIDReader':
      // RedisGears 1.2 yields '1' when there is no cluster (its RG.INFOCLUSTER says 'no cluster mode').
      return new OnceSource('v' + JSON.stringify([standalone ? '1' : ctx.shard.id]), 1)
  }
}

/** Reads ahead by one batch: the next batch is requested as soon as the current one is handed out. */
export function prefetching(source: BatchSource): BatchSource {
  let ahead: Promise<RecordBatch | null> | undefined
  let closed = false
  return {
    next(): Promise<RecordBatch | null> {
      const current = ahead ?? source.next()
      ahead = undefined
      return current.then((batch) => {
        if (batch !== null && !closed) {
          const next = source.next()
          next.catch(() => {}) // surfaces when the guest asks for it
          ahead = next
        }
        return batch
      })
    },
    close(): void {
      closed = true
      ahead = undefined
      source.close()
    },
  }
}

class OnceSource implements BatchSource {
  #done = false
  constructor(
    private readonly reply: string,
    private readonly count: number,
  ) {}
  next(): Promise<RecordBatch | null> {
    if (this.#done) return Promise.resolve(null)
    this.#done = true
    return Promise.resolve({ reply: this.reply, count: this.count })
  }
  close(): void {
    this.#done = true
  }
}

function ownsSlot(shard: ShardInfo, slot: number): boolean {
  for (const [from, to] of shard.slots) if (slot >= from && slot <= to) return true
  return false
}

function keyJson(key: Uint8Array, batch: JsonBatch): string {
  return bulkJson(key, batch)
}

function statusText(reply: RedisReply | RedisReplyError): string {
  if (reply instanceof Uint8Array) return bulkText(reply) ?? ''
  return typeof reply === 'string' ? reply : ''
}

/** The command that reads a whole value of `type`, or undefined for types without a value here. */
export function readCommand(type: string, key: Uint8Array): RedisArg[] | undefined {
  switch (type) {
    case 'string':
      return ['GET', key]
    case 'hash':
      return ['HGETALL', key]
    case 'list':
      return ['LRANGE', key, '0', '-1']
    case 'set':
      return ['SMEMBERS', key]
    case 'zset':
      return ['ZRANGE', key, '0', '-1', 'WITHSCORES']
    case 'stream':
      return ['XRANGE', key, '-', '+']
    default:
      return undefined
  }
}

function valueJson(type: string, reply: RedisReply, batch: JsonBatch): string {
  switch (type) {
    case 'string':
    case 'list':
    case 'set':
      return bulkJson(reply, batch)
    case 'hash':
      return pairsObjectJson(reply, batch)
    case 'zset':
      return zsetJson(reply, batch)
    case 'stream':
      return streamEntriesJson(reply, batch)
    default:
      return 'null'
  }
}

/** Redis TYPE names the record keeps; module types (e.g. ReJSON-RL) are reported as 'module'. */
export function recordType(type: string): string {
  switch (type) {
    case 'string':
    case 'hash':
    case 'list':
    case 'set':
    case 'zset':
    case 'stream':
      return type
    case 'none':
      return 'empty'
    default:
      return 'module'
  }
}

/**
 * The most value bytes {@link PAGE_SCRIPT} reads inside Redis per call (less when maxReplyBytes is
 * small): Redis runs the script atomically, so what it copies and cjson-encodes in one call is
 * time every other client waits. Values past the budget are left to plain commands.
 */
export const PAGE_BYTE_BUDGET = 4 * 1024 * 1024

/** The page script's byte budget for a run whose replies are capped at `maxReplyBytes`. */
export function pageByteBudget(maxReplyBytes: number): number {
  // cjson may write a byte as \u00XX (6 bytes): the page's JSON stays well under maxReplyBytes.
  return Math.max(1, Math.min(PAGE_BYTE_BUDGET, Math.floor(maxReplyBytes / 8)))
}

/**
 * One SCAN page read inside Redis: SCAN, then each key's size checked before its value is read
 * (STRLEN; MEMORY USAGE for the other types, an estimate from a few elements: both cheap), then the
 * values that fit in the byte budget (MGET in standalone; a GET per key in a cluster, where a
 * script may not MGET keys of different slots; HGETALL, LRANGE, SMEMBERS, ZRANGE WITHSCORES,
 * XRANGE by type), encoded as JSON by Redis's cjson. The host only checks that the text is UTF-8
 * and forwards it; the guest shapes hash, zset and stream values from their flat replies. A value
 * larger than the run's maxReplyBytes fails the call with GEARBOX_REPLY_LIMIT before anything is
 * read; the keys left past the budget come back with their sizes for plain commands.
 * ARGV: cursor, count, withValues ('1'/'0'), useMget ('1'/'0'), byte budget, max value bytes, [pattern].
 * Reply: [cursor, json, key count, rest]; json is {"k": keys, "v": values[, "t": Redis types]} or
 * the keys; rest is [key, size, key, size, ...] (keys not read here).
 */
export const PAGE_SCRIPT = `local r
if ARGV[7] then r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[7], 'COUNT', ARGV[2])
else r = redis.call('SCAN', ARGV[1], 'COUNT', ARGV[2]) end
local keys = {}
for _, k in ipairs(r[2]) do if string.sub(k, 1, ${RESERVED_PREFIX.length}) ~= '${RESERVED_PREFIX}' then keys[#keys + 1] = k end end
if #keys == 0 then return {r[1], '', 0, {}} end
if ARGV[3] ~= '1' then return {r[1], cjson.encode(keys), #keys, {}} end
local budget = tonumber(ARGV[5])
local maxValue = tonumber(ARGV[6])
local take, kinds, rest = {}, {}, {}
local used = 0
for i = 1, #keys do
  local n = redis.pcall('STRLEN', keys[i])
  local kind = 'string'
  if type(n) ~= 'number' then
    kind = redis.call('TYPE', keys[i])['ok']
    n = redis.call('MEMORY', 'USAGE', keys[i]) or 0
  end
  if n > maxValue then
    return redis.error_reply('GEARBOX_REPLY_LIMIT a ' .. kind .. ' value of ' .. n .. ' bytes exceeds limits.maxReplyBytes (' .. ARGV[6] .. ' bytes)')
  end
  if used + n <= budget then
    used = used + n
    take[#take + 1] = keys[i]
    kinds[#take] = kind
  else
    rest[#rest + 1] = keys[i]
    rest[#rest + 1] = n
  end
end
if #take == 0 then return {r[1], '', 0, rest} end
local vals = {}
local strings = {}
for i = 1, #take do if kinds[i] == 'string' then strings[#strings + 1] = i end end
if ARGV[4] == '1' and #strings > 0 and #strings <= 4000 then
  local names = {}
  for j = 1, #strings do names[j] = take[strings[j]] end
  local got = redis.call('MGET', unpack(names))
  for j = 1, #strings do vals[strings[j]] = got[j] end
else
  for j = 1, #strings do
    local v = redis.pcall('GET', take[strings[j]])
    if type(v) == 'string' then vals[strings[j]] = v else vals[strings[j]] = false end
  end
end
local types = nil
for i = 1, #take do
  if not vals[i] then
    if not types then
      types = {}
      for j = 1, #take do types[j] = 'string' end
    end
    local t = redis.call('TYPE', take[i])['ok']
    types[i] = t
    vals[i] = false
    if t == 'hash' then vals[i] = redis.call('HGETALL', take[i])
    elseif t == 'list' then vals[i] = redis.call('LRANGE', take[i], 0, -1)
    elseif t == 'set' then vals[i] = redis.call('SMEMBERS', take[i])
    elseif t == 'zset' then vals[i] = redis.call('ZRANGE', take[i], 0, -1, 'WITHSCORES')
    elseif t == 'stream' then vals[i] = redis.call('XRANGE', take[i], '-', '+') end
  end
end
if types then return {r[1], cjson.encode({k = take, v = vals, t = types}), #take, rest} end
return {r[1], cjson.encode({k = take, v = vals}), #take, rest}`

/** SHA1 of {@link PAGE_SCRIPT}: pages are read with EVALSHA, so Redis's script cache holds one entry. */
export const PAGE_SCRIPT_SHA1 = createHash('sha1').update(PAGE_SCRIPT).digest('hex')

/** The page script's GEARBOX_REPLY_LIMIT error as the coded ReplyLimitError; other errors unchanged. */
function limitError(error: unknown): unknown {
  if (error instanceof RedisReplyError && error.message.startsWith('GEARBOX_REPLY_LIMIT ')) {
    return new ReplyLimitError(`KeysReader: ${error.message.slice('GEARBOX_REPLY_LIMIT '.length)}`)
  }
  return error
}

/** What a page script returned; `json` undefined when the page held bytes that are not UTF-8. */
interface ScriptPage {
  readonly cursor: string
  readonly json: string | undefined
  readonly count: number
  /** Keys of the page the script left (past its byte budget), with their sizes. */
  readonly rest: { readonly key: Uint8Array; readonly size: number }[]
}

/**
 * KeysReader (`values`: {key, value, type, event}; `records`: {key, event}) and KeysOnlyReader
 * (`names`: the key) over one shard. Pages are read with {@link PAGE_SCRIPT} when Redis runs it
 * (`serverSideReads`), else (EVAL refused, a page with binary data, noScan) with plain commands.
 */
class KeysSource implements BatchSource {
  #cursor = '0'
  #started = false
  #done = false
  #serverSide: boolean
  /** Keys a page script left past its byte budget: read next, with plain commands. */
  #pending: { readonly key: Uint8Array; readonly size: number }[] = []

  constructor(
    private readonly ctx: ReaderContext,
    private readonly pattern: string,
    private readonly noScan: boolean,
    private readonly shape: 'values' | 'records' | 'names',
    private readonly count: number,
    private readonly standalone: boolean,
  ) {
    this.#serverSide = ctx.serverSideReads !== false && !noScan
  }

  close(): void {
    this.#done = true
  }

  async next(): Promise<RecordBatch | null> {
    if (this.#done) return null
    if (this.noScan) {
      this.#done = true
      const key = new TextEncoder().encode(this.pattern)
      if (isReserved(key)) return null
      if (!this.standalone && !ownsSlot(this.ctx.shard, keySlot(key))) return null
      return this.#batchOf([key])
    }
    for (;;) {
      if (this.#pending.length > 0) {
        const big = this.#pending[0]!
        if (big.size > pageByteBudget(this.#maxReplyBytes)) {
          this.#pending.shift()
          const batch = await this.#bigStringBatch(big.key, big.size)
          if (batch !== undefined) return batch
          return this.#batchOf([big.key])
        }
        return this.#batchOf(this.#takePending())
      }
      if (this.#started && this.#cursor === '0') {
        this.#done = true
        return null
      }
      this.#started = true
      if (this.#serverSide) {
        let page: ScriptPage
        try {
          page = await this.#scriptPage()
        } catch (error) {
          // EVAL refused (scripting disabled, ACL, a managed service): plain commands from now on.
          if (!(error instanceof RedisReplyError)) throw error
          this.#serverSide = false
          continue
        }
        if (page.json !== undefined) {
          this.#cursor = page.cursor
          this.#pending.push(...page.rest)
          if (page.count === 0) continue
          return this.#scriptBatch(page, page.json)
        }
        // Binary data in the page: read the same page again with plain commands.
      }
      const page = await this.ctx.backend.scanShard(this.ctx.shard.id, this.#cursor, {
        ...(this.pattern === '*' ? {} : { match: this.pattern }),
        count: this.count,
      })
      this.#cursor = page.cursor
      // gearbox's own keys (the store) are no records.
      const keys = page.keys.filter((k) => !isReserved(k))
      if (keys.length > 0) return this.#batchOf(keys)
    }
  }

  /** Pending keys up to the byte budget (at least one: a value over the budget, within maxReplyBytes, alone). */
  #takePending(): Uint8Array[] {
    const budget = pageByteBudget(this.#maxReplyBytes)
    const out: Uint8Array[] = []
    let used = 0
    while (this.#pending.length > 0) {
      const next = this.#pending[0]!
      if (out.length > 0 && used + next.size > budget) break
      used += next.size
      out.push(next.key)
      this.#pending.shift()
    }
    return out
  }

  /**
   * A string over the page budget, read in budget-sized GETRANGE pieces: one GET would make Redis
   * copy the whole value into its reply buffer at once (measured: 55-130 ms for 60 MB, during which
   * it answers no one). Not atomic: a value rewritten between pieces is read torn, as any chunked
   * read would be. undefined when the key is no longer a string (read by type instead).
   */
  async #bigStringBatch(key: Uint8Array, size: number): Promise<RecordBatch | undefined> {
    const budget = pageByteBudget(this.#maxReplyBytes)
    const shard = { shard: this.ctx.shard.id, internal: true }
    const type = statusText(await this.ctx.backend.call(['TYPE', key], shard))
    if (type !== 'string') return undefined
    const pieces: Uint8Array[] = []
    let length = 0
    // Bounded: a value that keeps growing is read up to its size when checked, plus one budget.
    for (let from = 0; from < size + budget; from += budget) {
      const piece = await this.ctx.backend.call(['GETRANGE', key, String(from), String(from + budget - 1)], shard)
      if (!(piece instanceof Uint8Array) || piece.length === 0) break
      pieces.push(piece)
      length += piece.length
      if (length > this.#maxReplyBytes) throw new ReplyLimitError(`KeysReader: a string value grew past limits.maxReplyBytes (${this.#maxReplyBytes} bytes) while read`)
      if (piece.length < budget) break
    }
    const value = new Uint8Array(length)
    let at = 0
    for (const piece of pieces) {
      value.set(piece, at)
      at += piece.length
    }
    const columns = new KeyValueColumns()
    columns.push(keyJson(key, columns.batch), bulkJson(value, columns.batch), 'string')
    return { reply: columns.reply(), count: columns.count }
  }

  get #maxReplyBytes(): number {
    return this.ctx.maxReplyBytes ?? DEFAULT_LIMITS.maxReplyBytes
  }

  async #scriptPage(): Promise<ScriptPage> {
    const argv: RedisArg[] = [
      this.#cursor,
      String(this.count),
      this.shape === 'values' ? '1' : '0',
      this.standalone ? '1' : '0',
      String(pageByteBudget(this.#maxReplyBytes)),
      String(this.#maxReplyBytes),
    ]
    if (this.pattern !== '*') argv.push(this.pattern)
    const options = { shard: this.ctx.shard.id, internal: true }
    let reply: RedisReply
    try {
      reply = await this.ctx.backend.call(['EVALSHA', PAGE_SCRIPT_SHA1, '0', ...argv], options)
    } catch (error) {
      if (!(error instanceof RedisReplyError && error.message.startsWith('NOSCRIPT'))) throw limitError(error)
      // EVAL caches the script under the same SHA1: one entry, whatever the number of pages.
      reply = await this.ctx.backend.call(['EVAL', PAGE_SCRIPT, '0', ...argv], options).catch((e: unknown) => {
        throw limitError(e)
      })
    }
    const [cursor, json, count, rest] = Array.isArray(reply) ? reply : []
    if (!(cursor instanceof Uint8Array) || !(json instanceof Uint8Array) || typeof count !== 'number' || !Array.isArray(rest)) {
      throw new UnexpectedReplyError('the KeysReader page script answered with an unexpected reply')
    }
    const left: { key: Uint8Array; size: number }[] = []
    for (let i = 0; i + 1 < rest.length; i += 2) {
      const key = rest[i]
      const size = rest[i + 1]
      if (key instanceof Uint8Array && typeof size === 'number') left.push({ key, size })
    }
    return { cursor: bulkText(cursor) ?? '0', json: bulkText(json), count, rest: left }
  }

  /** The guest reply for a script page: the page's JSON as Redis encoded it. */
  #scriptBatch(page: ScriptPage, json: string): RecordBatch {
    if (this.shape === 'names') return { reply: 'v' + json, count: page.count }
    if (this.shape === 'records') return { reply: 'v{"n":' + json + '}', count: page.count }
    return { reply: 'v{"s":' + json + '}', count: page.count }
  }

  /** The records of `keys` read with plain commands. */
  async #batchOf(keys: Uint8Array[]): Promise<RecordBatch> {
    if (this.shape === 'values') {
      const columns = new KeyValueColumns()
      await this.#valueRecords(keys, columns)
      return { reply: columns.reply(), count: columns.count }
    }
    const batch = new JsonBatch()
    const present = this.noScan ? await this.#existing(keys) : keys
    if (this.shape === 'names') for (const key of present) batch.push(keyJson(key, batch))
    else for (const key of present) batch.push(`{"key":${keyJson(key, batch)},"event":null}`)
    return { reply: batch.reply(), count: batch.count }
  }

  async #existing(keys: Uint8Array[]): Promise<Uint8Array[]> {
    const replies = await this.ctx.backend.pipeline(this.ctx.shard.id, keys.map((k) => ['EXISTS', k]), { internal: true })
    return keys.filter((_k, i) => replies[i] === 1)
  }

  /**
   * TYPE, then each key's read command, as two pipelines. undefined for a key that no longer
   * exists; a key that changed type between TYPE and the read keeps its TYPE and a null value.
   */
  async #readByType(keys: readonly Uint8Array[], batch: JsonBatch): Promise<({ type: string; json: string } | undefined)[]> {
    const backend = this.ctx.backend
    const shardId = this.ctx.shard.id
    const typeReplies = await backend.pipeline(shardId, keys.map((k) => ['TYPE', k]), { internal: true })
    const types = keys.map((_k, i) => statusText(typeReplies[i] ?? null))
    const reads: { index: number; args: RedisArg[] }[] = []
    types.forEach((type, index) => {
      const args = readCommand(type, keys[index]!)
      if (args !== undefined) reads.push({ index, args })
    })
    const replies = reads.length === 0 ? [] : await backend.pipeline(shardId, reads.map((r) => r.args), { internal: true })
    const values = new Map<number, RedisReply>()
    reads.forEach((r, j) => {
      const reply = replies[j]
      values.set(r.index, reply instanceof RedisReplyError ? null : (reply ?? null))
    })
    return types.map((type, i) => {
      if (type === 'none') return undefined
      return { type: recordType(type), json: values.has(i) ? valueJson(type, values.get(i)!, batch) : 'null' }
    })
  }

  async #valueRecords(keys: Uint8Array[], columns: KeyValueColumns): Promise<void> {
    const batch = columns.batch
    const backend = this.ctx.backend
    const shardId = this.ctx.shard.id
    // Strings first, in one round trip.
    let values: (RedisReply | RedisReplyError)[]
    if (this.standalone) {
      const reply = await backend.call(['MGET', ...keys], { shard: shardId, internal: true })
      values = Array.isArray(reply) ? reply : []
    } else {
      values = await backend.pipeline(shardId, keys.map((k) => ['GET', k]), { internal: true })
    }
    // Everything MGET/GET could not read (not a string, or gone): by type.
    const others: number[] = []
    for (let i = 0; i < keys.length; i++) {
      const v = values[i]
      if (v === null || v === undefined || v instanceof RedisReplyError) others.push(i)
    }
    const byType = others.length === 0 ? [] : await this.#readByType(others.map((i) => keys[i]!), batch)
    const otherAt = new Map<number, { type: string; json: string } | undefined>()
    others.forEach((index, j) => otherAt.set(index, byType[j]))
    for (let i = 0; i < keys.length; i++) {
      const key = keyJson(keys[i]!, batch)
      if (!otherAt.has(i)) {
        columns.push(key, bulkJson(values[i] as RedisReply, batch), 'string')
        continue
      }
      const other = otherAt.get(i)
      // Gone since SCAN: skipped; noScan reports a missing key with type 'empty'.
      if (other === undefined) {
        if (this.noScan) columns.push(key, 'null', 'empty')
        continue
      }
      columns.push(key, other.json, other.type)
    }
  }
}

/** StreamReader: {key, id, value} for every entry after `fromId` (exclusive), in id order. */
class StreamSource implements BatchSource {
  #from: string
  #done = false
  readonly #key: Uint8Array
  readonly #keyJson: string

  constructor(
    private readonly ctx: ReaderContext,
    stream: string,
    fromId: string,
  ) {
    this.#key = new TextEncoder().encode(stream)
    this.#keyJson = JSON.stringify(stream)
    this.#from = fromId
    // In a cluster only the master owning the stream reads it (a standalone shard owns every slot).
    if (!ownsSlot(ctx.shard, keySlot(this.#key))) this.#done = true
  }

  close(): void {
    this.#done = true
  }

  async next(): Promise<RecordBatch | null> {
    if (this.#done) return null
    const reply = await this.ctx.backend.call(['XRANGE', this.#key, '(' + this.#from, '+', 'COUNT', String(this.ctx.batchSize)], {
      shard: this.ctx.shard.id,
      internal: true,
    })
    const entries = Array.isArray(reply) ? reply : []
    if (entries.length < this.ctx.batchSize) this.#done = true
    if (entries.length === 0) return null
    const batch = new JsonBatch()
    for (const entry of entries) batch.push(streamEntryJson(entry, batch, this.#keyJson))
    const last = entries[entries.length - 1]
    const lastId = Array.isArray(last) && last[0] instanceof Uint8Array ? bulkText(last[0]) : undefined
    if (lastId === undefined) this.#done = true
    else this.#from = lastId
    return { reply: batch.reply(), count: batch.count }
  }
}
