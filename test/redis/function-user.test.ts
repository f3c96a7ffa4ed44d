/**
 * The function ACL user: what functions send runs as a Redis user whose rules are the policy, so
 * Redis refuses what the host-side check would miss; gearbox's own connections are unaffected.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { FunctionUserError, Gearbox } from '../../host/index.js'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { RedisConnection } from '../../host/redis/connection.js'
import { createRedisBackend } from '../../host/redis/index.js'
import type { RedisBackend, RedisReply } from '../../host/redis/types.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection } from '../helpers/rejection.js'

const test = suite('redis: function ACL user')
let server: TestRedis
let backend: RedisBackend

const text = (v: RedisReply): string => (v instanceof Uint8Array ? new TextDecoder().decode(v) : String(v))

/** A connection of our own as `username` (not through a backend). */
function connectAs(port: number, username: string, password: string): RedisConnection {
  return new RedisConnection({ address: { host: '127.0.0.1', port }, username, password, connectTimeoutMs: 2000, maxReconnectDelayMs: 200, reconnect: false })
}

test.before(async () => {
  server = await startRedis()
  backend = createRedisBackend(server.url)
  await backend.call(['SET', 'precious', '1'])
})

test.after(async () => {
  await backend.close()
  await server.stop()
})

test('commands the host check would let through are refused by Redis on the function connection', async () => {
  // A dedicated connection applies no host-side policy: what reaches Redis is judged by the ACL.
  const d = await backend.dedicated(0)
  try {
    for (const args of [
      ['EVAL', "return redis.call('FLUSHALL')", '0'],
      ['FLUSHALL'],
      ['SWAPDB', '0', '1'],
      ['CLUSTER', 'DELSLOTS', '1'],
      ['MIGRATE', '127.0.0.1', '1', 'precious', '0', '1000'],
      ['SLOWLOG', 'RESET'],
      ['BLPOP', 'nothing', '0x1p30'],
      ['SUBSCRIBE', 'ch'],
    ]) {
      const refused = await rejection(d.call(args))
      assert.is(refused.code, 'ERR_GEARBOX_REDIS_ERROR', args.join(' '))
      assert.match(refused.message, /^NOPERM/, args.join(' '))
    }
    assert.is(text(await d.call(['GET', 'precious'])), '1', 'nothing ran; the connection still works')
  } finally {
    d.release()
  }
  // gearbox's own (internal) connection runs as the configured user.
  assert.is(await backend.call(['SLOWLOG', 'RESET'], { internal: true }), 'OK')
  assert.is(await backend.call(['EVAL', "return redis.call('GET', 'precious')", '0'], { internal: true }).then(text), '1')
  // What functions legitimately use stays allowed (KEYS, INFO, PUBLISH).
  assert.ok(Array.isArray(await backend.call(['KEYS', 'prec*'])))
  assert.is(await backend.call(['PUBLISH', 'ch', 'x']), 0)
  assert.ok((await backend.call(['INFO', 'server'])) instanceof Uint8Array)
})

test('the managed user: two backends on one Redis share it; closing one leaves the other working', async () => {
  const other = createRedisBackend(server.url)
  try {
    assert.is(text(await other.call(['GET', 'precious'])), '1')
    const passwords = async (): Promise<number> => {
      const user = (await backend.call(['ACL', 'GETUSER', 'gearbox-functions'], { internal: true })) as RedisReply[]
      const i = user.findIndex((v) => text(v) === 'passwords')
      return (user[i + 1] as RedisReply[]).length
    }
    assert.is(await passwords(), 2, 'each backend added its own password')
    await other.close()
    assert.is(await passwords(), 1, 'the closed one removed only its own')
    assert.is(text(await backend.call(['GET', 'precious'])), '1')
    // A new function connection still logs in (the remaining password).
    const d = await backend.dedicated(0)
    const fresh = await backend.dedicated(0)
    assert.is(await fresh.call(['PING']), 'PONG')
    d.release()
    fresh.release()
  } finally {
    await other.close()
  }
})

test('a Redis that refuses ACL SETUSER: ERR_GEARBOX_FUNCTION_USER with the line to apply; then a user of one own', async () => {
  const managed = await startRedis()
  const admin = connectAs(managed.port, 'admin', 'adminpw')
  try {
    assert.is(await rawCommand(managed.port, ['ACL', 'SETUSER', 'admin', 'on', '>adminpw', '~*', '&*', '+@all']), '+OK')
    // What a managed Redis gives: everything but ACL.
    assert.is(await rawCommand(managed.port, ['ACL', 'SETUSER', 'default', 'on', 'nopass', '~*', '&*', '+@all', '-acl']), '+OK')
    const failed = await rejection(Gearbox.create({ redis: managed.url }))
    assert.instance(failed.error, FunctionUserError)
    assert.is(failed.code, 'ERR_GEARBOX_FUNCTION_USER')
    assert.match(failed.message, 'NOPERM')
    assert.match(failed.message, 'functionUser')
    const line = /ACL SETUSER (gearbox-functions) >'<a password>' (.*)$/m.exec(failed.message)
    assert.ok(line, failed.message)
    // The printed line, applied by an admin, makes a working user of one's own.
    assert.is(await admin.send(['ACL', 'SETUSER', line![1]!, '>mine', ...line![2]!.split(' ')]), 'OK')
    const lines: string[] = []
    const gearbox = await Gearbox.create({
      redis: managed.url,
      functionUser: { username: 'gearbox-functions', password: 'mine' },
      logger: { log: (_l, m) => void lines.push(m) },
    })
    try {
      await gearbox.execute("execute('SET', 'own', 'yes'); log(execute('GET', 'own'))")
      assert.equal(lines, ['yes'])
    } finally {
      await gearbox.close()
    }
    // A wrong password of one's own: a coded error at create, not a hang.
    const wrong = await rejection(Gearbox.create({ redis: managed.url, functionUser: { username: 'gearbox-functions', password: 'nope' } }))
    assert.is(wrong.code, 'ERR_GEARBOX_CONNECTION')
    assert.match(wrong.message, /WRONGPASS/)
  } finally {
    await admin.close(false)
    await managed.stop()
  }
})

test('a released dedicated connection with a reply pending is closed, not pooled; the next one answers at once', async () => {
  // A user of one's own allowed to block, so that a command can stay pending.
  assert.is(await rawCommand(server.port, ['ACL', 'SETUSER', 'blocker', 'on', '>pw', '~*', '&*', '+@all']), '+OK')
  const own = createRedisBackend(server.url, { functionUser: { username: 'blocker', password: 'pw' } })
  try {
    const d = await own.dedicated(0)
    const firstId = await d.call(['CLIENT', 'ID'])
    await d.call(['WATCH', 'precious'])
    const pending = rejection(d.call(['BLPOP', 'never', '30']))
    await new Promise((r) => setTimeout(r, 50))
    d.release()
    assert.is((await pending).code, 'ERR_GEARBOX_CONNECTION', 'the blocked command failed with the closed connection')
    const next = await own.dedicated(0)
    assert.is(await next.call(['PING']), 'PONG')
    assert.is.not(await next.call(['CLIENT', 'ID']), firstId, 'a fresh connection')
    next.release()
    const clients = text(await own.call(['CLIENT', 'LIST'], { internal: true }))
    assert.not.match(clients, 'cmd=blpop', 'the blocked connection is gone from Redis')
  } finally {
    await own.close()
  }
})

test.run()
