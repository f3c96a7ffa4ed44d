/** `gearbox run` as a process: against --redis, with a throwaway server, --json, failures. */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { startRedis, type TestRedis } from '../helpers/redis.js'

const MAIN = fileURLToPath(new URL('../../host/cli/main.js', import.meta.url))
const HELLO = fileURLToPath(new URL('../../../examples/hello.js', import.meta.url))

interface Outcome {
  readonly status: number
  readonly stdout: string
  readonly stderr: string
}

function gearbox(args: readonly string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      const status = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      resolve({ status, stdout, stderr })
    })
  })
}

const ctx: { redis?: TestRedis; dir?: string } = {}

function script(name: string, source: string): string {
  const path = join(ctx.dir!, name)
  writeFileSync(path, source)
  return path
}

const t = suite('gearbox run')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.dir = mkdtempSync(join(tmpdir(), 'gearbox-cli-test-'))
})

t.after(async () => {
  await ctx.redis?.stop()
  if (ctx.dir !== undefined) rmSync(ctx.dir, { recursive: true, force: true })
})

t('the example against --redis: the reply on stdout, log lines on stderr, data in Redis', async () => {
  const out = await gearbox(['run', HELLO, '--redis', ctx.redis!.url])
  assert.is(out.status, 0, out.stderr)
  assert.is(out.stdout, '1) 1) "ada: 2 visit(s)"\n   2) "grace: 1 visit(s)"\n   3) "linus: 1 visit(s)"\n2) (empty array)\n')
  assert.equal(out.stderr.trimEnd().split('\n'), [
    'GEARS: ada has visited 2 time(s)',
    'GEARS: grace has visited 1 time(s)',
    'GEARS: linus has visited 1 time(s)',
    "GEARS: ada's visits after the atomic update: 2",
    'GEARS: keys written: 3 under {06S}hello:*',
  ])
  const client = new Redis(ctx.redis!.url, { protocol: 2 })
  try {
    assert.equal(await client.hgetall('{06S}hello:ada'), { name: 'ada', visits: '2' })
  } finally {
    client.disconnect()
  }
})

t('without --redis: a throwaway redis-server', async () => {
  const path = script('roundtrip.js', `execute('SET', 'k', 'v'); log('read back ' + execute('GET', 'k'))`)
  const out = await gearbox(['run', path])
  assert.is(out.status, 0, out.stderr)
  assert.is(out.stdout, 'OK\n')
  assert.is(out.stderr, 'GEARS: read back v\n')
})

t('--json prints the reply as JSON', async () => {
  const path = script('json.js', `execute('PING')`)
  const out = await gearbox(['run', path, '--redis', ctx.redis!.url, '--json'])
  assert.is(out.status, 0, out.stderr)
  assert.is(out.stdout, '"OK"\n')
})

t('a failing script exits 1 with CODE: message', async () => {
  const path = script('fails.js', `execute('SET', 'str', 'x')\nexecute('LPUSH', 'str', 'y')\n`)
  const out = await gearbox(['run', path, '--redis', ctx.redis!.url])
  assert.is(out.status, 1)
  assert.is(out.stdout, '')
  const [first, ...stack] = out.stderr.trimEnd().split('\n')
  assert.is(first, 'ERR_GEARBOX_GUEST: GearsError: WRONGTYPE Operation against a key holding the wrong kind of value')
  assert.equal(stack, ['    at <eval> (script.js:2:8)'])
})

t('a limit hit exits 1 with its code and the option to change', async () => {
  const path = script('spin.js', `while (true) {}`)
  const out = await gearbox(['run', path, '--redis', ctx.redis!.url, '--cpu-ms', '100'])
  assert.is(out.status, 1)
  assert.match(out.stderr, /^ERR_GEARBOX_CPU_LIMIT: .*limits\.cpuMs/)
})

t('usage errors exit 1 with CODE: message and the usage text', async () => {
  const out = await gearbox(['run'])
  assert.is(out.status, 1)
  assert.ok(out.stderr.startsWith('ERR_GEARBOX_INVALID_ARGUMENT: run expects a script file: gearbox run <file.js>\n\nUsage:'))
  const bad = await gearbox(['run', 'x.js', '--wall-ms', 'soon'])
  assert.is(bad.status, 1)
  assert.ok(bad.stderr.startsWith("ERR_GEARBOX_INVALID_ARGUMENT: --wall-ms expects a positive integer, got 'soon'\n"))
})

t('a missing file, an unreachable Redis: exit 1 with the coded error; a .py script runs as Python', async () => {
  const missing = await gearbox(['run', join(ctx.dir!, 'nope.js'), '--redis', ctx.redis!.url])
  assert.is(missing.status, 1)
  assert.match(missing.stderr, /^ERR_GEARBOX_INVALID_ARGUMENT: cannot read .*nope\.js/)
  assert.not.match(missing.stderr, 'Usage:')
  const python = await gearbox(['run', script('f.py', "GB().map(lambda r: r['key']).run('no-such-key:*')"), '--redis', ctx.redis!.url])
  assert.is(python.status, 0, python.stderr)
  assert.match(python.stdout, /empty array/)
  const down = await gearbox(['run', script('down.js', `execute('PING')`), '--redis', 'redis://127.0.0.1:1'])
  assert.is(down.status, 1)
  assert.match(down.stderr, /^ERR_GEARBOX_CONNECTION: /)
})

t('--help prints the usage and exits 0', async () => {
  const out = await gearbox(['--help'])
  assert.is(out.status, 0)
  assert.ok(out.stdout.startsWith('Usage:\n  gearbox run <file.js> [options]'))
})

t.run()
