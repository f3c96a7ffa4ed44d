/**
 * StreamReader registrations on the shared 3-master cluster: streams on every master (several
 * slots per master) each read on its own master, on a connection of its own (not the function
 * connections); records, acknowledgement and trimming; a dead-letter stream on another master;
 * pause/unpause; a stream created after the registration; async_local reads this host's shard only.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { STREAM_CONSUMER_GROUP } from '../../host/gears/streams.js'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { createRedisBackend, hashtagForSlot, keySlot, shardOwningSlot, type RedisBackend, type ShardInfo } from '../../host/redis/index.js'
import { sharedCluster, type TestCluster } from '../helpers/redis.js'
import { poller } from '../helpers/until.js'

const ctx: { cluster?: TestCluster; gearbox?: Gearbox; client?: Cluster; backend?: RedisBackend; shards?: readonly ShardInfo[] } = {}
const gearbox = (): Gearbox => ctx.gearbox!
const client = (): Cluster => ctx.client!

const until = poller(20_000, 25)

function registration(id: string) {
  const found = gearbox().registrations.list().find((r) => r.id === id)
  assert.ok(found, `registration ${id} is listed`)
  return found!
}

async function register(source: string): Promise<string> {
  assert.is(await gearbox().execute(source), 'OK')
  return gearbox().registrations.list().at(-1)!.id
}

/** `count` hashtags per master, for stream names: two per master puts several slots on one master. */
function tagsPerShard(count: number): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const shard of ctx.shards!) {
    const tags: string[] = []
    for (let slot = shard.minSlot; tags.length < count && slot <= 16383; slot++) {
      if (shardOwningSlot(ctx.shards!, slot)?.id === shard.id) tags.push(hashtagForSlot(slot))
    }
    out.set(shard.id, tags)
  }
  return out
}

/** The client list of the master of `shard`. */
async function clientList(shard: ShardInfo): Promise<string> {
  return rawCommand(shard.port, ['CLIENT', 'LIST'])
}

const t = suite('stream registrations (cluster)')

t.before(async () => {
  ctx.cluster = await sharedCluster()
  await ctx.cluster.flushAll()
  ctx.gearbox = await Gearbox.create({ redis: { cluster: [...ctx.cluster.urls] }, workers: 2 })
  ctx.client = new Cluster(ctx.cluster.nodes.map((n) => ({ host: n.host, port: n.port })))
  ctx.backend = createRedisBackend({ cluster: [...ctx.cluster.urls] })
  ctx.shards = await ctx.backend.shards()
  assert.is(ctx.shards.length, 3)
})

t.after(async () => {
  await ctx.gearbox?.close()
  ctx.client?.disconnect()
  await ctx.backend?.close()
  for (const n of ctx.cluster?.nodes ?? []) await rawCommand(n.port, ['CONFIG', 'SET', 'notify-keyspace-events', ''])
})

t.before.each(async () => {
  await Promise.all(gearbox().registrations.list().map((r) => gearbox().registrations.unregister(r.id)))
  await ctx.cluster!.flushAll()
})

