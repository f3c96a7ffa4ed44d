/**
 * StreamReader registrations on a standalone redis-server: the consumer group, records as
 * RedisGears gives them, batch and duration, every onFailedPolicy, trimStream, the dead-letter
 * stream, pause/unpause (API and RG.* commands), unregister with abortPending, streams created
 * after the registration, entries a dead consumer left pending, and a handler failing on every
 * entry next to one that works.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { STREAM_BLOCK_MS, STREAM_CONSUMER_GROUP } from '../../host/gears/streams.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection } from '../helpers/rejection.js'
import { poller } from '../helpers/until.js'

const ctx: { redis?: TestRedis; gearbox?: Gearbox; client?: Redis } = {}
const gearbox = (): Gearbox => ctx.gearbox!
const client = (): Redis => ctx.client!

const until = poller(15_000)

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function registration(id: string) {
  const found = gearbox().registrations.list().find((r) => r.id === id)
  assert.ok(found, `registration ${id} is listed`)
  return found!
}

/** Registers `source` (one register() call) and returns its id. */
async function register(source: string, limits?: { cpuMs?: number; wallMs?: number }): Promise<string> {
  const before = new Set(gearbox().registrations.list().map((r) => r.id))
  assert.is(await gearbox().execute(source, limits === undefined ? {} : { limits }), 'OK')
  const added = gearbox().registrations.list().filter((r) => !before.has(r.id))
  assert.is(added.length, 1)
  return added[0]!.id
}

/** Entries pending in the gears group of `stream`. */
async function pendingCount(stream: string): Promise<number> {
  const summary = (await client().xpending(stream, STREAM_CONSUMER_GROUP)) as [number, ...unknown[]]
  return summary[0]
}

const t = suite('stream registrations (standalone)')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.gearbox = await Gearbox.create({ redis: ctx.redis.url, workers: 2 })
  ctx.client = new Redis(ctx.redis.port, '127.0.0.1', { lazyConnect: false })
})

t.after(async () => {
  ctx.client?.disconnect()
  await ctx.gearbox?.close()
  await ctx.redis?.stop()
})

t.before.each(async () => {
  await Promise.all(gearbox().registrations.list().map((r) => gearbox().registrations.unregister(r.id)))
  await client().flushall()
})

t('register() checks the stream options (RedisGears texts, then gearbox’s own)', async () => {
  const cases: [string, string][] = [
    [`GB('StreamReader').register('s', { fromId: 5 })`, 'fromId argument must be a string'],
    [`GB('StreamReader').register('s', { deadLetter: 5 })`, 'deadLetter argument must be a string (a stream name)'],
    [`GB('StreamReader').register('s', { claimIdleMs: 'x' })`, 'claimIdleMs argument must be a number'],
    [`GB('StreamReader').register('s', { claimIdleMs: 0 })`, 'claimIdleMs argument must be a number of milliseconds ≥ 1'],
    [`GB('StreamReader').register('s', { batch: 'x' })`, 'batch argument must be a number'],
  ]
  for (const [source, text] of cases) {
    const error = await rejection(gearbox().execute(source))
    assert.ok(error.message.includes(text), `${source}: ${error.message}`)
  }
  assert.is(gearbox().registrations.list().length, 0)
})

t('entries already there and new ones: records as RedisGears gives them, acknowledged and trimmed', async () => {
  const first = await client().xadd('orders', '*', 'item', 'book', 'qty', '2')
  const id = await register(`GB('StreamReader').foreach((r) => execute('RPUSH', 'seen', JSON.stringify(r))).register('orders')`)
  const second = await client().xadd('orders', '*', 'item', 'pen', 'qty', '5')
  await until('both entries', async () => (await client().llen('seen')) === 2)
  const seen = (await client().lrange('seen', 0, -1)).map((s) => JSON.parse(s) as unknown)
  assert.equal(seen, [
    { key: 'orders', id: first, value: { item: 'book', qty: '2' } },
    { key: 'orders', id: second, value: { item: 'pen', qty: '5' } },
  ])
  // Acknowledged, then trimmed (trimStream defaults to true).
  await until('the trim', async () => (await client().xlen('orders')) === 0)
  assert.is(await pendingCount('orders'), 0)
  const groups = (await client().xinfo('GROUPS', 'orders')) as unknown[][]
  assert.is(groups.length, 1)
  assert.is(groups[0]![1], STREAM_CONSUMER_GROUP)
  const data = registration(id).RegistrationData
  assert.equal([data.numTriggered, data.numSuccess, data.numFailures, data.status], [2, 2, 0, 'OK'])
  assert.equal(data.args, ['batchSize', 1, 'durationMS', 0, 'stream', 'orders', 'trimStream', 1, 'onFailedPolicy', 'continue', 'retryInterval', 1])
  assert.ok(typeof data.lastEstimatedLagMS === 'number' && data.lastEstimatedLagMS >= 0)
  assert.ok(typeof data.avgEstimatedLagMS === 'number' && data.avgEstimatedLagMS >= 0)
  assert.equal(data.streams, ['orders'])
})

