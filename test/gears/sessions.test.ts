/**
 * Sessions on a standalone redis-server: execute()'s id / description / upgrade / replaceWith
 * with RG.PYEXECUTE's rules and texts, sessions.list() with RG.PYDUMPSESSIONS' fields, an upgrade
 * that lets in-flight executions finish on the old version, registered executions in
 * gearbox.executions (capped by MaxExecutionsPerRegistration), and the RESP front's
 * RG.JSEXECUTE ID/UPGRADE/REPLACE_WITH and RG.PYDUMPSESSIONS.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import type { ServerHandle } from '../../host/server/index.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection } from '../helpers/rejection.js'
import { poller } from '../helpers/until.js'

const ctx: { redis?: TestRedis; gearbox?: Gearbox; client?: Redis } = {}
const gearbox = (): Gearbox => ctx.gearbox!
const client = (): Redis => ctx.client!

const until = poller(10_000)

async function unregisterAll(): Promise<void> {
  for (const r of gearbox().registrations.list()) await gearbox().registrations.unregister(r.id)
}

const t = suite('sessions (standalone)')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.gearbox = await Gearbox.create({ redis: ctx.redis.url, workers: 2, config: { MaxExecutionsPerRegistration: '3' }, logger: { log: () => {} } })
  ctx.client = new Redis(ctx.redis.port, '127.0.0.1')
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

t('RG.PYEXECUTE session rules with their texts', async () => {
  const charset = await rejection(gearbox().execute(`1`, { id: 'bad id!' }))
  assert.equal(charset.code, 'ERR_GEARBOX_SESSION')
  assert.is(charset.message, "ID must be compose of: ['A'-'Z' | 'a'-'z' | '0' - '9' | '-' | '_']")
  assert.is(await gearbox().execute(`GB('CommandReader').map(() => 'v1').register({ trigger: 'ver' })`, { id: 's1', description: 'first' }), 'OK')
  const exists = await rejection(gearbox().execute(`GB('CommandReader').register({ trigger: 'other' })`, { id: 's1' }))
  assert.equal(exists.code, 'ERR_GEARBOX_SESSION')
  assert.is(exists.message, 'Session s1 already exists')
  const unknown = await rejection(gearbox().execute(`1`, { replaceWith: 'nope' }))
  assert.is(unknown.message, 'Can not replace with nope, session does not exists.')
  const existing = await rejection(gearbox().execute(`1`, { id: 's1', upgrade: true, replaceWith: 's1' }))
  assert.is(existing.message, 'Can not replace an existing session s1 with s1')
  // Nothing changed by the refusals.
  assert.equal(await gearbox().trigger('ver'), ['v1'])
  assert.equal(gearbox().registrations.list().map((r) => r.RegistrationData.args[1]), ['ver'])
})

t('sessions.list(): RG.PYDUMPSESSIONS fields; a script without registrations is listed only while it runs', async () => {
  assert.is(await gearbox().execute(`GB('CommandReader').register({ trigger: 'a' }); GB('CommandReader').register({ trigger: 'b' })`, { id: 'two', description: 'two triggers' }), 'OK')
  const [reg1, reg2] = gearbox().registrations.list()
  assert.equal(gearbox().sessions.list(), [
    {
      ID: 'two',
      sessionDescription: 'two triggers',
      refCount: 2,
      linked: 'primary',
      dead: false,
      requirementInstallationNeeded: 0,
      requirements: [],
      registrations: [reg1!.id, reg2!.id],
    },
  ])
  assert.equal(reg1!.session, 'two')
  // A plain script is a session while it runs (a default id of 40 hex characters), then gone.
  const running = gearbox().execute(`execute('SET', 'x', '1'); runCoroutine(async () => { while (execute('GET', 'go') === null) await new Promise((r) => setTimeout(r, 10)) })`)
  await until('the running session is listed', () => gearbox().sessions.list().length === 2)
  const temporary = gearbox().sessions.list().find((s) => s.ID !== 'two')!
  assert.match(temporary.ID, /^[0-9a-f]{40}$/)
  assert.is(temporary.refCount, 1)
  assert.equal(temporary.registrations, [])
  await client().set('go', '1')
  assert.is(await running, 'OK')
  assert.equal(gearbox().sessions.list().map((s) => s.ID), ['two'])
  // Its id is free again once it ended; a session whose registrations are all unregistered ends.
  await gearbox().registrations.unregister(reg1!.id)
  assert.equal(gearbox().sessions.list()[0]!.registrations, [reg2!.id])
  await gearbox().registrations.unregister(reg2!.id)
  assert.equal(gearbox().sessions.list(), [])
  assert.is(await gearbox().execute(`1`, { id: 'two' }), 'OK')
})

t('upgrade: the new version takes the trigger; a failing upgrade keeps the old; upgrade of a missing id creates it', async () => {
  assert.is(await gearbox().execute(`GB('CommandReader').map(() => 'v1').register({ trigger: 'ver' })`, { id: 'up' }), 'OK')
  const before = gearbox().registrations.list()[0]!.id
  // Same trigger name: free for the upgrade (the old version's registration gives way).
  assert.is(await gearbox().execute(`GB('CommandReader').map(() => 'v2').register({ trigger: 'ver' })`, { id: 'up', upgrade: true, description: 'second' }), 'OK')
  assert.equal(await gearbox().trigger('ver'), ['v2'])
  const after = gearbox().registrations.list()
  assert.is(after.length, 1)
  assert.is.not(after[0]!.id, before)
  assert.is(gearbox().sessions.list()[0]!.sessionDescription, 'second')
  const failed = await rejection(gearbox().execute(`GB('CommandReader').map(() => 'v3').register({ trigger: 'ver' }); throw new Error('broken v3')`, { id: 'up', upgrade: true }))
  assert.equal(failed.code, 'ERR_GEARBOX_GUEST')
  assert.equal(await gearbox().trigger('ver'), ['v2'], 'the old version stays')
  assert.is(await gearbox().execute(`GB('CommandReader').map(() => 'fresh').register({ trigger: 'fresh' })`, { id: 'new-one', upgrade: true }), 'OK')
  assert.equal(await gearbox().trigger('fresh'), ['fresh'])
  // REPLACE_WITH: a new session takes the old one's place (and its trigger names).
  assert.is(await gearbox().execute(`GB('CommandReader').map(() => 'v4').register({ trigger: 'ver' })`, { id: 'up2', replaceWith: 'up' }), 'OK')
  assert.equal(await gearbox().trigger('ver'), ['v4'])
  assert.equal(gearbox().sessions.list().map((s) => s.ID).sort(), ['new-one', 'up2'])
  // An upgrade by a script that registers nothing removes the old version's registrations.
  assert.is(await gearbox().execute(`1`, { id: 'up2', upgrade: true }), 'OK')
  assert.equal((await rejection(gearbox().trigger('ver'))).code, 'ERR_GEARBOX_TRIGGER_NOT_FOUND')
  assert.equal(gearbox().sessions.list().map((s) => s.ID), ['new-one'])
})

t('upgrade while an event runs: it finishes on the old version, later events go to the new one', async () => {
  const version = (v: string): string => `
    GB().foreach((r) => {
      execute('SET', 'started:' + r.key, '${v}')
      if ('${v}' === 'v1') { const end = Date.now() + 400; while (Date.now() < end) {} }
      execute('RPUSH', 'log', '${v}:' + r.key)
    }).register('ev:*', { eventTypes: ['set'] })`
  assert.is(await gearbox().execute(version('v1'), { id: 'live' }), 'OK')
  await client().set('ev:a', '1')
  await until('the v1 execution started', async () => (await client().get('started:ev:a')) === 'v1')
  assert.is(await gearbox().execute(version('v2'), { id: 'live', upgrade: true }), 'OK')
  await client().set('ev:b', '1')
  await until('both events processed', async () => (await client().llen('log')) >= 2)
  assert.equal((await client().lrange('log', 0, -1)).sort(), ['v1:ev:a', 'v2:ev:b'])
  assert.is(gearbox().registrations.list().length, 1)
})

t('executions of registrations: listed as registered, at most MaxExecutionsPerRegistration kept', async () => {
  assert.is(await gearbox().execute(`GB('CommandReader').map((r) => r[1]).register({ trigger: 'echo' })`), 'OK')
  const regId = gearbox().registrations.list()[0]!.id
  for (let i = 0; i < 5; i++) assert.equal(await gearbox().trigger('echo', `a${i}`), [`a${i}`])
  const listed = gearbox().executions.list().filter((e) => e.registered && gearbox().executions.get(e.id).registration === regId)
  assert.is(listed.length, 3, 'MaxExecutionsPerRegistration is 3 here')
  const last = gearbox().executions.get(listed[2]!.id)
  assert.is(last.registered, true)
  assert.is(last.registration, regId)
  assert.is(last.reader, 'CommandReader')
  assert.is(last.status, 'done')
  assert.equal(gearbox().executions.results(listed[2]!.id).results, ['a4'])
  // A batch run() is not counted against the registration's cap, nor listed as registered.
  const id = await gearbox().execute(`GB('ShardsIDReader').run()`, { unblocking: true })
  const run = gearbox().executions.list().find((e) => e.id === id)
  assert.equal(run?.registered, false)
  assert.is(gearbox().executions.list().filter((e) => e.registered && gearbox().executions.get(e.id).registration === regId).length, 3)
})

t('gearbox serve: RG.JSEXECUTE ID / DESCRIPTION / UPGRADE / REPLACE_WITH and RG.PYDUMPSESSIONS', async () => {
  let server: ServerHandle | undefined
  let rc: Redis | undefined
  try {
    server = await gearbox().serve()
    rc = new Redis(server.address.port, server.address.host, { maxRetriesPerRequest: 1 })
    const call = (...args: string[]): Promise<unknown> => rc!.call(args[0]!, ...args.slice(1)).catch((e: Error) => `ERR:${e.message}`)
    assert.is(await call('RG.JSEXECUTE', `GB('CommandReader').map(() => 'one').register({ trigger: 'rt' })`, 'ID', 'rs', 'DESCRIPTION', 'resp session'), 'OK')
    assert.is(await call('RG.JSEXECUTE', `1`, 'ID', 'rs'), 'ERR:Session rs already exists')
    assert.is(await call('RG.JSEXECUTE', `GB('CommandReader').map(() => 'two').register({ trigger: 'rt' })`, 'ID', 'rs', 'UPGRADE'), 'OK')
    assert.equal(await call('RG.TRIGGER', 'rt'), ['two'])
    // The trigger's execution is in RG.DUMPEXECUTIONS, marked registered.
    const dumped = (await call('RG.DUMPEXECUTIONS')) as unknown[][]
    assert.ok(dumped.some((e) => e[5] === 1 && e[3] === 'done'), JSON.stringify(dumped))
    assert.is(await call('RG.JSEXECUTE', `1`, 'REPLACE_WITH', 'none'), 'ERR:Can not replace with none, session does not exists.')
    const regId = gearbox().registrations.list()[0]!.id
    assert.equal(await call('RG.PYDUMPSESSIONS'), [
      ['ID', 'rs', 'sessionDescription', 'resp session', 'refCount', 1, 'linked', 'primary', 'dead', 'false', 'requirementInstallationNeeded', 0, 'requirements', [], 'registrations', [regId]],
    ])
    assert.equal(await call('RG.PYDUMPSESSIONS', 'SESSIONS', 'rs', 'gone'), [
      ['ID', 'rs', 'sessionDescription', 'resp session', 'refCount', 1, 'linked', 'primary', 'dead', 'false', 'requirementInstallationNeeded', 0, 'requirements', [], 'registrations', [regId]],
      'Session gone does not exists',
    ])
    const verbose = (await call('RG.PYDUMPSESSIONS', 'VERBOSE')) as unknown[][]
    const registrations = verbose[0]![15] as unknown[][]
    assert.equal(registrations[0]!.slice(0, 4), ['id', regId, 'reader', 'CommandReader'])
    assert.is(await call('RG.PYDUMPSESSIONS', 'LOUD'), 'ERR:Unknown option LOUD')
    assert.is(await call('RG.UNREGISTER', regId), 'OK')
    assert.equal(await call('RG.PYDUMPSESSIONS'), [])
  } finally {
    rc?.disconnect()
    await server?.close()
  }
})

t.run()
