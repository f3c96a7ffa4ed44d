/** The executions API: unblocking runs, list/get/results/drop/abort with RedisGears' texts, MaxExecutions, profiling, limits. */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { ExecutionNotFoundError, ExecutionRunningError, GearboxError } from '../../host/errors.js'
import type { Gearbox } from '../../host/gearbox.js'
import { dumpExecutionsReply, getExecutionReply, getResultsReply } from '../../host/gears/rg-replies.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { GearsBox } from './support.js'

const ctx: { redis?: TestRedis; box?: GearsBox } = {}
const gearbox = (): Gearbox => ctx.box!.gearbox

// An async generator that yields forever, a record every 20 ms: a run that stays running until aborted.
const ENDLESS = `GB('PythonReader').run(async function* () {
  for (let i = 0; ; i++) {
    const f = createFuture(); runCoroutine(async () => i, f, 0.02); yield await f
  }
})`

const t = suite('gears executions')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.box = await GearsBox.create({ redis: ctx.redis.url })
})

t.after(async () => {
  await ctx.box?.close()
  await ctx.redis?.stop()
})

function throwsCoded(fn: () => unknown, code: string, message: string): void {
  try {
    fn()
  } catch (error) {
    assert.instance(error, GearboxError)
    assert.equal((error as GearboxError).code, code)
    assert.equal((error as GearboxError).message, message)
    return
  }
  assert.unreachable(`expected ${code}`)
}

async function rejectsCoded(promise: Promise<unknown>, code: string, message: string): Promise<void> {
  try {
    await promise
  } catch (error) {
    assert.instance(error, GearboxError)
    assert.equal((error as GearboxError).code, code)
    assert.equal((error as GearboxError).message, message)
    return
  }
  assert.unreachable(`expected ${code}`)
}

t('unblocking run: id, list, get, results; a blocking run is not kept', async () => {
  await gearbox().execute("for (let i = 0; i < 5; i++) execute('SET', 'e:' + i, String(i))")
  const blocking = await gearbox().execute("GB().count().run('e:*')")
  assert.equal(blocking, [['5'], []])
  assert.equal(gearbox().executions.list(), [])
  const id = await gearbox().execute("GB('KeysReader', 'e:*', 'five keys').map(r => r.key).sort().run()", { unblocking: true })
  assert.type(id, 'string')
  assert.match(id as string, /^0{40}-\d+$/)
  const results = await gearbox().executions.resultsBlocking(id as string)
  assert.equal(results, { results: ['e:0', 'e:1', 'e:2', 'e:3', 'e:4'], errors: [] })
  assert.equal(gearbox().executions.results(id as string), results)
  assert.equal(gearbox().executions.list(), [{ id, status: 'done', registered: false }])
  const info = gearbox().executions.get(id as string)
  assert.equal(info.status, 'done')
  assert.equal(info.shardId, '0'.repeat(40))
  assert.equal(info.description, 'five keys')
  assert.equal([info.results, info.errors, info.recordsRead, info.shardsReceived, info.shardsCompleted], [5, [], 5, 1, 1])
  assert.equal(
    info.steps.map((s) => s.type),
    ['reader', 'map', 'accumulate', 'collect', 'accumulate', 'map', 'flatmap', 'map', 'collect'],
  )
  assert.equal(info.steps[0], { type: 'reader', name: 'KeysReader', arg: 'e:*', durationMs: 0 })
  assert.equal(info.profiled, false)
  gearbox().executions.drop(id as string)
  assert.equal(gearbox().executions.list(), [])
})

t('RedisGears reply shapes: RG.DUMPEXECUTIONS, RG.GETEXECUTION (positional access as its tests do), RG.GETRESULTS', async () => {
  const id = (await gearbox().execute("GB('PythonReader').map(x => x).limit(1).run(function* () { yield* [{a: 1}, 2] })", { unblocking: true })) as string
  const results = await gearbox().executions.resultsBlocking(id)
  assert.equal(getResultsReply(results), [['{"a":1}'], []])
  assert.equal(dumpExecutionsReply(gearbox().executions.list()), [['executionId', id, 'status', 'done', 'registered', 0]])
  const reply = getExecutionReply(gearbox().executions.get(id)) as unknown[][]
  const plan = reply[0]![3] as unknown[]
  assert.equal([reply[0]![0], reply[0]![1], reply[0]![2]], ['shard_id', '0'.repeat(40), 'execution_plan'])
  assert.equal([plan[1], plan[3], plan[5], plan[7], plan[9]], ['done', 1, 1, 1, []])
  assert.equal(plan[15], [
    ['type', 'collect', 'duration', 0, 'name', '', 'arg', ''],
    ['type', 'map', 'duration', 0, 'name', 'convertToStr', 'arg', ''],
    ['type', 'limit', 'duration', 0, 'name', '', 'arg', '1,0'],
    ['type', 'map', 'duration', 0, 'name', '<anonymous>', 'arg', ''],
    ['type', 'reader', 'duration', 0, 'name', 'PythonReader', 'arg', ''],
  ])
  gearbox().executions.drop(id)
})