t('streams on every master (two slots each): each read on its own master, processed, acknowledged, trimmed', async () => {
  const byShard = tagsPerShard(2)
  const streams = [...byShard.values()].flat().map((tag) => `orders:{${tag}}`)
  // Entries there before the registration, and after.
  for (const s of streams) await client().xadd(s, '*', 'n', 'before')
  const id = await register(`GB('StreamReader').foreach((r) => execute('RPUSH', 'seen:' + r.key, r.id + ' ' + r.value.n)).register('orders:*')`)
  const written = new Map<string, string[]>()
  for (const s of streams) {
    const first = (await client().xrange(s, '-', '+'))[0]
    written.set(s, first === undefined ? [] : [`${first[0]} before`])
  }
  for (const s of streams) written.get(s)!.push(`${await client().xadd(s, '*', 'n', 'after')} after`)
  // Entries already processed were trimmed: those left are the ones written after.
  await until('every entry of every stream', async () => {
    for (const s of streams) if ((await client().llen(`seen:${s}`)) < 2) return false
    return true
  })
  for (const s of streams) {
    const seen = await client().lrange(`seen:${s}`, 0, -1)
    assert.is(seen.length, 2, s)
    assert.ok(seen[1]!.endsWith(' after'), s)
  }
  await until('acknowledged and trimmed', async () => {
    for (const s of streams) {
      const [pending] = (await client().xpending(s, STREAM_CONSUMER_GROUP)) as [number]
      if (pending !== 0 || (await client().xlen(s)) !== 0) return false
    }
    return true
  })
  assert.equal([...registration(id).RegistrationData.streams!].sort(), [...streams].sort())
  // Every master has one connection reading streams, as gearbox's own user (not the function user).
  for (const shard of ctx.shards!) {
    const readers = (await clientList(shard)).split('\n').filter((line) => line.includes('cmd=xreadgroup'))
    assert.is(readers.length, 1, `${shard.port}: ${readers.join(' | ')}`)
    assert.ok(!readers[0]!.includes('user=gearbox-functions'), readers[0])
  }
  // Each stream's consumer is on the stream's own master (the group lives with the stream).
  for (const s of streams) {
    const consumers = (await client().xinfo('CONSUMERS', s, STREAM_CONSUMER_GROUP)) as unknown[][]
    assert.is(consumers.length, 1, s)
    const owner = shardOwningSlot(ctx.shards!, keySlot(s))!
    assert.ok(byShard.get(owner.id)!.some((tag) => s.includes(tag)))
  }
})

t('a stream created after the registration on any master is picked up; dead letters go to a stream on another master', async () => {
  const byShard = tagsPerShard(1)
  const [a, b, c] = [...byShard.values()].map((tags) => tags[0]!)
  const dead = `dead:{${c}}`
  const id = await register(
    `GB('StreamReader').foreach((r) => { if (r.value.bad) throw new Error('bad ' + r.id); execute('INCR', 'ok:' + r.key) }).register('late:*', { deadLetter: '${dead}' })`,
  )
  await client().xadd(`late:{${a}}`, '*', 'n', '1')
  const badId = await client().xadd(`late:{${b}}`, '*', 'bad', '1')
  await until('the good entry', async () => (await client().get(`ok:late:{${a}}`)) === '1')
  await until('the dead letter', async () => (await client().xlen(dead)) === 1)
  const [letter] = await client().xrange(dead, '-', '+')
  const fields = letter![1]
  assert.ok(fields.includes(badId!), String(fields))
  assert.ok(fields.some((f) => f.includes(`bad ${badId}`)), String(fields))
  assert.is(registration(id).RegistrationData.numDeadLettered, 1)
})

t('pause and unpause on a cluster; async_local reads only the streams of this host’s shard', async () => {
  const byShard = tagsPerShard(1)
  const tags = [...byShard.values()].map((tagList) => tagList[0]!)
  const id = await register(`GB('StreamReader').foreach((r) => execute('INCR', 'n:' + r.key)).register('p:*')`)
  await gearbox().registrations.pause(id)
  for (const tag of tags) await client().xadd(`p:{${tag}}`, '*', 'n', '1')
  await gearbox().registrations.unpause(id)
  await until('every stream after unpause', async () => {
    for (const tag of tags) if ((await client().get(`n:p:{${tag}}`)) !== '1') return false
    return true
  })

  const current = await ctx.backend!.currentShard()
  const local = await register(`GB('StreamReader').foreach((r) => execute('INCR', 'l:' + r.key)).register('loc:*', { mode: 'async_local' })`)
  for (const tag of tags) await client().xadd(`loc:{${tag}}`, '*', 'n', '1')
  const mine = `loc:{${byShard.get(current.id)![0]!}}`
  await until('the local stream', async () => (await client().get(`l:${mine}`)) === '1')
  assert.equal(registration(local).RegistrationData.streams, [mine])
  for (const tag of tags) {
    const stream = `loc:{${tag}}`
    if (stream === mine) continue
    assert.is(await client().xlen(stream), 1, `${stream} stays unread`)
    assert.equal(await client().xinfo('GROUPS', stream), [], `${stream} gets no group`)
  }
})

