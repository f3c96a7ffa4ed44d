/**
 * Executions that wait (issue 8 §7): an execution awaiting a future or a runCoroutine delay holds
 * no worker thread. 1,000 executions parked at once on a 2-worker pool all settle, each with its
 * own result; while they wait, other executions run; a parked execution over its wall limit
 * fails alone.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'

const ctx: { redis?: TestRedis; gearbox?: Gearbox; client?: Redis } = {}
const t = suite('parked executions')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.gearbox = await Gearbox.create({ redis: ctx.redis.url, workers: 2 })
  ctx.client = new Redis(ctx.redis.port, '127.0.0.1')
})

t.after(async () => {
  ctx.client?.disconnect()
  await ctx.gearbox?.close()
  await ctx.redis?.stop()
})

/** An execution that parks: a future resolved by a coroutine after a delay, awaited by another. */
const waiting = (i: number, delaySeconds: number): string => `
const f = createFuture()
runCoroutine(async () => { f.resolve('v${i}') }, null, ${delaySeconds})
runCoroutine(async () => { const v = await f; execute('HSET', 'parked', '${i}', v) })`

t('1,000 executions parked on futures at once on 2 workers all settle, each with its own result', async () => {
  const box = ctx.gearbox!
  const N = 1000
  // Each waits 3 s: held workers would need N * 3 s / 2 = 25 minutes, far past the wall limit.
  const all = Promise.allSettled(Array.from({ length: N }, (_, i) => box.execute(waiting(i, 3))))
  // While they wait, other executions run on the same two workers.
  const other = await box.execute(`execute('SET', 'meanwhile', 'ran')`)
  assert.is(other, 'OK')
  assert.is(await ctx.client!.get('meanwhile'), 'ran')
  const settled = await all
  const failed = settled.filter((s) => s.status === 'rejected')
  assert.is(failed.length, 0, String((failed[0] as PromiseRejectedResult | undefined)?.reason))
  const hash = await ctx.client!.hgetall('parked')
  assert.is(Object.keys(hash).length, N)
  for (let i = 0; i < N; i++) assert.is(hash[String(i)], `v${i}`)
})

t('a parked execution over its wall limit fails alone; the others settle', async () => {
  const box = ctx.gearbox!
  await ctx.client!.del('parked')
  const slow = box.execute(waiting(0, 5), { limits: { wallMs: 1000 } }).then(
    () => 'resolved',
    (error: unknown) => (error as { code?: string }).code,
  )
  const fine = await Promise.all(Array.from({ length: 20 }, (_, i) => box.execute(waiting(i + 1, 0.2))))
  assert.equal(new Set(fine), new Set(['OK']))
  assert.is(await slow, 'ERR_GEARBOX_WALL_LIMIT')
  assert.is(await ctx.client!.hlen('parked'), 20)
})

t.run()
