/** Deno support: the same library, run by a real Deno (npm package `deno`), against real Redis. */
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { startRedis, type TestRedis } from '../helpers/redis.js'

const require = createRequire(import.meta.url)
const denoBin = (): string => {
  const pkg = require.resolve('deno/package.json')
  return fileURLToPath(new URL('../.bin/deno', `file://${pkg}`))
}
// The smoke script is plain JS in the source tree (it is not compiled by tsc).
const smoke = fileURLToPath(new URL('../../../test/deno/deno-smoke.mjs', import.meta.url))

let redis: TestRedis

test.before(async () => {
  redis = await startRedis()
})

test.after(async () => {
  await redis.stop()
})

test('the library runs under Deno: execute, command policy and the CPU limit', async () => {
  const run = spawnSync(denoBin(), ['run', '--allow-all', '--quiet', smoke, redis.url], { encoding: 'utf8', timeout: 120_000 })
  assert.is(run.status, 0, `deno exited ${String(run.status)}: ${run.stderr}`)
  const line = run.stdout.trim().split('\n').pop() ?? ''
  const seen = JSON.parse(line) as { runtime: string; ok: string; cpu: string }
  assert.equal(seen, { runtime: 'deno', ok: 'OK', cpu: 'ERR_GEARBOX_CPU_LIMIT' })
  const client = new Redis(redis.url)
  try {
    assert.is(await client.get('deno:k'), 'from deno')
    assert.is(await client.get('deno:n'), '1')
    assert.is(await client.get('deno:denied'), 'ERR_GEARBOX_COMMAND_DENIED')
  } finally {
    client.disconnect()
  }
})

test.run()
