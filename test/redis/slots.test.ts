import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { keySlot, SLOT_COUNT } from '../../host/cluster/slots.js'
import { hashtagForSlot, slotHashtags } from '../../host/cluster/hashtags.js'
import { createRedisBackend } from '../../host/redis/index.js'
import type { RedisBackend } from '../../host/redis/types.js'
import { sharedCluster } from '../helpers/redis.js'

const test = suite('cluster: key slots and the hashtag table')
const utf8 = new TextEncoder()

test('known CRC16 vectors', () => {
  assert.is(keySlot('foo'), 12182)
  assert.is(keySlot('bar'), 5061)
  assert.is(keySlot('hello'), 866)
  assert.is(keySlot('{user1000}.following'), 3443)
  assert.is(keySlot('{user1000}.followers'), 3443)
  assert.is(keySlot(''), 0)
})

test('hash tag rules follow Redis', () => {
  assert.is(keySlot('{user1000}.following'), keySlot('user1000'))
  // Empty tag: the whole key is hashed.
  assert.is.not(keySlot('{}foo'), keySlot('foo'))
  assert.is(keySlot('{}foo'), keySlot(utf8.encode('{}foo')))
  // Only the first '{' and the first '}' after it count.
  assert.is(keySlot('foo{bar}{zap}'), keySlot('bar'))
  assert.is(keySlot('foo{{bar}}zap'), keySlot('{bar'))
  // No closing brace: whole key.
  assert.is(keySlot('foo{bar'), keySlot(utf8.encode('foo{bar')))
  assert.is.not(keySlot('foo{bar'), keySlot('bar'))
})

test('strings hash as their UTF-8 bytes, like the Uint8Array form', () => {
  for (const key of ['plain', 'ключ', '键:{标签}x', 'emoji😀key', '{😀}a', 'lone\ud800surrogate']) {
    assert.is(keySlot(key), keySlot(utf8.encode(key)), key)
  }
})

test('binary keys with non-UTF-8 bytes', () => {
  const key = new Uint8Array([0xff, 0x7b, 0xfe, 0x00, 0x7d, 0x80])
  assert.is(keySlot(key), keySlot(new Uint8Array([0xfe, 0x00])), 'tag {\\xfe\\x00} is hashed alone')
  assert.ok(keySlot(key) >= 0 && keySlot(key) < SLOT_COUNT)
})

test('every one of the 16384 hashtags hashes to its own slot', () => {
  const table = slotHashtags()
  assert.is(table.length, SLOT_COUNT)
  let wrong = 0
  for (let slot = 0; slot < SLOT_COUNT; slot++) if (keySlot(table[slot]!) !== slot) wrong++
  assert.is(wrong, 0)
  assert.is(new Set(table).size, SLOT_COUNT, 'no duplicates')
})

test('hashtagForSlot matches RedisGears 1.2 and rejects bad slots with a coded error', () => {
  assert.is(hashtagForSlot(0), '06S')
  assert.is(hashtagForSlot(1), 'Qi')
  assert.is(hashtagForSlot(2), '5L5')
  assert.is(hashtagForSlot(3682), '5Ns')
  assert.is(hashtagForSlot(16383), '6ZJ')
  assert.is(keySlot(`{${hashtagForSlot(9999)}}:anything`), 9999)
  for (const bad of [-1, 16384, 1.5, Number.NaN]) {
    try {
      hashtagForSlot(bad)
      assert.unreachable(`slot ${bad}`)
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_GEARBOX_INVALID_ARGUMENT')
    }
  }
})

test('keySlot agrees with CLUSTER KEYSLOT on a real cluster', async () => {
  const cluster = await sharedCluster()
  const backend: RedisBackend = createRedisBackend({ cluster: [...cluster.urls] })
  try {
    const shard = await backend.currentShard()
    const keys: (string | Uint8Array)[] = []
    for (let i = 0; i < 150; i++) keys.push(`user:${i}:profile`, `{tag${i % 7}}:item:${i}`)
    keys.push('ключ', '{}x', 'a{b}c{d}', 'emoji😀', new Uint8Array([0xff, 0xfe, 0x7b, 0x01, 0x7d]), new Uint8Array([0x80]))
    const replies = await backend.pipeline(shard.id, keys.map((k) => ['CLUSTER', 'KEYSLOT', k]), { internal: true })
    assert.is(replies.length, keys.length)
    keys.forEach((key, i) => assert.is(replies[i], keySlot(key), `key #${i}`))
  } finally {
    await backend.close()
  }
})

test.after(async () => {
  // Stops the cluster when this file started its own (a no-op under the runner).
  await (await sharedCluster()).stop()
})

test.run()
