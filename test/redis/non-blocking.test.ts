import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { CommandPolicy } from '../../host/redis/command-policy.js'
import { createRedisBackend } from '../../host/redis/index.js'
import type { RedisArg, RedisBackend, RedisReply } from '../../host/redis/types.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'

const test = suite('redis: blocking commands never block, read with Redis 7.0 grammar')
let server: TestRedis
let raw: Redis
let backend: RedisBackend
const policy = new CommandPolicy()

test.before(async () => {
  server = await startRedis()
  // A client of the test's own: a command that blocked would fail after 3 s instead of hanging.
  raw = new Redis(server.port, '127.0.0.1', { commandTimeout: 3000 })
  backend = createRedisBackend(server.url, { connectTimeoutMs: 1500 })
})

test.after(async () => {
  raw.disconnect()
  await backend.close()
  await server.stop()
})

/** Fresh data every case reads: two lists, a sorted set, a stream with a group. */
async function reset(): Promise<void> {
  await raw.flushall()
  await raw.rpush('l1', 'a', 'b', 'c')
  await raw.rpush('l2', 'd')
  await raw.zadd('z', 1, 'm1', 2, 'm2')
  await raw.set('str', 'v')
  await raw.xadd('s', '1-1', 'f', 'v')
  await raw.xadd('s', '2-1', 'g', 'w')
  await raw.xgroup('CREATE', 's', 'g', '0')
}

type Outcome = { error: string } | { reply: unknown }

async function onRedis(args: readonly RedisArg[]): Promise<Outcome> {
  try {
    return { reply: await raw.call(String(args[0]), ...args.slice(1).map((a) => (typeof a === 'string' ? a : Buffer.from(a)))) }
  } catch (error) {
    return { error: (error as Error).message }
  }
}

/** What the host does with `args`: Redis's error thrown here, or the rewritten command's adapted reply. */
async function viaPolicy(args: readonly RedisArg[]): Promise<Outcome & { sent?: readonly RedisArg[] }> {
  let prepared
  try {
    prepared = policy.prepare(args)
  } catch (error) {
    assert.is((error as { code?: string }).code, 'ERR_GEARBOX_REDIS_ERROR', `${String(args[0])}: ${(error as Error).message}`)
    return { error: (error as Error).message }
  }
  const rewrittenName = String(prepared.args[0]).toLowerCase()
  assert.ok(!['blpop', 'brpop', 'bzpopmin', 'bzpopmax', 'blmpop', 'bzmpop', 'brpoplpush', 'blmove'].includes(rewrittenName), 'never sent as is')
  // No BLOCK option left: read again, the sent form is its own non-blocking form.
  if (rewrittenName.startsWith('xread')) assert.equal(policy.prepare(prepared.args).args, prepared.args, `no BLOCK left in ${prepared.args.join(' ')}`)
  const outcome = await onRedis(prepared.args)
  if ('reply' in outcome && prepared.adaptReply) return { reply: prepared.adaptReply(outcome.reply as RedisReply), sent: prepared.args }
  return { ...outcome, sent: prepared.args }
}

/** Runs `args` on Redis (data present, so it cannot block) and through the host; both must agree. */
async function sameAsRedis(args: readonly RedisArg[]): Promise<void> {
  await reset()
  const expected = await onRedis(args)
  await reset()
  const got = await viaPolicy(args)
  const { sent: _sent, ...outcome } = got
  assert.equal(outcome, expected, `${args.map(String).join(' ')} (sent: ${got.sent?.map(String).join(' ') ?? 'nothing'})`)
}

const TIMEOUTS = [
  '0', '1', '0.5', '+.5', '1e3', '1E2', '0x1p30', '0X1P-2', '0x.8', '-0', '-0.0001', '-0.001', '-0.00100000000000000001',
  '-1', '-1e-10', '00', 'inf', '-inf', 'INFINITY', 'infin', 'nan', '-nan', 'nan(1)', '1e-5000', '1e-4940', '1e5000', '1e4000',
  ' 1', '1 ', '\t1', '5\0x', '\0', '.', '0x', '0x1p', '1e', '1e+', '++1', '1.5.5', '1_0', '0b1', 'soon', '',
  '9223372036854775.807', '9223372036854775.808', '9223372036854775807', '0x1p-16445', '0x1p-16446', '0x1.fffffffffffffffep16383', '0x1p16384',
  'x'.repeat(5200), '1'.repeat(5119),
]

