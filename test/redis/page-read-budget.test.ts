import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { PAGE_SCRIPT_SHA1 } from '../../host/gears/readers.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'

const test = suite('redis: the page-read script caps the bytes it reads per call')
let server: TestRedis
let raw: Redis

const VALUE_BYTES = 60 * 1000 * 1000
const MiB = 1024 * 1024

test.before(async () => {
  server = await startRedis()
  raw = new Redis(server.port, '127.0.0.1')
  const value = Buffer.alloc(VALUE_BYTES, 'x')
  for (const i of [1, 2, 3]) await raw.set(`big:${i}`, value)
  await raw.set('big:small', 'v')
})

test.after(async () => {
  raw.disconnect()
  await server.stop()
})

/**
 * PINGs Redis every 10 ms from another process (so that this process's own event loop, busy with
 * the run, is not what is measured) while `work` runs; at most 60 s and 6000 PINGs. Returns the
 * slowest answer.
 */
const PINGER = `
import { spawn } from 'node:child_process'
import { Redis } from 'ioredis'
const r = new Redis(Number(process.argv[1]), '127.0.0.1')
let stop = false
process.stdin.on('data', () => { stop = true })
let slowest = 0, pings = 0
const started = Date.now()
await r.ping()
process.stdout.write('ready\\n')
while (!stop && pings < 6000 && Date.now() - started < 60000) {
  const t0 = performance.now()
  if ((await r.ping()) !== 'PONG') throw new Error('no PONG')
  slowest = Math.max(slowest, performance.now() - t0)
  pings++
  await new Promise((res) => setTimeout(res, 10))
}
process.stdout.write(JSON.stringify({ slowest, pings }) + '\\n')
r.disconnect()
`

async function whilePinging<T>(start: () => Promise<T>): Promise<{ outcome: { value: T } | { error: unknown }; slowestMs: number; pings: number }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', PINGER, String(server.port)], { cwd: process.cwd(), stdio: ['pipe', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()))
  for (let i = 0; i < 500 && !out.includes('ready'); i++) await new Promise((r) => setTimeout(r, 10))
  assert.ok(out.includes('ready'), 'the pinger started')
  const outcome = await start().then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  )
  child.stdin.end('stop\n')
  await exited
  const report = JSON.parse(out.split('\n').find((l) => l.startsWith('{')) ?? '{}') as { slowest?: number; pings?: number }
  return { outcome, slowestMs: report.slowest ?? Infinity, pings: report.pings ?? 0 }
}

test('values over maxReplyBytes: the run fails with ERR_GEARBOX_REPLY_LIMIT, Redis answers PING within 100 ms throughout', async () => {
  const gearbox = await Gearbox.create({ redis: server.url, limits: { maxReplyBytes: 32 * MiB } })
  try {
    const { outcome, slowestMs, pings } = await whilePinging(() => gearbox.execute("GB().map(r => r.value.length).run('big:*')"))
    // The reader's ReplyLimitError reaches the run as its error (readers' errors are reported as the
    // run's error texts, as RedisGears does), before any of the values was read.
    assert.ok('value' in outcome, `the execution failed: ${String((outcome as { error: unknown }).error)}`)
    assert.equal((outcome as { value: unknown }).value, [[], ['KeysReader: a string value of 60000000 bytes exceeds limits.maxReplyBytes (33554432 bytes)']])
    assert.ok(pings > 0)
    assert.ok(slowestMs < 100, `slowest PING ${slowestMs.toFixed(1)} ms`)
    // Other executions still run, and Redis is unaffected.
    await gearbox.execute("execute('SET', 'after', 'yes')")
    assert.is(await raw.get('after'), 'yes')
  } finally {
    await gearbox.close()
  }
})

test('values within maxReplyBytes but over the page budget: right results, read outside the script, PING within 100 ms', async () => {
  const gearbox = await Gearbox.create({ redis: server.url, limits: { maxReplyBytes: 64 * MiB, memoryBytes: 512 * MiB, wallMs: 60_000, cpuMs: 60_000 } })
  try {
    await raw.script('FLUSH')
    await raw.call('SLOWLOG', 'RESET')
    const { outcome, slowestMs, pings } = await whilePinging(() =>
      gearbox.execute("GB().map(r => r.key + '=' + r.value.length).run('big:*')"),
    )
    assert.ok('value' in outcome, `the run failed: ${String((outcome as { error: unknown }).error)}`)
    const [results, errors] = (outcome as { value: [string[], string[]] }).value
    assert.equal(errors, [])
    assert.equal([...results].sort(), ['big:1=60000000', 'big:2=60000000', 'big:3=60000000', 'big:small=1'])
    assert.ok(pings > 0)
    const slow = await raw.call('SLOWLOG', 'GET', '10')
    assert.ok(slowestMs < 100, `slowest PING ${slowestMs.toFixed(1)} ms; ${JSON.stringify(slow)}`)
    // EVALSHA with a NOSCRIPT fallback: the script cache holds the page script once.
    assert.equal(await raw.script('EXISTS', PAGE_SCRIPT_SHA1), [1])
    const info = await raw.info('memory')
    assert.is(/number_of_cached_scripts:(\d+)/.exec(info)?.[1], '1')
  } finally {
    await gearbox.close()
  }
})

test.run()
