/**
 * Registrations (issue 8 §9), on a throwaway redis-server:
 * - the cost of one triggered execution that starts from its session's saved realm (the
 *   interpreter after the top level, restored) against one that evaluates the script again with
 *   its top level replayed, for a script whose top level builds something (a table and a few
 *   functions), measured with `gearbox.trigger()` one at a time;
 * - keyspace-triggered executions per second with a one-command handler (`INCR`), for a burst
 *   of writes under the registered prefix (target ≥ 5,000/s on the 2-core machine);
 * - event → effect latency p50 / p99: a client SETs a key, the handler LPUSHes, the client's
 *   BLPOP returns (one event at a time).
 */
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { startRedisServer } from '../../host/platform/redis-server.js'
import { fmt, summarize, timeEach, type BenchRow } from './stats.js'
import type { BenchSection } from './batch.js'

export interface RegistrationsBenchOptions {
  readonly quick?: boolean
}

/** A top level with some substance: the fresh path evaluates it again for every execution. */
const TRIGGER_SCRIPT = `
const table = {}
for (let i = 0; i < 2000; i++) table['k' + i] = { id: i, name: 'item-' + i, tags: ['a', 'b', String(i % 7)] }
function lookup(name) { return table[name] ?? null }
function describe(item) { return item === null ? 'none' : item.name + '#' + item.id }
GB('CommandReader').map((r) => describe(lookup(r[1]))).register({ trigger: 'look' })
`

const KEYS_SCRIPT = `GB().foreach(() => execute('INCR', 'bench:effects')).register('bench:ks:*', { readValue: false, eventTypes: ['set'] })`
const LATENCY_SCRIPT = `GB().foreach((r) => execute('LPUSH', 'bench:lat', r.key)).register('bench:lat:*', { readValue: false, eventTypes: ['set'] })`

async function triggerCost(url: string, savedRealms: boolean, n: number): Promise<number[]> {
  const gearbox = await Gearbox.create({ redis: url, persist: false, workers: 2, savedRealms })
  try {
    if ((await gearbox.execute(TRIGGER_SCRIPT)) !== 'OK') throw new Error('the trigger script did not register')
    return await timeEach(n, 20, async () => {
      const out = await gearbox.trigger('look', 'k42')
      if (out[0] !== 'item-42#42') throw new Error(`unexpected trigger result ${JSON.stringify(out)}`)
    })
  } finally {
    await gearbox.close()
  }
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('bench: timed out waiting for the registration to catch up')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** Writes `events` keys as fast as a pipeline sends them; executions/s until every INCR landed. */
async function keyspaceRate(gearbox: Gearbox, client: Redis, events: number): Promise<{ perSecond: number; dropped: number }> {
  await client.del('bench:effects')
  const before = droppedOf(gearbox)
  const t0 = performance.now()
  for (let from = 0; from < events; from += 1000) {
    const pipe = client.pipeline()
    for (let i = from; i < Math.min(events, from + 1000); i++) pipe.set(`bench:ks:${i}`, 'v')
    await pipe.exec()
  }
  const dropped = (): number => droppedOf(gearbox) - before
  await until(async () => Number((await client.get('bench:effects')) ?? 0) + dropped() >= events, 120_000)
  const seconds = (performance.now() - t0) / 1000
  return { perSecond: (events - dropped()) / seconds, dropped: dropped() }
}

/** The anchor: a plain ioredis subscriber doing the same INCR per keyspace notification. */
async function rawRate(url: string, client: Redis, events: number): Promise<number> {
  const subscriber = new Redis(url)
  const worker = new Redis(url)
  try {
    await client.del('bench:rawfx')
    subscriber.on('pmessage', () => void worker.incr('bench:rawfx').catch(() => {}))
    await subscriber.psubscribe('__keyspace@0__:bench:raw:*')
    const t0 = performance.now()
    for (let from = 0; from < events; from += 1000) {
      const pipe = client.pipeline()
      for (let i = from; i < Math.min(events, from + 1000); i++) pipe.set(`bench:raw:${i}`, 'v')
      await pipe.exec()
    }
    await until(async () => Number((await client.get('bench:rawfx')) ?? 0) >= events, 120_000)
    return events / ((performance.now() - t0) / 1000)
  } finally {
    subscriber.disconnect()
    worker.disconnect()
  }
}

function droppedOf(gearbox: Gearbox): number {
  return gearbox.registrations.list().reduce((sum, r) => sum + r.RegistrationData.numDropped, 0)
}

async function latencies(client: Redis, waiter: Redis, n: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await client.set(`bench:lat:${i}`, 'v')
    const popped = await waiter.blpop('bench:lat', 5)
    if (popped === null) throw new Error('bench: no effect within 5 s')
    out.push(performance.now() - t)
  }
  return out
}

