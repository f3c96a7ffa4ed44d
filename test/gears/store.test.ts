/**
 * Persistence on a standalone redis-server: a session with registrations is in `{gearbox}:sessions`
 * before execute() resolves; a Gearbox created again on that Redis restores it (same ids, the top
 * level's side effects not repeated, onRegistered called again); unregister and upgrade update the
 * store; an unreadable entry is skipped; `persist: false` writes nothing; functions cannot reach
 * the reserved prefix (host policy and the function user's ACL).
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { complementPatterns, isReserved, RESERVED_PREFIX } from '../../host/redis/reserved-keys.js'
import { KeyspaceLeases, leaseKey, SESSIONS_KEY } from '../../host/gears/store.js'
import { createRedisBackend } from '../../host/redis/index.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection } from '../helpers/rejection.js'
import { poller } from '../helpers/until.js'

const ctx: { redis?: TestRedis; client?: Redis } = {}
const client = (): Redis => ctx.client!
const quiet = { log: () => {} }
const open: Gearbox[] = []

async function create(options: { persist?: boolean; lines?: string[] } = {}): Promise<Gearbox> {
  const lines = options.lines
  const box = await Gearbox.create({
    redis: ctx.redis!.url,
    workers: 1,
    logger: lines === undefined ? quiet : { log: (_level, message) => lines.push(message) },
    ...(options.persist === undefined ? {} : { persist: options.persist }),
  })
  open.push(box)
  return box
}

async function closeAll(): Promise<void> {
  for (const box of open.splice(0)) await box.close()
}

const until = poller(10_000)

const t = suite('store (standalone)')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.client = new Redis(ctx.redis.port, '127.0.0.1')
})

t.after(async () => {
  await closeAll()
  ctx.client?.disconnect()
  await ctx.redis?.stop()
})

t.before.each(async () => {
  await closeAll()
  await client().flushall()
})

const SCRIPT = `
  execute('INCR', 'toplevel')
  const greeting = execute('GET', 'greeting') ?? 'hello'
  GB('CommandReader').map((r) => greeting + ' ' + r[1]).register({ trigger: 'greet', onRegistered: () => execute('INCR', 'registered') })
  GB().foreach((r) => execute('RPUSH', 'events', r.key)).register('k:*', { eventTypes: ['set'] })`

t('stored before OK; restored by the next Gearbox: same ids, top level not repeated, onRegistered again, events flow', async () => {
  await client().set('greeting', 'hi')
  const first = await create()
  assert.is(await first.execute(SCRIPT, { id: 'greeter', description: 'says hi' }), 'OK')
  // Written before execute() resolved.
  const stored = JSON.parse((await client().hget(SESSIONS_KEY, 'greeter'))!) as { source: string; registrations: { id: string }[]; description: string }
  assert.is(stored.source, SCRIPT)
  assert.is(stored.description, 'says hi')
  const ids = first.registrations.list().map((r) => r.id)
  assert.equal(stored.registrations.map((r) => r.id), ids)
  await first.close()

  // The top level read 'greeting' once: the restored one replays that read (not 'changed').
  await client().set('greeting', 'changed')
  const second = await create()
  assert.equal(second.registrations.list().map((r) => r.id), ids)
  assert.equal(second.sessions.list().map((s) => [s.ID, s.sessionDescription]), [['greeter', 'says hi']])
  assert.equal(await second.trigger('greet', 'you'), ['hi you'])
  assert.is(await client().get('toplevel'), '1', 'the top level ran once')
  assert.is(await client().get('registered'), '2', 'onRegistered ran again on restore')
  await client().set('k:1', 'x')
  await until('the restored KeysReader registration saw the event', async () => (await client().lrange('events', 0, -1)).includes('k:1'))
  // New ids of the restarted host never collide with restored ones.
  assert.is(await second.execute(`GB('CommandReader').register({ trigger: 'more' })`), 'OK')
  const all = second.registrations.list().map((r) => r.id)
  assert.is(new Set(all).size, all.length)
})

t('unregister and upgrade update the store; a restart restores what is left', async () => {
  const first = await create()
  assert.is(await first.execute(`GB('CommandReader').map(() => 'a1').register({ trigger: 'a' }); GB('CommandReader').map(() => 'b1').register({ trigger: 'b' })`, { id: 'pair' }), 'OK')
  assert.is(await first.execute(`GB('CommandReader').map(() => 'c1').register({ trigger: 'c' })`, { id: 'single' }), 'OK')
  const a = first.registrations.list().find((r) => r.RegistrationData.args[1] === 'a')!
  await first.registrations.unregister(a.id)
  const pair = JSON.parse((await client().hget(SESSIONS_KEY, 'pair'))!) as { unregistered: string[] }
  assert.equal(pair.unregistered, [a.id])
  assert.is(await first.execute(`GB('CommandReader').map(() => 'c2').register({ trigger: 'c' })`, { id: 'single', upgrade: true }), 'OK')
  await first.close()

  const second = await create()
  assert.equal(second.registrations.list().map((r) => r.RegistrationData.args[1]).sort(), ['b', 'c'])
  assert.equal(await second.trigger('c'), ['c2'])
  assert.equal(await second.trigger('b'), ['b1'])
  // Unregistering the last registration of a session removes it from the store.
  const c = second.registrations.list().find((r) => r.RegistrationData.args[1] === 'c')!
  await second.registrations.unregister(c.id)
  assert.is(await client().hexists(SESSIONS_KEY, 'single'), 0)
  assert.equal(await client().hkeys(SESSIONS_KEY), ['pair'])
})

t('an unreadable stored session is skipped with a log line; the others are restored', async () => {
  const first = await create()
  assert.is(await first.execute(`GB('CommandReader').map(() => 'ok').register({ trigger: 'fine' })`, { id: 'good' }), 'OK')
  await first.close()
  await client().hset(SESSIONS_KEY, 'broken', '{not json')
  const lines: string[] = []
  const second = await create({ lines })
  assert.equal(await second.trigger('fine'), ['ok'])
  assert.ok(lines.some((l) => l.includes('stored session broken') && l.includes('skipped')), lines.join('\n'))
})

t('a registration that cannot be stored is not kept; a failed upgrade leaves the old version', async () => {
  const box = await create()
  assert.is(await box.execute(`GB('CommandReader').map(() => 'v1').register({ trigger: 'kept' })`, { id: 'kept' }), 'OK')
  // The store's hash replaced by a string: every write to it fails (WRONGTYPE).
  await client().del(SESSIONS_KEY)
  await client().set(SESSIONS_KEY, 'not a hash')
  const fresh = await rejection(box.execute(`GB('CommandReader').register({ trigger: 'lost' })`, { id: 'lost' }))
  assert.equal(fresh.code, 'ERR_GEARBOX_STORE')
  assert.ok(fresh.message.includes('WRONGTYPE'), fresh.message)
  assert.equal(box.registrations.list().map((r) => r.RegistrationData.args[1]), ['kept'])
  assert.equal(box.sessions.list().map((s) => s.ID), ['kept'])
  const upgrade = await rejection(box.execute(`GB('CommandReader').map(() => 'v2').register({ trigger: 'kept' })`, { id: 'kept', upgrade: true }))
  assert.equal(upgrade.code, 'ERR_GEARBOX_STORE')
  assert.equal(await box.trigger('kept'), ['v1'], 'the old version is back')
  assert.is(box.registrations.list().length, 1)
})

t('persist: false keeps registrations in the process only', async () => {
  const box = await create({ persist: false })
  assert.is(await box.execute(`GB('CommandReader').register({ trigger: 'mem' })`), 'OK')
  assert.equal(await client().keys(`${RESERVED_PREFIX}*`), [])
  await box.close()
  const next = await create({ persist: false })
  assert.equal(next.registrations.list(), [])
})

t('functions cannot use the reserved prefix: the host policy refuses it, and so does the function ACL', async () => {
  const box = await create()
  assert.is(await box.execute(`GB('CommandReader').register({ trigger: 'x' })`), 'OK')
  for (const command of [`execute('GET', '${SESSIONS_KEY}')`, `execute('DEL', '${SESSIONS_KEY}')`, `execute('PUBLISH', '${RESERVED_PREFIX}changes', 'x')`]) {
    const refused = await rejection(box.execute(command))
    assert.equal(refused.code, 'ERR_GEARBOX_GUEST', command)
    assert.ok(refused.message.includes(`starting with ${RESERVED_PREFIX} are gearbox's own`), refused.message)
  }
  // Other keys and a reserved-looking value are fine.
  assert.is(await box.execute(`execute('SET', 'plain', '${RESERVED_PREFIX}value'); execute('SET', '{gearbox}x', '1')`), 'OK')
  assert.is(await client().hexists(SESSIONS_KEY, (box.sessions.list()[0]!.ID)), 1, 'the store is intact')
  // Redis itself refuses them to the function user (ACL DRYRUN as an admin).
  const dry = (...args: string[]): Promise<unknown> => client().call('ACL', 'DRYRUN', 'gearbox-functions', ...args).catch((e: Error) => e.message)
  assert.match(String(await dry('GET', SESSIONS_KEY)), 'no permissions')
  assert.match(String(await dry('SET', `${RESERVED_PREFIX}lease:x`, '1')), 'no permissions')
  assert.match(String(await dry('PUBLISH', `${RESERVED_PREFIX}changes`, '1')), 'no permissions')
  for (const key of ['plain', '', '{', '{gearbox}', '{gearbox}x', 'gearbox:', '{gearbo']) assert.is(await dry('GET', key), 'OK', `GET '${key}'`)
})

t('keyspace leases: one holder at a time, renewed while it lives; released on close, taken by the other', async () => {
  const backend = createRedisBackend(ctx.redis!.url)
  const first = new KeyspaceLeases(backend, quiet, 'host-1', 300)
  const second = new KeyspaceLeases(backend, quiet, 'host-2', 300)
  const shard = (await backend.currentShard()).id
  try {
    await first.start()
    await second.start()
    assert.ok(first.holds(shard))
    assert.not.ok(second.holds(shard))
    assert.is(await client().get(leaseKey(shard)), 'host-1')
    // Over several TTLs the holder keeps renewing it and the other never counts it as its own.
    const deadline = Date.now() + 1200
    for (let i = 0; i < 200 && Date.now() < deadline; i++) {
      assert.ok(first.holds(shard), 'the holder keeps its lease')
      assert.not.ok(second.holds(shard), 'never both')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await first.close()
    await until('the other host takes the released lease', () => second.holds(shard), 5000)
    assert.is(await client().get(leaseKey(shard)), 'host-2')
    const ttl = await client().pttl(leaseKey(shard))
    assert.ok(ttl > 0 && ttl <= 300, `lease TTL ${ttl}`)
  } finally {
    await first.close()
    await second.close()
    await backend.close()
  }
  assert.is(await client().exists(leaseKey(shard)), 0, 'close() lets go of the lease')
})

t('complementPatterns: every name but the prefixed ones', () => {
  const patterns = complementPatterns('{ab}:')
  const glob = (p: string): RegExp => new RegExp(`^${p.replace(/[{}:]/g, (c) => `\\${c}`).replace(/\[\^(.)\]/g, '[^$1]').replace(/\*/g, '.*')}$`, 's')
  const matches = (name: string): boolean => patterns.some((p) => glob(p).test(name))
  for (const name of ['', 'x', '{', '{a', '{ab', '{ab}', '{ab}x', '{ac}:', 'z{ab}:']) assert.ok(matches(name), name)
  for (const name of ['{ab}:', '{ab}:k']) assert.not.ok(matches(name), name)
  assert.ok(isReserved(new TextEncoder().encode(`${RESERVED_PREFIX}k`)))
  assert.not.ok(isReserved(new TextEncoder().encode('{gearbox}')))
})

t.run()
