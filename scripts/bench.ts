/**
 * `npm run bench`: measures gearbox against its anchors in ONE process run and writes
 * BENCHMARKS.md with the ratios. Redis servers are throwaway, on loopback. Numbers on a shared
 * 2-core machine are noisy; ratios taken in the same run are the stable part.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { Redis } from 'ioredis'
import { Gearbox } from '../host/index.js'
import { startRedisServer } from '../host/platform/redis-server.js'
import { bareQuickJS, luaGets, rawGets, wesselQuickJS } from './bench/anchors.js'
import { fmt, summarize, timeEach, type BenchRow, type Sample } from './bench/stats.js'
import { benchBatch } from './bench/batch.js'
import { benchRestore } from './bench/restore.js'
import { benchStreams } from './bench/streams.js'
import { benchServe } from './bench/serve.js'
import { benchRegistrations } from './bench/registrations.js'
import { benchParked } from './bench/parked.js'
import { benchPython } from './bench/python.js'

const quick = process.argv.includes('--quick')
const N = quick ? 50 : 400

interface Section {
  readonly title: string
  readonly rows: readonly BenchRow[]
  readonly ratios: readonly { readonly name: string; readonly value: number; readonly target: string; readonly met: boolean }[]
  /** Paragraphs printed under the tables. */
  readonly notes?: readonly string[]
}

async function sectionColdExecution(redisUrl: string): Promise<Section> {
  const gearbox = await Gearbox.create({ redis: redisUrl, persist: false, workers: 2 })
  try {
    const trivial = async (): Promise<void> => {
      const r = await gearbox.execute('1 + 1')
      if (r !== 'OK') throw new Error(`unexpected reply ${String(r)}`)
    }
    const bare = await bareQuickJS()
    const wessel = await wesselQuickJS()
    // Interleave rounds so machine noise spreads evenly over the three.
    const g: number[] = []
    const b: number[] = []
    const w: number[] = []
    for (let round = 0; round < 4; round++) {
      g.push(...(await timeEach(N / 4, 20, trivial)))
      b.push(...(await timeEach(N / 4, 20, bare)))
      w.push(...(await timeEach(Math.max(10, N / 20), 3, wessel)))
    }
    const gs = summarize(g)
    const bs = summarize(b)
    const ws = summarize(w)
    return {
      title: 'Cold execution of a trivial function (fresh interpreter each time)',
      rows: [
        { name: 'gearbox.execute("1 + 1") (worker pool, full runtime prelude)', value: gs.median, unit: 'ms', note: `p10 ${fmt(gs.p10)} p90 ${fmt(gs.p90)}` },
        { name: 'bare quickjs-emscripten newRuntime+newContext+evalCode+dispose (main thread)', value: bs.median, unit: 'ms', note: `p10 ${fmt(bs.p10)} p90 ${fmt(bs.p90)}` },
        { name: '@sebastianwessel/quickjs runSandboxed', value: ws.median, unit: 'ms', note: `p10 ${fmt(ws.p10)} p90 ${fmt(ws.p90)}` },
      ],
      ratios: [
        { name: 'gearbox / bare quickjs-emscripten', value: gs.median / bs.median, target: '≤ 1.5', met: gs.median / bs.median <= 1.5 },
        { name: '@sebastianwessel/quickjs / gearbox (times faster)', value: ws.median / gs.median, target: '≥ 10', met: ws.median / gs.median >= 10 },
        // The p10s are the least disturbed by the other load on a shared machine.
        { name: 'same, p10 / p10', value: gs.p10 / bs.p10, target: '≤ 1.5', met: gs.p10 / bs.p10 <= 1.5 },
      ],
    }
  } finally {
    await gearbox.close()
  }
}

/** Milliseconds for 100 GETs → µs per GET, for prose. */
const perGetUs = (ms: number): string => (ms * 10).toFixed(0)

/**
 * What the 100-GET ratio depends on. Raw ioredis's time swings with this VM's wake-up latency
 * (bimodal: ~30 µs per GET on a quiet host, ~90–100 µs on a busy one); whether this run saw the
 * quiet mode decides how to read the p10 ratio.
 */