t('an exact stream name that does not exist yet: created with the group (MKSTREAM); fromId skips older entries', async () => {
  await register(`GB('StreamReader').foreach((r) => execute('RPUSH', 'seen', r.id)).register('fresh')`)
  assert.is(await client().type('fresh'), 'stream')
  const id = await client().xadd('fresh', '*', 'a', '1')
  await until('the entry', async () => (await client().llen('seen')) === 1)
  assert.equal(await client().lrange('seen', 0, -1), [id])

  const old = await client().xadd('later', '*', 'n', 'old')
  await register(`GB('StreamReader').foreach((r) => execute('RPUSH', 'later-seen', r.id)).register('later', { fromId: '${old}' })`)
  const next = await client().xadd('later', '*', 'n', 'new')
  await until('the new entry', async () => (await client().llen('later-seen')) === 1)
  assert.equal(await client().lrange('later-seen', 0, -1), [next])
})

t('trimStream false: entries acknowledged and kept', async () => {
  await register(`GB('StreamReader').foreach((r) => execute('INCR', 'count')).register('kept', { trimStream: false })`)
  for (let i = 0; i < 3; i++) await client().xadd('kept', '*', 'i', String(i))
  await until('three entries', async () => (await client().get('count')) === '3')
  await until('acknowledged', async () => (await pendingCount('kept')) === 0)
  assert.is(await client().xlen('kept'), 3)
})

/** A flow that records the size of each execution's batch. */
const BATCH_SIZES = `GB('StreamReader').accumulate((n, r) => (n ?? 0) + 1).foreach((n) => execute('RPUSH', 'sizes', n))`

t('batch: executions get `batch` entries; a partial batch waits (duration 0) and is held pending', async () => {
  await register(`${BATCH_SIZES}.register('b', { batch: 3 })`)
  for (let i = 0; i < 7; i++) await client().xadd('b', '*', 'i', String(i))
  await until('two batches', async () => (await client().llen('sizes')) === 2)
  assert.equal(await client().lrange('sizes', 0, -1), ['3', '3'])
  // The seventh entry was delivered and waits for its batch: pending, not acknowledged.
  await until('the held entry', async () => (await pendingCount('b')) === 1)
  for (let i = 7; i < 9; i++) await client().xadd('b', '*', 'i', String(i))
  await until('the third batch', async () => (await client().llen('sizes')) === 3)
  assert.equal(await client().lrange('sizes', 0, -1), ['3', '3', '3'])
  await until('all acknowledged', async () => (await pendingCount('b')) === 0)
})

t('duration: a partial batch runs once `duration` ms passed', async () => {
  await register(`${BATCH_SIZES}.register('d', { batch: 100, duration: 200 })`)
  const pipeline = client().pipeline()
  for (let i = 0; i < 5; i++) pipeline.xadd('d', '*', 'i', String(i))
  await pipeline.exec()
  await until('one partial batch', async () => (await client().llen('sizes')) >= 1)
  const sizes = (await client().lrange('sizes', 0, -1)).map(Number)
  assert.is(sizes.reduce((a, b) => a + b, 0), 5)
  assert.ok(sizes.every((n) => n <= 5))
  await until('acknowledged', async () => (await pendingCount('d')) === 0)
})

const FAILING_ON_BAD = `GB('StreamReader').foreach((r) => { if (r.value.bad) throw new Error('bad entry ' + r.value.bad); execute('RPUSH', 'good', r.value.n) })`

