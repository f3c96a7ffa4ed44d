/** Two gearbox host processes on the shared 3-master cluster: a lease per master (see hosts-support.ts). */
import { test } from 'uvu'
import { Cluster } from 'ioredis'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { RESERVED_PREFIX } from '../../host/redis/reserved-keys.js'
import { sharedCluster, type TestCluster } from '../helpers/redis.js'
import { severalHosts } from './hosts-support.js'

const ctx: { cluster?: TestCluster; client?: Cluster } = {}

test.before(async () => {
  ctx.cluster = await sharedCluster()
  await ctx.cluster.flushAll()
  ctx.client = new Cluster(ctx.cluster.nodes.map((n) => ({ host: n.host, port: n.port })))
})

test.after(async () => {
  ctx.client?.disconnect()
  // Leave the shared cluster as the other files expect it: no stored sessions, no notifications.
  await ctx.cluster?.flushAll()
  for (const n of ctx.cluster?.nodes ?? []) await rawCommand(n.port, ['CONFIG', 'SET', 'notify-keyspace-events', ''])
})

test('two hosts on the cluster: one lease per master, each event processed once, the survivor takes over every lease', async () => {
  const client = ctx.client!
  await severalHosts({
    target: { cluster: [...ctx.cluster!.urls] },
    shards: 3,
    get: (key) => client.get(key),
    set: async (key, value) => {
      await client.set(key, value)
    },
    leases: async () => {
      // Every lease key is on the one slot of {gearbox}: one master holds them all.
      const out = new Map<string, string>()
      for (const node of client.nodes('master')) {
        const keys = await node.keys(`${RESERVED_PREFIX}lease:*`)
        if (keys.length === 0) continue
        const values = await node.mget(...keys)
        keys.forEach((k, i) => {
          const v = values[i]
          if (v != null) out.set(k, v)
        })
      }
      return out
    },
  })
})

test.run()
