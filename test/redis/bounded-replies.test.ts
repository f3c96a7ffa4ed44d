/**
 * Bounded replies: a reply over its budget is refused from its header (or as it streams), never
 * buffered whole; the call rejects with ERR_GEARBOX_REPLY_LIMIT, concurrent calls finish
 * normally, and the connection keeps working.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Gearbox } from '../../host/index.js'
import { createRedisBackend } from '../../host/redis/index.js'
import type { RedisBackend } from '../../host/redis/types.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection } from '../helpers/rejection.js'

const test = suite('redis: bounded replies')
const MiB = 1024 * 1024
let server: TestRedis
let backend: RedisBackend

/** Runs `work` while sampling the RSS; returns the peak growth over the RSS before, in bytes. */
async function rssGrowth(work: () => Promise<void>): Promise<number> {
  globalThis.gc?.()
  const before = process.memoryUsage().rss
  let peak = before
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5)
  try {
    await work()
  } finally {
    clearInterval(timer)
  }
  return Math.max(peak, process.memoryUsage().rss) - before
}

/** Small calls running beside a refused one: all must answer normally. */
function smallCalls(n: number): Promise<unknown[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => backend.call(['INCR', `small:${i % 5}`], { maxReplyBytes: MiB })))
}

test.before(async () => {
  server = await startRedis()
  backend = createRedisBackend(server.url)
  // 200 MB in Redis without sending it: SETRANGE past the end zero-fills.
  await backend.call(['SETRANGE', 'big', String(200 * MiB - 1), 'x'], { internal: true })
  await backend.call(['SET', 'k', 'v'])
})

test.after(async () => {
  await backend.close()
  await server.stop()
})

test('GET of 200 MB with maxReplyBytes 1 MB: refused, skipped as it streams, RSS stays low', async () => {
  let refused: { code: string | undefined; message: string } | undefined
  let others: unknown[] = []
  const growth = await rssGrowth(async () => {
    const big = rejection(backend.call(['GET', 'big'], { maxReplyBytes: MiB }))
    // Calls issued while the big reply streams in go to another connection.
    await new Promise((r) => setTimeout(r, 20))
    ;[refused, others] = await Promise.all([big, smallCalls(50)])
  })
  assert.is(refused?.code, 'ERR_GEARBOX_REPLY_LIMIT')
  assert.match(refused?.message ?? '', 'limits.maxReplyBytes (1048576 bytes)')
  assert.is(others.length, 50)
  assert.ok(others.every((n) => typeof n === 'number' && n > 0), 'the other calls answered normally')
  // The skipped bytes still pass through socket chunks that are garbage until the next GC: the
  // bound is a fraction of the value (Node 24 reached 73 MB in one run; the whole value is 200 MB).
  assert.ok(growth < 128 * MiB, `host RSS grew by ${(growth / MiB).toFixed(1)} MB`)
  // The connection that skipped the reply still pairs replies right.
  for (let i = 0; i < 5; i++) assert.equal(await backend.call(['GET', 'k']), new TextEncoder().encode('v'))
  assert.is(await backend.call(['STRLEN', 'big']), 200 * MiB)
})

test('LRANGE of a million elements: refused from the element count', async () => {
  await backend.call(['EVAL', "for i = 1, 1000000, 1000 do local t = {} for j = i, i + 999 do t[#t + 1] = j end redis.call('RPUSH', KEYS[1], unpack(t)) end", '1', 'million'], { internal: true })
  assert.is(await backend.call(['LLEN', 'million']), 1_000_000)
  const [refused, others] = await Promise.all([rejection(backend.call(['LRANGE', 'million', '0', '-1'], { maxReplyBytes: MiB })), smallCalls(20)])
  assert.is(refused.code, 'ERR_GEARBOX_REPLY_LIMIT')
  assert.is(others.length, 20)
  assert.equal(await backend.call(['LRANGE', 'million', '0', '2'], { maxReplyBytes: MiB }), ['1', '2', '3'].map((s) => new TextEncoder().encode(s)))
})

test('KEYS over many keys: refused; a pipeline with an oversized reply rejects, the connection stays usable', async () => {
  await backend.call(['EVAL', "for i = 1, 200000 do redis.call('SET', 'many:' .. i, i) end", '0'], { internal: true })
  const refused = await rejection(backend.call(['KEYS', 'many:*'], { maxReplyBytes: MiB }))
  assert.is(refused.code, 'ERR_GEARBOX_REPLY_LIMIT')
  const shard = (await backend.currentShard()).id
  const pipelined = await rejection(backend.pipeline(shard, [['GET', 'k'], ['KEYS', 'many:*'], ['GET', 'k']], { maxReplyBytes: MiB }))
  assert.is(pipelined.code, 'ERR_GEARBOX_REPLY_LIMIT')
  assert.equal(await backend.pipeline(shard, [['GET', 'k'], ['PING']]), [new TextEncoder().encode('v'), 'PONG'])
  // Without a budget of its own, an internal call has the backend's (512 MiB): this one fits.
  assert.is(((await backend.call(['KEYS', 'many:*'], { internal: true })) as unknown[]).length, 200000)
})

test("an execution's limits.maxReplyBytes bounds its commands' replies; other executions are unaffected", async () => {
  const lines: string[] = []
  const gearbox = await Gearbox.create({ redis: backend, workers: 2, logger: { log: (_level, message) => void lines.push(message) } })
  try {
    // The limit stops the execution: catching it does not help, as for the sandbox's own reply cap.
    const script = "try { execute('GET', 'big'); log('read') } catch (e) { log('caught: ' + e.code) }"
    const other = "let n = 0; for (let i = 0; i < 50; i++) n += execute('INCR', 'exec:n'); log('other: ' + n)"
    const [big] = await Promise.allSettled([gearbox.execute(script, { limits: { maxReplyBytes: MiB } }), gearbox.execute(other)])
    assert.is(big.status, 'rejected')
    const reason = (big as PromiseRejectedResult).reason as { code?: string; message?: string }
    assert.is(reason.code, 'ERR_GEARBOX_REPLY_LIMIT')
    assert.match(reason.message ?? '', /limits\.maxReplyBytes \(1048576 bytes\)/)
    assert.not.ok(lines.some((l) => l.startsWith('caught: ') || l === 'read'), lines.join('\n'))
    assert.is(lines.find((l) => l.startsWith('other: ')), `other: ${(50 * 51) / 2}`)
    await gearbox.execute("log('after: ' + execute('GET', 'k'))")
    assert.ok(lines.includes('after: v'), lines.join('\n'))
  } finally {
    await gearbox.close()
  }
})

test.run()