function percentile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN
}

export async function benchRegistrations(options: RegistrationsBenchOptions = {}): Promise<BenchSection[]> {
  const quick = options.quick === true
  const server = await startRedisServer()
  try {
    // Trigger cost: rounds interleaved so machine noise hits both sides.
    const n = quick ? 100 : 400
    const saved: number[] = []
    const fresh: number[] = []
    for (let round = 0; round < 2; round++) {
      saved.push(...(await triggerCost(server.url, true, n / 2)))
      fresh.push(...(await triggerCost(server.url, false, n / 2)))
    }
    const ss = summarize(saved)
    const fs = summarize(fresh)

    const gearbox = await Gearbox.create({ redis: server.url, persist: false, workers: 2 })
    const client = new Redis(server.url)
    const waiter = new Redis(server.url)
    try {
      if ((await gearbox.execute(KEYS_SCRIPT)) !== 'OK') throw new Error('the keyspace script did not register')
      if ((await gearbox.execute(LATENCY_SCRIPT)) !== 'OK') throw new Error('the latency script did not register')
      await keyspaceRate(gearbox, client, 500) // warm-up: every worker saves the sessions' realms
      const rates: { perSecond: number; dropped: number }[] = []
      for (let round = 0; round < (quick ? 1 : 3); round++) rates.push(await keyspaceRate(gearbox, client, quick ? 3000 : 8000))
      const best = rates.reduce((a, b) => (b.perSecond > a.perSecond ? b : a))
      const raw = await rawRate(server.url, client, quick ? 3000 : 8000)
      const lat = await latencies(client, waiter, quick ? 100 : 400)
      const rows: BenchRow[] = [
        { name: 'triggered execution from the saved realm (gearbox.trigger, one at a time)', value: ss.median, unit: 'ms', note: `p10 ${fmt(ss.p10)} p90 ${fmt(ss.p90)}` },
        { name: 'same, script evaluated again with its top level replayed (savedRealms: false)', value: fs.median, unit: 'ms', note: `p10 ${fmt(fs.p10)} p90 ${fmt(fs.p90)}` },
        {
          name: 'keyspace-triggered executions per second (one INCR per event, pipelined SETs)',
          value: best.perSecond,
          unit: '/s',
          note: `rounds: ${rates.map((r) => r.perSecond.toFixed(0)).join(', ')}; dropped ${best.dropped}`,
        },
        { name: 'anchor: plain ioredis subscriber, one INCR per notification (same writes)', value: raw, unit: '/s' },
        { name: 'event → effect latency p50 (SET → handler LPUSH → client BLPOP)', value: percentile(lat, 0.5), unit: 'ms' },
        { name: 'event → effect latency p99', value: percentile(lat, 0.99), unit: 'ms' },
      ]
      return [
        {
          title: 'Registrations: saved realms, keyspace throughput, event latency',
          rows,
          ratios: [
            { name: 'fresh (top level replayed) / saved realm, per triggered execution', value: fs.median / ss.median, target: '> 1', met: fs.median > ss.median },
            { name: 'keyspace-triggered executions per second', value: best.perSecond, target: '≥ 5000', met: best.perSecond >= 5000 },
            { name: 'gearbox / plain ioredis subscriber, events per second', value: best.perSecond / raw, target: 'report', met: true },
          ],
        },
      ]
    } finally {
      client.disconnect()
      waiter.disconnect()
      await gearbox.close()
    }
  } finally {
    await server.stop()
  }
}

/** `node dist/scripts/bench/registrations.js [--quick]`: prints the section. */
if (import.meta.url === `file://${process.argv[1]}`) {
  const sections = await benchRegistrations({ quick: process.argv.includes('--quick') })
  console.log(JSON.stringify(sections, null, 2))
}
