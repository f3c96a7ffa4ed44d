/**
 * Just the 100-sequential-GETs section of `npm run bench` (gearbox vs raw ioredis), for quick
 * before/after comparisons: `node dist/scripts/bench/hundred-gets.js [rounds]`.
 */
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/index.js'
import { startRedisServer } from '../../host/platform/redis-server.js'
import { rawGets } from './anchors.js'
import { fmt, summarize, timeEach } from './stats.js'

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 4)
  const server = await startRedisServer()
  const redis = new Redis(server.url)
  await redis.set('bench:k', 'value')
  const gearbox = await Gearbox.create({ redis: server.url, persist: false, workers: 2 })
  try {
    const script = "for (let i = 0; i < 100; i++) execute('GET', 'bench:k')"
    const raw = rawGets(redis, 'bench:k', 100)
    const g: number[] = []
    const r: number[] = []
    for (let round = 0; round < rounds; round++) {
      g.push(...(await timeEach(50, 5, async () => void (await gearbox.execute(script)))))
      r.push(...(await timeEach(50, 5, raw)))
    }
    const gs = summarize(g)
    const rs = summarize(r)
    console.log(`gearbox median ${fmt(gs.median)} ms (p10 ${fmt(gs.p10)}), raw ioredis median ${fmt(rs.median)} ms (p10 ${fmt(rs.p10)})`)
    console.log(`ratio median ${fmt(gs.median / rs.median, 2)}, p10 ${fmt(gs.p10 / rs.p10, 2)}`)
  } finally {
    await gearbox.close()
    redis.disconnect()
    await server.stop()
  }
}

await main()