t('unknown ids and running executions: RedisGears texts with stable codes', async () => {
  const ex = gearbox().executions
  throwsCoded(() => ex.get('nope'), 'ERR_GEARBOX_EXECUTION_NOT_FOUND', 'execution plan does not exist')
  throwsCoded(() => ex.results('nope'), 'ERR_GEARBOX_EXECUTION_NOT_FOUND', 'execution plan does not exist')
  throwsCoded(() => ex.drop('nope'), 'ERR_GEARBOX_EXECUTION_NOT_FOUND', 'execution plan does not exist')
  await rejectsCoded(ex.resultsBlocking('nope'), 'ERR_GEARBOX_EXECUTION_NOT_FOUND', 'execution plan does not exist')
  await rejectsCoded(ex.abort('nope'), 'ERR_GEARBOX_EXECUTION_NOT_FOUND', 'execution does not exist')
  const id = (await gearbox().execute(ENDLESS, { unblocking: true })) as string
  assert.equal(ex.get(id).status, 'running')
  assert.equal(ex.get(id).results, -1)
  throwsCoded(() => ex.results(id), 'ERR_GEARBOX_EXECUTION_RUNNING', 'execution is still running')
  throwsCoded(() => ex.drop(id), 'ERR_GEARBOX_EXECUTION_RUNNING', 'can not drop a not yet finished execution, abort it first.')
  await ex.abort(id)
  assert.equal(ex.get(id).status, 'aborted')
  ex.drop(id)
  assert.instance(new ExecutionNotFoundError(), GearboxError)
  assert.instance(new ExecutionRunningError(), GearboxError)
})

t('abort stops a step that loops forever; status and error are recorded; the pool serves the next execution', async () => {
  const id = (await gearbox().execute(
    "GB('PythonReader').map(x => { if (x === 3) { for (;;) {} } return x }).run(function* () { yield* [1, 2, 3, 4] })",
    { unblocking: true },
  )) as string
  await new Promise((r) => setTimeout(r, 100))
  assert.equal(gearbox().executions.get(id).status, 'running')
  await gearbox().executions.abort(id)
  const info = gearbox().executions.get(id)
  assert.equal(info.status, 'aborted')
  assert.equal(info.errors, ['execution aborted'])
  // Aborting a finished execution changes nothing.
  await gearbox().executions.abort(id)
  assert.equal(gearbox().executions.get(id).status, 'aborted')
  gearbox().executions.drop(id)
  assert.equal(await gearbox().execute("GB('PythonReader').count().run(function* () { yield* [1, 2] })"), [['2'], []])
  // The caller's AbortSignal aborts a blocking run too.
  const controller = new AbortController()
  const pending = gearbox().execute(ENDLESS, { signal: controller.signal })
  setTimeout(() => controller.abort(), 100)
  const reply = (await pending) as [unknown[], string[]]
  assert.equal(reply[1], ['execution aborted'])
})

t('a limit hit during the run ends it with that error and the results so far', async () => {
  const reply = (await gearbox().execute(
    "GB('PythonReader').map(x => { if (x === 3) { for (;;) {} } return x }).run(function* () { yield* [1, 2] ; yield 3 })",
    { limits: { cpuMs: 300 } },
  )) as [unknown[], string[]]
  assert.equal(reply[0], [])
  assert.equal(reply[1].length, 1)
  assert.match(reply[1][0]!, /limits\.cpuMs/)
  assert.equal(await gearbox().execute("GB('PythonReader').run(function* () { yield 'next' })"), [['next'], []])
})

t('results are held in host memory: beyond limits.maxReplyBytes the run stops with an error naming it', async () => {
  const reply = (await gearbox().execute(
    "GB('PythonReader').map(x => 'x'.repeat(1000)).run(function* () { for (let i = 0; i < 1000; i++) yield i })",
    { limits: { maxReplyBytes: 100_000 } },
  )) as [unknown[], string[]]
  assert.ok(reply[0].length > 0 && reply[0].length < 1000, `${reply[0].length} results`)
  assert.equal(reply[1], ['the results exceeded limits.maxReplyBytes (100000 bytes): raise it, or reduce the results (limit(), aggregate)'])
})

t('MaxExecutions keeps the newest finished executions', async () => {
  const box = await GearsBox.create({ redis: ctx.redis!.url, config: { MaxExecutions: '3' } })
  try {
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      const id = (await box.gearbox.execute(`GB('PythonReader').run(function* () { yield ${i} })`, { unblocking: true })) as string
      await box.gearbox.executions.resultsBlocking(id)
      ids.push(id)
    }
    assert.equal(box.gearbox.executions.list().map((e) => e.id), ids.slice(2))
  } finally {
    await box.close()
  }
})

t('profiling: per-step durations when asked (option or ProfileExecutions), zero otherwise', async () => {
  // The step waits 20 ms per record on the clock, so its measured time cannot be below 60 ms.
  const script = "GB('PythonReader').map(x => { const t = Date.now(); while (Date.now() - t < 20) {} return x }).run(function* () { yield* [1, 2, 3] })"
  const profiled = (await gearbox().execute(script, { unblocking: true, profile: true })) as string
  await gearbox().executions.resultsBlocking(profiled)
  const info = gearbox().executions.get(profiled)
  assert.equal(info.profiled, true)
  assert.equal(info.steps[1]!.type, 'map')
  assert.ok(info.steps[1]!.durationMs >= 60, `map step took ${info.steps[1]!.durationMs} ms`)
  const plain = (await gearbox().execute(script, { unblocking: true })) as string
  await gearbox().executions.resultsBlocking(plain)
  assert.equal(gearbox().executions.get(plain).steps.map((s) => s.durationMs), [0, 0, 0, 0])
  const box = await GearsBox.create({ redis: ctx.redis!.url, config: { ProfileExecutions: '1' } })
  try {
    const id = (await box.gearbox.execute(script, { unblocking: true })) as string
    await box.gearbox.executions.resultsBlocking(id)
    assert.equal(box.gearbox.executions.get(id).profiled, true)
  } finally {
    await box.close()
  }
})

t.run()
