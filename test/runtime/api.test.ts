/** The rest of the runtime API from a guest: config, hashtag, log, futures, coroutines, errors. */
import { Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Gearbox } from '../../host/gearbox.js'
import { ClosedError, GuestError, InvalidArgumentError } from '../../host/errors.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { gearsError, rejection, TestBox } from './guest-probe.js'

const ctx: { redis?: TestRedis; box?: TestBox; client?: Redis } = {}
const box = (): TestBox => ctx.box!

const t = suite('runtime api')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.box = await TestBox.create({
    redis: ctx.redis.url,
    workers: 1,
    config: { TestKey: 'TestVal', ExecutionThreads: '7', maxexecutions: '5' },
  })
  ctx.client = new Redis(ctx.redis.url, { protocol: 2 })
})

t.after(async () => {
  await ctx.box?.close()
  ctx.client?.disconnect()
  await ctx.redis?.stop()
})


t('configGet reads the config option; built-ins and absent keys are null', async () => {
  assert.equal(await box().value(`return [configGet('TestKey'), configGet('ExecutionThreads'), configGet('maxexecutions'), configGet('nope')]`), [
    'TestVal', null, null, null,
  ])
})

t('configGet argument errors', async () => {
  assert.equal(await box().thrown(`return configGet()`), gearsError('get_config function must get a single key input'))
  assert.equal(await box().thrown(`return configGet('a', 'b')`), gearsError('get_config function must get a single key input'))
  assert.equal(await box().thrown(`return configGet(1)`), gearsError('get_config key must be a string'))
})

t('gearsConfigGet falls back to the default (null without one)', async () => {
  assert.equal(await box().value(`return [gearsConfigGet('TestKey', 'd'), gearsConfigGet('nope', 'default'), gearsConfigGet('nope')]`), [
    'TestVal', 'default', null,
  ])
})

t("hashtag() is '06S' on a standalone Redis", async () => {
  assert.is(await box().value(`return hashtag()`), '06S')
})

t('log: levels reach the logger; default notice; legacy (level, message) form', async () => {
  await box().value(`log('one'); log('two', 'debug'); log('three', 'verbose'); log('four', 'warning'); log('warning', 'five')`)
  const lines = box().lines.filter((l) => !l.message.startsWith('__probe__'))
  assert.equal(lines, [
    { level: 'notice', message: 'one' },
    { level: 'debug', message: 'two' },
    { level: 'verbose', message: 'three' },
    { level: 'warning', message: 'four' },
    { level: 'warning', message: 'log(level, message) is deprecated, use log(message, level)' },
    { level: 'warning', message: 'five' },
  ])
})

t('log argument errors: the spec texts', async () => {
  assert.equal(await box().thrown(`log()`), gearsError('log function must get a log message as input'))
  assert.equal(await box().thrown(`log('a', 'notice', 'x')`), gearsError('log function must get a log message as input'))
  assert.equal(await box().thrown(`log(42)`), gearsError('Log message must be a string'))
  assert.equal(await box().thrown(`log('m', 3)`), gearsError('Log level must be a sting (debug/verbose/notice/warning)'))
  assert.equal(await box().thrown(`log('m', 'NOTICE')`), gearsError('Log level should be one of the following : debug,verbose,notice,warning'))
})

t('the default logger writes GEARS: <message> to stderr', async () => {
  const gearbox = await Gearbox.create({ redis: ctx.redis!.url, workers: 1 })
  const original = console.error
  const seen: unknown[][] = []
  console.error = (...args: unknown[]) => void seen.push(args)
  try {
    await gearbox.execute(`log('to stderr', 'warning')`)
  } finally {
    console.error = original
    await gearbox.close()
  }
  assert.equal(seen, [['GEARS: to stderr']])
})

t('createFuture / setFutureResults / setFutureException; second settle and non-futures ignored', async () => {
  await box().value(`
    const f1 = createFuture()
    const f2 = createFuture()
    setFutureResults(f1, 'first')
    setFutureResults(f1, 'second')
    setFutureException(f1, 'ignored')
    setFutureException(f2, 'bad thing')
    setFutureResults(f2, 'too late')
    setFutureResults({}, 1)
    setFutureResults(null, 1)
    setFutureException(42, 'x')
    const f3 = createFuture()
    f3.resolve('via method')
    runCoroutine(async () => {
      log('f1=' + (await f1))
      try { await f2 } catch (e) { log('f2 rejected: ' + (e instanceof Error) + ' ' + e.message) }
      log('f3=' + (await f3))
    })
  `)
  assert.equal(box().messages, ['f1=first', 'f2 rejected: true bad thing', 'f3=via method'])
})

t('runCoroutine: the execution waits for the work, delays run through the host, results fill the future', async () => {
  const reply = await box().run(`
    const f = createFuture()
    runCoroutine(async () => { log('coroutine ran'); return execute('INCR', 'co') }, f, 0.05)
    runCoroutine(async () => { await f; throw new Error('failed') }, null)
    const g = createFuture()
    runCoroutine(Promise.reject(new Error('boom')), g)
    runCoroutine(async () => {
      log('f=' + (await f))
      try { await g } catch (e) { log('g: ' + e.message) }
      runCoroutine(async () => log('nested ran'), null, 0.01)
    })
    log('top level done')
  `)
  assert.is(reply, 'OK')
  assert.equal(box().messages, ['top level done', 'coroutine ran', 'f=1', 'g: boom', 'nested ran'])
  assert.is(await ctx.client!.get('co'), '1')
})

