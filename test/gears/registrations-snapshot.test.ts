/**
 * A registration's executions start from the interpreter its session's top level left (saved per
 * worker), without running the top level again; KeysReader events queued together run as one
 * execution (key-lanes.ts) with per-key order, per-event counters and per-record errors.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { MAX_EVENTS_PER_EXECUTION } from '../../host/gears/key-lanes.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { poller } from '../helpers/until.js'

const until = poller(20_000)

const ctx: { redis?: TestRedis; saved?: Gearbox; fresh?: Gearbox; client?: Redis } = {}
const t = suite('registrations: executions start from the saved realm')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.saved = await Gearbox.create({ redis: ctx.redis.url, workers: 2 })
  ctx.fresh = await Gearbox.create({ redis: ctx.redis.url, workers: 2, savedRealms: false })
  ctx.client = new Redis(ctx.redis.port, '127.0.0.1')
})

t.after(async () => {
  ctx.client?.disconnect()
  await ctx.saved?.close()
  await ctx.fresh?.close()
  await ctx.redis?.stop()
})

t.before.each(async () => {
  for (const box of [ctx.saved!, ctx.fresh!]) for (const r of box.registrations.list()) box.registrations.unregister(r.id)
  await ctx.client!.flushall()
})

// The top level draws a random token (Math.random is reseeded for every interpreter) and counts
// in a global; the trigger reports both.
const PROBE = (name: string): string => `
execute('INCR', 'toplevel:${name}')
const token = String(Math.random())
let calls = 0
function probe() { calls++; return token + '|' + calls }
GB('CommandReader').map(() => probe()).register({ trigger: '${name}' })`

t('the top level runs once per worker, not per execution; each execution starts from its end state', async () => {
  const box = ctx.saved!
  assert.is(await box.execute(PROBE('probe')), 'OK')
  const replies: string[] = []
  for (let i = 0; i < 30; i++) replies.push(String((await box.trigger('probe'))[0]))
  const tokens = new Set(replies.map((r) => r.split('|')[0]))
  // Two workers: at most two saved realms, so at most two tokens across 30 executions.
  assert.ok(tokens.size <= 2, `tokens seen: ${[...tokens].join(', ')}`)
  // No execution sees what another one left: the counter is always 1.
  assert.equal(new Set(replies.map((r) => r.split('|')[1])), new Set(['1']))
  // And the top level's side effect happened once, in the session's first run.
  assert.is(await ctx.client!.get('toplevel:probe'), '1')
})

t('with savedRealms: false every execution evaluates the top level again (replayed: no side effect)', async () => {
  const box = ctx.fresh!
  assert.is(await box.execute(PROBE('probe2')), 'OK')
  const replies: string[] = []
  for (let i = 0; i < 30; i++) replies.push(String((await box.trigger('probe2'))[0]))
  const tokens = new Set(replies.map((r) => r.split('|')[0]))
  assert.ok(tokens.size > 2, `tokens seen: ${tokens.size}`)
  assert.equal(new Set(replies.map((r) => r.split('|')[1])), new Set(['1']))
  assert.is(await ctx.client!.get('toplevel:probe2'), '1')
})

t('a top level that awaited runCoroutine work and defined closures serves every execution', async () => {
  const box = ctx.saved!
  const script = `
let table = null
runCoroutine(async () => { await new Promise((resolve) => resolve()); table = { a: 'alpha', b: 'beta' } })
const lookup = (k) => table[k] ?? 'none'
GB('CommandReader').map((r) => lookup(r[1])).register({ trigger: 'lookup' })`
  assert.is(await box.execute(script), 'OK')
  for (const [key, want] of [['a', 'alpha'], ['b', 'beta'], ['c', 'none'], ['a', 'alpha']] as const) {
    assert.equal(await box.trigger('lookup', key), [want])
  }
})

t('KeysReader: a burst of events on one key runs in order, batched, every event counted', async () => {
  const box = ctx.saved!
  assert.is(await box.execute(`GB().foreach((r) => execute('RPUSH', 'seen', r.value)).register('burst:key', { eventTypes: ['set'] })`), 'OK')
  const N = 3 * MAX_EVENTS_PER_EXECUTION
  const pipeline = ctx.client!.pipeline()
  for (let i = 0; i < N; i++) pipeline.set('burst:key', String(i))
  await pipeline.exec()
  await until('every event', async () => {
    const d = box.registrations.list()[0]!.RegistrationData
    return d.numSuccess + d.numFailures >= N
  })
  const seen = await ctx.client!.lrange('seen', 0, -1)
  // Each record is read when its event arrives; writes that came faster than the read may show a
  // later value, but never an earlier one than the previous record's.
  const values = seen.map(Number)
  for (let i = 1; i < values.length; i++) assert.ok(values[i]! >= values[i - 1]!, `order at ${i}: ${values[i - 1]} then ${values[i]}`)
  assert.is(values[values.length - 1], N - 1)
  const data = box.registrations.list()[0]!.RegistrationData
  assert.is(data.numTriggered, N)
  assert.is(data.numSuccess, N)
  assert.is(data.numFailures, 0)
})

t('KeysReader: a record that fails in a batch fails alone; the others succeed', async () => {
  const box = ctx.saved!
  await box.execute(
    `GB().foreach((r) => { if (Number(r.key.split(':')[1]) % 2 === 1) throw new Error('odd ' + r.key); execute('INCR', 'even') }).register('half:*', { readValue: false })`,
  )
  const N = 200
  const pipeline = ctx.client!.pipeline()
  for (let i = 0; i < N; i++) pipeline.set(`half:${i}`, 'x')
  await pipeline.exec()
  await until('every event', () => {
    const d = box.registrations.list()[0]!.RegistrationData
    return d.numSuccess + d.numFailures >= N
  })
  const data = box.registrations.list()[0]!.RegistrationData
  assert.is(data.numTriggered, N)
  assert.is(data.numFailures, N / 2)
  assert.is(data.numSuccess, N / 2)
  assert.match(String(data.lastError), /odd half:\d*[13579]$/)
  assert.is(await ctx.client!.get('even'), String(N / 2))
})

t('KeysReader: a batch that hits a limit fails each of its events; the registration goes on', async () => {
  const box = ctx.saved!
  // Every record loops: each execution ends with the CPU limit whatever its batch size.
  await box.execute(`GB().foreach((r) => { if (r.key !== 'loop:ok') while (true) {} ; execute('SET', 'ok', '1') }).register('loop:*', { readValue: false })`)
  for (let i = 0; i < 3; i++) await ctx.client!.set(`loop:${i}`, 'x')
  await until('the looping events failed', () => box.registrations.list()[0]!.RegistrationData.numFailures >= 3, 60_000)
  await ctx.client!.set('loop:ok', 'x')
  await until('the next event ran', async () => (await ctx.client!.get('ok')) === '1' && box.registrations.list()[0]!.RegistrationData.numSuccess === 1, 30_000)
  const data = box.registrations.list()[0]!.RegistrationData
  assert.is(data.numFailures, 3)
  assert.match(String(data.lastError), 'ERR_GEARBOX_CPU_LIMIT')
  assert.is(data.numSuccess, 1)
})

t.run()
