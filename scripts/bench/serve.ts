/**
 * gearbox serve (issue 9 §6), measured with redis-benchmark (50 clients) on one throwaway
 * redis-server, rounds interleaved (direct, served, direct, served) so machine noise hits both:
 * - GET/SET through `gearbox serve` against the same Redis direct, -P 1 and -P 16;
 * - RG.TRIGGER of a one-command function (INCR) against FCALL of the same Redis Function (Lua);
 * - a hooked SET (a hook that only calls call_next) against a plain SET, both through the server.
 *
 * `node dist/scripts/bench/serve.js [--quick]` prints the section; `npm run bench` renders it.
 */
import { execFile } from 'node:child_process'
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { startRedisServer } from '../../host/platform/redis-server.js'
import type { BenchSection } from './batch.js'
import { fmt, summarize } from './stats.js'

export interface ServeBenchOptions {
  /** Fewer requests and rounds. */
  readonly quick?: boolean
}

const CLIENTS = 50

/** Runs redis-benchmark; resolves with requests per second of each test, by its name. */
function redisBenchmark(port: number, args: readonly string[]): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    execFile(
      'redis-benchmark',
      ['-h', '127.0.0.1', '-p', String(port), '-c', String(CLIENTS), '-q', '--csv', ...args],
      { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout) => {
        if (error) return reject(error)
        const out = new Map<string, number>()
        for (const line of stdout.split('\n')) {
          const m = /^"([^"]+)","([\d.]+)"/.exec(line)
          if (m) out.set(m[1]!, Number(m[2]))
        }
        resolve(out)
      },
    )
  })
}

/** Medians of `rounds` interleaved runs of each side; `run` gives one run's rps per test name. */
async function interleaved(rounds: number, sides: readonly (() => Promise<Map<string, number>>)[]): Promise<Map<string, number>[]> {
  const samples = sides.map(() => new Map<string, number[]>())
  for (let round = 0; round < rounds; round++) {
    for (const [i, side] of sides.entries()) {
      for (const [name, rps] of await side()) {
        const list = samples[i]!.get(name) ?? []
        list.push(rps)
        samples[i]!.set(name, list)
      }
    }
  }
  return samples.map((m) => new Map([...m].map(([name, values]) => [name, summarize(values).median])))
}

function ratio(name: string, value: number, target: number | undefined): BenchSection['ratios'][number] {
  return { name, value, target: target === undefined ? 'information' : `≥ ${target.toFixed(2)}`, met: target === undefined || value >= target }
}

export async function benchServe(options: ServeBenchOptions = {}): Promise<BenchSection[]> {
  const quick = options.quick === true
  const requests = quick ? 20_000 : 200_000
  const rounds = quick ? 2 : 3
  const server = await startRedisServer()
  const redis = new Redis(server.url)
  const gearbox = await Gearbox.create({ redis: server.url, persist: false, workers: 2, logger: { log: () => {} } })
  const handle = await gearbox.serve({ port: 0 })
  const served = new Redis({ host: '127.0.0.1', port: handle.address.port })
  try {
    const direct = server.port
    const proxy = handle.address.port
    const sections: BenchSection[] = []

    // ---- forwarding -------------------------------------------------------------------------
    const rows: BenchSection['rows'][number][] = []
    const ratios: BenchSection['ratios'][number][] = []
    for (const pipeline of [1, 16]) {
      const args = ['-t', 'get,set', '-n', String(pipeline === 1 ? requests : requests * 4), '-P', String(pipeline)]
      const [d, s] = await interleaved(rounds, [() => redisBenchmark(direct, args), () => redisBenchmark(proxy, args)])
      for (const test of ['SET', 'GET']) {
        const dv = d!.get(test) ?? NaN
        const sv = s!.get(test) ?? NaN
        rows.push({ name: `${test} -P ${pipeline}, Redis direct`, value: dv, unit: 'requests/s' })
        rows.push({ name: `${test} -P ${pipeline}, through gearbox serve`, value: sv, unit: 'requests/s' })
        ratios.push(ratio(`${test} -P ${pipeline}: served / direct`, sv / dv, pipeline === 1 ? 0.6 : 0.4))
      }
    }
    sections.push({ title: `gearbox serve: redis-benchmark GET/SET, ${CLIENTS} clients, served vs direct`, rows, ratios })

    // ---- functions in the command path --------------------------------------------------------
    await served.call('RG.JSEXECUTE', "GB('CommandReader').map((x) => execute('INCR', x[1])).register({ trigger: 'bench-incr', convertToStr: false })")
    await redis.call('FUNCTION', 'LOAD', 'REPLACE', "#!lua name=gearboxbench\nredis.register_function('bench_incr', function(keys, args) return redis.call('INCR', keys[1]) end)")
    await served.call('RG.JSEXECUTE', "GB('CommandReader').map((x) => call_next(...x.slice(1))).register({ hook: 'set', keyprefix: 'hooked:', mode: 'sync', convertToStr: false })")
    const fnRequests = quick ? 2_000 : 20_000
    const [trigger, fcall] = await interleaved(rounds, [
      () => redisBenchmark(proxy, ['-n', String(fnRequests), 'RG.TRIGGER', 'bench-incr', 'bench:counter']),
      () => redisBenchmark(direct, ['-n', String(fnRequests), 'FCALL', 'bench_incr', '1', 'bench:counter']),
    ])
    const [hooked, plain] = await interleaved(rounds, [
      () => redisBenchmark(proxy, ['-n', String(fnRequests), 'SET', 'hooked:k', 'v']),
      () => redisBenchmark(proxy, ['-n', String(fnRequests), 'SET', 'plain:k', 'v']),
    ])
    const only = (m: Map<string, number> | undefined): number => [...(m?.values() ?? [])][0] ?? NaN
    const t = only(trigger)
    const f = only(fcall)
    const h = only(hooked)
    const p = only(plain)
    sections.push({
      title: `gearbox serve: functions in the command path, redis-benchmark, ${CLIENTS} clients`,
      rows: [
        { name: 'RG.TRIGGER of a one-command function (INCR), through gearbox serve', value: t, unit: 'requests/s' },
        { name: 'FCALL of the same Redis Function (Lua INCR), Redis direct', value: f, unit: 'requests/s' },
        { name: 'SET hooked by a sync hook that calls call_next, through gearbox serve', value: h, unit: 'requests/s' },
        { name: 'plain SET through gearbox serve', value: p, unit: 'requests/s' },
      ],
      ratios: [ratio('RG.TRIGGER / FCALL', t / f, undefined), ratio('hooked SET / plain SET', h / p, undefined)],
    })
    return sections
  } finally {
    served.disconnect()
    await handle.close()
    await gearbox.close()
    redis.disconnect()
    await server.stop()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sections = await benchServe({ quick: process.argv.includes('--quick') })
  for (const s of sections) {
    console.log(`## ${s.title}`)
    for (const r of s.rows) console.log(`  ${r.name}: ${fmt(r.value, 0)} ${r.unit}`)
    for (const r of s.ratios) console.log(`  ${r.name}: ${fmt(r.value, 2)} (target ${r.target}${r.met ? '' : ', NOT met'})`)
  }
}
