/**
 * Registrations on a standalone redis-server: register()'s checks with RedisGears' texts, all or
 * nothing, CommandReader triggers (RG.TRIGGER's reply rules), the top level not repeated by the
 * executions, KeysReader events from keyspace notifications (records, prefix rule, filters, order
 * per key, resubscription after a disconnect), failing handlers, and the management API.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { REGISTRATION_QUEUE_SIZE } from '../../host/gears/registrations.js'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection } from '../helpers/rejection.js'
import { poller } from '../helpers/until.js'

const ctx: { redis?: TestRedis; gearbox?: Gearbox; client?: Redis } = {}
const gearbox = (): Gearbox => ctx.gearbox!
const client = (): Redis => ctx.client!

const until = poller(10_000)

function registration(id: string) {
  const found = gearbox().registrations.list().find((r) => r.id === id)
  assert.ok(found, `registration ${id} is listed`)
  return found!
}

async function unregisterAll(): Promise<void> {
  await Promise.all(gearbox().registrations.list().map((r) => gearbox().registrations.unregister(r.id)))
}

const t = suite('registrations (standalone)')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.gearbox = await Gearbox.create({ redis: ctx.redis.url, workers: 2 })
  ctx.client = new Redis(ctx.redis.port, '127.0.0.1', { lazyConnect: false })
})

t.after(async () => {
  ctx.client?.disconnect()
  await ctx.gearbox?.close()
  await ctx.redis?.stop()
})

t.before.each(async () => {
  await unregisterAll()
  await client().flushall()
})

t('register() checks its arguments with RedisGears texts, in the host', async () => {
  const cases: [string, string][] = [
    [`GB().register(5)`, 'regex argument must be a string'],
    [`GB().register('*', { mode: 'later' })`, 'unknown execution mode'],
    [`GB().register('*', { mode: 3 })`, 'execution mode must be a string'],
    [`GB().register('*', { onRegistered: 'x' })`, 'OnRegistered argument must be a function'],
    [`GB().register('*', { eventTypes: 5 })`, 'given eventTypes is not iterable'],
    [`GB().register('*', { eventTypes: [1] })`, 'given event type is not string'],
    [`GB().register('*', { keyTypes: 5 })`, 'given keyTypes is not iterable'],
    [`GB().register('*', { keyTypes: [true] })`, 'given key type is not string'],
    [`GB().register('*', { keyTypes: ['tree'] })`, 'unknown key type'],
    [`GB().register('*', { readValue: 'yes' })`, 'readValue is not boolean'],
    [`GB().register('*', { commands: 7 })`, 'given commands is not iterable'],
    [`GB().register('*', { commands: [7] })`, 'given command type is not string'],
    [`GB().register('x*', { commands: ['blmpop'] })`, 'Can not hook a command with moveable keys by key prefix'],
    [`GB().register('*', { commands: ['multi'] })`, 'Can not hook a command which are not allowed inside a script'],
    [`GB('CommandReader').register({ trigger: 5 })`, 'trigger argument is not string'],
    [`GB('CommandReader').register({ hook: 5 })`, 'hook argument is not string'],
    [`GB('CommandReader').register({ hook: 'set', keyprefix: 5 })`, 'keyprefix argument is not string'],
    [`GB('CommandReader').register({ trigger: 't', inorder: 1 })`, 'inorder argument is be boolean'],
    [`GB('CommandReader').register({ trigger: 't', hook: 'set' })`, 'trigger argument can not be given with keyprefix or hook'],
    [`GB('CommandReader').register({})`, 'no trigger or hook argument was given'],
    [`GB('CommandReader').register({ hook: 'nosuchcommand' })`, 'Can not override an unexisting command'],
    [`GB('CommandReader').register({ hook: 'exec' })`, 'Can not override a command which are not allowed inside a script'],
    [`GB('CommandReader').register({ trigger: 'a' }); GB('CommandReader').register({ trigger: 'a' })`, 'trigger already registered in this session'],
    [`GB('ShardsIDReader').register()`, 'given reader does not exists or does not support register'],
    [`GB('StreamReader').register('s', { batch: 'x' })`, 'batch argument must be a number'],
    [`GB('StreamReader').register('s', { duration: 'x' })`, 'duration argument must be a number'],
    [`GB('StreamReader').register('s', { onFailedPolicy: 3 })`, 'onFailedPolicy must be a string (Continue/Abort/Retry)'],
    [`GB('StreamReader').register('s', { onFailedPolicy: 'skip' })`, 'onFailedPolicy must be Continue/Abort/Retry'],
    [`GB('StreamReader').register('s', { onFailedRetryInterval: 'x' })`, 'retryInterval argument must be a number'],
    [`GB('StreamReader').register('s', { trimStream: 1 })`, 'pyTrimmStream argument must be a boolean'],
    [`GB('StreamReader').register('s', { mode: 'sync', onFailedPolicy: 'abort' })`, 'ExecutionMode sync can only be combined with OnFailedPolicy Continue'],
  ]
  for (const [script, text] of cases) {
    const failure = await rejection(gearbox().execute(script))
    assert.equal(failure.code, 'ERR_GEARBOX_GUEST', script)
    assert.ok(failure.message.includes(text), `${script}: expected '${text}' in ${failure.message}`)
  }
  assert.equal(gearbox().registrations.list().length, 0)
})

t('a trigger: results, RG.TRIGGER records, the first error as an error, unknown name', async () => {
  const reply = await gearbox().execute(`
    const id = GB('CommandReader').map((r) => r.join('|')).register({ trigger: 'echo' })
    GB('CommandReader').map((r) => { if (r[1] === 'bad') throw new Error('bad arg'); return r.length }).register({ trigger: 'len', convertToStr: false })
  `)
  assert.is(reply, 'OK')
  assert.equal(await gearbox().trigger('echo', 'a', 'b'), ['echo|a|b'])
  assert.equal(await gearbox().triggerOnKey('echo', 'k1', 'x'), ['echo|k1|x'])
  assert.equal(await gearbox().trigger('len', 'one', 'two'), [3])
  const failed = await rejection(gearbox().trigger('len', 'bad'))
  assert.equal(failed.code, 'ERR_GEARBOX_REGISTRATION')
  assert.ok(failed.message.includes('bad arg'), failed.message)
  const missing = await rejection(gearbox().trigger('nope'))
  assert.equal(missing.code, 'ERR_GEARBOX_TRIGGER_NOT_FOUND')
  assert.equal(missing.message, 'ERR subcommand not found')
  // Another session may not take a registered trigger name.
  const taken = await rejection(gearbox().execute(`GB('CommandReader').register({ trigger: 'echo' })`))
  assert.ok(taken.message.includes('trigger already registered'), taken.message)
  const len = gearbox().registrations.list().find((r) => r.RegistrationData.args[1] === 'len')!
  assert.equal(len.reader, 'CommandReader')
  assert.equal(len.RegistrationData.numTriggered, 2)
  assert.equal(len.RegistrationData.numSuccess, 1)
  assert.equal(len.RegistrationData.numFailures, 1)
  assert.ok(len.RegistrationData.lastError?.includes('bad arg'))
  assert.equal(len.RegistrationData.args, ['trigger', 'len', 'inorder', 0])
  assert.equal(len.RegistrationData.status, 'OK')
})

t('register() returns the id; executions start from the top level state without running it again', async () => {
  const N = 8
  await gearbox().execute(`
    execute('INCR', 'toplevel:runs')
    const prefix = 'p-' + execute('GET', 'toplevel:runs')
    let calls = 0
    function tag(x) { calls++; return prefix + ':' + x + ':' + calls }
    const id = GB('CommandReader').map((r) => tag(r[1])).register({ trigger: 'tag' })
    execute('SET', 'toplevel:id', id)
  `)
  const results: unknown[] = []
  for (let i = 0; i < N; i++) results.push(...(await gearbox().trigger('tag', String(i))))
  assert.equal(await client().get('toplevel:runs'), '1', 'the top level ran once')
  // Each execution starts from the top level's state: its globals (prefix), a fresh counter.
  assert.equal(results, Array.from({ length: N }, (_, i) => `p-1:${i}:1`))
  const id = await client().get('toplevel:id')
  assert.ok(id !== null && /^0{40}-\d+$/.test(id), String(id))
  assert.equal(registration(id!).RegistrationData.numSuccess, N)
})

t('all or nothing: a script that throws after register() registers nothing', async () => {
  const failure = await rejection(
    gearbox().execute(`
      GB('CommandReader').register({ trigger: 'first' })
      GB().register('a*')
      throw new Error('later')
    `),
  )
  assert.equal(failure.code, 'ERR_GEARBOX_GUEST')
  assert.equal(gearbox().registrations.list().length, 0)
  assert.equal((await rejection(gearbox().trigger('first'))).code, 'ERR_GEARBOX_TRIGGER_NOT_FOUND')
})

t("register() reached without its name in the source is refused clearly (only such scripts' top levels are recorded)", async () => {
  const failure = await rejection(gearbox().execute(`const name = 'reg' + 'ister'; GB('CommandReader')[name]({ trigger: 'hidden' })`))
  assert.equal(failure.code, 'ERR_GEARBOX_GUEST')
  assert.match(failure.message, "does not contain the word 'register'")
  assert.equal((await rejection(gearbox().trigger('hidden'))).code, 'ERR_GEARBOX_TRIGGER_NOT_FOUND')
})

t('without a server, hooks and commands= are stored but inactive, with the reason; sync runs at once, in order per key', async () => {
  // A Gearbox of its own: the shared one's keyspace feed must start in the next test (it checks the set-up).
  const own = await Gearbox.create({ redis: ctx.redis!.url, workers: 1, persist: false })
  try {
    await checkInactiveAndSync(own)
  } finally {
    await own.close()
  }
})

async function checkInactiveAndSync(gearbox: Gearbox): Promise<void> {
  await gearbox.execute(`
    GB('CommandReader').register({ hook: 'set', keyprefix: 'h:' })
    GB().register('c*', { commands: ['set'] })
    GB().foreach((r) => execute('RPUSH', 'sync-seen', r.value)).register('s:*', { mode: 'sync' })
  `)
  const list = gearbox.registrations.list()
  assert.equal(list.length, 3)
  for (const r of list.slice(0, 2)) {
    assert.equal(r.RegistrationData.status, 'INACTIVE')
    assert.ok(r.RegistrationData.inactiveReason?.includes('gearbox serve'), String(r.RegistrationData.inactiveReason))
  }
  assert.equal(list[0]!.RegistrationData.args, ['hook', 'set', 'keyprefix', 'h:', 'inorder', 0])
  assert.equal(list[2]!.RegistrationData.status, 'OK')
  assert.equal(list[2]!.RegistrationData.mode, 'sync')
  for (let i = 0; i < 20; i++) await client().set('s:1', String(i))
  await until('the sync events', async () => (await client().llen('sync-seen')) >= 20)
  // One key's events run in the order they happened (a value read may show a later write, never an earlier one).
  const seen = (await client().lrange('sync-seen', 0, -1)).map(Number)
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! >= seen[i - 1]!, `in order: ${seen.join(',')}`)
}

t('KeysReader: notify-keyspace-events set up, records as RedisGears gives them, prefix rule', async () => {
  await rawCommand(ctx.redis!.port, ['CONFIG', 'SET', 'notify-keyspace-events', ''])
  const reply = await gearbox().execute(`
    GB().foreach((r) => execute('RPUSH', 'seen', JSON.stringify(r))).register('user:*')
    GB().foreach((r) => execute('RPUSH', 'exact-seen', r.key)).register('exact')
  `)
  assert.is(reply, 'OK')
  const flags = (await client().config('GET', 'notify-keyspace-events')) as string[]
  for (const c of 'Kg$lshzxetm') assert.ok(flags[1]!.includes(c) || (flags[1]!.includes('A') && 'g$lshzxet'.includes(c)), `${c} in ${flags[1]}`)
  await client().set('user:1', 'a')
  await client().hset('user:2', 'f', 'v')
  await client().set('other', 'x')
  await client().set('exactly', 'x')
  await client().set('exact', 'y')
  await until('two user events', async () => (await client().llen('seen')) >= 2)
  await until('the exact key', async () => (await client().llen('exact-seen')) >= 1)
  const seen = (await client().lrange('seen', 0, -1)).map((s) => JSON.parse(s) as unknown)
  const byKey = Object.fromEntries(seen.map((r) => [(r as { key: string }).key, r]))
  assert.equal(byKey['user:1'], { key: 'user:1', event: 'set', type: 'string', value: 'a' })
  assert.equal(byKey['user:2'], { key: 'user:2', event: 'hset', type: 'hash', value: { f: 'v' } })
  assert.equal(await client().lrange('exact-seen', 0, -1), ['exact'])
})

t('KeysReader: eventTypes (case-insensitive), keyTypes, readValue false, del', async () => {
  await gearbox().execute(`
    GB().foreach((r) => execute('RPUSH', 'sets', JSON.stringify(r))).register('e:*', { eventTypes: ['SET'], readValue: false })
    GB().foreach((r) => execute('RPUSH', 'hashes', r.key + ':' + r.event)).register('e:*', { keyTypes: ['hash'] })
    GB().foreach((r) => execute('RPUSH', 'dels', JSON.stringify(r))).register('e:*', { eventTypes: ['del'] })
  `)
  await client().set('e:s', '1')
  await client().hset('e:h', 'a', '1')
  await client().del('e:s')
  await until('the filtered events', async () => (await client().llen('sets')) >= 1 && (await client().llen('hashes')) >= 1 && (await client().llen('dels')) >= 1)
  assert.equal(await client().lrange('sets', 0, -1), [JSON.stringify({ key: 'e:s', event: 'set' })])
  assert.equal(await client().lrange('hashes', 0, -1), ['e:h:hset'])
  assert.equal(JSON.parse((await client().lrange('dels', 0, -1))[0]!), { key: 'e:s', event: 'del', type: 'empty', value: null })
})

t("KeysReader: one key's events run in the order they happened", async () => {
  // Events, not values: a value is read when the notification arrives, a later write may be seen.
  await gearbox().execute(`GB().foreach((r) => execute('RPUSH', 'order', r.event)).register('o:key', { readValue: false })`)
  const ops: [string, () => Promise<unknown>][] = [
    ['set', () => client().set('o:key', 'v')],
    ['append', () => client().append('o:key', 'w')],
    ['setrange', () => client().setrange('o:key', 0, 'x')],
    ['expire', () => client().expire('o:key', 1000)],
    ['persist', () => client().persist('o:key')],
  ]
  const expected: string[] = []
  for (let i = 0; i < 30; i++) {
    const [event, op] = ops[i % ops.length]!
    expected.push(event)
    await op()
  }
  await until('every event', async () => (await client().llen('order')) >= expected.length)
  assert.equal(await client().lrange('order', 0, -1), expected)
})

t('a handler that throws or loops on every event: coded errors, counters, it goes on', async () => {
  await gearbox().execute(`GB().foreach(() => { throw new Error('always') }).register('bad:*')`)
  await gearbox().execute(`GB().foreach(() => { for (;;) {} }).register('loop:*')`, { limits: { cpuMs: 50 } })
  await gearbox().execute(`GB().foreach((r) => execute('INCR', 'good')).register('bad:*')`)
  for (let i = 0; i < 3; i++) await client().set(`bad:${i}`, 'x')
  await client().set('loop:1', 'x')
  const [bad, loop] = gearbox().registrations.list()
  await until('the failures', () => bad!.id !== '' && registration(bad!.id).RegistrationData.numFailures >= 3 && registration(loop!.id).RegistrationData.numFailures >= 1)
  await until('the good registration', async () => (await client().get('good')) === '3')
  const badData = registration(bad!.id).RegistrationData
  assert.equal(badData.numTriggered, 3)
  assert.equal(badData.numSuccess, 0)
  assert.ok(badData.lastError?.includes('always'), String(badData.lastError))
  const loopData = registration(loop!.id).RegistrationData
  assert.ok(loopData.lastError?.startsWith('ERR_GEARBOX_CPU_LIMIT'), String(loopData.lastError))
  // Redis and the other executions are unaffected.
  assert.equal(await client().ping(), 'PONG')
  await client().set('bad:again', 'x')
  await until('the next failure', () => registration(bad!.id).RegistrationData.numFailures >= 4)
  // clearStats zeroes the counters and lastError.
  gearbox().registrations.clearStats()
  const cleared = registration(bad!.id).RegistrationData
  assert.equal([cleared.numTriggered, cleared.numFailures, cleared.lastError], [0, 0, null])
})

t('unregister: no more events; an unknown id is refused', async () => {
  await gearbox().execute(`GB().foreach(() => execute('INCR', 'count:u')).register('u:*')`)
  const [r] = gearbox().registrations.list()
  await client().set('u:1', 'x')
  await until('the first event', async () => (await client().get('count:u')) === '1')
  gearbox().registrations.unregister(r!.id)
  assert.equal(gearbox().registrations.list().length, 0)
  // A marker registration shows events after the unregister were delivered (and not to the old one).
  await gearbox().execute(`GB().foreach(() => execute('INCR', 'marker:u')).register('u:*')`)
  await client().set('u:2', 'x')
  await until('the marker', async () => (await client().get('marker:u')) === '1')
  assert.equal(await client().get('count:u'), '1')
  const missing = await rejection(Promise.resolve().then(() => gearbox().registrations.unregister(r!.id)))
  assert.equal(missing.code, 'ERR_GEARBOX_REGISTRATION_NOT_FOUND')
  assert.equal(missing.message, 'execution is not registered')
})

t('a killed subscriber connection: resubscribed, the gap counted, events flow again', async () => {
  await gearbox().execute(`GB().foreach(() => execute('INCR', 'count:g')).register('g:*')`)
  const [r] = gearbox().registrations.list()
  await rawCommand(ctx.redis!.port, ['CLIENT', 'KILL', 'TYPE', 'pubsub'])
  await until('the gap', () => registration(r!.id).RegistrationData.numSubscriberGaps >= 1)
  await client().set('g:1', 'x')
  await until('an event after the resubscription', async () => (await client().get('count:g')) === '1')
})

t('onRegistered runs once the registration applied, from the top level state', async () => {
  await gearbox().execute(`
    const greeting = execute('INCR', 'on:toplevel') === 1 ? 'first' : 'again'
    GB('CommandReader').register({ trigger: 'on', onRegistered: () => execute('SET', 'on:registered', greeting) })
  `)
  assert.is(await client().get('on:registered'), 'first')
  assert.is(await client().get('on:toplevel'), '1')
})

t.run()

const queue = suite('registrations: the bounded queue')
const qctx: { redis?: TestRedis; gearbox?: Gearbox; client?: Redis } = {}
queue.before(async () => {
  qctx.redis = await startRedis()
  qctx.gearbox = await Gearbox.create({ redis: qctx.redis.url, workers: 1, registrationQueueSize: 4 })
  qctx.client = new Redis(qctx.redis.port, '127.0.0.1')
})
queue.after(async () => {
  qctx.client?.disconnect()
  await qctx.gearbox?.close()
  await qctx.redis?.stop()
})

queue('an event storm past the queue: events dropped and counted, none held beyond the bound', async () => {
  assert.ok(Number.isSafeInteger(REGISTRATION_QUEUE_SIZE) && REGISTRATION_QUEUE_SIZE > 0)
  const box = qctx.gearbox!
  // Each execution is slow (a busy 40 ms) on the one worker: the writes below outpace it.
  await box.execute(`GB().foreach(() => { const end = Date.now() + 40; while (Date.now() < end) {} execute('INCR', 'ran') }).register('q:*')`)
  const N = 60
  const pipeline = qctx.client!.pipeline()
  for (let i = 0; i < N; i++) pipeline.set(`q:${i}`, 'x')
  await pipeline.exec()
  const [r] = box.registrations.list()
  await until('every event handled or dropped', () => {
    const d = box.registrations.list()[0]!.RegistrationData
    return d.numSuccess + d.numDropped >= N
  }, 30_000)
  const data = box.registrations.list().find((x) => x.id === r!.id)!.RegistrationData
  assert.ok(data.numDropped > 0, `dropped ${data.numDropped}`)
  assert.ok(data.numSuccess >= 4, `ran ${data.numSuccess}`)
  assert.is(data.numSuccess + data.numDropped, N)
  assert.is(await qctx.client!.get('ran'), String(data.numSuccess))
})

queue.run()

const refused = suite('registrations: CONFIG SET refused')
const rctx: { redis?: TestRedis } = {}
refused.before(async () => {
  rctx.redis = await startRedis()
  await rawCommand(rctx.redis.port, ['ACL', 'SETUSER', 'noconfig', 'on', '>pw', '~*', '&*', '+@all', '-config|set'])
})
refused.after(async () => {
  await rctx.redis?.stop()
})

refused('a Redis that refuses CONFIG SET: the registration fails, naming the setting and the value', async () => {
  const box = await Gearbox.create({ redis: `redis://noconfig:pw@127.0.0.1:${rctx.redis!.port}`, workers: 1 })
  try {
    const failure = await rejection(box.execute(`GB().foreach(() => {}).register('k*')`))
    assert.equal(failure.code, 'ERR_GEARBOX_KEYSPACE_NOTIFICATIONS')
    assert.ok(failure.message.includes("notify-keyspace-events to 'Kg$lshzxetm'"), failure.message)
    assert.equal(box.registrations.list().length, 0, 'nothing registered')
    // A trigger registration needs no notifications.
    assert.is(await box.execute(`GB('CommandReader').register({ trigger: 'ok' })`), 'OK')
  } finally {
    await box.close()
  }
})

refused.run()