t('onFailedPolicy continue with a dead-letter stream: the failed entry is moved there with the error, the rest goes on', async () => {
  const id = await register(`${FAILING_ON_BAD}.register('c', { deadLetter: 'c:dead' })`)
  await client().xadd('c', '*', 'n', '1')
  const badId = await client().xadd('c', '*', 'bad', 'x', 'n', '2')
  await client().xadd('c', '*', 'n', '3')
  await until('the good entries', async () => (await client().llen('good')) === 2)
  assert.equal(await client().lrange('good', 0, -1), ['1', '3'])
  await until('the dead letter', async () => (await client().xlen('c:dead')) === 1)
  const [letter] = await client().xrange('c:dead', '-', '+')
  const fields = letter![1]
  const dead: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) dead[fields[i]!] = fields[i + 1]!
  assert.is(dead['gearbox:stream'], 'c')
  assert.is(dead['gearbox:id'], badId)
  assert.ok(dead['gearbox:error']!.includes('bad entry x'), dead['gearbox:error'])
  assert.is(dead['gearbox:registration'], id)
  assert.equal([dead['bad'], dead['n']], ['x', '2'])
  await until('all acknowledged', async () => (await pendingCount('c')) === 0)
  const data = registration(id).RegistrationData
  assert.equal([data.numSuccess, data.numFailures, data.numDeadLettered], [2, 1, 1])
  assert.ok(data.lastError?.includes('bad entry x'), String(data.lastError))
})

/** Fails while the key `fail` exists. */
const FAILING_WHILE_FLAG = `GB('StreamReader').foreach((r) => { if (execute('EXISTS', 'fail') === 1) throw new Error('flagged'); execute('RPUSH', 'done', r.id) })`

t('onFailedPolicy abort: status ABORTED, the entry stays pending; unpause reads it again', async () => {
  await client().set('fail', '1')
  const id = await register(`${FAILING_WHILE_FLAG}.register('a', { onFailedPolicy: 'Abort' })`)
  const entry = await client().xadd('a', '*', 'n', '1')
  await until('aborted', () => registration(id).RegistrationData.status === 'ABORTED')
  assert.is(await pendingCount('a'), 1)
  assert.equal(registration(id).RegistrationData.args.slice(8, 10), ['onFailedPolicy', 'abort'])
  const later = await client().xadd('a', '*', 'n', '2')
  await client().del('fail')
  await gearbox().registrations.unpause(id)
  await until('both entries after unpause', async () => (await client().llen('done')) === 2)
  assert.equal(await client().lrange('done', 0, -1), [entry, later])
  await until('acknowledged', async () => (await pendingCount('a')) === 0)
  assert.is(registration(id).RegistrationData.status, 'OK')
})

t('onFailedPolicy retry: the batch runs again every onFailedRetryInterval seconds until it succeeds', async () => {
  await client().set('fail', '1')
  const id = await register(`${FAILING_WHILE_FLAG}.register('r', { onFailedPolicy: 'retry', onFailedRetryInterval: 0.05 })`)
  const entry = await client().xadd('r', '*', 'n', '1')
  await until('three failed attempts', () => registration(id).RegistrationData.numFailures >= 3)
  assert.is(await pendingCount('r'), 1)
  assert.is(await client().llen('done'), 0)
  await client().del('fail')
  await until('the success', async () => (await client().llen('done')) === 1)
  assert.equal(await client().lrange('done', 0, -1), [entry])
  await until('acknowledged', async () => (await pendingCount('r')) === 0)
  assert.is(registration(id).RegistrationData.numSuccess, 1)
})

t('pause and unpause: no reads while paused; then every entry; other readers refuse, unknown ids too', async () => {
  const id = await register(`GB('StreamReader').foreach((r) => execute('INCR', 'count')).register('p')`)
  await client().xadd('p', '*', 'n', '0')
  await until('the first entry', async () => (await client().get('count')) === '1')
  await gearbox().registrations.pause(id)
  assert.is(registration(id).RegistrationData.status, 'PAUSED')
  for (let i = 1; i <= 3; i++) await client().xadd('p', '*', 'n', String(i))
  // Longer than a read blocks: a paused registration would have read by then.
  await sleep(STREAM_BLOCK_MS + 500)
  assert.is(await client().get('count'), '1')
  assert.is(await client().xlen('p'), 3)
  await gearbox().registrations.unpause(id)
  await until('the entries added while paused', async () => (await client().get('count')) === '4')

  const keys = await register(`GB().foreach(() => {}).register('k:*')`)
  const notStream = await rejection(gearbox().registrations.pause(keys))
  assert.is(notStream.code, 'ERR_GEARBOX_REGISTRATION_PAUSE')
  assert.is(notStream.message, 'Reader KeysReader does not support pause')
  const unknown = await rejection(gearbox().registrations.unpause('nope'))
  assert.is(unknown.code, 'ERR_GEARBOX_REGISTRATION_NOT_FOUND')
  assert.match(unknown.message, /^Execution nope does not exists on shard /)
})

