/**
 * Direct calls (host/platform/direct-redis.ts): a worker that runs alone sends a guest's plain
 * commands to Redis on its own connection. What a guest sees must not change: the same replies
 * and errors as through the main thread (directCalls: false), every command the policy checks or
 * rewrites still taken by the main thread, and a connection left out of step (a stopped call, a
 * reply over budget, a connection Redis closed) never answers a later call with an old reply.
 */
import { Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { poller } from '../helpers/until.js'
import { TestBox } from './guest-probe.js'

const until = poller(10_000, 20)
const ctx: { redis?: TestRedis; direct?: TestBox; viaMain?: TestBox; client?: Redis } = {}
const direct = (): TestBox => ctx.direct!
const client = (): Redis => ctx.client!
const directCalls = (): number => direct().gearbox.sandboxStats().directCalls

const t = suite('direct calls')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.client = new Redis(ctx.redis.url, { protocol: 2 })
  ctx.direct = await TestBox.create({ redis: ctx.redis.url, workers: 1, persist: false })
  ctx.viaMain = await TestBox.create({ redis: ctx.redis.url, workers: 1, persist: false, directCalls: false })
  // The worker connects in the background: wait until plain commands take the direct path.
  await until('the direct connection', async () => {
    await direct().run(`execute('PING')`)
    return directCalls() > 0
  })
})

t.after(async () => {
  await ctx.direct?.close()
  await ctx.viaMain?.close()
  ctx.client?.disconnect()
  await ctx.redis?.stop()
})

/** What both Gearboxes answer to `body`, run on the same data each time. */
async function both(setup: () => Promise<unknown>, body: string): Promise<[unknown, unknown]> {
  await setup()
  const a = await direct().probe(body)
  await setup()
  const b = await ctx.viaMain!.probe(body)
  return [a, b]
}

t('plain commands go direct and answer exactly as through the main thread', async () => {
  const setup = async (): Promise<void> => {
    await client().flushall()
    await client().hset('h', 'f', 'v', 'n', '1')
    await client().rpush('l', 'a', 'é', '✓')
    await client().set('bin', Buffer.from([0xff, 0x00, 0x41]))
    await client().set('s', 'x')
  }
  const body = `
    const out = []
    out.push(execute('SET', 'k', 'v'), execute('GET', 'k'), execute('GET', 'missing'))
    out.push(execute('INCR', 'n'), execute('INCRBY', 'big', '9007199254740993'))
    out.push(execute('HGETALL', 'h'), execute('LRANGE', 'l', '0', '-1'), execute('GET', 'bin'))
    out.push(execute('set', 'lower', 'case'), execute('EXISTS', 'k', 'lower', 'nope'))
    out.push(execute('ZADD', 'z', '1.5', 'm'), execute('ZRANGE', 'z', '0', '-1', 'WITHSCORES'))
    try { execute('LPUSH', 's', 'x') } catch (e) { out.push({ wrongType: e.message, gears: e instanceof GearsError }) }
    try { execute('NOSUCHCOMMAND') } catch (e) { out.push({ unknown: e.message }) }
    try { execute('INCR', 's') } catch (e) { out.push({ notInteger: e.message }) }
    return out`
  const before = directCalls()
  const [a, b] = await both(setup, body)
  assert.equal(a, b)
  assert.ok('ok' in (a as object), 'the probe returned')
  // Every execute above but the unknown command's went direct (NOSUCHCOMMAND is not in the policy's list).
  assert.ok(directCalls() - before >= 14, `direct calls: ${directCalls() - before}`)
})

