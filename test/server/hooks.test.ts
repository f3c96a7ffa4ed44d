/**
 * The command path of gearbox serve against a real redis-server: command hooks (call_next, the
 * hook's one result as the reply, keyprefix, chains, spec §2.5's texts), KeysReader `commands=`
 * with override_reply (the read-through cache of a GET miss), sync registrations holding their
 * shard against other clients, and the RedisGears errors outside these contexts.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { NON_SYNC_IN_MULTI_TEXT } from '../../host/server/command-path.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection } from '../helpers/rejection.js'
import { redisCli, serveGearbox, type Served } from './support.js'

const test = suite('server: command path (hooks, commands=, sync)')
let redis: TestRedis
let served: Served
let direct: Redis
const clients: Redis[] = []

function client(): Redis {
  const c = new Redis({ host: '127.0.0.1', port: served.port, maxRetriesPerRequest: 0, protocol: 2 } as Record<string, unknown>)
  clients.push(c)
  return c
}

/** Asserts that `p` rejects with a message matching `pattern`. */
async function rejects(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  assert.match((await rejection(p)).message, pattern)
}

async function jsexecute(c: Redis, script: string): Promise<unknown> {
  return c.call('RG.JSEXECUTE', script)
}

async function unregisterAll(c: Redis): Promise<void> {
  const dump = (await c.call('RG.DUMPREGISTRATIONS')) as unknown[][]
  for (const entry of dump) await c.call('RG.UNREGISTER', String(entry[1]))
}

test.before(async () => {
  redis = await startRedis()
  served = await serveGearbox(redis.url)
  direct = new Redis(redis.url)
})

test.after(async () => {
  for (const c of clients) c.disconnect()
  direct.disconnect()
  await served.close()
  await redis.stop()
})

test.after.each(async () => {
  await unregisterAll(client())
})

test('a hook gets [command as typed, ...args]; call_next runs the command; its one result is the reply', async () => {
  const c = client()
  assert.is(
    await jsexecute(c, "GB('CommandReader').map((x) => { execute('SET', 'hook:seen', JSON.stringify(x)); return call_next(x[1], x[2] + '!') }).register({ hook: 'set', mode: 'sync', convertToStr: false })"),
    'OK',
  )
  const dump = (await c.call('RG.DUMPREGISTRATIONS')) as unknown[][]
  const data = dump[0]![7] as unknown[]
  assert.is(String(data[data.indexOf('status') + 1]), 'OK')
  // The reply is the command's own (a status passes as a status through redis-cli: no quotes).
  assert.is(await redisCli(served.port, ['sEt', 'hook:k', 'v']), 'OK\n')
  assert.is(await direct.get('hook:k'), 'v!')
  assert.equal(JSON.parse((await direct.get('hook:seen'))!), ['sEt', 'hook:k', 'v'])
  // Unhooked commands pass untouched.
  assert.is(await c.call('GET', 'hook:k'), 'v!')
})

test("the hook's value is the reply by spec §3; an error, or other than one result, is an error reply", async () => {
  const c = client()
  await jsexecute(c, "GB('CommandReader').map((x) => x[1] === 'num' ? 42 : x[1] === 'status' ? '+DONE' : x[1] === 'list' ? ['a', 1] : 'text').register({ hook: 'hget', convertToStr: false })")
  assert.is(await c.call('HGET', 'num', 'f'), 42)
  assert.is(await c.call('HGET', 'status', 'f'), 'DONE')
  assert.equal(await c.call('HGET', 'list', 'f'), ['a', 1])
  assert.is(await c.call('HGET', 'other', 'f'), 'text')
  await unregisterAll(c)
  await jsexecute(c, "GB('CommandReader').flatmap((x) => x).register({ hook: 'hset', mode: 'sync' })")
  await rejects(c.call('HSET', 'h', 'f', 'v'), /Command hook must return exactly one result/)
  await unregisterAll(c)
  await jsexecute(c, "GB('CommandReader').map((x) => { throw new Error('refused ' + x[1]) }).register({ hook: 'hset', mode: 'sync' })")
  await rejects(c.call('HSET', 'h2', 'f', 'v'), /Error: refused h2/)
  assert.is(await direct.exists('h2'), 0)
  // call_next's error reply raises in the hook; uncaught it is the reply.
  await unregisterAll(c)
  await direct.set('str', 'x')
  await jsexecute(c, "GB('CommandReader').map((x) => call_next(...x.slice(1))).register({ hook: 'hset', mode: 'sync' })")
  await rejects(c.call('HSET', 'str', 'f', 'v'), /WRONGTYPE/)
})