t('a PAUSE error (flat_error) pauses the registration; the batch runs again after unpause', async () => {
  await client().set('fail', '1')
  const id = await register(
    `GB('StreamReader').foreach((r) => { if (execute('EXISTS', 'fail') === 1) flat_error('PAUSE: waiting for the flag'); execute('RPUSH', 'done', r.id) }).register('pe')`,
  )
  const entry = await client().xadd('pe', '*', 'n', '1')
  await until('paused', () => registration(id).RegistrationData.status === 'PAUSED')
  assert.is(registration(id).RegistrationData.lastError, 'PAUSE: waiting for the flag')
  await client().del('fail')
  await gearbox().registrations.unpause(id)
  await until('the entry', async () => (await client().llen('done')) === 1)
  assert.equal(await client().lrange('done', 0, -1), [entry])
})

t('RG.PAUSEREGISTRATIONS / RG.UNPAUSEREGISTRATIONS / RG.UNREGISTER through gearbox serve', async () => {
  const id = await register(`GB('StreamReader').foreach((r) => execute('INCR', 'count')).register('srv')`)
  const server = await gearbox().serve()
  const rg = new Redis(server.address.port, server.address.host, { maxRetriesPerRequest: 2 })
  try {
    assert.is(await rg.call('RG.PAUSEREGISTRATIONS', id), 'OK')
    assert.is(registration(id).RegistrationData.status, 'PAUSED')
    assert.is(await rg.call('RG.UNPAUSEREGISTRATIONS', id), 'OK')
    assert.is(registration(id).RegistrationData.status, 'OK')
    const noId = await rejection(rg.call('RG.PAUSEREGISTRATIONS'))
    assert.is(noId.message, 'ERR no registration to pause')
    const dump = (await rg.call('RG.DUMPREGISTRATIONS')) as unknown[][]
    const data = dump[0]![7] as unknown[]
    const labels = data.filter((_, i) => i % 2 === 0)
    assert.ok(labels.indexOf('lastEstimatedLagMS') >= 0 && labels.indexOf('lastEstimatedLagMS') < labels.indexOf('lastError'), String(labels))
    // Where RedisGears' tests read a stream registration's status: [7][25].
    assert.equal([data[24], data[25]], ['status', 'OK'])
    assert.is(await rg.call('RG.UNREGISTER', id, 'abortpending'), 'OK')
    assert.is(gearbox().registrations.list().length, 0)
  } finally {
    rg.disconnect()
    await server.close()
  }
})

t('unregister with abortPending: the running execution is aborted and its entry left pending; without it, it finishes', async () => {
  const slow = `GB('StreamReader').foreach((r) => { execute('SET', 'started', r.id); const end = Date.now() + 3000; while (Date.now() < end) {} execute('SET', 'finished', r.id) })`
  const aborted = await register(`${slow}.register('ap')`, { cpuMs: 20_000, wallMs: 20_000 })
  await client().xadd('ap', '*', 'n', '1')
  await until('the slow execution', async () => (await client().exists('started')) === 1)
  await gearbox().registrations.unregister(aborted, { abortPending: true })
  assert.is(await client().exists('finished'), 0)
  assert.is(await pendingCount('ap'), 1)

  await client().del('started')
  const finishing = await register(`${slow}.register('fin')`, { cpuMs: 20_000, wallMs: 20_000 })
  const entry = await client().xadd('fin', '*', 'n', '1')
  await until('the slow execution', async () => (await client().exists('started')) === 1)
  await gearbox().registrations.unregister(finishing)
  assert.is(await client().get('finished'), entry)
  assert.is(await pendingCount('fin'), 0)
})