t('commands the policy checks or rewrites, bytes and reserved names take the main thread, with its answers', async () => {
  const body = `
    const out = []
    for (const args of [['FLUSHALL'], ['CONFIG', 'SET', 'maxmemory', '1'], ['GET', '{gearbox}:sessions'], ['MULTI'], ['CLIENT', 'SETNAME', 'x'], ['WAIT', '0', '0']]) {
      try { out.push(execute(...args)) } catch (e) { out.push({ code: e.code ?? null, message: e.message }) }
    }
    execute('RPUSH', 'q', 'first')
    out.push(execute('BLPOP', 'q', '0'), execute('BLPOP', 'q', '0'))
    out.push(execute('SET', new Uint8Array([1, 2, 255]), 'bytes key'), execute('GET', new Uint8Array([1, 2, 255])))
    out.push(atomic(() => [execute('INCR', 'ctr'), execute('INCR', 'ctr')]), execute('GET', 'ctr'))
    return out`
  const before = directCalls()
  const [a, b] = await both(() => client().flushall(), body)
  assert.equal(a, b)
  const out = (a as { ok: unknown[] }).ok
  assert.match(JSON.stringify(out[0]), /FLUSHALL is denied by the denyCommands option/)
  assert.match(JSON.stringify(out[2]), /gearbox's own/)
  assert.equal(out.slice(6, 8), [['q', 'first'], null])
  assert.equal(out.slice(10), [['QUEUED', 'QUEUED'], '2'])
  // Only RPUSH and the last GET went direct: the rest were checked, rewritten (BLPOP → LPOP), sent
  // as bytes or queued in MULTI by the main thread.
  assert.is(directCalls() - before, 2)
})

t('a reply over limits.maxReplyBytes fails the execution with ERR_GEARBOX_REPLY_LIMIT; the next calls get their own replies', async () => {
  await client().flushall()
  await client().rpush('long', ...Array.from({ length: 2000 }, (_, i) => `item-${i}-${'x'.repeat(40)}`))
  await client().set('after', 'mine')
  const error = await direct()
    .gearbox.execute(`execute('LRANGE', 'long', '0', '-1')`, { limits: { maxReplyBytes: 8 * 1024 } })
    .then(() => undefined, (e: unknown) => e as { code?: string; message?: string })
  assert.is(error?.code, 'ERR_GEARBOX_REPLY_LIMIT')
  assert.match(String(error?.message), /the reply to LRANGE exceeded limits\.maxReplyBytes \(8192 bytes\)/)
  const before = directCalls()
  assert.equal(await direct().value(`return [execute('GET', 'after'), execute('LLEN', 'long'), execute('PING')]`), ['mine', 2000, 'PONG'])
  // The connection left mid-reply was replaced: the next execution goes direct again.
  await until('direct again', async () => {
    await direct().run(`execute('PING')`)
    return directCalls() > before
  })
})

t('a call stopped while Redis does not answer (wall limit) leaves no stale reply for the next execution', async () => {
  await client().flushall()
  await client().set('k', 'old')
  const pauser = new Redis(ctx.redis!.url)
  try {
    // Direct calls happen: the connection is ready.
    let before = directCalls()
    await until('a direct call', async () => {
      await direct().run(`execute('GET', 'k')`)
      return directCalls() > before
    })
    before = directCalls()
    const respawns = direct().gearbox.sandboxStats().respawns
    await pauser.client('PAUSE', '1500', 'ALL')
    const error = await direct()
      .gearbox.execute(`execute('GET', 'k')`, { limits: { wallMs: 300 } })
      .then(() => undefined, (e: unknown) => e as { code?: string })
    // (Had Redis answered first, the execution would have succeeded.)
    assert.is(error?.code, 'ERR_GEARBOX_WALL_LIMIT')
    // The GET went direct (counted once the worker saw the stop) and the worker unwound by itself
    // (it was not replaced): its connection still owes the GET's reply.
    await until('the stopped direct call', () => directCalls() - before === 1)
    assert.is(direct().gearbox.sandboxStats().respawns, respawns)
    await pauser.client('UNPAUSE')
  } finally {
    pauser.disconnect()
  }
  await client().set('k', 'new')
  // The stopped GET's reply ('old') arrives after the pause: no later call may read it as its own.
  for (let i = 0; i < 5; i++) {
    assert.equal(await direct().value(`return [execute('GET', 'k'), execute('SET', 'k2', 'v${i}'), execute('GET', 'k2')]`), ['new', 'OK', `v${i}`])
  }
})

t('Redis closing the direct connection: the calls after it still get their own replies', async () => {
  await client().flushall()
  await direct().run(`execute('SET', 'k', 'v')`)
  // Kill every connection of the function user (gearbox's shared ones reconnect too).
  const users = String(await client().client('LIST'))
    .split('\n')
    .map((line) => /user=(\S+)/.exec(line)?.[1])
    .filter((u): u is string => u !== undefined && u.startsWith('gearbox-functions'))
  assert.ok(users.length > 0, 'the function user has connections')
  await client().client('KILL', 'USER', users[0]!)
  for (let i = 0; i < 5; i++) {
    const got = await direct().probe(`return [execute('GET', 'k'), execute('INCR', 'n')]`)
    // A call on the connection Redis just closed reports the lost connection (as the main thread's path does).
    if ('error' in got) assert.is(got.error.code, 'ERR_GEARBOX_CONNECTION')
    else assert.equal((got.ok as unknown[])[0], 'v')
  }
  const before = directCalls()
  await until('direct again after the reconnection', async () => {
    assert.equal(await direct().value(`return execute('GET', 'k')`), 'v')
    return directCalls() > before
  })
  assert.is(await client().ping(), 'PONG')
})

t('Python guests use it too, with the same replies', async () => {
  await client().flushall()
  const before = directCalls()
  await direct().gearbox.execute(`execute('SET', 'py', 'v')\nexecute('SET', 'py2', execute('GET', 'py') + str(execute('INCR', 'pn')))`, { language: 'python' })
  assert.is(await client().get('py2'), 'v1')
  assert.ok(directCalls() - before >= 4, `direct calls: ${directCalls() - before}`)
})

t.run()
