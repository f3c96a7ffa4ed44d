/**
 * An event storm (issue 8 §8): a client writes keys under a registered prefix as fast as
 * pipelines go (bounded: at most STORM_MS and STORM_KEYS), far faster than the registration's
 * executions. The registration's queue holds at most `registrationQueueSize` events: the rest are
 * dropped and counted (numDropped in list()), host memory stays bounded, every event is either
 * executed or counted as dropped, and the registration serves events again after the storm.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { poller } from '../helpers/until.js'

const STORM_MS = 3000
const STORM_KEYS = 400_000
const QUEUE_SIZE = 2000
/** Host RSS the storm may add: the queue's bound plus what Node's allocator keeps, generously. */
const RSS_GROWTH_BOUND_BYTES = 300 * 1024 * 1024

const until = poller(10_000)

const ctx: { redis?: TestRedis; gearbox?: Gearbox; client?: Redis } = {}
const t = suite('registrations: an event storm')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.gearbox = await Gearbox.create({ redis: ctx.redis.url, workers: 2, registrationQueueSize: QUEUE_SIZE })
  ctx.client = new Redis(ctx.redis.port, '127.0.0.1')
})

t.after(async () => {
  ctx.client?.disconnect()
  await ctx.gearbox?.close()
  await ctx.redis?.stop()
})

t('a storm past the queue: bounded memory, every event executed or counted as dropped', async () => {
  const box = ctx.gearbox!
  const client = ctx.client!
  assert.is(await box.execute(`GB().foreach(() => execute('INCR', 'storm:ran')).register('storm:*', { readValue: false, eventTypes: ['set'] })`), 'OK')
  const data = () => box.registrations.list()[0]!.RegistrationData
  global.gc?.()
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 50)
  let written = 0
  const started = Date.now()
  try {
    // Pipelines of 1000 SETs, two in flight: as fast as this loopback connection takes them.
    while (Date.now() - started < STORM_MS && written < STORM_KEYS) {
      const pipes = [client.pipeline(), client.pipeline()]
      for (const pipe of pipes) for (let i = 0; i < 1000; i++) pipe.set(`storm:${written++}`, 'v')
      await Promise.all(pipes.map((p) => p.exec()))
    }
    const ms = Date.now() - started
    // Every event either ran or was dropped (the registration's executions catch up within the queue bound).
    await until(
      'the queue drained',
      () => {
        const d = data()
        return d.numSuccess + d.numFailures + d.numDropped >= written || d.numSubscriberGaps > 0
      },
      120_000,
    )
    await until('the counters settled', async () => Number(await client.get('storm:ran')) === data().numSuccess, 30_000)
    const d = data()
    peak = Math.max(peak, process.memoryUsage().rss)
    assert.ok(written >= 10_000, `the storm wrote ${written} keys in ${ms} ms`)
    assert.ok(d.numDropped > 0, 'the storm overflowed the queue')
    assert.is(d.numFailures, 0, String(d.lastError))
    if (d.numSubscriberGaps === 0) {
      // Nothing lost by pub/sub: each write is an executed event or a counted drop.
      assert.is(d.numTriggered + d.numDropped, written)
    } else {
      // Redis dropped the subscriber (client-output-buffer-limit pubsub): what it lost is a gap, not a drop.
      assert.ok(d.numTriggered + d.numDropped < written)
    }
    assert.is(Number(await client.get('storm:ran')), d.numTriggered)
    assert.ok(peak - baseline < RSS_GROWTH_BOUND_BYTES, `RSS grew by ${((peak - baseline) / 1048576).toFixed(0)} MiB`)
  } finally {
    clearInterval(sampler)
  }
  // After the storm the registration serves events again.
  const before = data().numSuccess
  await client.set('storm:after', 'v')
  await until('the event after the storm', () => data().numSuccess === before + 1, 30_000)
})

t.run()
