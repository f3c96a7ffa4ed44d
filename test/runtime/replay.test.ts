/**
 * Top-level record/replay (host/runtime/replay.ts): a re-evaluation of a session's script gets the
 * first run's replies without touching Redis or the logger, until the top level is done.
 */
import { Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { GuestError } from '../../host/errors.js'
import { scriptJob } from '../../host/gears/session.js'
import { nodePlatform } from '../../host/platform/node.js'
import { createRedisBackend } from '../../host/redis/index.js'
import type { RedisBackend } from '../../host/redis/types.js'
import { createHostHandler } from '../../host/runtime/handler.js'
import { TopLevelRecording, type TopLevelMode } from '../../host/runtime/replay.js'
import { DEFAULT_LIMITS } from '../../host/sandbox/limits.js'
import { SandboxPool } from '../../host/sandbox/pool.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection } from './guest-probe.js'

const ctx: { redis?: TestRedis; pool?: SandboxPool; backend?: RedisBackend; client?: Redis } = {}
const client = (): Redis => ctx.client!

const t = suite('top-level replay')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.pool = await SandboxPool.create({ platform: nodePlatform(), workers: 1 })
  ctx.backend = createRedisBackend(ctx.redis.url)
  ctx.client = new Redis(ctx.redis.url, { protocol: 2 })
})

t.after(async () => {
  await ctx.pool?.close()
  await ctx.backend?.close()
  ctx.client?.disconnect()
  await ctx.redis?.stop()
})

/** Runs `source` with `topLevel`; `after` is evaluated once the top level is done (calls are live again). */
async function run(source: string, topLevel: TopLevelMode, after = 'JSON.stringify(observed)'): Promise<{ result: string; logged: string[] }> {
  const logged: string[] = []
  const handler = createHostHandler({
    backend: ctx.backend!,
    logger: { log: (_level, message) => void logged.push(message) },
    topLevel,
  })
  const job = { ...scriptJob(source, DEFAULT_LIMITS), entry: `Promise.resolve(__gearbox_main()).then(() => ${after})` }
  try {
    return { result: await ctx.pool!.start(job, handler).result, logged }
  } finally {
    await handler.dispose()
  }
}

const COUNTER = `globalThis.observed = [execute('INCR', 'r'), execute('INCR', 'r')]; log('top level ran')`

t('the first run records the top level; a re-evaluation replays it without Redis or the logger', async () => {
  const recording = new TopLevelRecording()
  const first = await run(COUNTER, { mode: 'record', recording })
  assert.equal(first, { result: '[1,2]', logged: ['top level ran'] })
  assert.ok(recording.complete)
  assert.equal(recording.calls.map((c) => c.op), ['execute', 'execute', 'log'])

  const again = await run(COUNTER, { mode: 'replay', recording })
  assert.equal(again, { result: '[1,2]', logged: [] })
  assert.is(await client().get('r'), '2')
})

t('after toplevel.done calls are live again', async () => {
  await client().set('live', '10')
  const recording = new TopLevelRecording()
  const source = `globalThis.observed = execute('INCR', 'live')`
  await run(source, { mode: 'record', recording })
  const again = await run(source, { mode: 'replay', recording }, `JSON.stringify([observed, execute('INCR', 'live')])`)
  assert.is(again.result, '[11,12]')
  assert.is(await client().get('live'), '12')
})

t('identical calls get their replies in recorded order; concurrent coroutines may interleave differently', async () => {
  const recording = new TopLevelRecording()
  const source = `
    globalThis.observed = []
    runCoroutine(async () => observed.push('a' + execute('INCR', 'co:a')), null, 0.05)
    runCoroutine(async () => observed.push('b' + execute('INCR', 'co:b')), null, 0.01)
    observed.push('t' + execute('INCR', 'co:a'))`
  const first = await run(source, { mode: 'record', recording })
  assert.is(first.result, '["t1","b1","a2"]')
  // Replayed sleeps answer at once, so the coroutines may finish in another order: each call
  // still gets the reply recorded for it.
  const again = await run(source, { mode: 'replay', recording })
  assert.equal((JSON.parse(again.result) as string[]).sort(), ['a2', 'b1', 't1'])
  assert.equal(await client().mget('co:a', 'co:b'), ['2', '1'])
})

t('a call the first run did not make: GearsError naming the divergence', async () => {
  const recording = new TopLevelRecording()
  const source = `globalThis.observed = execute('SET', 'rand', Math.random())`
  await run(source, { mode: 'record', recording })
  const error = await rejection(() => run(source, { mode: 'replay', recording }))
  assert.instance(error, GuestError)
  assert.is((error as GuestError).guestName, 'GearsError')
  assert.match((error as GuestError).message, 'the top level made a host call its first run did not make (execute ["SET","rand","0.')
})

t('fewer calls than the first run: GearsError at the end of the top level', async () => {
  const recording = new TopLevelRecording()
  await run(COUNTER, { mode: 'record', recording })
  const error = await rejection(() => run(`globalThis.observed = [execute('INCR', 'r')]`, { mode: 'replay', recording }))
  assert.instance(error, GuestError)
  assert.match((error as GuestError).message, 'the top level finished without making 2 host call(s) its first run made')
})

t('a recording whose first run did not finish cannot be replayed', async () => {
  const recording = new TopLevelRecording()
  await rejection(() => run(`execute('INCR', 'r'); throw new Error('top level failed')`, { mode: 'record', recording }))
  assert.not.ok(recording.complete)
  const error = await rejection(async () => createHostHandler({ backend: ctx.backend!, topLevel: { mode: 'replay', recording } }))
  assert.match((error as Error).message, 'cannot replay a recording whose first run did not finish its top level')
})

t.run()
