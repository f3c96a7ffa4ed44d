/**
 * gearbox serve in front of the real 3-master cluster: one endpoint for the whole cluster (keyed
 * commands routed by slot, ASK followed inside, CROSSSLOT for cross-slot multi-key commands),
 * RG.JSEXECUTE over every shard, RG.INFOCLUSTER's shape, BLPOP pinned to its key's master.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { createRedisBackend, hashtagForSlot, keySlot, shardOwningSlot } from '../../host/redis/index.js'
import type { RedisBackend, ShardInfo } from '../../host/redis/types.js'
import { sharedCluster, type TestCluster } from '../helpers/redis.js'
import { redisCli, serveGearbox, type Served } from './support.js'

const test = suite('server: gearbox serve (cluster)')
let cluster: TestCluster
let served: Served
let backend: RedisBackend
let shards: readonly ShardInfo[]
const clients: Redis[] = []

function client(): Redis {
  const c = new Redis({ host: '127.0.0.1', port: served.port, maxRetriesPerRequest: 0 })
  clients.push(c)
  return c
}

test.before(async () => {
  cluster = await sharedCluster()
  backend = createRedisBackend({ cluster: [...cluster.urls] })
  shards = await backend.shards()
  served = await serveGearbox({ cluster: [...cluster.urls] })
})

test.after(async () => {
  for (const c of clients) c.disconnect()
  await served.close()
  await backend.close()
  await cluster.stop()
})

test('keyed commands go to the master owning their slot', async () => {
  const c = client()
  const keys = Array.from({ length: 60 }, (_, i) => `srv:route:${i}`)
  for (const key of keys) assert.is(await c.set(key, key.toUpperCase()), 'OK')
  const owners = new Set<string>()
  for (const key of keys) {
    const owner = shardOwningSlot(shards, keySlot(key))!
    owners.add(owner.id)
    assert.is(await rawCommand(owner.port, ['GET', key]), key.toUpperCase(), `${key} is on its master`)
    assert.is(await c.get(key), key.toUpperCase())
  }
  assert.is(owners.size, 3, 'the keys span every master')
  await c.del(...keys.slice(0, 1))
})

test('cross-slot multi-key commands get CROSSSLOT; same-slot ones run', async () => {
  const c = client()
  const [a, b] = ['srv:x:1', 'srv:x:2']
  assert.not.equal(keySlot(a), keySlot(b))
  const error = await c.mset(a, '1', b, '2').then(() => 'no error', (e: Error) => e.message)
  assert.is(error, "CROSSSLOT Keys in request don't hash to the same slot")
  assert.is(await c.mset('{srv}a', '1', '{srv}b', '2'), 'OK')
  assert.equal(await c.mget('{srv}a', '{srv}b'), ['1', '2'])
  assert.match(await redisCli(served.port, ['DEL', a, b]), /CROSSSLOT/)
})

test('ASK: a slot being migrated is followed inside the server', async () => {
  const [source, target] = [shards[1]!, shards[2]!]
  const slot = source.minSlot + 211
  const key = `{${hashtagForSlot(slot)}}served`
  const c = client()
  try {
    assert.is(await rawCommand(target.port, ['CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', source.id]), '+OK')
    assert.is(await rawCommand(source.port, ['CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', target.id]), '+OK')
    assert.is(await c.set(key, 'asked'), 'OK')
    assert.is(await rawCommand(target.port, ['CLUSTER', 'COUNTKEYSINSLOT', String(slot)]), ':1', 'written on the importing master')
    assert.is(await c.get(key), 'asked')
    assert.is(await c.del(key), 1)
  } finally {
    for (const shard of [source, target]) await rawCommand(shard.port, ['CLUSTER', 'SETSLOT', String(slot), 'STABLE'])
  }
})

test('MOVED: a slot moved after the server read the topology is followed, and the map read again', async () => {
  const [source, target] = [shards[1]!, shards[2]!]
  const slot = source.minSlot + 303
  const key = `{${hashtagForSlot(slot)}}moved-served`
  const c = client()
  assert.is(await c.set(key, 'before'), 'OK')
  assert.is(await c.del(key), 1)
  const moveTo = async (owner: ShardInfo): Promise<void> => {
    for (const shard of shards) assert.is(await rawCommand(shard.port, ['CLUSTER', 'SETSLOT', String(slot), 'NODE', owner.id]), '+OK')
  }
  try {
    await moveTo(target)
    // The server routes to the source, which answers MOVED: followed inside, the client sees OK.
    assert.is(await c.set(key, 'moved'), 'OK')
    assert.is(await rawCommand(target.port, ['CLUSTER', 'COUNTKEYSINSLOT', String(slot)]), ':1')
    assert.is(await c.get(key), 'moved')
    assert.is(await c.del(key), 1)
  } finally {
    await moveTo(source)
  }
  assert.is(await c.set(key, 'home'), 'OK')
  assert.is(await rawCommand(source.port, ['CLUSTER', 'COUNTKEYSINSLOT', String(slot)]), ':1')
  assert.is(await c.del(key), 1)
})

test('RG.JSEXECUTE reads every shard; RG.INFOCLUSTER lists the masters', async () => {
  const c = client()
  const keys = Array.from({ length: 30 }, (_, i) => `srv:batch:${i}`)
  for (const key of keys) await c.set(key, '1')
  const reply = (await c.call('RG.JSEXECUTE', "GB().map((r) => r.key).run('srv:batch:*')")) as [string[], string[]]
  assert.equal(reply[0].sort(), [...keys].sort())
  assert.equal(reply[1], [])
  const info = (await c.call('RG.INFOCLUSTER')) as [string, string, unknown[][]]
  assert.is(info[0], 'MyId')
  assert.is(info[2].length, 3)
  for (const entry of info[2]) {
    assert.equal([entry[0], entry[2], entry[4], entry[10], entry[12]], ['id', 'ip', 'port', 'minHslot', 'maxHslot'])
    assert.ok(shards.some((s) => s.id === entry[1] && s.port === entry[5]))
  }
  await c.del(...keys.filter((k) => keySlot(k) === keySlot(keys[0]!)))
})

test("BLPOP is pinned to its key's master and blocks only its client", async () => {
  const blocked = client()
  const other = client()
  const popped = blocked.blpop('srv:queue', 10)
  assert.is(await other.ping(), 'PONG')
  await other.rpush('srv:queue', 'job')
  assert.equal(await popped, ['srv:queue', 'job'])
})

test('a pinned client reaches every master: commands outside a transaction go to their key\'s master', async () => {
  const c = client()
  const other = client()
  const keys = shards.map((s) => `{${hashtagForSlot(s.slots[0]![0])}}pinned`)
  // BLPOP pins c's connection to the first key's master.
  const popped = c.blpop(keys[0]!, 10)
  await other.rpush(keys[0]!, 'job')
  assert.equal(await popped, [keys[0], 'job'])
  for (const key of keys) assert.is(await c.set(key, key), 'OK')
  for (const key of keys) assert.is(await c.get(key), key)
})

test('MULTI in a cluster: the transaction runs on the master of its keys, an empty one answers []', async () => {
  const c = client()
  for (const s of shards) {
    const tag = `{${hashtagForSlot(s.slots[0]![0])}}`
    const res = await c.multi().set(`${tag}tx:a`, '1').incr(`${tag}tx:b`).get(`${tag}tx:a`).exec()
    assert.equal(res, [[null, 'OK'], [null, 1], [null, '1']])
    await c.del(`${tag}tx:a`, `${tag}tx:b`)
  }
  assert.equal(await c.multi().exec(), [])
  // WATCH then a change by another client: EXEC answers the null array.
  const tag = `{${hashtagForSlot(shards[shards.length - 1]!.slots[0]![0])}}`
  await c.watch(`${tag}w`)
  await client().set(`${tag}w`, 'changed')
  assert.is(await c.multi().set(`${tag}w`, 'mine').exec(), null)
})

test.run()
