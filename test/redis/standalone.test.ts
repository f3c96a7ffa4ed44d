import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { createRedisBackend, NestedReplyError, STANDALONE_SHARD_ID } from '../../host/redis/index.js'
import { RedisReplyError } from '../../host/errors.js'
import type { RedisBackend, RedisReply } from '../../host/redis/types.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection } from '../helpers/rejection.js'

const test = suite('redis: standalone backend')
let server: TestRedis
let backend: RedisBackend

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const text = (v: RedisReply): string => {
  if (!(v instanceof Uint8Array)) throw new Error(`expected bytes, got ${String(v)}`)
  return new TextDecoder().decode(v)
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

test.before(async () => {
  server = await startRedis()
  // EVAL (refused to functions by default since the policy follows the function ACL) tests nested error replies below.
  backend = createRedisBackend(server.url, { connectTimeoutMs: 1500, commandPolicy: { allowCommands: ['EVAL'] } })
})

test.after(async () => {
  await backend.close()
  await server.stop()
})

test('status, bulk, integer, nil and empty array keep their kinds', async () => {
  assert.is(await backend.call(['SET', 'k', 'v']), 'OK', 'status → string')
  assert.equal(await backend.call(['GET', 'k']), bytes('v'), 'bulk → bytes')
  assert.is(await backend.call(['TYPE', 'k']), 'string', 'TYPE answers a status')
  assert.is(await backend.call(['PING']), 'PONG')
  assert.equal(await backend.call(['PING', 'hi']), bytes('hi'), 'PING with an argument answers a bulk')
  assert.equal(await backend.call(['ECHO', 'OK']), bytes('OK'), 'a bulk "OK" is not a status')
  assert.is(await backend.call(['INCR', 'n']), 1)
  assert.is(await backend.call(['GET', 'missing']), null)
  assert.equal(await backend.call(['LRANGE', 'missing', '0', '-1']), [])
  const v = await backend.call(['GET', 'k'])
  assert.ok(v instanceof Uint8Array && !Buffer.isBuffer(v), 'a plain Uint8Array')
})

test('binary values that are not UTF-8 stay bytes, both ways', async () => {
  const value = new Uint8Array([0xff, 0x00, 0xfe, 0x0d, 0x0a, 0x80])
  const key = new Uint8Array([0xc3, 0x28])
  assert.is(await backend.call(['SET', key, value]), 'OK')
  assert.equal(await backend.call(['GET', key]), value)
  assert.is(await backend.call(['STRLEN', key]), 6)
})

test('integers beyond 2^53 are exact bigints; smaller ones are numbers', async () => {
  assert.is(await backend.call(['SET', 'big', '9007199254740991']), 'OK')
  assert.is(await backend.call(['INCRBY', 'big', '0']), 9007199254740991)
  assert.is(await backend.call(['INCRBY', 'big', '2']), 9007199254740993n)
  assert.is(await backend.call(['INCRBY', 'big', '9223372036854775807']).catch((e: Error) => e.message), 'ERR increment or decrement would overflow')
  assert.is(await backend.call(['DECRBY', 'neg', '9223372036854775807']), -9223372036854775807n)
})

test('nested arrays: XRANGE, SCAN, HGETALL and ZRANGE WITHSCORES in RESP2 shape', async () => {
  const id = await backend.call(['XADD', 's', '1-1', 'f', 'v', 'g', 'w'])
  assert.equal(id, bytes('1-1'))
  assert.equal(await backend.call(['XRANGE', 's', '-', '+']), [[bytes('1-1'), [bytes('f'), bytes('v'), bytes('g'), bytes('w')]]])
  const scan = await backend.call(['SCAN', '0', 'MATCH', 's', 'COUNT', '1000'])
  assert.equal(scan, [bytes('0'), [bytes('s')]])
  await backend.call(['HSET', 'h', 'a', '1'])
  assert.equal(await backend.call(['HGETALL', 'h']), [bytes('a'), bytes('1')], 'flat, not an object')
  await backend.call(['ZADD', 'z', '1.5', 'm'])
  assert.equal(await backend.call(['ZRANGE', 'z', '0', '-1', 'WITHSCORES']), [bytes('m'), bytes('1.5')], 'flat, not pairs')
})

test('EXEC-style nested errors, Lua statuses and null arrays', async () => {
  const lua = "return {1, 2.9, 's', false, redis.status_reply('FINE'), {3, {4}}, redis.error_reply('MYERR boom')}"
  // Lua is @scripting, which the function user may not run: sent as gearbox's own (internal) call.
  const reply = await backend.call(['EVAL', lua, '0'], { internal: true })
  assert.equal(reply, [1, 2, bytes('s'), null, 'FINE', [3, [4]], new NestedReplyError('MYERR boom')])
  assert.instance((reply as RedisReply[])[6], NestedReplyError)
  assert.is(await backend.call(['LPOP', 'missing', '2']), null, 'null array → null')
})

test('top-level errors reject with Redis text unchanged', async () => {
  await backend.call(['RPUSH', 'list', 'a'])
  const wrongType = await rejection(backend.call(['GET', 'list']))
  assert.instance(wrongType.error, RedisReplyError)
  assert.is(wrongType.code, 'ERR_GEARBOX_REDIS_ERROR')
  assert.is(wrongType.message, 'WRONGTYPE Operation against a key holding the wrong kind of value')
  assert.is((await rejection(backend.call(['NoSuchCmd', 'x']))).message, "ERR unknown command 'NoSuchCmd', with args beginning with: 'x' ")
  assert.is((await rejection(backend.call(['SET', 'x']))).message, "ERR wrong number of arguments for 'set' command")
  assert.is((await rejection(backend.call(['HSET', 'x', 'onlyfield']))).message, "ERR wrong number of arguments for 'hset' command")
  assert.is((await rejection(backend.call(['INCR', 'k']))).message, 'ERR value is not an integer or out of range')
  assert.is((await rejection(backend.call(['EVAL', "return redis.error_reply('MYERR boom')", '0'], { internal: true }))).message, 'MYERR boom')
})

test('mset/hset with byte arguments are sent as given (no ioredis argument rewriting)', async () => {
  assert.is(await backend.call(['mset', bytes('mk'), bytes('mv')]), 'OK')
  assert.equal(await backend.call(['GET', 'mk']), bytes('mv'))
  assert.is((await rejection(backend.call(['hset', 'hk', bytes('ab')]))).message, "ERR wrong number of arguments for 'hset' command")
  assert.is(await backend.call(['EXISTS', 'hk']), 0)
})

test('the policy applies to calls; internal calls bypass it', async () => {
  const denied = await rejection(backend.call(['FLUSHALL']))
  assert.is(denied.code, 'ERR_GEARBOX_COMMAND_DENIED')
  assert.is((await rejection(backend.call(['SUBSCRIBE', 'ch']))).code, 'ERR_GEARBOX_COMMAND_DENIED')
  assert.is((await rejection(backend.call(['SELECT', '1']))).code, 'ERR_GEARBOX_COMMAND_DENIED')
  const config = await backend.call(['CONFIG', 'GET', 'maxmemory-policy'], { internal: true })
  assert.equal(config, [bytes('maxmemory-policy'), bytes('noeviction')])
  assert.is(await backend.call(['GET', 'k']).then(text), 'v', 'the connection still works after refusals')
  assert.is((await rejection(backend.call([]))).code, 'ERR_GEARBOX_INVALID_ARGUMENT')
  assert.throws(() => backend.prepareCommand(['MONITOR']), (e: Error & { code?: string }) => e.code === 'ERR_GEARBOX_COMMAND_DENIED')
})

test('a configured deny list', async () => {
  // db 3, so that its FLUSHDB leaves the other tests' keys alone.
  const strict = createRedisBackend(`${server.url}/3`, { commandPolicy: { denyCommands: ['DEL'], allowCommands: ['FLUSHDB'] } })
  try {
    const denied = await rejection(strict.call(['del', 'k']))
    assert.is(denied.code, 'ERR_GEARBOX_COMMAND_DENIED')
    assert.match(denied.message, 'denyCommands')
    await strict.call(['SET', 'tmp:flush', '1'])
    assert.is(await strict.call(['FLUSHDB']), 'OK', 'FLUSHDB (@dangerous) allowed once allowed and not in the deny list')
    assert.is(await strict.call(['DBSIZE']), 0)
  } finally {
    await strict.close()
  }
})

test('blocking commands run without blocking, with the blocking shapes', async () => {
  // An empty list: nil at once, where BLPOP would wait 5 s.
  assert.is(await backend.call(['BLPOP', 'empty', 'also-empty', '5']), null)
  await backend.call(['RPUSH', 'bl', 'x', 'y'])
  assert.equal(await backend.call(['BLPOP', 'empty', 'bl', '0']), [bytes('bl'), bytes('x')])
  assert.equal(await backend.call(['BRPOP', 'bl', '0']), [bytes('bl'), bytes('y')])
  await backend.call(['ZADD', 'bz', '1', 'a', '2', 'b'])
  assert.equal(await backend.call(['BZPOPMIN', 'bz', '0']), [bytes('bz'), bytes('a'), bytes('1')])
  assert.equal(await backend.call(['BZPOPMAX', 'bz', '0']), [bytes('bz'), bytes('b'), bytes('2')])
  assert.is(await backend.call(['BZPOPMAX', 'bz', '1']), null)
  await backend.call(['RPUSH', 'src', '1', '2'])
  assert.equal(await backend.call(['BRPOPLPUSH', 'src', 'dst', '0']), bytes('2'))
  assert.equal(await backend.call(['BLMOVE', 'src', 'dst', 'LEFT', 'LEFT', '0']), bytes('1'))
  assert.is(await backend.call(['BLMOVE', 'src', 'dst', 'LEFT', 'LEFT', '0']), null)
  assert.equal(await backend.call(['BLMPOP', '0', '1', 'dst', 'LEFT', 'COUNT', '5']), [bytes('dst'), [bytes('1'), bytes('2')]])
  assert.is(await backend.call(['XREAD', 'BLOCK', '5000', 'STREAMS', 's', '$']), null)
  assert.equal(await backend.call(['XREAD', 'BLOCK', '0', 'STREAMS', 's', '0']), [[bytes('s'), [[bytes('1-1'), [bytes('f'), bytes('v'), bytes('g'), bytes('w')]]]]])
  // Invalid timeouts reach Redis unchanged and Redis refuses them at once: with its own text,
  // or (where the blocking command itself goes out) with NOPERM from the function ACL user.
  const invalid = await rejection(backend.call(['BLPOP', 'bl', 'soon']))
  assert.is(invalid.code, 'ERR_GEARBOX_REDIS_ERROR')
  assert.match(invalid.message, /^(ERR timeout is not a float or out of range|NOPERM .*'blpop')/)
  const negative = await rejection(backend.call(['BLPOP', 'bl', '-1']))
  assert.is(negative.code, 'ERR_GEARBOX_REDIS_ERROR')
  assert.match(negative.message, /^(ERR timeout is negative|NOPERM .*'blpop')/)
  // A wrong type answers as BLPOP would.
  assert.match((await rejection(backend.call(['BLPOP', 'k', '0']))).message, /^WRONGTYPE/)
})

test('pipeline: one entry per command, error replies in place', async () => {
  const replies = await backend.pipeline(STANDALONE_SHARD_ID, [['SET', 'p', '1'], ['INCR', 'p'], ['GET', 'list'], ['GET', 'p'], ['BLPOP', 'nothing', '3']])
  assert.is(replies.length, 5)
  assert.is(replies[0], 'OK')
  assert.is(replies[1], 2)
  assert.instance(replies[2], RedisReplyError)
  assert.is((replies[2] as RedisReplyError).message, 'WRONGTYPE Operation against a key holding the wrong kind of value')
  assert.equal(replies[3], bytes('2'))
  assert.is(replies[4], null, 'blocking form rewritten here too')
  assert.equal(await backend.pipeline(STANDALONE_SHARD_ID, []), [])
  assert.is((await rejection(backend.pipeline(STANDALONE_SHARD_ID, [['GET', 'p'], ['FLUSHALL']]))).code, 'ERR_GEARBOX_COMMAND_DENIED')
  assert.is((await rejection(backend.pipeline('f'.repeat(40), [['GET', 'p']]))).code, 'ERR_GEARBOX_INVALID_ARGUMENT')
  const many = await backend.pipeline(STANDALONE_SHARD_ID, Array.from({ length: 2000 }, (_, i) => ['ECHO', `v${i}`]))
  assert.ok(many.every((r, i) => r instanceof Uint8Array && text(r) === `v${i}`), 'replies in order')
})

test('scanShard pages through the keyspace', async () => {
  for (let i = 0; i < 50; i++) await backend.call(['SET', `scan:${i}`, '1'])
  const seen = new Set<string>()
  let cursor = '0'
  let pages = 0
  do {
    const page = await backend.scanShard(STANDALONE_SHARD_ID, cursor, { match: 'scan:*', count: 10, type: 'string' })
    for (const k of page.keys) seen.add(text(k))
    cursor = page.cursor
    pages++
  } while (cursor !== '0' && pages < 100)
  assert.is(seen.size, 50)
  assert.ok(pages > 1)
})

test('shards and currentShard in standalone mode', async () => {
  const shards = await backend.shards()
  assert.equal(shards, [{ id: STANDALONE_SHARD_ID, host: '127.0.0.1', port: server.port, slots: [[0, 16383]], minSlot: 0 }])
  assert.equal(await backend.currentShard(), shards[0])
  assert.is(backend.mode, 'standalone')
})

test('dedicated connection: WATCH/MULTI/EXEC, conflicts, reuse after release', async () => {
  await backend.call(['SET', 'w', '1'])
  const d = await backend.dedicated(0)
  assert.is(await d.call(['WATCH', 'w']), 'OK')
  assert.equal(await d.call(['GET', 'w']), bytes('1'))
  assert.is(await d.call(['MULTI']), 'OK')
  assert.is(await d.call(['INCR', 'w']), 'QUEUED')
  assert.is(await d.call(['INCR', 'nonint']), 'QUEUED')
  assert.equal(await d.call(['EXEC']), [2, 1])
  // A conflicting write from the shared connection aborts the transaction: EXEC answers nil.
  assert.is(await d.call(['WATCH', 'w']), 'OK')
  await backend.call(['SET', 'w', '10'])
  await d.call(['MULTI'])
  await d.call(['SET', 'w', '99'])
  assert.is(await d.call(['EXEC']), null)
  assert.equal(await backend.call(['GET', 'w']), bytes('10'))
  // Errors inside EXEC are nested errors.
  await d.call(['MULTI'])
  await d.call(['SET', 'e', 'x'])
  await d.call(['INCR', 'e'])
  assert.equal(await d.call(['EXEC']), ['OK', new NestedReplyError('ERR value is not an integer or out of range')])
  // Released in the middle of a transaction: the next user gets a clean connection.
  await d.call(['MULTI'])
  await d.call(['SET', 'w', 'never'])
  d.release()
  d.release()
  assert.is((await rejection(d.call(['PING']))).code, 'ERR_GEARBOX_CLOSED')
  const again = await backend.dedicated(0)
  assert.is(await again.call(['PING']), 'PONG', 'not QUEUED: the open MULTI was discarded')
  assert.equal(await backend.call(['GET', 'w']), bytes('10'))
  again.release()
  assert.is((await rejection(backend.dedicated(16384))).code, 'ERR_GEARBOX_INVALID_ARGUMENT')
})

test('the dedicated connection is not the shared one', async () => {
  const d = await backend.dedicated(0)
  const dedicatedId = await d.call(['CLIENT', 'ID'])
  const sharedId = await backend.call(['CLIENT', 'ID'], { internal: true })
  assert.type(dedicatedId, 'number')
  assert.is.not(dedicatedId, sharedId)
  d.release()
})

test('connection killed mid-call: ConnectionError, no resend, then recovery', async () => {
  await backend.call(['DEL', 'killed'])
  // BLPOP sent as is (internal) so that it is in flight when the connection is killed.
  const inFlight = rejection(backend.call(['BLPOP', 'killed', '1'], { internal: true }))
  await sleep(100)
  assert.match(await rawCommand(server.port, ['CLIENT', 'KILL', 'TYPE', 'normal']), /^:[1-9]/)
  const lost = await inFlight
  assert.is(lost.code, 'ERR_GEARBOX_CONNECTION')
  assert.match(lost.message, 'may or may not have run')
  // Later calls work once the backend has reconnected. CLIENT KILL closed the function connections
  // too; give their sockets a moment to see it (a command written in the same instant to a socket
  // Redis already closed fails like the BLPOP did).
  await sleep(100)
  assert.is(await backend.call(['RPUSH', 'killed', 'x']), 1)
  await sleep(1200)
  assert.is(await backend.call(['LLEN', 'killed']), 1, 'the BLPOP was not resent behind our back')
})

test('commandTimeoutMs fails a call that gets no reply in time', async () => {
  const impatient = createRedisBackend(server.url, { commandTimeoutMs: 100 })
  try {
    assert.is(await impatient.call(['PING']), 'PONG')
    await rawCommand(server.port, ['CLIENT', 'PAUSE', '600', 'ALL'])
    const slow = await rejection(impatient.call(['GET', 'k']))
    assert.is(slow.code, 'ERR_GEARBOX_CONNECTION')
    assert.match(slow.message, 'commandTimeoutMs')
    await sleep(700)
    assert.is(await impatient.call(['PING']), 'PONG')
  } finally {
    await impatient.close()
  }
})

test('other sources: RedisOptions, a Redis instance (never sent on), a db in the URL', async () => {
  const fromOptions = createRedisBackend({ host: '127.0.0.1', port: server.port })
  const yours = new Redis(server.url, { lazyConnect: true })
  const fromInstance = createRedisBackend(yours)
  const db2 = createRedisBackend(`${server.url}/2`)
  try {
    assert.equal(await fromOptions.call(['GET', 'k']), bytes('v'))
    assert.equal(await fromInstance.call(['GET', 'k']), bytes('v'))
    assert.is(yours.status, 'wait', 'your instance was never connected')
    assert.is(await db2.call(['GET', 'k']), null)
    await db2.call(['SET', 'only-in-2', '1'])
    assert.is(await db2.call(['DBSIZE']), 1)
    const d = await db2.dedicated(0)
    assert.equal(await d.call(['GET', 'only-in-2']), bytes('1'), 'dedicated connections use the same db')
    d.release()
    assert.is(await backend.call(['EXISTS', 'only-in-2']), 0)
  } finally {
    await Promise.all([fromOptions.close(), fromInstance.close(), db2.close()])
    yours.disconnect()
  }
})

test('bad options and sources are coded errors', () => {
  for (const make of [
    () => createRedisBackend('http://localhost'),
    () => createRedisBackend({ cluster: [] }),
    () => createRedisBackend({ cluster: ['not a url'] }),
    () => createRedisBackend(server.url, { connectTimeoutMs: 0 }),
    () => createRedisBackend(server.url, { dedicatedPoolSize: -1 }),
  ]) {
    assert.throws(make, (e: Error & { code?: string }) => e.code === 'ERR_GEARBOX_INVALID_ARGUMENT')
  }
})

test('a server that is gone: ConnectionError within connectTimeoutMs; calls after close: ClosedError', async () => {
  const other = await startRedis()
  const b = createRedisBackend(other.url, { connectTimeoutMs: 300 })
  assert.is(await b.call(['PING']), 'PONG')
  await other.stop()
  const down = await rejection(b.call(['PING']))
  assert.is(down.code, 'ERR_GEARBOX_CONNECTION')
  assert.match(down.message, 'connectTimeoutMs')
  await b.close()
  assert.is((await rejection(b.call(['PING']))).code, 'ERR_GEARBOX_CLOSED')
  assert.is((await rejection(b.shards())).code, 'ERR_GEARBOX_CLOSED')
})

test.run()
