import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster } from 'ioredis'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { parseClusterSlots } from '../../host/cluster/topology.js'
import { createRedisBackend, hashtagForSlot, keySlot, shardOwningSlot } from '../../host/redis/index.js'
import { RedisReplyError } from '../../host/errors.js'
import type { RedisBackend, RedisReply, ShardInfo } from '../../host/redis/types.js'
import { sharedCluster, type TestCluster } from '../helpers/redis.js'
import { rejection } from '../helpers/rejection.js'

const test = suite('redis: cluster backend')
let cluster: TestCluster
let backend: RedisBackend
let shards: readonly ShardInfo[]

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (v: RedisReply | RedisReplyError): string => {
  if (!(v instanceof Uint8Array)) throw new Error(`expected bytes, got ${String(v)}`)
  return new TextDecoder().decode(v)
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** A key living on `shard` (its lowest slot's hashtag). */
const keyOn = (shard: ShardInfo, name: string): string => `{${hashtagForSlot(shard.minSlot)}}${name}`

test.before(async () => {
  cluster = await sharedCluster()
  await cluster.flushAll()
  backend = createRedisBackend({ cluster: [...cluster.urls] }, { connectTimeoutMs: 3000 })
  shards = await backend.shards()
})

test.after(async () => {
  await backend.close()
  await cluster.stop()
})

test('shards(): the three masters with their node ids and slot ranges, ordered by lowest slot', async () => {
  assert.is(backend.mode, 'cluster')
  assert.equal(shards.map((s) => s.slots), [[[0, 5460]], [[5461, 10922]], [[10923, 16383]]])
  assert.equal(shards.map((s) => s.minSlot), [0, 5461, 10923])
  for (const shard of shards) {
    assert.is(shard.id, await rawCommand(shard.port, ['CLUSTER', 'MYID']), `node id of :${shard.port}`)
    assert.is(shard.host, '127.0.0.1')
    assert.ok(cluster.nodes.some((n) => n.port === shard.port))
  }
  const viaSlots = parseClusterSlots(await backend.call(['CLUSTER', 'SLOTS'], { internal: true }))
  assert.equal(viaSlots, [...shards], 'CLUSTER SLOTS tells the same story')
  assert.equal(await backend.currentShard(), shards[0], 'current shard owns slot 0')
})

test('keyed commands land on the master owning the slot (asked directly)', async () => {
  const keys: (string | Uint8Array)[] = []
  for (let i = 0; i < 40; i++) keys.push(`user:${i}`)
  keys.push(new Uint8Array([0xff, 0x01, 0x02]), 'ключ')
  for (const [i, key] of keys.entries()) assert.is(await backend.call(['SET', key, `v${i}`]), 'OK')
  const perShard = new Map<string, number>()
  for (const [i, key] of keys.entries()) {
    const owner = shardOwningSlot(shards, keySlot(key))!
    perShard.set(owner.id, (perShard.get(owner.id) ?? 0) + 1)
    if (typeof key === 'string') assert.is(await rawCommand(owner.port, ['GET', key]), `v${i}`, key)
    assert.equal(await backend.call(['GET', key]), bytes(`v${i}`))
  }
  assert.is(perShard.size, 3, 'the keys spread over all masters')
})

test('keyless commands go to the current shard, or to the shard asked for', async () => {
  assert.is(text(await backend.call(['CLUSTER', 'MYID'], { internal: true })), shards[0]!.id)
  for (const shard of shards) {
    assert.is(text(await backend.call(['CLUSTER', 'MYID'], { shard: shard.id, internal: true })), shard.id)
    await backend.call(['SET', keyOn(shard, 'count-me'), '1'])
  }
  for (const shard of shards) {
    const dbsize = await backend.call(['DBSIZE'], { shard: shard.id })
    assert.is(dbsize, Number(await rawCommand(shard.port, ['DBSIZE']).then((r) => r.slice(1))))
  }
  // `shard` does not move keyed commands: they still route by slot.
  const other = shards[2]!
  assert.is(await backend.call(['SET', keyOn(other, 'routed'), 'x'], { shard: shards[0]!.id }), 'OK')
  assert.is(await rawCommand(other.port, ['GET', keyOn(other, 'routed')]), 'x')
  assert.is((await rejection(backend.call(['PING'], { shard: 'f'.repeat(40) }))).code, 'ERR_GEARBOX_INVALID_ARGUMENT')
})

test("cross-slot commands reach Redis and fail with its CROSSSLOT text", async () => {
  assert.is.not(keySlot('a'), keySlot('b'))
  for (const args of [['MSET', 'a', '1', 'b', '2'], ['MGET', 'a', 'b'], ['DEL', 'a', 'b'], ['SUNIONSTORE', 'a', 'b']]) {
    const err = await rejection(backend.call(args))
    assert.is(err.code, 'ERR_GEARBOX_REDIS_ERROR', args.join(' '))
    assert.is(err.message, "CROSSSLOT Keys in request don't hash to the same slot")
  }
  assert.is(await backend.call(['MSET', '{t}a', '1', '{t}b', '2']), 'OK')
  assert.equal(await backend.call(['MGET', '{t}a', '{t}b']), [bytes('1'), bytes('2')])
})

test('a key {hashtagForSlot(shard.minSlot)}x lands on that shard', async () => {
  for (const shard of shards) {
    const key = keyOn(shard, 'x')
    assert.is(keySlot(key), shard.minSlot)
    assert.is(await backend.call(['SET', key, shard.id]), 'OK')
    assert.is(await rawCommand(shard.port, ['GET', key]), shard.id)
  }
})

test('Redis replies keep their kinds through the cluster path, blocking forms included', async () => {
  const shard = shards[1]!
  const big = keyOn(shard, 'big')
  assert.is(await backend.call(['SET', big, '9007199254740993']), 'OK')
  assert.is(await backend.call(['INCRBY', big, '1']), 9007199254740994n)
  assert.is(await backend.call(['TYPE', big]), 'string')
  assert.is(await backend.call(['BLPOP', keyOn(shard, 'nolist'), '5']), null)
  await backend.call(['RPUSH', keyOn(shard, 'list'), 'a'])
  assert.equal(await backend.call(['BRPOP', keyOn(shard, 'list'), '0']), [bytes(keyOn(shard, 'list')), bytes('a')])
  const wrong = await rejection(backend.call(['LPUSH', big, 'x']))
  assert.is(wrong.message, 'WRONGTYPE Operation against a key holding the wrong kind of value')
  assert.is((await rejection(backend.call(['FLUSHALL']))).code, 'ERR_GEARBOX_COMMAND_DENIED')
})

test('pipeline(shard): keys of that master answer, others answer MOVED in place', async () => {
  const [s0, s1] = [shards[0]!, shards[1]!]
  await backend.call(['SET', keyOn(s0, 'p1'), 'one'])
  await backend.call(['SET', keyOn(s0, 'p2'), 'two'])
  const replies = await backend.pipeline(s0.id, [['GET', keyOn(s0, 'p1')], ['GET', keyOn(s0, 'p2')], ['GET', keyOn(s1, 'p1')], ['CLUSTER', 'MYID']], { internal: true })
  assert.equal(replies.slice(0, 2), [bytes('one'), bytes('two')])
  assert.instance(replies[2], RedisReplyError)
  assert.match((replies[2] as RedisReplyError).message, new RegExp(`^MOVED ${s1.minSlot} 127\\.0\\.0\\.1:${s1.port}$`))
  assert.is(text(replies[3]!), s0.id)
  // Keys of one master in different slots are fine (no client-side same-slot rule).
  const spread = ['user:1', 'user:2', 'user:3', 'user:4', 'user:5', 'user:6'].filter((k) => shardOwningSlot(shards, keySlot(k))?.id === s0.id)
  const values = await backend.pipeline(s0.id, spread.map((k) => ['EXISTS', k]))
  assert.ok(values.length > 0 && values.every((v) => v === 1))
})

test('scanShard sees exactly the keys of its master', async () => {
  for (const shard of shards) {
    const keys = new Map<string, Uint8Array>()
    let cursor = '0'
    let rounds = 0
    do {
      const page = await backend.scanShard(shard.id, cursor, { count: 100 })
      for (const k of page.keys) keys.set(Buffer.from(k).toString('hex'), k)
      cursor = page.cursor
    } while (cursor !== '0' && ++rounds < 1000)
    assert.ok(keys.size > 0)
    for (const [hex, k] of keys) assert.is(shardOwningSlot(shards, keySlot(k))?.id, shard.id, hex)
    assert.is(keys.size, Number((await rawCommand(shard.port, ['DBSIZE'])).slice(1)))
  }
})

test('dedicated(slot): a connection to the owning master, WATCH/MULTI/EXEC works', async () => {
  for (const shard of shards) {
    const d = await backend.dedicated(shard.minSlot)
    assert.is(text(await d.call(['CLUSTER', 'MYID'])), shard.id)
    const key = keyOn(shard, 'tx')
    assert.is(await d.call(['WATCH', key]), 'OK')
    assert.is(await d.call(['MULTI']), 'OK')
    assert.is(await d.call(['INCR', key]), 'QUEUED')
    assert.is(await d.call(['INCR', key]), 'QUEUED')
    assert.equal(await d.call(['EXEC']), [1, 2])
    // A key of another master is refused by Redis on this connection.
    const elsewhere = shards.find((s) => s.id !== shard.id)!
    assert.match((await rejection(d.call(['GET', keyOn(elsewhere, 'tx')]))).message, /^MOVED /)
    d.release()
  }
  // A conflicting write through the shared connection aborts EXEC.
  const shard = shards[2]!
  const key = keyOn(shard, 'watched')
  const d = await backend.dedicated(keySlot(key))
  await d.call(['WATCH', key])
  await backend.call(['SET', key, 'other'])
  await d.call(['MULTI'])
  await d.call(['SET', key, 'mine'])
  assert.is(await d.call(['EXEC']), null)
  d.release()
})

test('a node connection killed mid-call: ConnectionError, no resend, recovery', async () => {
  const shard = shards[0]!
  const list = keyOn(shard, 'killed')
  const inFlight = rejection(backend.call(['BLPOP', list, '1'], { internal: true }))
  await sleep(100)
  assert.match(await rawCommand(shard.port, ['CLIENT', 'KILL', 'TYPE', 'normal']), /^:[1-9]/)
  const lost = await inFlight
  assert.is(lost.code, 'ERR_GEARBOX_CONNECTION')
  // Keyless first: the node's connection is gone from ioredis's pool until a slots refresh.
  assert.is(text(await backend.call(['CLUSTER', 'MYID'], { shard: shard.id, internal: true })), shard.id)
  assert.is(await backend.call(['RPUSH', list, 'x']), 1)
  assert.equal(await backend.pipeline(shard.id, [['LLEN', list]]), [1])
  await sleep(1200)
  assert.is(await backend.call(['LLEN', list]), 1, 'the BLPOP was not resent behind our back')
})

test('a Cluster instance as the source: its options are copied, it is never used', async () => {
  const yours = new Cluster(cluster.nodes.map((n) => ({ host: n.host, port: n.port })), { lazyConnect: true })
  const b = createRedisBackend(yours)
  try {
    assert.is(b.mode, 'cluster')
    const shard = shards[1]!
    assert.is(await b.call(['SET', keyOn(shard, 'mine'), '1']), 'OK')
    assert.is(await rawCommand(shard.port, ['GET', keyOn(shard, 'mine')]), '1')
    assert.equal((await b.shards()).map((s) => s.id), shards.map((s) => s.id))
    assert.is(yours.status, 'wait')
  } finally {
    await b.close()
    yours.disconnect()
  }
})

test.run()