test('keyprefix: only commands on keys starting with it are hooked', async () => {
  const c = client()
  await jsexecute(c, "GB('CommandReader').map((x) => call_next(x[1], 'hooked')).register({ hook: 'set', keyprefix: 'pre:', mode: 'sync', convertToStr: false })")
  assert.is(await c.call('SET', 'pre:a', 'plain'), 'OK')
  assert.is(await c.call('SET', 'other:a', 'plain'), 'OK')
  assert.is(await direct.get('pre:a'), 'hooked')
  assert.is(await direct.get('other:a'), 'plain')
})

test('hooks chain newest first; call_next runs the next one, then the command', async () => {
  const c = client()
  await jsexecute(c, "GB('CommandReader').map((x) => call_next(x[1], x[2] + '-old')).register({ hook: 'set', mode: 'sync', convertToStr: false })")
  await jsexecute(c, "GB('CommandReader').map((x) => call_next(x[1], x[2] + '-new')).register({ hook: 'set', mode: 'sync', convertToStr: false })")
  assert.is(await c.call('SET', 'chain', 'v'), 'OK')
  assert.is(await direct.get('chain'), 'v-new-old')
})

test('spec §2.5: a non-sync hook cannot be overridden; texts for both cases', async () => {
  const c = client()
  assert.is(await jsexecute(c, "GB('CommandReader').map((x) => call_next(...x.slice(1))).register({ hook: 'lpush' })"), 'OK')
  await rejects(jsexecute(c, "GB('CommandReader').map((x) => call_next(...x.slice(1))).register({ hook: 'lpush', mode: 'sync' })"), /Can not override a none sync registration/)
  await rejects(
    jsexecute(c, "GB('CommandReader').register({ hook: 'rpush' }); GB('CommandReader').register({ hook: 'rpush' })"),
    /Can not override a none sync registration which already created on this session/,
  )
  await rejects(jsexecute(c, "GB('CommandReader').register({ hook: 'nosuchcommand' })"), /Can not override an unexisting command/)
  await rejects(jsexecute(c, "GB('CommandReader').register({ hook: 'multi' })"), /Can not override a command which are not allowed inside a script/)
  // The async hook works: the command runs through it.
  assert.is(await c.call('LPUSH', 'l', 'a'), '1', 'convertToStr (the default) makes the reply a string')
})

test('inside MULTI a non-sync hook gives RedisGears\' error in its EXEC slot; the rest runs', async () => {
  const c = client()
  await jsexecute(c, "GB('CommandReader').map((x) => call_next(...x.slice(1))).register({ hook: 'incr' })")
  const res = (await c.multi().set('m:a', '1').incr('m:b').get('m:a').exec())!
  assert.equal(res[0], [null, 'OK'])
  assert.ok(res[1]![0] instanceof Error)
  assert.is((res[1]![0] as Error).message, NON_SYNC_IN_MULTI_TEXT)
  assert.equal(res[2], [null, '1'])
})

test('outside a hook or a linked command: call_next / override_reply keep RedisGears\' errors', async () => {
  const c = client()
  const batch = (await jsexecute(c, "GB('ShardsIDReader').map(() => { try { call_next('x') } catch (e) { return e.message } }).run()")) as unknown[][]
  assert.equal(batch[0], ['Can not get CommandHook ctx'])
  const batch2 = (await jsexecute(c, "GB('ShardsIDReader').map(() => { try { override_reply('x') } catch (e) { return e.message } }).run()")) as unknown[][]
  assert.equal(batch2[0], ['Can not get command ctx'])
  await jsexecute(c, "GB('CommandReader').map(() => { try { call_next('x') } catch (e) { return e.message } }).register({ trigger: 'cn-trigger' })")
  assert.equal(await c.call('RG.TRIGGER', 'cn-trigger'), ['Failed executing command'])
  await jsexecute(c, "GB('CommandReader').map(() => { try { override_reply(1, 2) } catch (e) { return e.message } }).register({ trigger: 'or-args' })")
  assert.equal(await c.call('RG.TRIGGER', 'or-args'), ['Override reply must get a single argument'])
  // A KeysReader registration without commands= has no command ctx either.
  await jsexecute(c, "GB().foreach(() => { try { override_reply('x') } catch (e) { execute('SET', 'noctx:err', e.message) } }).register('noctx:*')")
  await c.call('SET', 'noctx:k', '1')
  for (let i = 0; i < 200 && (await direct.get('noctx:err')) === null; i++) await new Promise((r) => setTimeout(r, 10))
  assert.is(await direct.get('noctx:err'), 'Can not get command ctx')
})

