/**
 * Batch runs (GearsBuilder) against their raw-client anchors, in the same process run:
 * - `GB().map(r => r.value).count().run()` over N string keys, records/s, vs a raw ioredis loop
 *   doing the same count (SCAN COUNT 1000 + MGET) — standalone;
 * - the same on a throwaway 3-master cluster, vs raw per-master SCAN + pipelined GETs (the masters
 *   read in parallel, as gearbox reads them);
 * - the host process's peak RSS during the standalone count (readers stream with back-pressure,
 *   so it must not grow with N).
 * Rounds are interleaved (gearbox, raw, gearbox, raw, ...) so machine noise hits both sides.
 */
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { RESERVED_PREFIX } from '../../host/index.js'
import { startRedisCluster } from '../../host/platform/redis-cluster.js'
import { startRedisServer } from '../../host/platform/redis-server.js'
import { fmt, summarize, type BenchRow } from './stats.js'

export type { BenchRow }

/** One BENCHMARKS.md section (the shape scripts/bench.ts renders). */
export interface BenchSection {
  readonly title: string
  readonly rows: readonly BenchRow[]
  readonly ratios: readonly { readonly name: string; readonly value: number; readonly target: string; readonly met: boolean }[]
}

export interface BatchBenchOptions {
  /** Fewer keys and rounds (100 000 keys, 2 rounds instead of 1 000 000 and 3). */
  readonly quick?: boolean
  /** Overrides the number of keys. */
  readonly keys?: number
}

const SCRIPT = 'GB().map(r => r.value).count().run()'
// A batch run over a million keys needs more than the interactive defaults (5 s CPU, 30 s wall).
const LIMITS = { cpuMs: 600_000, wallMs: 600_000 }

async function load(clients: readonly Redis[], keys: number, ownerOf: (key: string) => number): Promise<void> {
  for (let from = 0; from < keys; from += 20_000) {
    const pipes = clients.map((c) => c.pipeline())
    for (let i = from; i < Math.min(keys, from + 20_000); i++) {
      const key = `bench:${i}`
      pipes[ownerOf(key)]!.set(key, `value-${i}`)
    }
    await Promise.all(pipes.map((p) => p.exec()))
  }
}

async function gearboxCount(gearbox: Gearbox, keys: number): Promise<number> {
  const t = performance.now()
  const reply = await gearbox.execute(SCRIPT)
  const ms = performance.now() - t
  if (JSON.stringify(reply) !== JSON.stringify([[String(keys)], []])) throw new Error(`gearbox counted ${JSON.stringify(reply)}`)
  return ms
}

/**
 * The raw anchor on one master: SCAN pages, the page's values in one round trip, counted. Keys of
 * gearbox's own state (`{gearbox}:`, written by the Gearboxes of earlier sections) are skipped, as
 * gearbox's KeysReader skips them.
 */
async function rawCount(client: Redis, useMget: boolean): Promise<number> {
  let cursor = '0'
  let n = 0
  do {
    const [next, scanned] = await client.scan(cursor, 'COUNT', 1000)
    cursor = next
    const page = scanned.some((key) => key.startsWith(RESERVED_PREFIX)) ? scanned.filter((key) => !key.startsWith(RESERVED_PREFIX)) : scanned
    if (page.length === 0) continue
    if (useMget) n += (await client.mget(...page)).length
    else {
      const p = client.pipeline()
      for (const key of page) p.get(key)
      n += ((await p.exec()) ?? []).length
    }
  } while (cursor !== '0')
  return n
}

async function timedRaw(clients: readonly Redis[], keys: number, useMget: boolean): Promise<number> {
  const t = performance.now()
  const counts = await Promise.all(clients.map((c) => rawCount(c, useMget)))
  const ms = performance.now() - t
  const total = counts.reduce((a, b) => a + b, 0)
  if (total !== keys) throw new Error(`raw loop counted ${total} of ${keys}`)
  return ms
}

/** Samples the process RSS every 25 ms while `fn` runs. */
async function peakRss<T>(fn: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = process.memoryUsage().rss
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 25)
  try {
    const result = await fn()
    return { result, peak: Math.max(peak, process.memoryUsage().rss) }
  } finally {
    clearInterval(timer)
  }
}

const perSecond = (keys: number, ms: number): number => (keys / ms) * 1000

