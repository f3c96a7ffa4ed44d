/**
 * Readers against a real redis-server: record shapes for every key type (through the page script
 * inside Redis and through plain commands), options, streams, shard ids, and batch streaming.
 */
import { Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { openReader, prefetching, type BatchSource, type RecordBatch } from '../../host/gears/readers.js'
import { createRedisBackend, type RedisBackend } from '../../host/redis/index.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { GearsBox, sorted } from './support.js'

const ctx: { redis?: TestRedis; box?: GearsBox; plain?: GearsBox; client?: Redis; backend?: RedisBackend; streamIds?: string[] } = {}
const client = (): Redis => ctx.client!
const boxes = (): [string, GearsBox][] => [
  ['page script', ctx.box!],
  ['plain commands', ctx.plain!],
]

const t = suite('gears readers')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.client = new Redis(ctx.redis.url, { protocol: 2 })
  ctx.box = await GearsBox.create({ redis: ctx.redis.url })
  ctx.plain = await GearsBox.create({ redis: ctx.redis.url, serverSideReads: false })
  ctx.backend = createRedisBackend(ctx.redis.url)
  const c = client()
  await c.set('t:string', 'v1')
  await c.hset('t:hash', 'a', '1', 'b', '2')
  await c.rpush('t:list', 'x', 'y', 'x')
  await c.sadd('t:set', 'm1', 'm2')
  await c.zadd('t:zset', '1.5', 'a', '-inf', 'b')
  ctx.streamIds = [await c.xadd('t:stream', '1-1', 'f', 'v'), await c.xadd('t:stream', '2-1', 'g', 'w', 'h', 'u')] as string[]
  await c.set('other:1', 'o')
})

t.after(async () => {
  await ctx.box?.close()
  await ctx.plain?.close()
  await ctx.backend?.close()
  ctx.client?.disconnect()
  await ctx.redis?.stop()
})

const EXPECTED_T = [
  { key: 't:hash', value: { a: '1', b: '2' }, type: 'hash', event: null },
  { key: 't:list', value: ['x', 'y', 'x'], type: 'list', event: null },
  { key: 't:set', value: ['m1', 'm2'], type: 'set', event: null },
  { key: 't:stream', value: [{ id: '1-1', value: { f: 'v' } }, { id: '2-1', value: { g: 'w', h: 'u' } }], type: 'stream', event: null },
  { key: 't:string', value: 'v1', type: 'string', event: null },
  // -inf arrives as -Infinity; JSON (the way results leave the guest) has no such number.
  { key: 't:zset', value: [['b', null], ['a', 1.5]], type: 'zset', event: null },
]

t('KeysReader: {key, value, type, event} for string, hash, list, set, zset, stream', async () => {
  for (const [how, box] of boxes()) {
    const out = await box.raw("GB().map(r => r.type === 'set' ? {...r, value: r.value.sort()} : r).run('t:*', {convertToStr: false})")
    assert.equal(out.errors, [], how)
    assert.equal(sorted(out.results), EXPECTED_T, how)
    const inf = await box.raw("GB().map(r => r.value[0][1] === -Infinity).run('t:zset', {convertToStr: false})")
    assert.equal(inf.results, [true], how)
  }
})

t('KeysReader: readValue false gives {key, event} only; noScan reads one key (missing: type empty)', async () => {
  for (const [how, box] of boxes()) {
    assert.equal(sorted((await box.raw("GB().run('t:s*', {readValue: false, convertToStr: false})")).results), [
      { key: 't:set', event: null },
      { key: 't:stream', event: null },
      { key: 't:string', event: null },
    ], how)
    assert.equal((await box.raw("GB().run('t:hash', {noScan: true, convertToStr: false})")).results, [EXPECTED_T[0]], how)
    assert.equal((await box.raw("GB().run('t:*', {noScan: true, convertToStr: false})")).results, [
      { key: 't:*', value: null, type: 'empty', event: null },
    ], how)
    assert.equal((await box.raw("GB().run('t:*', {noScan: true, readValue: false, convertToStr: false})")).results, [], how)
  }
})

t('KeysReader: values and key names that are not UTF-8 arrive as Uint8Array', async () => {
  const c = client()
  await c.set(Buffer.from('bin:value'), Buffer.from([0xff, 0xfe]))
  await c.set(Buffer.from([0x62, 0x69, 0x6e, 0x3a, 0xff]), 'k')
  for (const [how, box] of boxes()) {
    const out = await box.raw("GB().map(r => [r.key, r.value]).run('bin:*', {convertToStr: false})")
    assert.equal(out.errors, [], how)
    assert.equal(sorted(out.results), sorted([
      ['bin:value', new Uint8Array([0xff, 0xfe])],
      [new Uint8Array([0x62, 0x69, 0x6e, 0x3a, 0xff]), 'k'],
    ]), how)
  }
})