test('every timeout form: the host accepts what Redis accepts, and answers what Redis answers', async () => {
  for (const t of TIMEOUTS) {
    await sameAsRedis(['BLPOP', 'l1', 'l2', t])
    await sameAsRedis(['BRPOPLPUSH', 'l1', 'dst', t])
  }
})

test('each blocking command: same reply as Redis gives it when data is present, same errors', async () => {
  const cases: RedisArg[][] = [
    ['BLPOP', 'nolist', 'l2', '0'],
    ['brpop', 'l1', '5'],
    ['BLPOP', 'str', 'l1', '0'],
    ['BLPOP', 'l1'],
    ['BZPOPMIN', 'z', '0'],
    ['BZPOPMAX', 'nozset', 'z', '0.5'],
    ['BZPOPMAX', 'z', '-2'],
    ['BLMPOP', '0', '2', 'l1', 'l2', 'LEFT', 'COUNT', '2'],
    ['BLMPOP', '1', '1', 'l1', 'RIGHT'],
    ['BLMPOP', 'x', '1', 'l1', 'RIGHT'],
    ['BLMPOP', '0', '0', 'l1', 'RIGHT'],
    ['BLMPOP', '0', '1', 'l1', 'UP'],
    ['BZMPOP', '0', '1', 'z', 'MAX', 'COUNT', '5'],
    ['BRPOPLPUSH', 'l1', 'dst', '0'],
    ['BRPOPLPUSH', 'str', 'dst', '0'],
    ['BLMOVE', 'l1', 'dst', 'LEFT', 'RIGHT', '0'],
    ['BLMOVE', 'l1', 'dst', 'left', 'right', '0x10'],
    ['BLMOVE', 'l1', 'dst', 'UP', 'RIGHT', 'soon'],
    ['BLMOVE', 'l1', 'dst', 'LEFT', 'RIGHT', 'soon'],
    ['BLMOVE', 'l1', 'dst', 'LEFT', 'RIGHT'],
  ]
  for (const args of cases) await sameAsRedis(args)
})