t("README's stream processor on the cluster: totals on each stream's shard, failures to the dead-letter stream", async () => {
  const tags = [...tagsPerShard(1).values()].map((list) => list[0]!)
  await register(`GB('StreamReader')
  .foreach((r) => execute('HINCRBYFLOAT', 'totals:' + r.key, r.value.customer, r.value.amount))
  .register('orders:*', { batch: 50, duration: 100, onFailedPolicy: 'continue', deadLetter: 'orders-dead' })`)
  for (const tag of tags) {
    await client().xadd(`orders:{${tag}}`, '*', 'customer', 'ann', 'amount', '2.5')
    await client().xadd(`orders:{${tag}}`, '*', 'customer', 'ann', 'amount', '4')
  }
  await until('the totals on every master', async () => {
    for (const tag of tags) if ((await client().hget(`totals:orders:{${tag}}`, 'ann')) !== '6.5') return false
    return true
  })
  await client().xadd(`orders:{${tags[0]!}}`, '*', 'customer', 'cy', 'amount', 'lots')
  await until('the dead letter', async () => (await client().xlen('orders-dead')) === 1)
})

t('onFailedPolicy abort and retry on streams of different masters: the entries stay pending until they succeed', async () => {
  const [a, b] = [...tagsPerShard(1).values()].map((list) => list[0]!)
  const flag = `fail:{${a}}`
  const flagB = `fail:{${b}}`
  await client().set(flag, '1')
  await client().set(flagB, '1')
  const failing = (prefix: string, key: string, policy: string): string =>
    `GB('StreamReader').foreach((r) => { if (execute('EXISTS', '${key}') === 1) throw new Error('flagged'); execute('RPUSH', 'done:' + r.key, r.id) }).register('${prefix}', { onFailedPolicy: '${policy}', onFailedRetryInterval: 0.05 })`
  const aborting = await register(failing(`ab:{${a}}`, flag, 'abort'))
  const retrying = await register(failing(`re:{${b}}`, flagB, 'retry'))
  const abortedId = await client().xadd(`ab:{${a}}`, '*', 'n', '1')
  const retriedId = await client().xadd(`re:{${b}}`, '*', 'n', '1')
  await until('aborted', () => registration(aborting).RegistrationData.status === 'ABORTED')
  await until('retried', () => registration(retrying).RegistrationData.numFailures >= 3)
  for (const s of [`ab:{${a}}`, `re:{${b}}`]) {
    const [pending] = (await client().xpending(s, STREAM_CONSUMER_GROUP)) as [number]
    assert.is(pending, 1, s)
  }
  await client().del(flag)
  await client().del(flagB)
  await gearbox().registrations.unpause(aborting)
  await until('both processed', async () => (await client().llen(`done:ab:{${a}}`)) === 1 && (await client().llen(`done:re:{${b}}`)) === 1)
  assert.equal(await client().lrange(`done:ab:{${a}}`, 0, -1), [abortedId])
  assert.equal(await client().lrange(`done:re:{${b}}`, 0, -1), [retriedId])
})

t('without keyspace events, the periodic scan finds new streams on every master', async () => {
  const tags = [...tagsPerShard(1).values()].map((list) => list[0]!)
  await register(`GB('StreamReader').foreach((r) => execute('INCR', 'n:' + r.key)).register('scan:*')`)
  for (const n of ctx.cluster!.nodes) await rawCommand(n.port, ['CONFIG', 'SET', 'notify-keyspace-events', ''])
  try {
    for (const tag of tags) await client().xadd(`scan:{${tag}}`, '*', 'n', '1')
    await until('every stream found by the scan', async () => {
      for (const tag of tags) if ((await client().get(`n:scan:{${tag}}`)) !== '1') return false
      return true
    }, 30_000)
  } finally {
    for (const n of ctx.cluster!.nodes) await rawCommand(n.port, ['CONFIG', 'SET', 'notify-keyspace-events', 'Kg$lshzxetm'])
  }
})

t.run()
