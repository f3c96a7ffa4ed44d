/** execute() from a guest against a real redis-server: arguments, reply conversion, errors, policy. */
import { Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { GuestError } from '../../host/errors.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { TestBox } from './guest-probe.js'

const ctx: { redis?: TestRedis; box?: TestBox; client?: Redis } = {}
const box = (): TestBox => ctx.box!
const client = (): Redis => ctx.client!

const t = suite('execute')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.box = await TestBox.create({ redis: ctx.redis.url, workers: 1, denyCommands: ['FLUSHALL', 'DEBUG'], allowCommands: ['FLUSHDB', 'EVAL'] })
  ctx.client = new Redis(ctx.redis.url, { protocol: 2 })
})

t.after(async () => {
  await ctx.box?.close()
  ctx.client?.disconnect()
  await ctx.redis?.stop()
})

t('status, bulk, integer and nil replies', async () => {
  const out = await box().value(`
    return [execute('SET', 'k1', 'v1'), execute('GET', 'k1'), execute('INCR', 'n1'), execute('GET', 'missing'), execute('TYPE', 'k1'), execute('PING')]
  `)
  assert.equal(out, ['OK', 'v1', 1, null, 'string', 'PONG'])
})

t('arguments: Uint8Array binary-safe, everything else String(x)', async () => {
  await box().value(`
    execute('SET', 'a:int', 12)
    execute('SET', 'a:null', null)
    execute('SET', 'a:undef', undefined)
    execute('SET', 'a:bool', true)
    execute('SET', 'a:float', 1.5)
    execute('SET', 'a:obj', { x: 1 })
    execute('SET', 'a:arr', [1, 2])
    execute('SET', 'a:bytes', new Uint8Array([0, 255, 128, 10]))
    execute('SET', 'a:utf8', 'héllo ✓')
  `)
  const c = client()
  assert.equal(await c.mget('a:int', 'a:null', 'a:undef', 'a:bool', 'a:float', 'a:obj', 'a:arr', 'a:utf8'), [
    '12', 'null', 'undefined', 'true', '1.5', '[object Object]', '1,2', 'héllo ✓',
  ])
  assert.equal([...(await c.getBuffer('a:bytes'))!], [0, 255, 128, 10])
})

t('a value that is not valid UTF-8 comes back as a Uint8Array and round-trips', async () => {
  await client().set('bin', Buffer.from([0xff, 0xfe, 0x00, 0x41]))
  const out = await box().value(`
    const v = execute('GET', 'bin')
    execute('SET', 'bin:copy', v)
    return [v instanceof Uint8Array, v, execute('GET', 'k1')]
  `)
  assert.equal(out, [true, new Uint8Array([0xff, 0xfe, 0x00, 0x41]), 'v1'])
  assert.equal([...(await client().getBuffer('bin:copy'))!], [0xff, 0xfe, 0x00, 0x41])
})

t('nested arrays (XRANGE)', async () => {
  const out = await box().value(`
    execute('XADD', 's', '1-1', 'f1', 'v1', 'f2', 'v2')
    execute('XADD', 's', '2-1', 'f3', 'v3')
    return execute('XRANGE', 's', '-', '+')
  `)
  assert.equal(out, [['1-1', ['f1', 'v1', 'f2', 'v2']], ['2-1', ['f3', 'v3']]])
})

t('integers beyond 2^53 are BigInt, smaller ones numbers', async () => {
  await client().set('big', '9223372036854775806')
  const out = await box().value(`
    const big = execute('INCR', 'big')
    return [typeof big, big, typeof execute('INCRBY', 'small', 9007199254740991), execute('GET', 'small')]
  `)
  assert.equal(out, ['bigint', 9223372036854775807n, 'number', '9007199254740991'])
})

t('an error nested in an array is a string, not a throw', async () => {
  // Lua (@scripting) is outside the default function ACL user: a user of one's own that allows it.
  await client().call('ACL', 'SETUSER', 'with-lua', 'on', '>pw', '~*', '&*', '+@all')
  const scripting = await TestBox.create({
    redis: ctx.redis!.url,
    workers: 1,
    allowCommands: ['EVAL'],
    functionUser: { username: 'with-lua', password: 'pw' },
  })
  try {
    const out = await scripting.value(`return execute('EVAL', "return {1, redis.error_reply('MYERR boom'), 'x'}", 0)`)
    assert.equal(out, [1, 'MYERR boom', 'x'])
  } finally {
    await scripting.close()
  }
})

t('no arguments returns []', async () => {
  assert.equal(await box().value(`return execute()`), [])
})

t('a non-string command: the spec error text', async () => {
  for (const command of ['1', 'null', "new Uint8Array([71, 69, 84])", '{}']) {
    const e = await box().thrown(`return execute(${command}, 'k1')`)
    assert.equal(e, { name: 'GearsError', message: 'the given command must be a string', code: undefined, isGearsError: true })
  }
})

t("a top-level error reply raises GearsError with Redis's exact text", async () => {
  await client().rpush('list', 'x')
  let e = await box().thrown(`return execute('GET', 'list')`)
  assert.equal(e, {
    name: 'GearsError',
    message: 'WRONGTYPE Operation against a key holding the wrong kind of value',
    code: undefined,
    isGearsError: true,
  })
  e = await box().thrown(`return execute('NOSUCHCOMMAND', 'a')`)
  assert.is(e.message, "ERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'a' ")
  e = await box().thrown(`return execute('SET', 'only-key')`)
  assert.is(e.message, "ERR wrong number of arguments for 'set' command")
})

t('command policy refusals reach the guest as coded GearsErrors', async () => {
  for (const command of ["'FLUSHALL'", "'DEBUG', 'SLEEP', '0'", "'MULTI'", "'SUBSCRIBE', 'ch'", "'SELECT', '1'"]) {
    const e = await box().thrown(`return execute(${command})`)
    assert.is(e.code, 'ERR_GEARBOX_COMMAND_DENIED', command)
    assert.ok(e.isGearsError)
  }
  // FLUSHDB (@dangerous, and in the default deny list) is in this Gearbox's allowCommands and not in its denyCommands.
  assert.is(await box().value(`execute('SET', 'before-flush', 1); return execute('FLUSHDB')`), 'OK')
  assert.is(await client().exists('before-flush'), 0)
})

t('an uncaught GearsError fails the execution with a GuestError', async () => {
  try {
    await box().gearbox.execute(`execute('SET', 'w', 'x'); execute('LPUSH', 'w', 'y')`)
    assert.unreachable('the script should have failed')
  } catch (error) {
    assert.instance(error, GuestError)
    const e = error as GuestError
    assert.is(e.code, 'ERR_GEARBOX_GUEST')
    assert.is(e.guestName, 'GearsError')
    assert.is(e.message, 'WRONGTYPE Operation against a key holding the wrong kind of value')
  }
})

t('an uncaught coded GearsError keeps its host code as guestCode', async () => {
  try {
    await box().gearbox.execute(`execute('FLUSHALL')`)
    assert.unreachable('the script should have failed')
  } catch (error) {
    assert.instance(error, GuestError)
    const e = error as GuestError
    assert.is(e.code, 'ERR_GEARBOX_GUEST')
    assert.is(e.guestCode, 'ERR_GEARBOX_COMMAND_DENIED')
    assert.match(e.message, 'FLUSHALL')
  }
})

t('the reply of a top-level-only script is OK', async () => {
  assert.is(await box().gearbox.execute(`execute('SET', 'x', 1)`), 'OK')
  assert.is(await client().get('x'), '1')
})

t.run()