t('streams created after the registration are picked up: by keyspace event, and by the periodic scan without events', async () => {
  const id = await register(`GB('StreamReader').foreach((r) => execute('RPUSH', 'seen', r.key)).register('new:*')`)
  await client().xadd('new:1', '*', 'n', '1')
  await until('the new stream', async () => (await client().llen('seen')) === 1)
  // No keyspace events any more: only the scan can find the next stream.
  await client().config('SET', 'notify-keyspace-events', '')
  await client().xadd('new:2', '*', 'n', '1')
  await until('the stream found by the scan', async () => (await client().llen('seen')) === 2, 20_000)
  assert.equal((await client().lrange('seen', 0, -1)).sort(), ['new:1', 'new:2'])
  assert.equal([...registration(id).RegistrationData.streams!].sort(), ['new:1', 'new:2'])
  await client().config('SET', 'notify-keyspace-events', 'KEA')
})

t('entries a dead consumer left pending are taken over after claimIdleMs (XAUTOCLAIM)', async () => {
  await client().xgroup('CREATE', 'claim', STREAM_CONSUMER_GROUP, '0', 'MKSTREAM')
  const ids: string[] = []
  for (let i = 0; i < 4; i++) ids.push((await client().xadd('claim', '*', 'n', String(i)))!)
  // A consumer reads them and dies without acknowledging.
  await client().xreadgroup('GROUP', STREAM_CONSUMER_GROUP, 'dead-host', 'COUNT', '10', 'STREAMS', 'claim', '>')
  assert.is(await pendingCount('claim'), 4)
  await register(`GB('StreamReader').foreach((r) => execute('RPUSH', 'seen', r.id)).register('claim', { claimIdleMs: 200, batch: 2 })`)
  await until('the taken-over entries', async () => (await client().llen('seen')) === 4)
  assert.equal((await client().lrange('seen', 0, -1)).sort(), [...ids].sort())
  await until('acknowledged', async () => (await pendingCount('claim')) === 0)
})

t("a stopped host's consumer leaves the group once its entries were taken over; other consumers stay", async () => {
  await client().xgroup('CREATE', 'sweep', STREAM_CONSUMER_GROUP, '0', 'MKSTREAM')
  for (let i = 0; i < 3; i++) await client().xadd('sweep', '*', 'n', String(i))
  // A gearbox host that read the entries and stopped, and a consumer of the user's own.
  await client().xreadgroup('GROUP', STREAM_CONSUMER_GROUP, 'gearbox-stopped-1', 'COUNT', '10', 'STREAMS', 'sweep', '>')
  await client().xgroup('CREATECONSUMER', 'sweep', STREAM_CONSUMER_GROUP, 'users-own')
  await register(`GB('StreamReader').foreach((r) => execute('RPUSH', 'swept', r.id)).register('sweep', { claimIdleMs: 200 })`)
  const names = async (): Promise<string[]> => ((await client().xinfo('CONSUMERS', 'sweep', STREAM_CONSUMER_GROUP)) as unknown[][]).map((c) => String(c[1]))
  await until('the stopped consumer removed', async () => !(await names()).includes('gearbox-stopped-1'))
  await until('every entry processed', async () => (await client().llen('swept')) === 3)
  const left = await names()
  assert.ok(left.includes('users-own'), `the user's consumer stays: ${left.join(', ')}`)
  assert.ok(left.some((n) => n.startsWith('gearbox-') && n !== 'gearbox-stopped-1'), `this host's consumer stays: ${left.join(', ')}`)
  // The last batch is acknowledged behind its execution.
  await until('every entry acknowledged', async () => (await pendingCount('sweep')) === 0)
})

t('a handler that throws on every entry: counters and lastError show it; another registration on other streams goes on', async () => {
  const bad = await register(`GB('StreamReader').foreach(() => { throw new Error('always') }).register('bad:*')`)
  const loop = await register(`GB('StreamReader').foreach(() => { for (;;) {} }).register('loop:*')`, { cpuMs: 50 })
  await register(`GB('StreamReader').foreach((r) => execute('INCR', 'good')).register('good:*')`)
  for (let i = 0; i < 3; i++) {
    await client().xadd('bad:s', '*', 'n', String(i))
    await client().xadd('good:s', '*', 'n', String(i))
  }
  await client().xadd('loop:s', '*', 'n', '1')
  await until('the failures', () => registration(bad).RegistrationData.numFailures >= 3 && registration(loop).RegistrationData.numFailures >= 1)
  await until('the good registration', async () => (await client().get('good')) === '3')
  const badData = registration(bad).RegistrationData
  assert.equal([badData.numTriggered, badData.numSuccess, badData.status], [3, 0, 'OK'])
  assert.ok(badData.lastError?.includes('always'), String(badData.lastError))
  assert.ok(registration(loop).RegistrationData.lastError?.startsWith('ERR_GEARBOX_CPU_LIMIT'), String(registration(loop).RegistrationData.lastError))
  // continue: the failed entries were acknowledged and trimmed; Redis answers.
  await until('acknowledged', async () => (await pendingCount('bad:s')) === 0)
  assert.is(await client().ping(), 'PONG')
  // The failing registration still reads.
  await client().xadd('bad:s', '*', 'n', 'again')
  await until('the next failure', () => registration(bad).RegistrationData.numFailures >= 4)
})

