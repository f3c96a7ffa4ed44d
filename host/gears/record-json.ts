/**
 * Reader records as wire JSON text, built directly from Redis replies (no intermediate objects and
 * no JSON.stringify replacer): the guest JSON.parses one batch per host call, so this text is the
 * hot path of every batch run. Bulk strings that are valid UTF-8 become JSON strings; others
 * become the wire format's bytes objects (and the batch is tagged 'x' so the guest revives them).
 */
import { NestedReplyError, type RedisReply } from '../redis/types.js'
import { BYTES_KEY, bytesToLatin1 } from '../runtime/wire.js'

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true })
const lenientUtf8 = new TextDecoder('utf-8')
const BYTES_PREFIX = `{${JSON.stringify(BYTES_KEY)}:`

/** Accumulates one batch's JSON array text and whether it needs the guest's wire reviver. */
export class JsonBatch {
  #parts: string[] = []
  #special = false

  get count(): number {
    return this.#parts.length
  }

  push(recordJson: string): void {
    this.#parts.push(recordJson)
  }

  markSpecial(): void {
    this.#special = true
  }

  get special(): boolean {
    return this.#special
  }

  /** The host reply carrying the batch ('v' or 'x' tagged JSON array). */
  reply(): string {
    return (this.#special ? 'x[' : 'v[') + this.#parts.join(',') + ']'
  }
}

/**
 * A KeysReader batch in columns, `{"k": [keys], "v": [values], "t": [types] | "string"}`: the guest
 * builds the `{key, value, type, event}` records itself, which costs QuickJS less than parsing
 * the same records as JSON objects (and sends a third of the bytes).
 */
export class KeyValueColumns {
  readonly #keys: string[] = []
  readonly #values: string[] = []
  readonly #types: string[] = []
  #allStrings = true
  readonly batch = new JsonBatch()

  get count(): number {
    return this.#keys.length
  }

  push(keyJson: string, valueJson: string, type: string): void {
    this.#keys.push(keyJson)
    this.#values.push(valueJson)
    this.#types.push(type)
    if (type !== 'string') this.#allStrings = false
  }

  reply(): string {
    const types = this.#allStrings ? '"string"' : JSON.stringify(this.#types)
    return (this.batch.special ? 'x' : 'v') + `{"k":[${this.#keys.join(',')}],"v":[${this.#values.join(',')}],"t":${types}}`
  }
}

/** The bytes as text when they are valid UTF-8, else undefined. */
export function bulkText(bytes: Uint8Array): string | undefined {
  try {
    return fatalUtf8.decode(bytes)
  } catch {
    return undefined
  }
}

/** A bulk reply as JSON: a string when UTF-8, else a bytes object (marks the batch special). */
export function bulkJson(value: RedisReply, batch: JsonBatch): string {
  if (value instanceof Uint8Array) {
    // Printable ASCII without quotes or backslashes (most keys and values): no escaping pass.
    let plain = true
    for (let i = 0; i < value.length; i++) {
      const c = value[i]!
      if (c >= 0x80 || c < 0x20 || c === 0x22 || c === 0x5c) {
        plain = false
        break
      }
    }
    if (plain) return '"' + fatalUtf8.decode(value) + '"'
    const text = bulkText(value)
    if (text !== undefined) return JSON.stringify(text)
    batch.markSpecial()
    return BYTES_PREFIX + JSON.stringify(bytesToLatin1(value)) + '}'
  }
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null'
  if (typeof value === 'bigint') return JSON.stringify(value.toString())
  if (value instanceof NestedReplyError) return JSON.stringify(value.message)
  if (value === null) return 'null'
  return '[' + value.map((v) => bulkJson(v, batch)).join(',') + ']'
}

/** Object keys must be strings: a non-UTF-8 field name decodes with U+FFFD replacements. */
function fieldName(value: RedisReply): string {
  if (value instanceof Uint8Array) return bulkText(value) ?? lenientUtf8.decode(value)
  return typeof value === 'string' ? value : String(value)
}

/** A flat [field, value, ...] reply (HGETALL, stream entry fields) as a JSON object. */
export function pairsObjectJson(flat: RedisReply, batch: JsonBatch): string {
  if (!Array.isArray(flat)) return '{}'
  const parts: string[] = []
  for (let i = 0; i + 1 < flat.length; i += 2) {
    parts.push(JSON.stringify(fieldName(flat[i]!)) + ':' + bulkJson(flat[i + 1]!, batch))
  }
  return '{' + parts.join(',') + '}'
}

/** A zset score as a JSON number; ±inf as 1e999 (JSON.parse turns it into ±Infinity). */
function scoreJson(value: RedisReply): string {
  const text = value instanceof Uint8Array ? (bulkText(value) ?? '') : String(value)
  if (text === 'inf' || text === '+inf') return '1e999'
  if (text === '-inf') return '-1e999'
  const n = Number(text)
  return Number.isFinite(n) ? String(n) : 'null'
}

/** ZRANGE 0 -1 WITHSCORES (RESP2: flat member, score, ...) as [[member, score], ...]. */
export function zsetJson(flat: RedisReply, batch: JsonBatch): string {
  if (!Array.isArray(flat)) return '[]'
  const parts: string[] = []
  for (let i = 0; i + 1 < flat.length; i += 2) parts.push('[' + bulkJson(flat[i]!, batch) + ',' + scoreJson(flat[i + 1]!) + ']')
  return '[' + parts.join(',') + ']'
}

/** XRANGE entries ([[id, [field, value, ...]], ...]) as [{"id": ..., "value": {...}}, ...]. */
export function streamEntriesJson(entries: RedisReply, batch: JsonBatch): string {
  if (!Array.isArray(entries)) return '[]'
  return '[' + entries.map((e) => streamEntryJson(e, batch, undefined)).join(',') + ']'
}

/** One XRANGE entry; with `keyJson` it is a StreamReader record {key, id, value}. */
export function streamEntryJson(entry: RedisReply, batch: JsonBatch, keyJson: string | undefined): string {
  const pair = Array.isArray(entry) ? entry : []
  const id = bulkJson(pair[0] ?? null, batch)
  const value = pairsObjectJson(pair[1] ?? null, batch)
  return keyJson === undefined ? `{"id":${id},"value":${value}}` : `{"key":${keyJson},"id":${id},"value":${value}}`
}