t('KeysOnlyReader: key names; count, noScan, patternGenerator', async () => {
  for (const [how, box] of boxes()) {
    assert.equal(sorted((await box.run("GB('KeysOnlyReader').run('t:*')"))[0]), ['t:hash', 't:list', 't:set', 't:stream', 't:string', 't:zset'], how)
    assert.equal(sorted((await box.run("GB('KeysOnlyReader').run('t:*', {count: 1})"))[0]).length, 6, how)
    assert.equal(await box.run("GB('KeysOnlyReader').run('t:list', {noScan: true})"), [['t:list'], []], how)
    assert.equal(await box.run("GB('KeysOnlyReader').run('t:nothing', {noScan: true})"), [[], []], how)
    assert.equal(await box.run("GB('KeysOnlyReader').run('t:*', {patternGenerator: () => ['other:*', false]})"), [['other:1'], []], how)
  }
})

t('StreamReader: {key, id, value} after fromId (exclusive); bad ids and wrong types are error texts', async () => {
  const box = ctx.box!
  const [first] = ctx.streamIds!
  assert.equal((await box.raw("GB('StreamReader').run('t:stream', {convertToStr: false})")).results, [
    { key: 't:stream', id: '1-1', value: { f: 'v' } },
    { key: 't:stream', id: '2-1', value: { g: 'w', h: 'u' } },
  ])
  assert.equal((await box.raw(`GB('StreamReader').run('t:stream', {fromId: '${first}', convertToStr: false})`)).results, [
    { key: 't:stream', id: '2-1', value: { g: 'w', h: 'u' } },
  ])
  assert.equal(await box.run("GB('StreamReader').run('t:none')"), [[], []])
  assert.equal(await box.run("GB('StreamReader').run('t:stream', {fromId: 'not-an-id'})"), [[], ['ERR Invalid stream ID specified as stream command argument']])
  const wrongType = await box.run("GB('StreamReader').run('t:string')")
  assert.equal(wrongType[0], [])
  assert.match(wrongType[1][0]!, /^WRONGTYPE/)
  // More entries than one batch: read in several XRANGE pages, in id order.
  const p = client().pipeline()
  for (let i = 1; i <= 2500; i++) p.xadd('t:long', `${i}-0`, 'n', String(i))
  await p.exec()
  const long = await box.raw("GB('StreamReader').map(r => Number(r.value.n)).run('t:long', {convertToStr: false})")
  assert.equal(long.results.length, 2500)
  assert.equal(long.results.slice(0, 3), [1, 2, 3])
  assert.equal(long.results[2499], 2500)
})

t("ShardsIDReader: one record, '1' on a standalone Redis (as RedisGears)", async () => {
  assert.equal(await ctx.box!.run("GB('ShardsIDReader').run()"), [['1'], []])
})

async function drain(source: BatchSource): Promise<RecordBatch[]> {
  const batches: RecordBatch[] = []
  for (let b = await source.next(); b !== null; b = await source.next()) batches.push(b)
  return batches
}

t('readers stream in batches: 95 keys with batchSize 10 arrive as several small batches', async () => {
  const p = client().pipeline()
  for (let i = 0; i < 95; i++) p.set(`s:${i}`, String(i))
  await p.exec()
  const backend = ctx.backend!
  const shard = await backend.currentShard()
  for (const serverSideReads of [true, false]) {
    const source = openReader({ reader: 'KeysReader', pattern: 's:*', noScan: false, readValue: true }, { backend, shard, batchSize: 10, serverSideReads }, true)
    const batches = await drain(source)
    assert.equal(batches.reduce((n, b) => n + b.count, 0), 95)
    assert.ok(batches.length >= 5, `${batches.length} batches`)
    assert.ok(batches.every((b) => b.count <= 30), `batch sizes ${batches.map((b) => b.count).join(',')}`)
  }
  // End to end: the same records through a Gearbox with small batches.
  const small = await GearsBox.create({ redis: ctx.redis!.url, batchSize: 10 })
  try {
    const id = (await small.gearbox.execute("GB().map(r => Number(r.value)).aggregate(0, (a, r) => a + r, (a, r) => a + r).run('s:*')", { unblocking: true })) as string
    assert.equal((await small.gearbox.executions.resultsBlocking(id)).results, [String((94 * 95) / 2)])
    assert.equal(small.gearbox.executions.get(id).recordsRead, 95)
  } finally {
    await small.close()
  }
})

t('prefetching keeps exactly one batch in flight ahead of the consumer', async () => {
  let requested = 0
  const fake: BatchSource = {
    next() {
      requested++
      return Promise.resolve(requested <= 5 ? { reply: 'v[]', count: 0 } : null)
    },
    close() {},
  }
  const source = prefetching(fake)
  await source.next()
  assert.equal(requested, 2, 'the first read also requests the next batch')
  await new Promise((r) => setTimeout(r, 10))
  assert.equal(requested, 2, 'nothing more until the consumer asks')
  await source.next()
  assert.equal(requested, 3)
  assert.equal((await drain(source)).length, 3)
  assert.equal(requested, 6)
})

t.run()