t('close() stops the readers promptly: no blocked read outlives it', async () => {
  const other = await Gearbox.create({ redis: ctx.redis!.url, workers: 1, persist: false })
  try {
    await other.execute(`GB('StreamReader').foreach(() => {}).register('closing')`)
    await until('a blocked read', async () => String(await client().client('LIST')).includes('cmd=xreadgroup'))
  } finally {
    await other.close()
  }
  await until('no blocked read left', async () => !String(await client().client('LIST')).includes('cmd=xreadgroup'))
})

t("README's stream processor: per-customer totals, failures to the dead-letter stream", async () => {
  await register(`GB('StreamReader')
  .foreach((r) => execute('HINCRBYFLOAT', 'totals:' + r.key, r.value.customer, r.value.amount))
  .register('orders:*', { batch: 50, duration: 100, onFailedPolicy: 'continue', deadLetter: 'orders-dead' })`)
  await client().xadd('orders:eu', '*', 'customer', 'ann', 'amount', '2.5')
  await client().xadd('orders:eu', '*', 'customer', 'bob', 'amount', '1')
  await client().xadd('orders:eu', '*', 'customer', 'ann', 'amount', '4')
  await until('the totals', async () => (await client().hget('totals:orders:eu', 'ann')) === '6.5' && (await client().hget('totals:orders:eu', 'bob')) === '1')
  await client().xadd('orders:us', '*', 'customer', 'cy', 'amount', 'lots')
  await until('the dead letter', async () => (await client().xlen('orders-dead')) === 1)
})

t('two hosts on one stream share its entries through the group: each entry processed once', async () => {
  const second = await Gearbox.create({ redis: ctx.redis!.url, workers: 1, logger: { log: () => undefined } })
  try {
    const source = `GB('StreamReader').foreach((r) => execute('HINCRBY', 'seen', r.id, 1)).register('shared', { batch: 10 })`
    const id = await register(source)
    // The second host gets the registration from the store (the same id), and reads as its own consumer.
    await until('the registration on the second host', () => second.registrations.list().some((r) => r.id === id))
    const ids: string[] = []
    for (let round = 0; round < 10; round++) {
      const pipeline = client().pipeline()
      for (let i = 0; i < 50; i++) pipeline.xadd('shared', '*', 'n', String(i))
      for (const [, id] of (await pipeline.exec()) ?? []) ids.push(String(id))
    }
    await until('every entry', async () => (await client().hlen('seen')) === ids.length)
    const seen = await client().hgetall('seen')
    assert.equal(Object.keys(seen).sort(), [...ids].sort())
    assert.ok(Object.values(seen).every((count) => count === '1'), 'each entry once')
    const consumers = (await client().xinfo('CONSUMERS', 'shared', STREAM_CONSUMER_GROUP)) as unknown[][]
    assert.is(consumers.length, 2)
  } finally {
    await second.close()
  }
})

t('a batch running longer than claimIdleMs stays with its host: another host does not take it over', async () => {
  const second = await Gearbox.create({ redis: ctx.redis!.url, workers: 1, logger: { log: () => undefined } })
  try {
    const source = `GB('StreamReader').foreach((r) => { const end = Date.now() + 1500; while (Date.now() < end) {} execute('HINCRBY', 'runs', r.id, 1) }).register('long', { claimIdleMs: 300 })`
    const registered = await register(source)
    await until('the registration on the second host', () => second.registrations.list().some((r) => r.id === registered))
    const id = await client().xadd('long', '*', 'n', '1')
    await until('the run', async () => (await client().hget('runs', id!)) !== null)
    await until('acknowledged', async () => (await pendingCount('long')) === 0)
    // Longer than a second run would take: a host that took the entry over would have counted it again.
    await sleep(2000)
    assert.equal(await client().hgetall('runs'), { [id!]: '1' })
  } finally {
    await second.close()
  }
})

t.run()
