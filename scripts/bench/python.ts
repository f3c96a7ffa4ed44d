/**
 * The Python guest (issue 10 §5), in the same process run as the other sections:
 * - a cold Python execution (`x = 1` through gearbox.execute: a fresh interpreter restored from the
 *   post-prelude snapshot) against loading a fresh MicroPython instance and running the same line;
 * - 100 sequential `execute('GET')` in Python against raw ioredis (target ≤ 1.3×, as JavaScript).
 * - a GearsBuilder count over 1,000,000 keys (`--quick`: 20,000) in Python against the same flow in
 *   JavaScript, records/s, rounds interleaved.
 * `node dist/scripts/bench/python.js [--quick]` runs it alone with small sizes.
 */
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { startRedisServer } from '../../host/platform/redis-server.js'
import { rawGets } from './anchors.js'
import type { BenchSection } from './batch.js'
import { fmt, summarize, timeEach } from './stats.js'

export interface PythonBenchOptions {
  readonly quick?: boolean
  /** A running Redis to use (else one is started). */
  readonly redisUrl?: string
}

type LoadFn = (options: Record<string, unknown>) => Promise<{ runPython(code: string): unknown }>

/** A fresh MicroPython instance per run, as a worker would without snapshots (the anchor). */
async function freshInstanceRun(load: LoadFn): Promise<void> {
  const mp = await load({ stdout: () => {} })
  mp.runPython('x = 1')
}

const COUNT_JS = 'GB().map(r => r.value).count().run(\'pycount:*\')'
const COUNT_PY = "GB().map(lambda r: r['value']).count().run('pycount:*')"
// A count over a million keys needs more than the interactive defaults (5 s CPU, 30 s wall).
const COUNT_LIMITS = { cpuMs: 600_000, wallMs: 600_000 }

async function timedCount(gearbox: Gearbox, keys: number, language: 'js' | 'python'): Promise<number> {
  const t = performance.now()
  const reply = await gearbox.execute(language === 'js' ? COUNT_JS : COUNT_PY, { language, limits: COUNT_LIMITS })
  const ms = performance.now() - t
  if (JSON.stringify(reply) !== JSON.stringify([[String(keys)], []])) throw new Error(`${language} counted ${JSON.stringify(reply)}`)
  return ms
}

async function countSection(gearbox: Gearbox, redis: Redis, keys: number, rounds: number): Promise<BenchSection> {
  for (let from = 0; from < keys; from += 20_000) {
    const pipe = redis.pipeline()
    for (let i = from; i < Math.min(keys, from + 20_000); i++) pipe.set(`pycount:${i}`, `value-${i}`)
    await pipe.exec()
  }
  await timedCount(gearbox, keys, 'python')
  await timedCount(gearbox, keys, 'js')
  const py: number[] = []
  const js: number[] = []
  for (let round = 0; round < rounds; round++) {
    py.push((keys / (await timedCount(gearbox, keys, 'python'))) * 1000)
    js.push((keys / (await timedCount(gearbox, keys, 'js'))) * 1000)
  }
  const p = summarize(py)
  const j = summarize(js)
  return {
    title: `Python GearsBuilder count over ${keys.toLocaleString('en-US')} keys`,
    rows: [
      { name: 'Python `GB().map(...).count().run()`', value: p.median, unit: 'records/s' },
      { name: 'JavaScript, same flow', value: j.median, unit: 'records/s' },
    ],
    ratios: [{ name: 'Python / JavaScript throughput', value: p.median / j.median, target: 'measured', met: true }],
  }
}

export async function benchPython(options: PythonBenchOptions = {}): Promise<BenchSection[]> {
  const n = options.quick === true ? 20 : 200
  const server = options.redisUrl === undefined ? await startRedisServer() : undefined
  const url = options.redisUrl ?? server!.url
  const redis = new Redis(url)
  await redis.set('bench:k', 'value')
  const gearbox = await Gearbox.create({ redis: url, persist: false, workers: 2 })
  const glueSpecifier = '@micropython/micropython-webassembly-pyscript'
  const glue = (await import(glueSpecifier)) as { loadMicroPython: LoadFn }
  try {
    const cold = summarize(await timeEach(n, 10, async () => void (await gearbox.execute('x = 1', { language: 'python' }))))
    const fresh = summarize(await timeEach(Math.max(5, n / 10), 2, () => freshInstanceRun(glue.loadMicroPython)))
    const script = "for i in range(100):\n    execute('GET', 'bench:k')"
    const py = summarize(await timeEach(Math.max(10, n / 4), 5, async () => void (await gearbox.execute(script, { language: 'python' }))))
    const raw = summarize(await timeEach(Math.max(10, n / 4), 5, rawGets(redis, 'bench:k', 100)))
    const count = await countSection(gearbox, redis, options.quick === true ? 20_000 : 1_000_000, options.quick === true ? 1 : 3)
    return [
      {
        title: 'Python guest (MicroPython)',
        rows: [
          { name: 'cold Python execution (`x = 1`), gearbox', value: cold.median, unit: 'ms', note: `p10 ${fmt(cold.p10)}, p90 ${fmt(cold.p90)}` },
          { name: 'fresh MicroPython instance + `x = 1`', value: fresh.median, unit: 'ms', note: `p10 ${fmt(fresh.p10)}` },
          { name: "100 execute('GET') in Python, gearbox", value: py.median, unit: 'ms', note: `p10 ${fmt(py.p10)}` },
          { name: '100 GET, raw ioredis', value: raw.median, unit: 'ms', note: `p10 ${fmt(raw.p10)}` },
        ],
        ratios: [
          { name: 'cold Python p50', value: cold.median, target: '≤ 2 ms', met: cold.median <= 2 },
          { name: 'fresh instance / cold execution', value: fresh.median / cold.median, target: '≥ 5×', met: fresh.median / cold.median >= 5 },
          { name: "Python 100 execute('GET') / raw ioredis", value: py.median / raw.median, target: '≤ 1.3×', met: py.median / raw.median <= 1.3 },
        ],
      },
      count,
    ]
  } finally {
    await gearbox.close()
    redis.disconnect()
    await server?.stop()
  }
}

if (process.argv[1]?.endsWith('/bench/python.js')) {
  const sections = await benchPython({ quick: process.argv.includes('--quick') })
  for (const section of sections) {
    console.log(section.title)
    for (const row of section.rows) console.log(`  ${row.name}: ${fmt(row.value)} ${row.unit}${row.note === undefined ? '' : ` (${row.note})`}`)
    for (const ratio of section.ratios) console.log(`  ${ratio.name}: ${fmt(ratio.value, 2)} (target ${ratio.target}: ${ratio.met ? 'met' : 'not met'})`)
  }
}
