/**
 * Cluster redirections on the real 3-master cluster: ASK (a slot being migrated, with
 * CLUSTER SETSLOT ... MIGRATING/IMPORTING) and MOVED (a slot moved after the backend read the
 * topology). Each test restores the slot's state.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { createRedisBackend, hashtagForSlot } from '../../host/redis/index.js'
import type { RedisBackend, RedisReply, ShardInfo } from '../../host/redis/types.js'
import { sharedCluster, type TestCluster } from '../helpers/redis.js'

const test = suite('redis: cluster redirections')
let cluster: TestCluster
let backend: RedisBackend
let shards: readonly ShardInfo[]

const text = (v: RedisReply): string => (v instanceof Uint8Array ? new TextDecoder().decode(v) : String(v))
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function countKeysInSlot(shard: ShardInfo, slot: number): Promise<string> {
  return rawCommand(shard.port, ['CLUSTER', 'COUNTKEYSINSLOT', String(slot)])
}

test.before(async () => {
  cluster = await sharedCluster()
  backend = createRedisBackend({ cluster: [...cluster.urls] }, { connectTimeoutMs: 3000 })
  shards = await backend.shards()
})

test.after(async () => {
  await backend.close()
  await cluster.stop()
})

test('ASK: a slot being migrated; the command follows to the importing master (ASKING first)', async () => {
  const [source, target] = [shards[1]!, shards[2]!]
  const slot = source.minSlot + 101
  const key = `{${hashtagForSlot(slot)}}asked`
  assert.is(await backend.call(['DEL', key]), 0)
  try {
    assert.is(await rawCommand(target.port, ['CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', source.id]), '+OK')
    assert.is(await rawCommand(source.port, ['CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', target.id]), '+OK')
    // The key is not on the source: it answers ASK, and the backend asks the target.
    assert.is(await backend.call(['SET', key, 'there']), 'OK')
    assert.is(await countKeysInSlot(target, slot), ':1', 'written on the importing master')
    assert.is(await countKeysInSlot(source, slot), ':0')
    assert.is(text(await backend.call(['GET', key])), 'there')
    assert.is(text(await backend.call(['GET', key], { internal: true })), 'there', 'internal calls follow ASK too')
    assert.is(await backend.call(['DEL', key]), 1)
  } finally {
    for (const shard of [source, target]) await rawCommand(shard.port, ['CLUSTER', 'SETSLOT', String(slot), 'STABLE'])
  }
  assert.is(await backend.call(['SET', key, 'home']), 'OK')
  assert.is(await countKeysInSlot(source, slot), ':1', 'stable again: the key goes to the owner')
  await backend.call(['DEL', key])
})

test('MOVED: a slot moved after the topology was read; the backend refreshes it and retries', async () => {
  const [source, target] = [shards[1]!, shards[2]!]
  const slot = source.minSlot + 202
  const key = `{${hashtagForSlot(slot)}}moved`
  assert.is(await backend.call(['DEL', key]), 0)
  const moveTo = async (owner: ShardInfo): Promise<void> => {
    for (const shard of shards) assert.is(await rawCommand(shard.port, ['CLUSTER', 'SETSLOT', String(slot), 'NODE', owner.id]), '+OK')
  }
  try {
    await moveTo(target)
    // The backend still thinks the source owns the slot: MOVED, refresh, retry.
    assert.is(await backend.call(['SET', key, 'moved']), 'OK')
    assert.is(await countKeysInSlot(target, slot), ':1')
    const refreshed = await backend.shards()
    assert.ok(refreshed.find((s) => s.id === target.id)!.slots.some(([a, b]) => a <= slot && slot <= b), 'the topology was read again')
    assert.is(await backend.call(['DEL', key]), 1)
  } finally {
    await moveTo(source)
  }
  // Back home, after another MOVED.
  for (let i = 0; i < 20 && (await rawCommand(source.port, ['CLUSTER', 'COUNTKEYSINSLOT', String(slot)])) !== ':0'; i++) await sleep(50)
  assert.is(await backend.call(['SET', key, 'home']), 'OK')
  assert.is(await countKeysInSlot(source, slot), ':1')
  await backend.call(['DEL', key])
})

test('CROSSSLOT passes through unchanged', async () => {
  const a = `{${hashtagForSlot(shards[0]!.minSlot)}}a`
  const b = `{${hashtagForSlot(shards[2]!.minSlot)}}b`
  const refused = await backend.call(['MGET', a, b]).then(() => '', (e: Error) => e.message)
  assert.match(refused, /^CROSSSLOT/)
})

test.run()
