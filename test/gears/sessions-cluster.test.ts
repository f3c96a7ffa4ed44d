/** Sessions on the shared 3-master cluster: an upgrade of a KeysReader registration, then its events on every master. */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { sharedCluster, type TestCluster } from '../helpers/redis.js'
import { poller } from '../helpers/until.js'

const ctx: { cluster?: TestCluster; client?: Cluster; gearbox?: Gearbox } = {}

const until = poller(15_000, 25)

test.before(async () => {
  ctx.cluster = await sharedCluster()
  await ctx.cluster.flushAll()
  ctx.client = new Cluster(ctx.cluster.nodes.map((n) => ({ host: n.host, port: n.port })))
  ctx.gearbox = await Gearbox.create({ redis: { cluster: [...ctx.cluster.urls] }, workers: 2, logger: { log: () => {} } })
})

test.after(async () => {
  await ctx.gearbox?.close()
  ctx.client?.disconnect()
  await ctx.cluster?.flushAll()
  for (const n of ctx.cluster?.nodes ?? []) await rawCommand(n.port, ['CONFIG', 'SET', 'notify-keyspace-events', ''])
})

test('upgrade on the cluster: events on every master go to the new version; sessions and registered executions listed', async () => {
  const gearbox = ctx.gearbox!
  const client = ctx.client!
  const version = (v: string): string => `GB().foreach((r) => execute('SET', 'ver:{' + r.key + '}', '${v}')).register('up:*', { eventTypes: ['set'] })`
  assert.is(await gearbox.execute(version('v1'), { id: 'cluster-session', description: 'on three masters' }), 'OK')
  const keys = Array.from({ length: 30 }, (_, i) => `up:${i}`)
  for (const key of keys) await client.set(key, '1')
  await until('v1 processed every key', async () => {
    for (const key of keys) if ((await client.get(`ver:{${key}}`)) !== 'v1') return false
    return true
  })
  assert.is(await gearbox.execute(version('v2'), { id: 'cluster-session', upgrade: true }), 'OK')
  for (const key of keys) await client.set(key, '2')
  await until('v2 processed every key', async () => {
    for (const key of keys) if ((await client.get(`ver:{${key}}`)) !== 'v2') return false
    return true
  })
  const [session] = gearbox.sessions.list()
  assert.is(session?.ID, 'cluster-session')
  assert.is(session?.sessionDescription, 'on three masters')
  const regId = gearbox.registrations.list()[0]!.id
  assert.equal(session?.registrations, [regId])
  // The new version's executions, each on its key's shard, listed as registered (at most 100 kept).
  await until('every event counted', () => gearbox.registrations.list()[0]?.RegistrationData.numSuccess === keys.length)
  const mine = gearbox.executions.list().filter((e) => e.registered && gearbox.executions.get(e.id).registration === regId)
  // Events queued while a lane ran are one execution's records (key-lanes.ts): up to one execution per event.
  assert.ok(mine.length >= 3 && mine.length <= keys.length, `executions: ${mine.length}`)
  const shardIds = new Set(mine.map((e) => gearbox.executions.get(e.id).shardId))
  assert.is(shardIds.size, 3)
})

test.run()
