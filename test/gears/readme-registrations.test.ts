/**
 * README's write-behind registration, taken from README.md itself (so the README stays true), run
 * on a standalone redis-server and on the shared 3-master cluster: hash writes and deletes of
 * `user:*` keys become entries of the `changes:{<shard tag>}` stream of the key's own shard.
 * (README's stream processor is run the same way by streams.test.ts and streams-cluster.test.ts.)
 */
import { readFileSync } from 'node:fs'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { createRedisBackend, hashtagForSlot, keySlot, shardOwningSlot, type RedisBackend } from '../../host/redis/index.js'
import { sharedCluster, startRedis, type TestCluster, type TestRedis } from '../helpers/redis.js'
import { poller } from '../helpers/until.js'

/** The README's first `js` block of the "Registrations" section: the write-behind and the trigger. */
function readmeWriteBehind(): string {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('\n## Registrations\n'))
  const block = /```js\n([\s\S]*?)```/.exec(section)
  assert.ok(block, 'README has the registrations example')
  assert.match(block![1]!, "register('user:*'")
  return block![1]!
}

const until = poller(15_000, 25)

type Entry = [string, string[]]

const standalone = suite('README registrations (standalone)')
const s: { redis?: TestRedis; gearbox?: Gearbox; client?: Redis } = {}

standalone.before(async () => {
  s.redis = await startRedis()
  s.gearbox = await Gearbox.create({ redis: s.redis.url, workers: 2 })
  s.client = new Redis(s.redis.port, '127.0.0.1')
})

standalone.after(async () => {
  s.client?.disconnect()
  await s.gearbox?.close()
  await s.redis?.stop()
})

standalone('the write-behind turns hash writes and deletes into stream entries; the trigger answers', async () => {
  assert.is(await s.gearbox!.execute(readmeWriteBehind()), 'OK')
  const stream = `changes:{${hashtagForSlot(0)}}`
  await s.client!.hset('user:1', 'name', 'ann')
  await s.client!.set('other', 'x')
  await s.client!.del('user:1')
  await until('two entries', async () => (await s.client!.xlen(stream)) === 2)
  const entries = (await s.client!.xrange(stream, '-', '+')) as Entry[]
  assert.equal(
    entries.map(([, fields]) => fields),
    [
      ['key', 'user:1', 'event', 'hset'],
      ['key', 'user:1', 'event', 'del'],
    ],
  )
  assert.equal(await s.gearbox!.trigger('hello', 'bob'), ['hello bob'])
})

const cluster = suite('README registrations (cluster)')
const c: { cluster?: TestCluster; gearbox?: Gearbox; client?: Cluster; backend?: RedisBackend } = {}

cluster.before(async () => {
  c.cluster = await sharedCluster()
  await c.cluster.flushAll()
  c.gearbox = await Gearbox.create({ redis: { cluster: [...c.cluster.urls] }, workers: 2 })
  c.client = new Cluster(c.cluster.nodes.map((n) => ({ host: n.host, port: n.port })))
  c.backend = createRedisBackend({ cluster: [...c.cluster.urls] })
})

cluster.after(async () => {
  // Registrations are stored in the cluster: leave none for the next files' Gearboxes to restore.
  for (const r of c.gearbox?.registrations.list() ?? []) await c.gearbox!.registrations.unregister(r.id)
  await c.gearbox?.close()
  c.client?.disconnect()
  await c.backend?.close()
  // The shared cluster goes back to no keyspace notifications for the other test files.
  for (const n of c.cluster?.nodes ?? []) await rawCommand(n.port, ['CONFIG', 'SET', 'notify-keyspace-events', ''])
})

cluster("every master's user hashes reach the changes stream of their own shard", async () => {
  assert.is(await c.gearbox!.execute(readmeWriteBehind()), 'OK')
  const shards = await c.backend!.shards()
  assert.is(shards.length, 3)
  const users = Array.from({ length: 12 }, (_, i) => `user:{u${i}}`)
  const streamOf = (key: string): string => `changes:{${hashtagForSlot(shardOwningSlot(shards, keySlot(key))!.minSlot)}}`
  // The users land on every master (checked, so the test covers them all).
  assert.is(new Set(users.map(streamOf)).size, 3)
  for (const user of users) await c.client!.hset(user, 'visits', '1')
  const streams = [...new Set(users.map(streamOf))]
  await until('an entry per user', async () => {
    let total = 0
    for (const stream of streams) total += await c.client!.xlen(stream)
    return total === users.length
  })
  for (const stream of streams) {
    const entries = (await c.client!.xrange(stream, '-', '+')) as Entry[]
    const keys = entries.map(([, fields]) => fields[1]!)
    assert.ok(keys.length > 0, stream)
    for (const key of keys) assert.is(streamOf(key), stream, `${key} written on its own shard`)
  }
})

standalone.run()
cluster.run()