function hundredGetsNote(gs: Sample, rs: Sample, ms: Sample): string {
  const quiet = rs.p10 * 10 < 45
  return (
    'Raw ioredis sleeps in its event loop for every reply and pays this VM\'s wake-up latency, which swings ' +
    `with the host's load (raw per GET in this run: p10 ${perGetUs(rs.p10)} µs, median ${perGetUs(rs.median)} µs; ` +
    `gearbox: p10 ${perGetUs(gs.p10)} µs, median ${perGetUs(gs.median)} µs; every call through the I/O thread: ` +
    `median ${perGetUs(ms.median)} µs). A worker running alone sends its GETs itself (direct calls, README) and ` +
    'spins briefly for each reply, so it skips most of that latency. ' +
    (quiet
      ? 'This run caught quiet moments, where raw ioredis wakes quickly: the p10 ratio shows that regime. '
      : 'Raw ioredis had no quiet moments in this run (a quiet host gives it ~30 µs per GET), so neither ratio ' +
        'shows that regime; there the p10 ratio exceeds the target (1.68 in a run on 2026-12-03). ') +
    'What gearbox adds per call then: the guest\'s host call through QuickJS (~20–40 µs on this VM), and a ' +
    'spinning worker that leaves Redis one core on this 2-core machine.'
  )
}

async function sectionHundredGets(redisUrl: string): Promise<Section> {
  const redis = new Redis(redisUrl)
  await redis.set('bench:k', 'value')
  const gearbox = await Gearbox.create({ redis: redisUrl, persist: false, workers: 2 })
  const viaMain = await Gearbox.create({ redis: redisUrl, persist: false, workers: 2, directCalls: false })
  try {
    const script = "for (let i = 0; i < 100; i++) execute('GET', 'bench:k')"
    const viaGearbox = async (): Promise<void> => {
      await gearbox.execute(script)
    }
    const viaMainThread = async (): Promise<void> => {
      await viaMain.execute(script)
    }
    const raw = rawGets(redis, 'bench:k', 100)
    const lua = luaGets(redis, 'bench:k', 100)
    const g: number[] = []
    const r: number[] = []
    const l: number[] = []
    const m: number[] = []
    const n = Math.max(10, N / 8)
    for (let round = 0; round < 4; round++) {
      g.push(...(await timeEach(n, 5, viaGearbox)))
      m.push(...(await timeEach(n, 5, viaMainThread)))
      r.push(...(await timeEach(n, 5, raw)))
      l.push(...(await timeEach(n, 5, lua)))
    }
    const gs = summarize(g)
    const rs = summarize(r)
    const ls = summarize(l)
    const ms = summarize(m)
    return {
      title: 'An execution doing 100 sequential GETs',
      rows: [
        { name: 'gearbox execution: 100 × execute("GET") (direct calls: the worker sends them itself)', value: gs.median, unit: 'ms', note: `p10 ${fmt(gs.p10)} p90 ${fmt(gs.p90)}` },
        { name: 'same, directCalls: false (every call worker → I/O thread → Redis)', value: ms.median, unit: 'ms', note: `p10 ${fmt(ms.p10)} p90 ${fmt(ms.p90)}` },
        { name: 'raw ioredis: 100 × await redis.get()', value: rs.median, unit: 'ms', note: `p10 ${fmt(rs.p10)} p90 ${fmt(rs.p90)}` },
        { name: 'Lua EVAL doing the 100 GETs inside Redis (floor, not a target)', value: ls.median, unit: 'ms', note: `p10 ${fmt(ls.p10)} p90 ${fmt(ls.p90)}` },
      ],
      ratios: [
        { name: 'gearbox / raw ioredis', value: gs.median / rs.median, target: '≤ 1.3', met: gs.median / rs.median <= 1.3 },
        { name: 'same, p10 / p10', value: gs.p10 / rs.p10, target: '≤ 1.3', met: gs.p10 / rs.p10 <= 1.3 },
        { name: 'every call through the I/O thread / direct calls', value: ms.median / gs.median, target: 'information', met: true },
      ],
      notes: [hundredGetsNote(gs, rs, ms)],
    }
  } finally {
    await gearbox.close()
    await viaMain.close()
    redis.disconnect()
  }
}