t('runCoroutine argument errors', async () => {
  assert.equal(await box().thrown(`runCoroutine(42)`), gearsError('runCoroutine expects a promise or an async function'))
  assert.equal(
    await box().thrown(`runCoroutine(async () => 1, {})`),
    gearsError('runCoroutine future must be a future from createFuture(), or null'),
  )
  assert.equal(
    await box().thrown(`runCoroutine(async () => 1, null, -1)`),
    gearsError('runCoroutine delay must be a non-negative number of seconds'),
  )
  assert.equal(
    await box().thrown(`runCoroutine(async () => 1, null, Infinity)`),
    gearsError('runCoroutine delay must be a non-negative number of seconds'),
  )
})

t('isAsyncAllow() is false at the top level and in coroutines started from it', async () => {
  await box().value(`log(String(isAsyncAllow())); runCoroutine(async () => log(String(isAsyncAllow())))`)
  assert.equal(box().messages, ['false', 'false'])
})

t('flat_error raises a GearsError with the message verbatim', async () => {
  assert.equal(await box().thrown(`flat_error('PAUSE now')`), gearsError('PAUSE now'))
  assert.equal(await box().thrown(`flat_error(42)`), gearsError('42'))
  assert.equal(await box().thrown(`flat_error()`), gearsError('not enough arguments for time flat error'))
  assert.equal(await box().thrown(`flat_error('a', 'b')`), gearsError('not enough arguments for time flat error'))
})

t('call_next and override_reply: no command context exists', async () => {
  assert.equal(await box().thrown(`call_next('a')`), gearsError('Can not get CommandHook ctx'))
  assert.equal(await box().thrown(`override_reply('x')`), gearsError('Can not get command ctx'))
})

t('the bridge is hidden; the entry point cannot be replaced', async () => {
  assert.equal(
    await box().value(`return [typeof __gearbox_host_call, typeof __gearbox_host_start, typeof __gearbox_internals, typeof __gearbox_main,
      Object.getOwnPropertyDescriptor(globalThis, '__gearbox_main').writable]`),
    ['undefined', 'undefined', 'undefined', 'function', false],
  )
  assert.instance(await rejection(() => box().gearbox.execute(`'use strict'; __gearbox_main = () => 'fake'`)), GuestError)
  assert.is(await box().gearbox.execute(`__gearbox_main = () => 'fake'`), 'OK')
})

t('user code replacing builtins does not change the API', async () => {
  const out = await box().value(`
    const saved = [JSON.parse, JSON.stringify, Object.keys, Uint8Array.prototype[Symbol.iterator]]
    JSON.parse = () => 'hijacked'
    JSON.stringify = () => '"hijacked"'
    Array.prototype.push = () => { throw new Error('push hijacked') }
    Array.prototype.toJSON = () => 'hijacked'
    Object.keys = () => []
    String.prototype.slice = () => 'hijacked'
    Promise.prototype.then = function () { throw new Error('then hijacked') }
    Uint8Array.prototype[Symbol.iterator] = () => { throw new Error('iterator hijacked') }
    execute('SET', 'hj', new Uint8Array([255, 2, 3]))
    const bytes = execute('GET', 'hj')
    execute('SET', 'hj2', 'plain')
    const out = [bytes[0], bytes[2], execute('GET', 'hj2'), execute('MGET', 'hj2', 'nope').length, atomic(() => execute('GET', 'hj2'))]
    // What this test's own result printer needs; the rest stays replaced through the entry point.
    ;[JSON.parse, JSON.stringify, Object.keys, Uint8Array.prototype[Symbol.iterator]] = saved
    delete Array.prototype.toJSON
    return out
  `)
  assert.equal(out, [255, 3, 'plain', 2, 'plain'])
})

t("GearsError is a global class with name 'GearsError'", async () => {
  assert.equal(
    await box().value(`const e = new GearsError('m'); return [e instanceof Error, e.name, e.message, e.code, String(e)]`),
    [true, 'GearsError', 'm', undefined, 'GearsError: m'],
  )
})

t("an unknown language is refused; use after close is a ClosedError; close is idempotent", async () => {
  const gearbox = await Gearbox.create({ redis: ctx.redis!.url, workers: 1 })
  const unknown = await rejection(() => gearbox.execute('x', { language: 'ruby' as 'js' }))
  assert.instance(unknown, InvalidArgumentError)
  assert.match((unknown as Error).message, "unknown language 'ruby' (supported: 'js', 'python')")
  await gearbox.close()
  await gearbox.close()
  const closed = await rejection(() => gearbox.execute('1'))
  assert.instance(closed, ClosedError)
  assert.is((closed as ClosedError).code, 'ERR_GEARBOX_CLOSED')
})

t('Gearbox.create rejects bad options with coded errors', async () => {
  const url = ctx.redis!.url
  assert.instance(await rejection(() => Gearbox.create({ redis: url, atomicRetries: -1 })), InvalidArgumentError)
  const config = await rejection(() => Gearbox.create({ redis: url, config: { a: 1 as unknown as string } }))
  assert.instance(config, InvalidArgumentError)
  assert.is((config as Error).message, 'config.a must be a string (got number)')
  const limits = await rejection(() => Gearbox.create({ redis: url, limits: { cpuMs: 0 } }))
  assert.instance(limits, InvalidArgumentError)
  assert.match((limits as Error).message, 'limits.cpuMs')
})

t.run()
