/**
 * Issue 6, families 5 and 6 through the whole stack (real redis-server): what a guest can do to
 * the outcome the host reads, lone surrogates, long delays, deep nesting, top-level promise jobs.
 * Every hostile case asserts its coded error and that the next execution runs normally.
 */
import { Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { GearboxError, GuestError, NestingLimitError } from '../../host/errors.js'
import type { RedisReply } from '../../host/redis/types.js'
import { redisReplyToWire } from '../../host/runtime/reply.js'
import { decodeWire } from '../../host/runtime/wire.js'
import { main } from '../../host/cli/main.js'
import { renderJson, renderPlain } from '../../host/cli/render.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection, TestBox } from './guest-probe.js'

const ctx: { redis?: TestRedis; box?: TestBox; client?: Redis } = {}
const box = (): TestBox => ctx.box!
const client = (): Redis => ctx.client!

const t = suite('hostile outcomes')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.box = await TestBox.create({ redis: ctx.redis.url, workers: 2, limits: { wallMs: 5000 } })
  ctx.client = new Redis(ctx.redis.url, { protocol: 2 })
})

t.after(async () => {
  await ctx.box?.close()
  ctx.client?.disconnect()
  await ctx.redis?.stop()
})

/** The next execution runs normally: a write and a read through Redis. */
async function assertNextRuns(): Promise<void> {
  const marker = `next-${Math.random()}`
  assert.is(await box().gearbox.execute(`execute('SET', 'next', '${marker}')`), 'OK')
  assert.is(await client().get('next'), marker)
}

async function guestFailure(script: string): Promise<GearboxError> {
  const error = await rejection(() => box().gearbox.execute(script))
  assert.instance(error, GearboxError)
  return error as GearboxError
}

t('builtins hijacked on prototypes do not change the outcome, execute() arguments or replies', async () => {
  await client().del('hj:a', 'hj:b')
  const reply = await box().gearbox.execute(`
    Object.prototype.toJSON = function () { return { kind: 'hijacked' } }
    Array.prototype.toJSON = function () { return 'hijacked' }
    Object.defineProperty(Object.prototype, 'kind', { __proto__: null, get() { return 'hijacked' }, set() {}, configurable: true })
    Object.defineProperty(Object.prototype, 'value', { __proto__: null, get() { throw new Error('value getter') }, configurable: true })
    Object.defineProperty(Object.prototype, 'get', { __proto__: null, get() { throw new Error('get getter') }, configurable: true })
    Object.defineProperty(Object.prototype, 'length', { __proto__: null, get() { return 0 }, configurable: true })
    Object.defineProperty(Object.getPrototypeOf(Uint8Array.prototype), 'length', { __proto__: null, get() { return 0 }, configurable: true })
    Object.prototype[Symbol.toPrimitive] = () => 'hijacked'
    JSON.stringify = () => '"hijacked"'
    JSON.parse = () => 'hijacked'
    Object.keys = () => []
    Object.getOwnPropertyDescriptors = () => ({})
    execute('SET', 'hj:a', new Uint8Array([1, 2, 255]))
    execute('SET', 'hj:b', 'plain')
    const got = execute('GET', 'hj:a')
    if (!(got instanceof Uint8Array) || got[2] !== 255) throw new Error('bytes changed')
    if (execute('MGET', 'hj:a', 'hj:b')[1] !== 'plain') throw new Error('array reply changed')
  `)
  assert.is(reply, 'OK')
  assert.equal(await client().getBuffer('hj:a'), Buffer.from([1, 2, 255]))
  assert.is(await client().get('hj:b'), 'plain')
  await assertNextRuns()
})

t("lone surrogates in execute() arguments are refused: 'k\\uD800' and 'k\\uDC00' never become one key", async () => {
  await client().del('k\uFFFD')
  for (const key of ['k\\uD800', 'k\\uDC00', 'a\\uDBFFb']) {
    const thrown = await box().thrown(`return execute('SET', '${key}', 'v')`)
    assert.is(thrown.code, 'ERR_GEARBOX_INVALID_STRING', key)
    assert.ok(thrown.isGearsError)
    assert.match(String(thrown.message), 'lone surrogate')
  }
  // A value too, and uncaught it fails the script with the code.
  const error = await guestFailure(`execute('SET', 'ok-key', 'v\\uDC00')`)
  assert.instance(error, GuestError)
  assert.is((error as GuestError).guestCode, 'ERR_GEARBOX_INVALID_STRING')
  assert.is(await client().exists('k\uFFFD', 'ok-key'), 0)
  // Well-formed pairs and other text pass.
  assert.is(await box().value(`execute('SET', 'emoji:\\uD83D\\uDE00', 'é'); return execute('GET', 'emoji:\\uD83D\\uDE00')`), 'é')
  assert.is(await client().get('emoji:\u{1F600}'), 'é')
  await assertNextRuns()
})