test('read-through cache: a GET miss loads the value and overrides the nil reply (commands=, keymiss)', async () => {
  const c = client()
  await jsexecute(
    c,
    "GB().foreach((r) => { const v = 'loaded:' + r.key; execute('SET', r.key, v); override_reply(v) }).register('cache:*', { eventTypes: ['keymiss'], commands: ['get'], mode: 'async_local' })",
  )
  assert.is(await c.call('GET', 'cache:1'), 'loaded:cache:1')
  assert.is(await direct.get('cache:1'), 'loaded:cache:1')
  // A hit is not a miss: the stored value, no execution.
  await direct.set('cache:2', 'stored')
  assert.is(await c.call('GET', 'cache:2'), 'stored')
  // Only GET is linked: another command's miss does not fire it.
  assert.is(await c.call('STRLEN', 'cache:3'), 0)
  assert.is(await direct.exists('cache:3'), 0)
  // Keys outside the prefix: a plain nil.
  assert.is(await c.call('GET', 'other:1'), null)
  // redis-cli sees the overridden reply too.
  assert.is(await redisCli(served.port, ['GET', 'cache:4']), 'loaded:cache:4\n')
  const dump = (await c.call('RG.DUMPREGISTRATIONS')) as unknown[][]
  const data = dump[0]![7] as unknown[]
  assert.is(Number(data[data.indexOf('numSuccess') + 1]), 2)
})

test('override_reply: the first call wins, a second raises "Can only override reply once"', async () => {
  const c = client()
  await jsexecute(
    c,
    "GB().foreach((r) => { override_reply('first'); try { override_reply('second') } catch (e) { execute('SET', 'once:err', e.message) } }).register('once:*', { eventTypes: ['keymiss'], commands: ['get'] })",
  )
  assert.is(await c.call('GET', 'once:k'), 'first')
  assert.is(await direct.get('once:err'), 'Can only override reply once')
})

test('a sync hook holds the shard: another client\'s command waits until the execution finished', async () => {
  const c = client()
  const other = client()
  await direct.del('sync:seq', 'sync:release')
  await jsexecute(
    c,
    "GB('CommandReader').map((x) => { execute('SET', 'sync:seq', 'a'); const end = Date.now() + 5000; while (Date.now() < end && execute('EXISTS', 'sync:release') === 0) {} execute('SET', 'sync:seq', 'b'); return call_next(...x.slice(1)) }).register({ hook: 'append', mode: 'sync', convertToStr: false })",
  )
  const hooked = c.call('APPEND', 'sync:x', 'y')
  for (let i = 0; i < 500 && (await direct.get('sync:seq')) !== 'a'; i++) await new Promise((r) => setTimeout(r, 5))
  assert.is(await direct.get('sync:seq'), 'a')
  let answered: unknown = 'not yet'
  const read = other.call('GET', 'sync:seq').then((v) => (answered = v))
  await new Promise((r) => setTimeout(r, 150))
  assert.is(answered, 'not yet', 'the other client waits while the sync execution runs')
  await direct.set('sync:release', '1')
  assert.is(await hooked, 1)
  await read
  assert.is(answered, 'b')
})

test('a sync KeysReader registration runs before the client gets its reply', async () => {
  const c = client()
  await jsexecute(c, "GB().foreach((r) => execute('SET', 'copy:' + r.key, r.value)).register('src:*', { mode: 'sync', eventTypes: ['set'] })")
  assert.is(await c.call('SET', 'src:1', 'v1'), 'OK')
  // No waiting: the copy exists when the reply arrives.
  assert.is(await direct.get('copy:src:1'), 'v1')
})

test.run()
