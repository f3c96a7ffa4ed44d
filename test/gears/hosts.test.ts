/** Two gearbox host processes on one standalone redis-server (see hosts-support.ts). */
import { test } from 'uvu'
import { Redis } from 'ioredis'
import { RESERVED_PREFIX } from '../../host/redis/reserved-keys.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { severalHosts } from './hosts-support.js'

const ctx: { redis?: TestRedis; client?: Redis } = {}

test.before(async () => {
  ctx.redis = await startRedis()
  ctx.client = new Redis(ctx.redis.port, '127.0.0.1')
})

test.after(async () => {
  ctx.client?.disconnect()
  await ctx.redis?.stop()
})

test('two hosts: the registration reaches both, one processes each event, the survivor of a SIGKILL takes over', async () => {
  const client = ctx.client!
  await severalHosts({
    target: { redis: ctx.redis!.url },
    shards: 1,
    get: (key) => client.get(key),
    set: async (key, value) => {
      await client.set(key, value)
    },
    leases: async () => {
      const keys = await client.keys(`${RESERVED_PREFIX}lease:*`)
      const values = keys.length === 0 ? [] : await client.mget(...keys)
      return new Map(keys.flatMap((k, i) => (values[i] == null ? [] : [[k, values[i]!] as [string, string]])))
    },
  })
})

test.run()
