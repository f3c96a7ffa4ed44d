/**
 * Cluster topology: which master owns which slots, parsed from `CLUSTER SHARDS` (Redis 7.0+) or
 * `CLUSTER SLOTS` (older servers) replies in their RESP2 shape (bulk strings may be bytes or text).
 * A reply of another shape throws UnexpectedReplyError.
 */
import { UnexpectedReplyError } from '../errors.js'
import { SLOT_COUNT } from './slots.js'

/** One master. In standalone mode there is exactly one, owning every slot. */
export interface ShardInfo {
  /** 40-character id (the cluster node id; forty '0' characters in standalone mode). */
  readonly id: string
  readonly host: string
  readonly port: number
  /** Inclusive slot ranges this master owns, ascending. */
  readonly slots: readonly (readonly [number, number])[]
  /** The lowest slot it owns (0 in standalone mode). */
  readonly minSlot: number
}

/** The shard id used in standalone mode. */
export const STANDALONE_SHARD_ID = '0'.repeat(40)

/** The single shard of a standalone server: it owns every slot. */
export function standaloneShard(host: string, port: number): ShardInfo {
  return { id: STANDALONE_SHARD_ID, host, port, slots: [[0, SLOT_COUNT - 1]], minSlot: 0 }
}

const decoder = new TextDecoder()

function text(value: unknown, what: string): string {
  if (typeof value === 'string') return value
  if (value instanceof Uint8Array) return decoder.decode(value)
  throw new UnexpectedReplyError(`${what}: expected a string, got ${describe(value)}`)
}

function int(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value
  if (typeof value === 'string' || value instanceof Uint8Array) {
    const n = Number(text(value, what))
    if (Number.isInteger(n)) return n
  }
  throw new UnexpectedReplyError(`${what}: expected an integer, got ${describe(value)}`)
}

function list(value: unknown, what: string): readonly unknown[] {
  if (Array.isArray(value)) return value
  throw new UnexpectedReplyError(`${what}: expected an array, got ${describe(value)}`)
}

function describe(value: unknown): string {
  if (value === null) return 'nil'
  if (value instanceof Uint8Array) return 'bytes'
  return Array.isArray(value) ? 'an array' : typeof value
}

/** A flat `[name, value, name, value, ...]` array (RESP2's form of a map) as a Map. */
function flatMap(value: unknown, what: string): Map<string, unknown> {
  const items = list(value, what)
  const map = new Map<string, unknown>()
  for (let i = 0; i + 1 < items.length; i += 2) map.set(text(items[i], `${what} field name`), items[i + 1])
  return map
}

function byMinSlot(shards: ShardInfo[]): ShardInfo[] {
  return shards.sort((a, b) => a.minSlot - b.minSlot)
}

function mergeRanges(ranges: [number, number][]): [number, number][] {
  ranges.sort((a, b) => a[0] - b[0])
  const out: [number, number][] = []
  for (const r of ranges) {
    const last = out[out.length - 1]
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1])
    else out.push([r[0], r[1]])
  }
  return out
}

/**
 * Masters from a `CLUSTER SHARDS` reply, ordered by their lowest slot. Masters without slots are
 * left out (they hold no keys). The address is the node's `endpoint` (the address clients are
 * told to use), or its `ip` when the endpoint is unknown.
 */
export function parseClusterShards(reply: unknown): ShardInfo[] {
  const shards: ShardInfo[] = []
  for (const [i, entry] of list(reply, 'CLUSTER SHARDS').entries()) {
    const shard = flatMap(entry, `CLUSTER SHARDS[${i}]`)
    const flat = list(shard.get('slots'), `CLUSTER SHARDS[${i}].slots`)
    const ranges: [number, number][] = []
    for (let s = 0; s + 1 < flat.length; s += 2) {
      ranges.push([int(flat[s], 'slot range start'), int(flat[s + 1], 'slot range end')])
    }
    if (ranges.length === 0) continue
    const nodes = list(shard.get('nodes'), `CLUSTER SHARDS[${i}].nodes`).map((n, j) => flatMap(n, `CLUSTER SHARDS[${i}].nodes[${j}]`))
    const master = nodes.find((n) => text(n.get('role'), 'role') === 'master')
    if (!master) continue
    const endpoint = master.has('endpoint') ? text(master.get('endpoint'), 'endpoint') : ''
    const host = endpoint !== '' && endpoint !== '?' ? endpoint : text(master.get('ip'), 'ip')
    const slots = mergeRanges(ranges)
    shards.push({
      id: text(master.get('id'), 'id'),
      host,
      port: int(master.get('port') ?? master.get('tls-port'), 'port'),
      slots,
      minSlot: slots[0]![0],
    })
  }
  return byMinSlot(shards)
}

/** Masters from a `CLUSTER SLOTS` reply (`[[start, end, [host, port, id, ...], replicas...], ...]`), ordered by their lowest slot. */
export function parseClusterSlots(reply: unknown): ShardInfo[] {
  const byId = new Map<string, { host: string; port: number; ranges: [number, number][] }>()
  for (const [i, entry] of list(reply, 'CLUSTER SLOTS').entries()) {
    const item = list(entry, `CLUSTER SLOTS[${i}]`)
    const master = list(item[2], `CLUSTER SLOTS[${i}] master`)
    const host = text(master[0], 'host')
    const port = int(master[1], 'port')
    const id = master[2] === undefined ? `${host}:${port}` : text(master[2], 'id')
    let known = byId.get(id)
    if (!known) byId.set(id, (known = { host, port, ranges: [] }))
    known.ranges.push([int(item[0], 'slot range start'), int(item[1], 'slot range end')])
  }
  return byMinSlot(
    [...byId].map(([id, m]) => {
      const slots = mergeRanges(m.ranges)
      return { id, host: m.host, port: m.port, slots, minSlot: slots[0]![0] }
    }),
  )
}

/** The shard owning `slot`, if any. */
export function shardOwningSlot(shards: readonly ShardInfo[], slot: number): ShardInfo | undefined {
  return shards.find((s) => s.slots.some(([from, to]) => slot >= from && slot <= to))
}
