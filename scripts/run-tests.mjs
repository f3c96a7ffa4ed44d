// Runs every compiled test file (dist/test/**/*.test.js) as its own process, one at a time (the
// machine has 2 shared cores), against one shared 3-master cluster started here. Sums uvu's
// totals and ends with the line CI reads: `N passed, N failed`. Exit code 1 on any failure.
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { startRedisCluster } from '../dist/host/platform/redis-cluster.js'

const root = new URL('..', import.meta.url).pathname
const testDir = join(root, 'dist', 'test')
const filter = process.argv[2]
const FILE_TIMEOUT_MS = 180_000

function findTests(dir) {
  const out = []
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...findTests(p))
    else if (name.endsWith('.test.js')) out.push(p)
  }
  return out
}

function runFile(file, env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    const onData = (d) => { out += d; process.stdout.write(d) }
    child.stdout.on('data', onData)
    child.stderr.on('data', (d) => { out += d; process.stderr.write(d) })
    const timer = setTimeout(() => { out += `\n[run-tests] ${file} timed out after ${FILE_TIMEOUT_MS} ms\n`; child.kill('SIGKILL') }, FILE_TIMEOUT_MS)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, out }) })
  })
}

// uvu prints "  Total:     N\n  Passed:    N\n  Skipped:   N" once per process.
function totals(out) {
  const strip = out.replace(/\x1b\[[0-9;]*m/g, '')
  const total = /Total:\s+(\d+)/.exec(strip)
  const passed = /Passed:\s+(\d+)/.exec(strip)
  const skipped = /Skipped:\s+(\d+)/.exec(strip)
  if (!total || !passed) return undefined
  return { total: Number(total[1]), passed: Number(passed[1]), skipped: skipped ? Number(skipped[1]) : 0 }
}

const files = findTests(testDir).filter((f) => !filter || f.includes(filter))
const cluster = await startRedisCluster()
const env = { ...process.env, GEARBOX_TEST_CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(','), FORCE_COLOR: '0' }
let passed = 0
let failed = 0
const failures = []
const started = Date.now()
try {
  for (const file of files) {
    const name = relative(testDir, file)
    console.log(`\n=== ${name}`)
    const { code, out } = await runFile(file, env)
    const t = totals(out)
    if (!t) {
      failed += 1
      failures.push(`${name}: no uvu summary (exit ${code})`)
      continue
    }
    passed += t.passed
    // Skipped tests count as failures: a skipped failure is a defect.
    const bad = t.total - t.passed
    failed += bad
    if (bad > 0 || code !== 0) failures.push(`${name}: ${bad} failed (exit ${code})`)
    if (bad === 0 && code !== 0) failed += 1
  }
} finally {
  await cluster.stop()
}
if (failures.length) console.log(`\nFailures:\n  ${failures.join('\n  ')}`)
console.log(`\n${files.length} test files in ${((Date.now() - started) / 1000).toFixed(1)} s`)
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed === 0 && files.length > 0 ? 0 : 1)
