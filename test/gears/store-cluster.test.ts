/**
 * Persistence on the shared 3-master cluster: the store on the one slot of `{gearbox}`, a restart
 * restores a KeysReader registration that then hears every master, and a trigger with its stored id.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { SESSIONS_KEY } from '../../host/gears/store.js'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { keySlot } from '../../host/cluster/slots.js'
import { sharedCluster, type TestCluster } from '../helpers/redis.js'
import { poller } from '../helpers/until.js'

const ctx: { cluster?: TestCluster; client?: Cluster; boxes: Gearbox[] } = { boxes: [] }
const quiet = { log: () => {} }

const until = poller(15_000, 25)

async function create(): Promise<Gearbox> {
  const box = await Gearbox.create({ redis: { cluster: [...ctx.cluster!.urls] }, workers: 1, logger: quiet })
  ctx.boxes.push(box)
  return box
}

test.before(async () => {
  ctx.cluster = await sharedCluster()
  await ctx.cluster.flushAll()
  ctx.client = new Cluster(ctx.cluster.nodes.map((n) => ({ host: n.host, port: n.port })))
})

test.after(async () => {
  for (const box of ctx.boxes) await box.close()
  ctx.client?.disconnect()
  await ctx.cluster?.flushAll()
  for (const n of ctx.cluster?.nodes ?? []) await rawCommand(n.port, ['CONFIG', 'SET', 'notify-keyspace-events', ''])
})

test('a restart on the cluster restores the sessions; the restored KeysReader registration hears every master', async () => {
  const client = ctx.client!
  const first = await create()
  assert.is(
    await first.execute(
      `execute('INCR', 'toplevel{t}')
       GB('CommandReader').map((r) => 'hello ' + r[1]).register({ trigger: 'hello' })
       GB().foreach((r) => execute('SET', 'seen:{' + r.key + '}', r.value)).register('cs:*', { eventTypes: ['set'] })`,
      { id: 'clustered' },
    ),
    'OK',
  )
  const ids = first.registrations.list().map((r) => r.id)
  // The whole store is on the slot of {gearbox}.
  assert.ok((await client.hget(SESSIONS_KEY, 'clustered')) !== null)
  assert.is(keySlot(SESSIONS_KEY), keySlot('{gearbox}'))
  await first.close()

  const second = await create()
  assert.equal(second.registrations.list().map((r) => r.id), ids)
  assert.equal(await second.trigger('hello', 'cluster'), ['hello cluster'])
  assert.is(await client.get('toplevel{t}'), '1')
  // Keys on every master (their slots are spread: 40 keys land on all three).
  const keys = Array.from({ length: 40 }, (_, i) => `cs:${i}`)
  const masters = new Set(keys.map((k) => Math.floor(keySlot(k) / 5462)))
  assert.is(masters.size, 3)
  for (const key of keys) await client.set(key, `v-${key}`)
  await until('every event processed', async () => {
    for (const key of keys) if ((await client.get(`seen:{${key}}`)) !== `v-${key}`) return false
    return true
  })
  // Leases: one per master, all held by this host.
  // (KEYS answers for one node: ask every master; all leases are on the slot of {gearbox}.)
  const leases: string[] = []
  for (const node of client.nodes('master')) leases.push(...(await node.keys('{gearbox}:lease:*')))
  assert.is(leases.length, 3)
  for (const lease of leases) assert.is(await client.get(lease), second.hostId)
})

test.run()