t('runCoroutine with a delay beyond what a timer holds is honoured, never fired early', async () => {
  await client().del('late')
  const started = Date.now()
  const error = await guestFailure(`runCoroutine(async () => { execute('SET', 'late', 'fired') }, null, 1e7)`)
  // Bounded by wallMs (5 s here): the coroutine never ran.
  assert.is(error.code, 'ERR_GEARBOX_WALL_LIMIT')
  assert.ok(Date.now() - started >= 4000, 'ended before the wall limit')
  assert.is(await client().get('late'), null)
  await assertNextRuns()
})

t('runCoroutine refuses negative, NaN and infinite delays', async () => {
  for (const delay of ['-1', 'NaN', 'Infinity', "'5'"]) {
    const thrown = await box().thrown(`runCoroutine(async () => {}, null, ${delay})`)
    assert.is(thrown.message, 'runCoroutine delay must be a non-negative number of seconds', delay)
  }
  await assertNextRuns()
})

t('top-level promise jobs not handed to runCoroutine run before the script finishes', async () => {
  await client().del('job:1', 'job:2')
  const reply = await box().gearbox.execute(`
    Promise.resolve().then(() => execute('SET', 'job:1', 'v'))
    ;(async () => { await null; await null; execute('SET', 'job:2', execute('GET', 'job:1')) })()`)
  assert.is(reply, 'OK')
  assert.is(await client().get('job:1'), 'v')
  assert.is(await client().get('job:2'), 'v')
  await assertNextRuns()
})

t('a top-level promise job that loops forever is stopped by the CPU limit', async () => {
  const error = await rejection(() => box().gearbox.execute(`Promise.resolve().then(() => { for (;;) {} })`, { limits: { cpuMs: 200 } }))
  assert.is((error as GearboxError).code, 'ERR_GEARBOX_CPU_LIMIT')
  await assertNextRuns()
})

t('Redis replies nested beyond the bound are a coded error', () => {
  let deep: RedisReply = []
  for (let i = 0; i < 1500; i++) deep = [deep]
  try {
    redisReplyToWire(deep)
    assert.unreachable('converted')
  } catch (error) {
    assert.instance(error, NestingLimitError)
    assert.is((error as NestingLimitError).code, 'ERR_GEARBOX_NESTING_LIMIT')
  }
  let fine: RedisReply = [Buffer.from('x')]
  for (let i = 0; i < 900; i++) fine = [fine]
  assert.ok(Array.isArray(redisReplyToWire(fine)))
})

t('wire text nested beyond what V8 converts is a coded error, not a RangeError', () => {
  const depth = 2_000_000
  try {
    decodeWire('['.repeat(depth) + '{"\\u0000n":"1"}' + ']'.repeat(depth))
    assert.unreachable('decoded')
  } catch (error) {
    assert.is((error as GearboxError).code, 'ERR_GEARBOX_NESTING_LIMIT')
  }
})

t('the CLI renderer refuses replies nested beyond the bound with a listed code', () => {
  let deep: unknown[] = []
  for (let i = 0; i < 5000; i++) deep = [deep]
  for (const render of [renderPlain, renderJson]) {
    try {
      render(deep as never)
      assert.unreachable('rendered')
    } catch (error) {
      assert.is((error as GearboxError).code, 'ERR_GEARBOX_NESTING_LIMIT')
    }
  }
  let fine: unknown[] = ['x']
  for (let i = 0; i < 50; i++) fine = [fine]
  assert.ok(renderPlain(fine as never).includes('"x"'))
})

t('the CLI prints a listed code for a script returning deep nesting', async () => {
  const { writeFileSync, mkdtempSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'gearbox-deep-'))
  const file = join(dir, 'deep.js')
  writeFileSync(file, `GB('ShardsIDReader').map(() => { let a = []; for (let i = 0; i < 5000; i++) a = [a]; return a }).run()`)
  let stdout = ''
  let stderr = ''
  const status = await main(['run', file, '--redis', ctx.redis!.url], { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) })
  assert.not.match(stderr, 'ERR_GEARBOX_INTERNAL')
  // The step's value reaches the reply as its JSON text: printed, nothing uncoded.
  assert.is(status, 0, stderr)
  assert.match(stdout, '[[[[')
  await assertNextRuns()
})

t.run()