async function sectionRss(redisUrl: string): Promise<Section> {
  const settle = async (): Promise<number> => {
    await new Promise((r) => setTimeout(r, 300))
    return process.memoryUsage().rss
  }
  const measure = async (workers: number): Promise<number> => {
    const gearbox = await Gearbox.create({ redis: redisUrl, persist: false, workers })
    try {
      // Run enough executions that every worker has built its interpreter modules.
      await Promise.all(Array.from({ length: workers * 4 }, () => gearbox.execute("execute('PING')")))
      return await settle()
    } finally {
      await gearbox.close()
    }
  }
  const one = await measure(1)
  const four = await measure(4)
  const perSandbox = (four - one) / 3
  return {
    title: 'Memory per pooled sandbox (worker thread + its QuickJS modules)',
    rows: [
      { name: 'process RSS with 1 worker', value: one / 2 ** 20, unit: 'MiB' },
      { name: 'process RSS with 4 workers', value: four / 2 ** 20, unit: 'MiB' },
      { name: 'RSS per pooled sandbox ((4 − 1 workers) / 3)', value: perSandbox / 2 ** 20, unit: 'MiB' },
    ],
    ratios: [],
  }
}

const BENCHMARKS_MD = new URL('../../BENCHMARKS.md', import.meta.url)

/**
 * The ratios of the run BENCHMARKS.md holds now, keyed by section title and ratio name, so the
 * new file shows them side by side (a change must not make a ratio worse).
 */
function previousRatios(): { written: string; ratios: Map<string, string> } {
  const ratios = new Map<string, string>()
  if (!existsSync(BENCHMARKS_MD)) return { written: 'none', ratios }
  const text = readFileSync(BENCHMARKS_MD, 'utf8')
  const written = /Written by `npm run bench` on (\S+)/.exec(text)?.[1] ?? 'unknown'
  let section = ''
  let inRatios = false
  for (const line of text.split('\n')) {
    if (line.startsWith('## ')) section = line.slice(3).trim()
    if (line.startsWith('| ratio |')) inRatios = true
    else if (!line.startsWith('|')) inRatios = false
    else if (inRatios && !line.startsWith('| ---')) {
      const cells = line.split('|').map((c) => c.trim())
      if (cells[1] && cells[2]) ratios.set(`${section}\u0000${cells[1]}`, cells[2])
    }
  }
  return { written, ratios }
}

function render(sections: readonly Section[], started: Date, seconds: number): string {
  const previous = previousRatios()
  const lines: string[] = []
  lines.push('# Benchmarks', '')
  lines.push(`Written by \`npm run bench\` on ${started.toISOString()} (${seconds.toFixed(0)} s). Every number below comes from`)
  lines.push('this one run; ratios compare measurements taken in the same process, interleaved, so machine noise')
  lines.push('affects both sides. Absolute times move with the load on this shared machine; the ratios are the result.', '')
  lines.push(`The "previous" column is the same ratio in the run this file held before (${previous.written}).`, '')
  lines.push(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}.`, '')
  for (const s of sections) {
    lines.push(`## ${s.title}`, '', '| measurement | value | unit | spread |', '| --- | ---: | --- | --- |')
    for (const r of s.rows) lines.push(`| ${r.name} | ${fmt(r.value)} | ${r.unit} | ${r.note ?? ''} |`)
    if (s.ratios.length) {
      lines.push('', '| ratio | value | previous | target | met |', '| --- | ---: | ---: | --- | --- |')
      for (const r of s.ratios) {
        const before = previous.ratios.get(`${s.title}\u0000${r.name}`) ?? '–'
        lines.push(`| ${r.name} | ${fmt(r.value, 2)} | ${before} | ${r.target} | ${r.met ? 'yes' : '**no**'} |`)
      }
    }
    for (const note of s.notes ?? []) lines.push('', note)
    lines.push('')
  }
  return lines.join('\n')
}

async function main(): Promise<void> {
  const started = new Date()
  const t0 = performance.now()
  const server = await startRedisServer()
  const sections: Section[] = []
  try {
    sections.push(await sectionColdExecution(server.url))
    console.log('cold execution done')
    sections.push(await sectionHundredGets(server.url))
    console.log('100 GETs done')
    sections.push(await sectionRss(server.url))
    console.log('RSS done')
    const batch = await benchBatch({ quick })
    sections.push(...batch)
    sections.push(...(await benchServe({ quick })))
    sections.push(...(await benchRegistrations({ quick })))
    sections.push(...(await benchParked({ quick })))
    console.log('batch done')
    sections.push(...(await benchRestore(quick ? { rounds: 2 } : {})))
    console.log('restore done')
    sections.push(...(await benchStreams({ quick })))
    console.log('streams done')
    sections.push(...(await benchPython({ quick, redisUrl: server.url })))
    console.log('python done')
  } finally {
    await server.stop()
  }
  const md = render(sections, started, (performance.now() - t0) / 1000)
  writeFileSync(BENCHMARKS_MD, md)
  console.log(md)
}

await main()
