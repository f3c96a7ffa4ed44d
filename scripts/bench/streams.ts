/**
 * Stream registrations against a plain consumer, in the same process run: a StreamReader
 * registration doing one `INCR` per entry (`GB('StreamReader').foreach(r => execute('INCR', k))`)
 * consumes a stream filled beforehand, and so does a plain ioredis consumer in the same consumer
 * group protocol (XREADGROUP COUNT <batch>, an awaited INCR per entry, XACK and XDEL per batch,
 * as the registration acknowledges and trims). Entries per second, batch sizes 1 (RedisGears'
 * default) and 100; rounds interleaved so machine noise hits both sides.
 *
 * Run alone with small sizes: `node dist/scripts/bench/streams.js --entries 2000`.
 */
import { pathToFileURL } from 'node:url'
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { startRedisServer } from '../../host/platform/redis-server.js'
import { fmt, summarize, type BenchRow } from './stats.js'

/** One BENCHMARKS.md section (the shape scripts/bench.ts renders). */
export interface BenchSection {
  readonly title: string
  readonly rows: readonly BenchRow[]
  readonly ratios: readonly { readonly name: string; readonly value: number; readonly target: string; readonly met: boolean }[]
  readonly notes?: readonly string[]
}

export interface StreamBenchOptions {
  /** Fewer entries and rounds. */
  readonly quick?: boolean
  /** Overrides the entries per round (batch 100; batch 1 gets a tenth). */
  readonly entries?: number
}

const GROUP = '__gears_consumer_group__'

async function fill(redis: Redis, stream: string, entries: number): Promise<void> {
  for (let from = 0; from < entries; from += 5000) {
    const pipeline = redis.pipeline()
    for (let i = from; i < Math.min(entries, from + 5000); i++) pipeline.xadd(stream, '*', 'n', String(i))
    await pipeline.exec()
  }
}

/** Waits (bounded) until `key` counts `entries`; polls every 2 ms. */
async function counted(redis: Redis, key: string, entries: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Number(await redis.get(key)) < entries) {
    if (Date.now() > deadline) throw new Error(`${key} did not reach ${entries} within ${timeoutMs} ms (at ${String(await redis.get(key))})`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

/** Milliseconds for a registration to consume `entries` entries filled beforehand. */
async function gearboxRound(gearbox: Gearbox, redis: Redis, round: string, batch: number, entries: number): Promise<number> {
  const stream = `bench:g:${round}`
  await fill(redis, stream, entries)
  const t = performance.now()
  await gearbox.execute(`GB('StreamReader').foreach(() => execute('INCR', 'count:${stream}')).register('${stream}', { batch: ${batch} })`)
  await counted(redis, `count:${stream}`, entries, 600_000)
  const ms = performance.now() - t
  for (const r of gearbox.registrations.list()) await gearbox.registrations.unregister(r.id)
  return ms
}

/** Milliseconds for a plain consumer to do the same. */
async function plainRound(redis: Redis, round: string, batch: number, entries: number): Promise<number> {
  const stream = `bench:p:${round}`
  await fill(redis, stream, entries)
  const t = performance.now()
  await redis.xgroup('CREATE', stream, GROUP, '0', 'MKSTREAM')
  let done = 0
  // Bounded: each read returns up to `batch` entries; the loop ends when all were consumed.
  for (let reads = 0; done < entries && reads < entries * 2; reads++) {
    const reply = (await redis.xreadgroup('GROUP', GROUP, 'plain', 'COUNT', batch, 'BLOCK', 1000, 'STREAMS', stream, '>')) as [string, [string, string[]][]][] | null
    const got = reply?.[0]?.[1] ?? []
    for (const _entry of got) await redis.incr(`count:${stream}`)
    const ids = got.map(([id]) => id)
    if (ids.length > 0) await Promise.all([redis.xack(stream, GROUP, ...ids), redis.xdel(stream, ...ids)])
    done += got.length
  }
  const ms = performance.now() - t
  if (done !== entries) throw new Error(`the plain consumer read ${done} of ${entries}`)
  return ms
}

export async function benchStreams(options: StreamBenchOptions = {}): Promise<BenchSection[]> {
  const entries = options.entries ?? (options.quick ? 5000 : 20_000)
  const rounds = options.quick ? 1 : 2
  const server = await startRedisServer()
  const redis = new Redis(server.port, '127.0.0.1')
  const gearbox = await Gearbox.create({ redis: server.url, persist: false, workers: 2, logger: { log: () => undefined } })
  const sections: BenchSection[] = []
  try {
    const rows: BenchRow[] = []
    const ratios: BenchSection['ratios'][number][] = []
    for (const batch of [100, 1]) {
      const n = batch === 1 ? Math.max(100, Math.round(entries / 10)) : entries
      const g: number[] = []
      const p: number[] = []
      // A warm-up round each (workers' interpreters, connections), not counted.
      await gearboxRound(gearbox, redis, `warm${batch}`, batch, Math.min(n, 500))
      await plainRound(redis, `warm${batch}`, batch, Math.min(n, 500))
      for (let round = 0; round < rounds; round++) {
        g.push((n / (await gearboxRound(gearbox, redis, `${batch}-${round}`, batch, n))) * 1000)
        p.push((n / (await plainRound(redis, `${batch}-${round}`, batch, n))) * 1000)
      }
      const gs = summarize(g)
      const ps = summarize(p)
      rows.push(
        { name: `gearbox StreamReader registration, batch ${batch}: one execute('INCR') per entry (${n} entries)`, value: gs.median, unit: 'entries/s', note: `rounds ${g.map((x) => x.toFixed(0)).join(', ')}` },
        { name: `plain ioredis XREADGROUP COUNT ${batch} consumer: an awaited INCR per entry, XACK + XDEL per batch`, value: ps.median, unit: 'entries/s', note: `rounds ${p.map((x) => x.toFixed(0)).join(', ')}` },
      )
      const ratio = gs.median / ps.median
      ratios.push(
        batch === 1
          ? { name: `gearbox / plain consumer, batch 1 (an execution per entry; no target)`, value: ratio, target: '–', met: true }
          : { name: `gearbox / plain consumer, batch ${batch}`, value: ratio, target: '≥ 0.5', met: ratio >= 0.5 },
      )
    }
    sections.push({
      title: 'Stream registrations: entries per second against a plain consumer',
      rows,
      ratios,
      notes: [
        'Each batch is one execution (a sandbox run of the registration); at batch 1 that per-execution cost is ' +
          'paid per entry, which a plain consumer does not have: use `batch` (and `duration`) for throughput.',
      ],
    })
  } finally {
    await gearbox.close()
    redis.disconnect()
    await server.stop()
  }
  return sections
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf('--entries')
  const entries = at > 0 ? Number(process.argv[at + 1]) : undefined
  const sections = await benchStreams({ quick: true, ...(entries === undefined ? {} : { entries }) })
  for (const s of sections) {
    for (const r of s.rows) console.log(`${r.name}: ${fmt(r.value, 0)} ${r.unit} (${r.note ?? ''})`)
    for (const r of s.ratios) console.log(`${r.name}: ${fmt(r.value, 2)} (target ${r.target})`)
  }
}
