/**
 * Registrations on the shared 3-master cluster: KeysReader events of every master, each execution
 * on the shard of its key; triggerOnKey on the key's shard; async_local serves this host's shard only.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { createRedisBackend, hashtagForSlot, keySlot, shardOwningSlot, type RedisBackend } from '../../host/redis/index.js'
import { sharedCluster, type TestCluster } from '../helpers/redis.js'
import { poller } from '../helpers/until.js'

const ctx: { cluster?: TestCluster; gearbox?: Gearbox; client?: Cluster; backend?: RedisBackend } = {}
const gearbox = (): Gearbox => ctx.gearbox!
const client = (): Cluster => ctx.client!

const until = poller(15_000, 25)

/** The hashtag() string of the shard owning `key` (the lowest slot it owns). */
async function shardTag(key: string): Promise<string> {
  const owner = shardOwningSlot(await ctx.backend!.shards(), keySlot(key))
  assert.ok(owner, `an owner for ${key}`)
  return hashtagForSlot(owner!.minSlot)
}

const TAGS = Array.from({ length: 12 }, (_, i) => `t${i}`)

const t = suite('registrations (cluster)')

t.before(async () => {
  ctx.cluster = await sharedCluster()
  await ctx.cluster.flushAll()
  ctx.gearbox = await Gearbox.create({ redis: { cluster: [...ctx.cluster.urls] }, workers: 2 })
  ctx.client = new Cluster(ctx.cluster.nodes.map((n) => ({ host: n.host, port: n.port })))
  ctx.backend = createRedisBackend({ cluster: [...ctx.cluster.urls] })
})

t.after(async () => {
  // Registrations are stored in the cluster: leave none for the next files' Gearboxes to restore.
  for (const r of ctx.gearbox?.registrations.list() ?? []) await ctx.gearbox!.registrations.unregister(r.id)
  await ctx.gearbox?.close()
  ctx.client?.disconnect()
  await ctx.backend?.close()
  // The shared cluster goes back to no keyspace notifications for the other test files.
  for (const n of ctx.cluster?.nodes ?? []) await rawCommand(n.port, ['CONFIG', 'SET', 'notify-keyspace-events', ''])
})

t.before.each(async () => {
  await Promise.all(gearbox().registrations.list().map((r) => gearbox().registrations.unregister(r.id)))
})

t("every master's events; each execution runs on its key's shard", async () => {
  const shards = await ctx.backend!.shards()
  assert.is(shards.length, 3)
  // The tags land on every master (checked, so the test covers them all).
  const owners = new Set(TAGS.map((tag) => shardOwningSlot(shards, keySlot(`{${tag}}`))?.id))
  assert.is(owners.size, 3)
  const reply = await gearbox().execute(`
    GB().foreach((r) => {
      const tag = r.key.slice(r.key.indexOf('{'))
      execute('SET', tag + ':seen', r.value)
      execute('SET', tag + ':shard', hashtag())
    }).register('cl:*')
  `)
  assert.is(reply, 'OK')
  for (const tag of TAGS) await client().set(`cl:{${tag}}`, `v-${tag}`)
  await until('every key seen', async () => {
    for (const tag of TAGS) if ((await client().get(`{${tag}}:shard`)) === null) return false
    return true
  })
  for (const tag of TAGS) {
    assert.is(await client().get(`{${tag}}:seen`), `v-${tag}`)
    assert.is(await client().get(`{${tag}}:shard`), await shardTag(`{${tag}}`), `the execution of {${tag}} ran on its shard`)
  }
  // The last write lands before its execution is counted finished: wait for the counter, bounded.
  await until('every execution counted', () => gearbox().registrations.list()[0]?.RegistrationData.numSuccess === TAGS.length)
  const [r] = gearbox().registrations.list()
  assert.is(r!.RegistrationData.numSuccess, TAGS.length)
  assert.is(r!.RegistrationData.numFailures, 0)
})

t('triggerOnKey runs on the key shard; trigger on the current one', async () => {
  await gearbox().execute(`GB('CommandReader').map(() => hashtag()).register({ trigger: 'where' })`)
  for (const tag of TAGS.slice(0, 6)) {
    assert.equal(await gearbox().triggerOnKey('where', `{${tag}}`), [await shardTag(`{${tag}}`)])
  }
  const current = await ctx.backend!.currentShard()
  assert.equal(await gearbox().trigger('where'), [hashtagForSlot(current.minSlot)])
})

t('async_local: only the events of this host shard', async () => {
  await gearbox().execute(`GB().foreach((r) => execute('INCR', '{' + hashtag() + '}:local')).register('loc:*', { mode: 'async_local' })`)
  // A marker registration on every shard tells when all events were delivered.
  await gearbox().execute(`GB().foreach((r) => execute('INCR', r.key.slice(r.key.indexOf('{')) + ':all')).register('loc:*')`)
  const current = await ctx.backend!.currentShard()
  let localCount = 0
  for (const tag of TAGS) {
    await client().set(`loc:{${tag}}`, '1')
    if ((await shardTag(`{${tag}}`)) === hashtagForSlot(current.minSlot)) localCount++
  }
  await until('every event', async () => {
    for (const tag of TAGS) if ((await client().get(`{${tag}}:all`)) === null) return false
    return true
  })
  assert.ok(localCount > 0 && localCount < TAGS.length, 'the keys span this shard and others')
  await until('the local events', async () => (await client().get(`{${hashtagForSlot(current.minSlot)}}:local`)) === String(localCount))
  const local = gearbox().registrations.list().find((r) => r.RegistrationData.mode === 'async_local')!
  assert.is(local.RegistrationData.numTriggered, localCount)
})

t.run()