test("XREAD/XREADGROUP: options in any order, repeated, as xreadCommand's loop reads them", async () => {
  const nul = new Uint8Array([...new TextEncoder().encode('BLOCK'), 0, 0x78])
  const cases: RedisArg[][] = [
    ['XREAD', 'BLOCK', '0', 'STREAMS', 's', '0'],
    ['XREAD', 'COUNT', '1', 'BLOCK', '10', 'BLOCK', '0', 'STREAMS', 's', '0'],
    ['XREAD', 'BLOCK', '10', 'COUNT', '1', 'COUNT', '2', 'STREAMS', 's', '1-1'],
    ['XREAD', 'block', '0', 'streams', 's', 'l1', '0', '0'],
    ['XREAD', 'BLOCK', '-1', 'STREAMS', 's', '0'],
    ['XREAD', 'BLOCK', '0x10', 'STREAMS', 's', '0'],
    ['XREAD', 'BLOCK', '01', 'STREAMS', 's', '0'],
    ['XREAD', 'BLOCK', '9223372036854775807', 'STREAMS', 's', '0'],
    ['XREAD', 'BLOCK', '0', 'COUNT', 'x', 'STREAMS', 's', '0'],
    ['XREAD', 'COUNT', 'x', 'BLOCK', 'y', 'STREAMS', 's', '0'],
    ['XREAD', 'BLOCK', '0', 'STREAMS', 's'],
    ['XREAD', 'BLOCK', '0', 'STREAMS', 's', '0', 'x'],
    ['XREAD', 'BLOCK', '0', 'GROUP', 'g', 'c', 'STREAMS', 's', '0'],
    ['XREAD', 'BLOCK', '0', 'NOACK', 'STREAMS', 's', '0'],
    ['XREAD', 'BLOCK', '0', 'COUNT', '1'],
    ['XREAD', 'BLOCK', '0', 'FOO', 'STREAMS', 's', '0'],
    ['XREAD', 'COUNT', '1', 'BLOCK'],
    ['XREAD', nul, '0', 'STREAMS', 's', '0'],
    ['XREAD', 'BLOCK', '0', 'STREAMS', 's', 'bad-id'],
    ['XREADGROUP', 'GROUP', 'g', 'c', 'BLOCK', '0', 'STREAMS', 's', '>'],
    ['XREADGROUP', 'BLOCK', '0', 'GROUP', 'g', 'c', 'STREAMS', 's', '>'],
    ['XREADGROUP', 'COUNT', '1', 'BLOCK', '5', 'NOACK', 'GROUP', 'g', 'c', 'BLOCK', '0', 'STREAMS', 's', '>'],
    ['XREADGROUP', 'NOACK', 'BLOCK', '0', 'GROUP', 'g', 'c', 'GROUP', 'g', 'c2', 'STREAMS', 's', '>'],
    ['XREADGROUP', 'GROUP', 'g', 'BLOCK', 'BLOCK', '0', 'NOACK', 'STREAMS', 's', '>'],
    ['XREADGROUP', 'COUNT', '1', 'BLOCK', '0', 'NOACK', 'STREAMS', 's', '>'],
    ['XREADGROUP', 'GROUP', 'nogroup', 'c', 'BLOCK', '0', 'STREAMS', 's', '>'],
    ['XREADGROUP', 'GROUP', 'g', 'c', 'BLOCK', '0', 'STREAMS', 's', '$'],
    ['XREADGROUP', 'GROUP', 'g', 'c', 'BLOCK', '0', 'STREAMS', 's'],
    ['XREADGROUP', 'BLOCK', '0', 'STREAMS', 's', '>'],
  ]
  for (const args of cases) await sameAsRedis(args)
})

async function atOnce<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const stuck = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within 2 s: it blocked`)), 2000)
  })
  try {
    return await Promise.race([p, stuck])
  } finally {
    clearTimeout(timer)
  }
}

async function blockedClients(): Promise<number> {
  const info = await raw.info('clients')
  return Number(/blocked_clients:(\d+)/.exec(info)?.[1] ?? NaN)
}

test('forms the old rewrite missed answer at once on the shared connection, and no client is left blocked', async () => {
  await reset()
  await raw.xgroup('CREATE', 'empty-stream', 'g', '$', 'MKSTREAM')
  const missed: [RedisArg[], RedisReply][] = [
    [['BLPOP', 'nolist', '0x1p30'], null],
    [['BRPOP', 'nolist', '1e9'], null],
    [['BZPOPMIN', 'nozset', '0x1P+40'], null],
    [['BLMOVE', 'nolist', 'dst', 'LEFT', 'RIGHT', '-0.0001'], null],
    [['BLMPOP', '-0', '1', 'nolist', 'LEFT'], null],
    [['XREAD', 'BLOCK', '10', 'BLOCK', '0', 'STREAMS', 's', '$'], null],
    [['XREAD', 'COUNT', '1', 'BLOCK', '0', 'STREAMS', 'empty-stream', '0'], null],
    [['XREADGROUP', 'BLOCK', '0', 'GROUP', 'g', 'c', 'STREAMS', 'empty-stream', '>'], null],
    [['XREADGROUP', 'NOACK', 'COUNT', '1', 'BLOCK', '0', 'GROUP', 'g', 'c', 'STREAMS', 'empty-stream', '>'], null],
  ]
  for (const [args, expected] of missed) {
    assert.equal(await atOnce(args.join(' '), backend.call(args)), expected, args.join(' '))
  }
  // Each form answered from the same shared connection, in turn; nothing waits in Redis.
  assert.is(await blockedClients(), 0)
  assert.is(await backend.call(['PING']), 'PONG')
  // With data present, the same forms read it.
  await raw.rpush('nolist', 'x')
  assert.equal(await backend.call(['BLPOP', 'nolist', '0x1p30']), [new TextEncoder().encode('nolist'), new TextEncoder().encode('x')])
})

test.run()
