/**
 * The same flows over the same data on a standalone Redis and on a 3-master cluster give the same
 * answers; cluster specifics: every master is read, stages run per shard in their own
 * interpreters, top-level side effects happen once, hashtag() and keyless execute() are per shard.
 */
import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { loadDataFile } from '../../host/cli/load-data.js'
import { keySlot } from '../../host/cluster/slots.js'
import { createRedisBackend, type RedisBackend } from '../../host/redis/index.js'
import { sharedCluster, startRedis, type TestCluster, type TestRedis } from '../helpers/redis.js'
import { GearsBox, type RunReply } from './support.js'

const ctx: { redis?: TestRedis; cluster?: TestCluster; sa?: GearsBox; cl?: GearsBox; saBackend?: RedisBackend; clBackend?: RedisBackend } = {}
const sa = (): GearsBox => ctx.sa!
const cl = (): GearsBox => ctx.cl!
const example = (name: string): string => readFileSync(new URL(`../../../examples/${name}`, import.meta.url), 'utf8')
const dataFile = (name: string): string => new URL(`../../../examples/data/${name}`, import.meta.url).pathname

/** Runs `script` on both and checks the answers are equal; returns the standalone one. */
async function same(script: string): Promise<RunReply> {
  const [a, b] = await Promise.all([sa().run(script), cl().run(script)])
  assert.equal(b, a, `cluster and standalone differ for: ${script}`)
  return a
}

const t = suite('gears on a cluster = on a standalone Redis')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.cluster = await sharedCluster()
  await ctx.cluster.flushAll()
  ctx.saBackend = createRedisBackend(ctx.redis.url)
  ctx.clBackend = createRedisBackend({ cluster: ctx.cluster.urls })
  for (const backend of [ctx.saBackend, ctx.clBackend]) {
    await loadDataFile(backend, dataFile('pride-and-prejudice.txt'))
    await loadDataFile(backend, dataFile('weather.csv'))
    const shards = await backend.shards()
    const numbers = Array.from({ length: 300 }, (_, i) => ['SET', `n:${i + 1}`, String(i + 1)])
    for (const shard of shards) {
      const own = numbers.filter((c) => shard.slots.some(([from, to]) => keySlot(c[1]!) >= from && keySlot(c[1]!) <= to))
      if (own.length > 0) await backend.pipeline(shard.id, own, { internal: true })
    }
  }
  ctx.sa = await GearsBox.create({ redis: ctx.redis.url })
  ctx.cl = await GearsBox.create({ redis: { cluster: ctx.cluster.urls } })
})

t.after(async () => {
  await ctx.sa?.close()
  await ctx.cl?.close()
  await ctx.saBackend?.close()
  await ctx.clBackend?.close()
  await ctx.redis?.stop()
  await ctx.cluster?.stop()
})

t('the examples: word count and per-city average', async () => {
  const words = await same(example('wordcount.js'))
  assert.equal(words[1], [])
  assert.equal(words[0].length, 20)
  assert.equal(words[0].slice(0, 3), ['you 54', 'the 48', 'of 47'])
  const averages = await same(example('average.js'))
  assert.equal(averages[1], [])
  assert.equal(averages[0].length, 10)
  assert.equal(averages[0][0], 'Athens 18.51 °C over 365 days')
})

t('count, countby, groupby, batchgroupby, aggregate, avg, distinct, sort, limit after sort', async () => {
  assert.equal(await same("GB().count().run('n:*')"), [['300'], []])
  const mod7 = Array.from({ length: 7 }, (_, m) => `${m}=${Array.from({ length: 300 }, (_, i) => i + 1).filter((n) => n % 7 === m).length}`)
  assert.equal(await same("GB().map(r => Number(r.value) % 7).countby().map(r => r.key + '=' + r.value).sort().run('n:*')"), [mod7, []])
  assert.equal(
    await same("GB().groupby(r => Number(r.value) % 3, (k, a, r) => (a ?? 0) + Number(r.value)).map(r => r.key + ':' + r.value).sort().run('n:*')"),
    [['0:15150', '1:14950', '2:15050'], []],
  )
  assert.equal(
    await same("GB().batchgroupby(r => Number(r.value) % 100 === 0 ? 'hundreds' : 'rest', (k, list) => list.length).map(r => r.key + ':' + r.value).sort().run('n:*')"),
    [['hundreds:3', 'rest:297'], []],
  )
  assert.equal(await same("GB().map(r => Number(r.value)).aggregate(0, (a, r) => a + r, (a, r) => a + r).run('n:*')"), [['45150'], []])
  assert.equal(await same("GB().avg(r => Number(r.value)).run('n:*')"), [['150.5'], []])
  assert.equal(await same("GB().map(r => Number(r.value) % 4).distinct().sort().run('n:*')"), [['0', '1', '2', '3'], []])
  assert.equal(await same("GB().map(r => Number(r.value)).sort(true).limit(3).run('n:*')"), [['300', '299', '298'], []])
  assert.equal((await same("GB('KeysOnlyReader').sort().run('n:*')"))[0].length, 300)
  assert.equal(await same("GB().repartition(r => 'x' + r.value).map(r => Number(r.value)).filter(n => n > 297).sort().run('n:*')"), [['298', '299', '300'], []])
})

