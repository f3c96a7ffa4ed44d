/**
 * What a distributed run() holds in host memory is bounded: the initiator's top-level recording
 * (runtime/replay.ts caps) and the records moving between stages (limits.maxReplyBytes).
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { GuestError } from '../../host/errors.js'
import { createRedisBackend, type RedisBackend } from '../../host/redis/index.js'
import { TOP_LEVEL_RECORDING_MAX_CALLS } from '../../host/runtime/replay.js'
import { sharedCluster, type TestCluster } from '../helpers/redis.js'
import { GearsBox } from './support.js'

const KEYS = 300
const ctx: { cluster?: TestCluster; box?: GearsBox; backend?: RedisBackend } = {}
const box = (): GearsBox => ctx.box!

const t = suite('gears on a cluster: host memory caps')

t.before(async () => {
  ctx.cluster = await sharedCluster()
  await ctx.cluster.flushAll()
  ctx.backend = createRedisBackend({ cluster: ctx.cluster.urls })
  for (let i = 1; i <= KEYS; i++) await ctx.backend.call(['SET', `n:${i}`, String(i)])
  ctx.box = await GearsBox.create({ redis: { cluster: ctx.cluster.urls } })
})

t.after(async () => {
  await ctx.box?.close()
  await ctx.backend?.close()
  await ctx.cluster?.stop()
})

async function counter(key: string): Promise<string> {
  return new TextDecoder().decode((await ctx.backend!.call(['GET', key])) as Uint8Array)
}

t('a top level of a few host calls is replayed on every shard', async () => {
  const reply = await box().run(`for (let i = 0; i < 100; i++) execute('INCR', 'toplevel:small'); GB().count().run('n:*')`)
  assert.equal(reply, [[String(KEYS)], []])
  assert.is(await counter('toplevel:small'), '100')
})

t('a top level beyond TOP_LEVEL_RECORDING_MAX_CALLS: the distributed run fails with the coded error, the top level ran once', async () => {
  const calls = TOP_LEVEL_RECORDING_MAX_CALLS + 1
  const before = box().gearbox.executions.list().length
  const error = await box().failure(`for (let i = 0; i < ${calls}; i++) execute('INCR', 'toplevel:big'); GB().count().run('n:*')`)
  assert.instance(error, GuestError)
  assert.is((error as GuestError).guestCode, 'ERR_GEARBOX_TOP_LEVEL_RECORDING_LIMIT')
  assert.match(error.message, `more than ${TOP_LEVEL_RECORDING_MAX_CALLS} host calls (TOP_LEVEL_RECORDING_MAX_CALLS)`)
  assert.match(error.message, 'Make fewer host calls at the top level: move them into the steps of the flow')
  assert.is(await counter('toplevel:big'), String(calls))
  assert.is(box().gearbox.executions.list().length, before, 'no execution was started')
  // Run in place (no re-evaluation), the same top level is fine.
  const [results, errors] = await box().run(`for (let i = 0; i < ${calls}; i++) execute('INCR', 'toplevel:local'); GB().count().run('n:*', {mode: 'async_local'})`)
  assert.equal(errors, [])
  assert.ok(Number(results[0]) > 0 && Number(results[0]) < KEYS, `async_local counted ${String(results[0])}`)
})

t('records moving between stages are capped by limits.maxReplyBytes, like the results', async () => {
  const limits = { maxReplyBytes: 64 * 1024 }
  // ~300 records of ~110 characters cross the repartition (~35 KB): under the cap.
  const small = await box().gearbox.execute("GB().map(r => r.key + 'y'.repeat(100)).repartition(r => r).count().run('n:*')", { limits })
  assert.equal(small, [[String(KEYS)], []])
  // ~300 KB would cross it; the final result would be one small number.
  const message =
    'the records moving between stages exceeded limits.maxReplyBytes (65536 bytes): raise it, or reduce the records ' +
    'before collect/repartition/groupby (filter, smaller records, localgroupby, aggregate)'
  for (const flow of [
    "GB().map(r => r.key + 'y'.repeat(1000)).repartition(r => r).count().run('n:*')",
    "GB().map(r => 'y'.repeat(1000)).collect().count().run('n:*')",
    "GB().map(r => ({ k: r.key, big: 'y'.repeat(1000) })).groupby(r => r.k, () => 1).count().run('n:*')",
  ]) {
    assert.equal(await box().gearbox.execute(flow, { limits }), [[], [message]], flow)
  }
  // The default cap lets the same flow through.
  assert.equal(await box().run("GB().map(r => r.key + 'y'.repeat(1000)).repartition(r => r).count().run('n:*')"), [[String(KEYS)], []])
})

t.run()
