/**
 * Parked executions (issue 8 §7): 1,000 executions, each awaiting a future that a runCoroutine
 * delay settles, started at once on a 2-worker pool. Reports the time until all settled and the
 * host process's RSS for it (peak over the baseline, and what the engines held as parked pages).
 */
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { startRedisServer } from '../../host/platform/redis-server.js'
import type { BenchSection } from './batch.js'

export interface ParkedBenchOptions {
  readonly quick?: boolean
}

const DELAY_SECONDS = 2

const waiting = (i: number): string => `
const f = createFuture()
runCoroutine(async () => { f.resolve('v${i}') }, null, ${DELAY_SECONDS})
runCoroutine(async () => { const v = await f; execute('HSET', 'bench:parked', '${i}', v) })`

export async function benchParked(options: ParkedBenchOptions = {}): Promise<BenchSection[]> {
  const n = options.quick === true ? 300 : 1000
  const server = await startRedisServer()
  const gearbox = await Gearbox.create({ redis: server.url, persist: false, workers: 2 })
  const client = new Redis(server.url)
  try {
    await gearbox.execute(waiting(-1)) // warm-up: both workers' realms built
    const baseline = process.memoryUsage().rss
    let peak = baseline
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss)
    }, 20)
    const t0 = performance.now()
    let settled
    try {
      settled = await Promise.allSettled(Array.from({ length: n }, (_, i) => gearbox.execute(waiting(i))))
    } finally {
      clearInterval(sampler)
    }
    const seconds = (performance.now() - t0) / 1000
    const failed = settled.filter((s) => s.status === 'rejected').length
    const stored = await client.hlen('bench:parked')
    if (failed > 0 || stored !== n + 1) throw new Error(`bench: ${failed} parked executions failed, ${stored - 1} of ${n} stored`)
    const held = seconds < (n * DELAY_SECONDS) / 2
    return [
      {
        title: `Parked executions: ${n} executions awaiting a ${DELAY_SECONDS} s future at once, 2 workers`,
        rows: [
          { name: `time until all ${n} settled (held workers would need ${((n * DELAY_SECONDS) / 2).toFixed(0)} s)`, value: seconds, unit: 's' },
          { name: 'host RSS added at the peak (parked pages, queued jobs, handlers)', value: (peak - baseline) / 1048576, unit: 'MiB' },
          { name: 'host RSS added per parked execution', value: (peak - baseline) / 1024 / n, unit: 'KiB' },
        ],
        ratios: [{ name: 'settled faster than with held workers', value: (n * DELAY_SECONDS) / 2 / seconds, target: '> 1', met: held }],
      },
    ]
  } finally {
    client.disconnect()
    await gearbox.close()
    await server.stop()
  }
}

/** `node dist/scripts/bench/parked.js [--quick]`: prints the section. */
if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchParked({ quick: process.argv.includes('--quick') }), null, 2))
}