t('error records and partial results cross stages the same way', async () => {
  assert.equal(
    await same("GB().map(r => { if (r.value === '5') throw new Error('five'); return r }).count().run('n:*')"),
    [['299'], ['Error: five']],
  )
})

t('ShardsIDReader yields every master; hashtag() and keyless execute() are per shard', async () => {
  const nodes = ctx.cluster!.nodes.map((n) => new Redis(n.port, n.host, { protocol: 2 }))
  try {
    const ids = await Promise.all(nodes.map((n) => n.call('CLUSTER', 'MYID') as Promise<string>))
    const [records, errors] = await cl().run("GB('ShardsIDReader').map(id => [id, hashtag(), execute('DBSIZE')]).run(null, {convertToStr: false})")
    assert.equal(errors, [])
    const rows = records as [string, string, number][]
    assert.equal(rows.map((r) => r[0]).sort(), [...ids].sort())
    const shards = await ctx.clBackend!.shards()
    for (const [id, tag, dbsize] of rows) {
      const shard = shards.find((s) => s.id === id)!
      assert.equal(keySlot(tag), shard.minSlot, `hashtag of ${id}`)
      assert.equal(dbsize, await nodes[ids.indexOf(id)]!.dbsize(), `DBSIZE on ${id}`)
    }
  } finally {
    nodes.forEach((n) => n.disconnect())
  }
})

t('each shard stage runs in its own interpreter; the top level runs its side effects once', async () => {
  assert.equal(await cl().run("let n = 0; GB('ShardsIDReader').map(() => ++n).run()"), [['1', '1', '1'], []])
  await cl().gearbox.execute("execute('SET', 'factor', '3'); execute('DEL', 'toplevel:runs')")
  const reply = await cl().run(`
    execute('INCR', 'toplevel:runs')
    const factor = Number(execute('GET', 'factor'))
    GB().map(r => Number(r.value) * factor).groupby(() => 'all', (k, a, r) => (a ?? 0) + r).map(r => r.value).run('n:*')`)
  assert.equal(reply, [['135450'], []])
  const runs = await ctx.clBackend!.call(['GET', 'toplevel:runs'], { internal: true })
  assert.equal(new TextDecoder().decode(runs as Uint8Array), '1')
})

t('a top level that is not deterministic cannot be replayed: each stage reports it', async () => {
  const [results, errors] = await cl().run("execute('SET', 'rnd', String(Math.random())); GB().count().run('n:*')")
  assert.equal(results, [])
  assert.equal(errors.length, 3)
  for (const e of errors) assert.match(e, /no Math\.random\(\) or Date/)
})

t('async_local reads the current shard only, in place', async () => {
  const current = await ctx.clBackend!.currentShard()
  const node = new Redis(current.port, current.host, { protocol: 2 })
  try {
    let cursor = '0'
    let own = 0
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', 'n:*', 'COUNT', 1000)
      cursor = next
      own += keys.length
    } while (cursor !== '0')
    assert.ok(own > 0 && own < 300)
    assert.equal(await cl().run("GB().count().run('n:*', {mode: 'async_local'})"), [[String(own)], []])
  } finally {
    node.disconnect()
  }
})

t('abort stops a distributed run on every shard; the pool serves the next execution', async () => {
  const id = (await cl().gearbox.execute(
    "GB('PythonReader').map(x => { for (;;) {} }).run(function* () { yield 1 })",
    { unblocking: true },
  )) as string
  await new Promise((r) => setTimeout(r, 150))
  assert.equal(cl().gearbox.executions.get(id).status, 'running')
  assert.equal(cl().gearbox.executions.get(id).shardsReceived, 3)
  await cl().gearbox.executions.abort(id)
  assert.equal(cl().gearbox.executions.get(id).status, 'aborted')
  assert.equal(cl().gearbox.executions.get(id).errors, ['execution aborted'])
  assert.equal(await cl().run("GB().count().run('n:*')"), [['300'], []])
})

t.run()
