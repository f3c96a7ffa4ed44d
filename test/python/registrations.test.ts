/**
 * Python registrations go through the same path as JavaScript ones: register() with keyword
 * arguments checked by the host (RedisGears' texts), CommandReader triggers (RG.TRIGGER), KeysReader
 * events from keyspace notifications, onRegistered, and executions that start from the session's
 * top level (its functions are there, its side effects are not repeated).
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection } from '../helpers/rejection.js'
import { poller } from '../helpers/until.js'

const ctx: { redis?: TestRedis; gearbox?: Gearbox; client?: Redis } = {}
const gearbox = (): Gearbox => ctx.gearbox!
const client = (): Redis => ctx.client!
const py = (source: string): Promise<unknown> => gearbox().execute(source, { language: 'python' })

const until = poller(10_000)

const t = suite('python registrations (standalone)')

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
t.before.each(async () => {
  await Promise.all(gearbox().registrations.list().map((r) => gearbox().registrations.unregister(r.id)))
  await client().flushall()
})

t('register() keyword arguments are checked by the host with RedisGears texts', async () => {
  const cases: [string, string][] = [
    ['GB().register(5)', 'regex argument must be a string'],
    ["GB().register('*', mode='later')", 'unknown execution mode'],
    ["GB().register('*', onRegistered='x')", 'OnRegistered argument must be a function'],
    ["GB().register('*', eventTypes=5)", 'given eventTypes is not iterable'],
    ["GB().register('*', eventTypes=[1])", 'given event type is not string'],
    ["GB().register('*', keyTypes=['tree'])", 'unknown key type'],
    ["GB().register('*', readValue='yes')", 'readValue is not boolean'],
    ["GB('CommandReader').register(trigger=5)", 'trigger argument is not string'],
    ["GB('CommandReader').register()", 'no trigger or hook argument was given'],
    ["GB('StreamReader').register('s', onFailedPolicy='later')", 'onFailedPolicy must be Continue/Abort/Retry'],
    ["GB('StreamReader').register('s', batch='x')", 'batch argument must be a number'],
  ]
  for (const [source, text] of cases) {
    const error = await rejection(py(source))
    assert.is(error.message, text, source)
  }
  assert.equal(gearbox().registrations.list(), [])
})

t('a CommandReader trigger: RG.TRIGGER runs the steps over [trigger, args...] from the top level state', async () => {
  const reply = await py(
    [
      "execute('INCR', 'py:toplevel')",
      'def shout(words):',
      "    return ' '.join(words).upper()",
      "GB('CommandReader').map(lambda x: shout(x[1:])).register(trigger='shout', mode='async_local')",
    ].join('\n'),
  )
  assert.is(reply, 'OK')
  assert.equal(await gearbox().trigger('shout', 'hello', 'world'), ['HELLO WORLD'])
  assert.equal(await gearbox().trigger('shout', 'again'), ['AGAIN'])
  // The top level ran once, at submission; the executions did not repeat its INCR.
  assert.is(await client().get('py:toplevel'), '1')
  const failing = await py("GB('CommandReader').map(lambda x: 1 / 0).register(trigger='boom')")
  assert.is(failing, 'OK')
  const error = await rejection(gearbox().trigger('boom'))
  assert.match(error.message, /ZeroDivisionError: divide by zero/)
})

t('a KeysReader registration with prefix, eventTypes and onRegistered', async () => {
  const reply = await py(
    [
      'def copy(record):',
      "    execute('SET', 'copy:' + record['key'], record['value'] + ':' + record['event'])",
      'def ready():',
      "    execute('SET', 'py:registered', 'yes')",
      "GB().foreach(copy).register(prefix='src:*', eventTypes=['set'], onRegistered=ready)",
    ].join('\n'),
  )
  assert.is(reply, 'OK')
  await until('onRegistered ran', async () => (await client().get('py:registered')) === 'yes')
  await client().set('src:a', 'one')
  await client().set('other:b', 'two')
  await client().lpush('src:list', 'x')
  await until('the event was handled', async () => (await client().get('copy:src:a')) === 'one:set')
  assert.is(await client().get('copy:other:b'), null)
  assert.is(await client().get('copy:src:list'), null)
  const [listed] = gearbox().registrations.list()
  assert.ok(listed !== undefined && listed.reader === 'KeysReader')
})

t.run()
