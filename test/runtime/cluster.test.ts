/** The runtime against a real 3-master Redis Cluster: routing, hashtag(), the current shard, atomic. */
import { Cluster, Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { scriptJob } from '../../host/gears/session.js'
import { nodePlatform } from '../../host/platform/node.js'
import { createRedisBackend } from '../../host/redis/index.js'
import type { RedisBackend, ShardInfo } from '../../host/redis/types.js'
import { createHostHandler } from '../../host/runtime/handler.js'
import { DEFAULT_LIMITS } from '../../host/sandbox/limits.js'
import { SandboxPool } from '../../host/sandbox/pool.js'
import { sharedCluster, type TestCluster } from '../helpers/redis.js'
import { TestBox } from './guest-probe.js'

const ctx: { cluster?: TestCluster; box?: TestBox; client?: Cluster; pool?: SandboxPool; backend?: RedisBackend } = {}
const box = (): TestBox => ctx.box!
const client = (): Cluster => ctx.client!

const t = suite('cluster')

t.before(async () => {
  ctx.cluster = await sharedCluster()
  await ctx.cluster.flushAll()
  ctx.box = await TestBox.create({ redis: { cluster: ctx.cluster.urls }, workers: 2 })
  ctx.client = new Cluster(ctx.cluster.nodes.map((n) => ({ host: n.host, port: n.port })), { redisOptions: { protocol: 2 } })
  ctx.pool = await SandboxPool.create({ platform: nodePlatform(), workers: 1 })
  ctx.backend = createRedisBackend({ cluster: ctx.cluster.urls })
})

t.after(async () => {
  await ctx.box?.close()
  await ctx.pool?.close()
  await ctx.backend?.close()
  ctx.client?.disconnect()
})

/** The master (port) owning `slot`, from CLUSTER SLOTS as an outside client sees it. */
async function ownerPort(slot: number): Promise<number> {
  const slots = (await client().call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][]
  const range = slots.find(([from, to]) => slot >= from && slot <= to)
  if (range === undefined) throw new Error(`no owner for slot ${slot}`)
  return range[2][1]
}

async function keySlot(key: string): Promise<number> {
  return (await client().call('CLUSTER', 'KEYSLOT', key)) as number
}

/** Runs `source` on `shard` (as a per-shard execution would) and returns the entry's result. */
async function runOnShard(shard: ShardInfo, source: string, entry: string): Promise<string> {
  const handler = createHostHandler({ backend: ctx.backend!, shard })
  try {
    return await ctx.pool!.start({ ...scriptJob(source, DEFAULT_LIMITS), entry: { entry: 'eval', args: [`Promise.resolve(__gearbox_main()).then(() => ${entry})`] } }, handler).result
  } finally {
    await handler.dispose()
  }
}

t('keyed commands from a guest route to the master owning the key', async () => {
  const out = await box().value(`
    const keys = Array.from({ length: 30 }, (_, i) => 'route:' + i)
    for (const key of keys) execute('SET', key, key.toUpperCase())
    return keys.map((key) => execute('GET', key))
  `)
  const keys = Array.from({ length: 30 }, (_, i) => `route:${i}`)
  assert.equal(out, keys.map((k) => k.toUpperCase()))
  for (const key of keys) assert.is(await client().get(key), key.toUpperCase())
  const ports = new Set(await Promise.all(keys.map(async (k) => ownerPort(await keySlot(k)))))
  assert.is(ports.size, 3, 'the keys span all three masters')
})

t('hashtag() on the default shard: the shard owning slot 0, so 06S', async () => {
  const tag = await box().value(`return hashtag()`)
  assert.is(tag, '06S')
  assert.is(await keySlot(`{${tag}}x`), 0)
})

t('hashtag() and keyless commands on every shard: a {hashtag()} key lands on that shard', async () => {
  const shards = await ctx.backend!.shards()
  assert.is(shards.length, 3)
  for (const shard of shards) {
    await ctx.cluster!.flushAll()
    const result = await runOnShard(
      shard,
      `globalThis.tag = hashtag(); execute('SET', '{' + tag + '}mine', 'here')`,
      // DBSIZE has no key: it goes to the execution's shard, which holds exactly that one key.
      `JSON.stringify([tag, execute('DBSIZE')])`,
    )
    const [tag, dbsize] = JSON.parse(result) as [string, number]
    const slot = await keySlot(`{${tag}}mine`)
    assert.is(slot, shard.minSlot)
    assert.is(await ownerPort(slot), shard.port)
    assert.is(dbsize, 1)
    const node = new Redis({ host: shard.host, port: shard.port, protocol: 2 })
    try {
      assert.is(await node.dbsize(), 1)
    } finally {
      node.disconnect()
    }
  }
})

t('atomic: keys of one slot work; keys of two slots are refused', async () => {
  await client().set('{acct}balance', '5')
  const out = await box().value(`
    return atomic(() => {
      const v = Number(execute('GET', '{acct}balance'))
      execute('SET', '{acct}balance', v * 2)
      execute('SET', '{acct}audit', 'doubled')
      return v
    })
  `)
  assert.is(out, 5)
  assert.equal(await client().mget('{acct}balance', '{acct}audit'), ['10', 'doubled'])

  const e = await box().thrown(`atomic(() => { execute('GET', 'a'); execute('SET', 'b', '1') })`)
  assert.is(
    e.message,
    `atomic block keys must hash to one slot in a cluster: key 'b' is in slot ${await keySlot('b')}, the block already uses slot ${await keySlot('a')} (give its keys a common {hashtag})`,
  )
  assert.is(await client().exists('b'), 0)
})

t('no lost update on a key outside slot 0 (dedicated connection to its master)', async () => {
  const key = '{c7}counter'
  assert.is.not(await ownerPort(await keySlot(key)), await ownerPort(0))
  await client().set(key, '0')
  const contender = await TestBox.create({ redis: { cluster: ctx.cluster!.urls }, workers: 2, atomicRetries: 10_000 })
  try {
    const script = `for (let i = 0; i < 20; i++) atomic(() => { execute('SET', '${key}', Number(execute('GET', '${key}')) + 1) })`
    await Promise.all([contender.gearbox.execute(script), contender.gearbox.execute(script), contender.gearbox.execute(script)])
    assert.is(await client().get(key), '60')
  } finally {
    await contender.close()
  }
})

t.run()
