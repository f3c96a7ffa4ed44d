/**
 * The command path of gearbox serve in front of the real 3-master cluster: a hook on keys of every
 * master (call_next goes to the key's master), the read-through cache on key misses of every
 * master, and a sync KeysReader registration done before the reply.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { createRedisBackend, hashtagForSlot, keySlot, shardOwningSlot } from '../../host/redis/index.js'
import type { RedisBackend, ShardInfo } from '../../host/redis/types.js'
import { sharedCluster, type TestCluster } from '../helpers/redis.js'
import { serveGearbox, type Served } from './support.js'

const test = suite('server: command path (cluster)')
let cluster: TestCluster
let served: Served
let backend: RedisBackend
let shards: readonly ShardInfo[]
let c: Redis

/** One key per master: `{<hashtag of its first slot>}<name>`. */
function keysOnEveryMaster(name: string): string[] {
  return shards.map((s) => `{${hashtagForSlot(s.slots[0]![0])}}${name}`)
}

async function directGet(key: string): Promise<unknown> {
  return backend.call(['GET', key], { internal: true })
}

test.before(async () => {
  cluster = await sharedCluster()
  backend = createRedisBackend({ cluster: [...cluster.urls] })
  shards = await backend.shards()
  served = await serveGearbox({ cluster: [...cluster.urls] })
  c = new Redis({ host: '127.0.0.1', port: served.port, maxRetriesPerRequest: 0 })
})

test.after(async () => {
  c.disconnect()
  await served.close()
  await backend.close()
  await cluster.stop()
})

test('a hook on keys of every master: call_next runs the command on the master of its key', async () => {
  await c.call('RG.JSEXECUTE', "GB('CommandReader').map((x) => call_next(x[1], x[2] + '@' + hashtag())).register({ hook: 'set', keyprefix: '{', mode: 'sync', convertToStr: false })")
  const keys = keysOnEveryMaster('hooked')
  assert.is(new Set(keys.map((k) => shardOwningSlot(shards, keySlot(k))?.id)).size, 3)
  for (const key of keys) assert.is(await c.call('SET', key, 'v'), 'OK')
  for (const key of keys) {
    // The execution ran on the key's master: hashtag() is that master's.
    const tag = /^\{([^}]+)\}/.exec(key)![1]
    assert.is(new TextDecoder().decode((await directGet(key)) as Uint8Array), `v@${tag}`)
  }
  // Without the prefix the command is not hooked.
  assert.is(await c.call('SET', 'plain', 'v'), 'OK')
  assert.is(new TextDecoder().decode((await directGet('plain')) as Uint8Array), 'v')
})

test('read-through cache: GET misses on every master load the value and override the nil reply', async () => {
  await c.call(
    'RG.JSEXECUTE',
    "GB().foreach((r) => { const v = 'loaded:' + r.key; execute('SET', r.key, v); override_reply(v) }).register('{*', { eventTypes: ['keymiss'], commands: ['get'], mode: 'async_local' })",
  )
  for (const key of keysOnEveryMaster('cache')) {
    assert.is(await c.call('GET', key), `loaded:${key}`)
    assert.is(new TextDecoder().decode((await directGet(key)) as Uint8Array), `loaded:${key}`)
  }
})

test('a sync KeysReader registration is done when the client gets its reply (every master)', async () => {
  await c.call('RG.JSEXECUTE', "GB().foreach((r) => execute('SET', r.key + ':copy', r.value)).register('{*', { mode: 'sync', eventTypes: ['hset'], readValue: false })")
  // readValue false: the record is {key, event}; the copy holds undefined → the test checks the key exists.
  for (const key of keysOnEveryMaster('src')) {
    assert.is(await c.call('HSET', key, 'f', 'v'), 1)
    assert.is(await backend.call(['EXISTS', `${key}:copy`], { internal: true }), 1)
  }
})

test.run()