async function standalone(keys: number, rounds: number): Promise<BenchSection> {
  const server = await startRedisServer()
  const client = new Redis(server.url, { protocol: 2 })
  const gearbox = await Gearbox.create({ redis: server.url, persist: false, workers: 2, limits: LIMITS })
  const plain = await Gearbox.create({ redis: server.url, persist: false, workers: 2, limits: LIMITS, serverSideReads: false })
  try {
    await load([client], keys, () => 0)
    await gearboxCount(gearbox, keys) // warm-up: JIT, worker modules
    await timedRaw([client], keys, true)
    const before = process.memoryUsage().rss
    const g: number[] = []
    const p: number[] = []
    const r: number[] = []
    let peak = before
    for (let round = 0; round < rounds; round++) {
      const measured = await peakRss(() => gearboxCount(gearbox, keys))
      peak = Math.max(peak, measured.peak)
      g.push(measured.result)
      r.push(await timedRaw([client], keys, true))
      p.push(await gearboxCount(plain, keys))
    }
    const gs = summarize(g.map((ms) => perSecond(keys, ms)))
    const rs = summarize(r.map((ms) => perSecond(keys, ms)))
    const ps = summarize(p.map((ms) => perSecond(keys, ms)))
    const n = keys.toLocaleString('en-US')
    return {
      title: `Batch run over ${n} string keys, standalone Redis`,
      rows: [
        { name: `gearbox \`${SCRIPT}\` (pages read by a script inside Redis)`, value: gs.median, unit: 'records/s', note: `p10 ${fmt(gs.p10, 0)} p90 ${fmt(gs.p90, 0)}, ${rounds} rounds` },
        { name: 'gearbox, serverSideReads: false (SCAN + MGET from the host)', value: ps.median, unit: 'records/s', note: `p10 ${fmt(ps.p10, 0)} p90 ${fmt(ps.p90, 0)}` },
        { name: 'raw ioredis loop: SCAN COUNT 1000 + MGET, counted', value: rs.median, unit: 'records/s', note: `p10 ${fmt(rs.p10, 0)} p90 ${fmt(rs.p90, 0)}` },
        { name: `host process peak RSS during the ${n}-key count`, value: peak / 2 ** 20, unit: 'MiB', note: `RSS before the counts: ${fmt(before / 2 ** 20, 1)} MiB` },
      ],
      ratios: [
        { name: 'gearbox / raw ioredis SCAN+MGET', value: gs.median / rs.median, target: '≥ 0.5', met: gs.median / rs.median >= 0.5 },
        { name: 'gearbox with serverSideReads: false / raw', value: ps.median / rs.median, target: 'information', met: true },
      ],
    }
  } finally {
    await gearbox.close()
    await plain.close()
    client.disconnect()
    await server.stop()
  }
}

async function cluster(keys: number, rounds: number): Promise<BenchSection> {
  const c = await startRedisCluster()
  const clients = c.nodes.map((n) => new Redis(n.port, n.host, { protocol: 2 }))
  const gearbox = await Gearbox.create({ redis: { cluster: c.urls }, persist: false, workers: 2, limits: LIMITS })
  const plain = await Gearbox.create({ redis: { cluster: c.urls }, persist: false, workers: 2, limits: LIMITS, serverSideReads: false })
  try {
    // Route each key to the master owning its slot, as the cluster would.
    const { keySlot } = await import('../../host/cluster/slots.js')
    const ranges = [[0, 5460], [5461, 10922], [10923, 16383]]
    await load(clients, keys, (key) => ranges.findIndex(([from, to]) => keySlot(key) >= from! && keySlot(key) <= to!))
    await gearboxCount(gearbox, keys)
    await timedRaw(clients, keys, false)
    const g: number[] = []
    const p: number[] = []
    const r: number[] = []
    for (let round = 0; round < rounds; round++) {
      g.push(await gearboxCount(gearbox, keys))
      r.push(await timedRaw(clients, keys, false))
      p.push(await gearboxCount(plain, keys))
    }
    const gs = summarize(g.map((ms) => perSecond(keys, ms)))
    const ps = summarize(p.map((ms) => perSecond(keys, ms)))
    const rs = summarize(r.map((ms) => perSecond(keys, ms)))
    return {
      title: `Batch run over ${keys.toLocaleString('en-US')} string keys, 3-master Redis Cluster`,
      rows: [
        { name: `gearbox \`${SCRIPT}\` (one stage execution per master, in parallel)`, value: gs.median, unit: 'records/s', note: `p10 ${fmt(gs.p10, 0)} p90 ${fmt(gs.p90, 0)}, ${rounds} rounds` },
        { name: 'gearbox, serverSideReads: false (per-master SCAN + pipelined GETs from the host)', value: ps.median, unit: 'records/s', note: `p10 ${fmt(ps.p10, 0)} p90 ${fmt(ps.p90, 0)}` },
        { name: 'raw ioredis: per-master SCAN COUNT 1000 + pipelined GETs, masters in parallel', value: rs.median, unit: 'records/s', note: `p10 ${fmt(rs.p10, 0)} p90 ${fmt(rs.p90, 0)}` },
      ],
      ratios: [
        { name: 'gearbox / raw per-master SCAN + pipelined GETs', value: gs.median / rs.median, target: '≥ 0.5', met: gs.median / rs.median >= 0.5 },
        { name: 'gearbox with serverSideReads: false / raw', value: ps.median / rs.median, target: 'information', met: true },
      ],
    }
  } finally {
    await gearbox.close()
    await plain.close()
    clients.forEach((client) => client.disconnect())
    await c.stop()
  }
}

/** The batch sections of BENCHMARKS.md. */
export async function benchBatch(options: BatchBenchOptions = {}): Promise<BenchSection[]> {
  const keys = options.keys ?? (options.quick ? 100_000 : 1_000_000)
  const rounds = options.quick ? 2 : 3
  return [await standalone(keys, rounds), await cluster(keys, rounds)]
}
