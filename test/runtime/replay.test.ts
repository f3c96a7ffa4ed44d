/**
 * Top-level record/replay (host/runtime/replay.ts): a re-evaluation of a session's script gets the
 * first run's replies without touching Redis or the logger, until the top level is done.
 */
import { Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { GuestError, TopLevelRecordingLimitError } from '../../host/errors.js'
import { outcomeReply, parseOutcome, scriptJob } from '../../host/gears/session.js'
import { nodePlatform } from '../../host/platform/node.js'
import { createRedisBackend } from '../../host/redis/index.js'
import type { RedisBackend } from '../../host/redis/types.js'
import { createHostHandler } from '../../host/runtime/handler.js'
import {
  TOP_LEVEL_RECORDING_MAX_CALLS,
  TOP_LEVEL_RECORDING_MAX_CHARS,
  TopLevelRecording,
  type TopLevelMode,
} from '../../host/runtime/replay.js'
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
  const job = { ...scriptJob(source, DEFAULT_LIMITS), entry: { entry: 'eval', args: [`Promise.resolve(__gearbox_main()).then(() => ${after})`] } }
  try {
    return { result: await ctx.pool!.start(job, handler).result, logged }
  } finally {
    await handler.dispose()
  }
}

/** Runs `source` as a script (the prelude's entry) in record mode; its RG.PYEXECUTE reply. */
async function record(source: string, recording: TopLevelRecording): Promise<string> {
  const handler = createHostHandler({ backend: ctx.backend!, logger: { log: () => {} }, topLevel: { mode: 'record', recording } })
  try {
    const outcome = parseOutcome(await ctx.pool!.start(scriptJob(source, DEFAULT_LIMITS), handler).result)
    return String(outcomeReply(outcome))
  } finally {
    await handler.dispose()
  }
}

/** What replaying an overflowed recording throws. */
function replayFailure(recording: TopLevelRecording): TopLevelRecordingLimitError {
  try {
    createHostHandler({ backend: ctx.backend!, topLevel: { mode: 'replay', recording } })
  } catch (error) {
    assert.instance(error, TopLevelRecordingLimitError)
    return error as TopLevelRecordingLimitError
  }
  assert.unreachable('replaying an overflowed recording did not throw')
  throw new Error('unreachable')
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

t('a top level of exactly TOP_LEVEL_RECORDING_MAX_CALLS calls is kept whole', async () => {
  const recording = new TopLevelRecording()
  const reply = await record(`for (let i = 0; i < ${TOP_LEVEL_RECORDING_MAX_CALLS}; i++) execute('INCR', 'calls:fit')`, recording)
  assert.is(reply, 'OK')
  assert.is(recording.overflow, undefined)
  assert.is(recording.calls.length, TOP_LEVEL_RECORDING_MAX_CALLS)
})

t('a top level beyond TOP_LEVEL_RECORDING_MAX_CALLS runs on; its recording overflows, drops its calls, cannot be replayed', async () => {
  const recording = new TopLevelRecording()
  const calls = TOP_LEVEL_RECORDING_MAX_CALLS + 10
  const reply = await record(`for (let i = 0; i < ${calls}; i++) execute('INCR', 'calls:over'); log('done')`, recording)
  assert.is(reply, 'OK')
  assert.is(await client().get('calls:over'), String(calls))
  assert.ok(recording.complete)
  assert.is(recording.overflow, 'calls')
  assert.is(recording.calls.length, 0)
  const error = replayFailure(recording)
  assert.is(error.code, 'ERR_GEARBOX_TOP_LEVEL_RECORDING_LIMIT')
  assert.match(error.message, `more than ${TOP_LEVEL_RECORDING_MAX_CALLS} host calls (TOP_LEVEL_RECORDING_MAX_CALLS)`)
  assert.match(error.message, 'Make fewer host calls at the top level: move them into the steps of the flow')
})

t('a top level moving more than TOP_LEVEL_RECORDING_MAX_CHARS of text overflows its recording the same way', async () => {
  const recording = new TopLevelRecording()
  const valueChars = 1024 * 1024
  const calls = Math.ceil(TOP_LEVEL_RECORDING_MAX_CHARS / valueChars) + 1
  const reply = await record(`const v = 'x'.repeat(${valueChars}); for (let i = 0; i < ${calls}; i++) execute('SET', 'chars:over', v)`, recording)
  assert.is(reply, 'OK')
  assert.is(await client().strlen('chars:over'), valueChars)
  assert.is(recording.overflow, 'chars')
  assert.is(recording.calls.length, 0)
  assert.match(replayFailure(recording).message, `more than ${TOP_LEVEL_RECORDING_MAX_CHARS} characters of payload and reply text (TOP_LEVEL_RECORDING_MAX_CHARS)`)
})

t.run()
