/**
 * Saved realms (SandboxJob.realm): a worker evaluates a job's leading scripts once, with their
 * host calls answered by the job's setupHost, saves the interpreter under the job's key, and
 * starts every later job with that key from it; each job still starts from the saved state, not
 * from what the previous job left.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { GuestError } from '../../host/errors.js'
import { SAVED_STATES_MAX_COUNT } from '../../host/sandbox/engines/quickjs/engine.js'
import { nodePlatform } from '../../host/platform/node.js'
import { SandboxPool, type ExecutionJob, type GuestScript, type Limits } from '../../host/sandbox/index.js'
import { evalEntry, failure, FakeHost, SMALL_LIMITS } from './fixtures.js'

let pool: SandboxPool

test.before(async () => {
  // One worker: every job meets the same engine, so what it saved is observable.
  pool = await SandboxPool.create({ platform: nodePlatform(), workers: 1, memoryBytes: SMALL_LIMITS.memoryBytes })
})

test.after(async () => {
  await pool.close()
})

const SESSION: GuestScript = {
  name: 'session.js',
  code: `var loaded = __gearbox_host_call('echo', 'top-level')
var counter = 0
function bump() { counter++; return counter + ':' + loaded }`,
}

/** Setup hosts made so far, per key: each one means the worker built the saved realm. */
const setups = new Map<string, FakeHost[]>()

function realmJob(key: string, code: string, scripts: readonly GuestScript[] = [SESSION], limits: Limits = SMALL_LIMITS): ExecutionJob {
  return {
    engine: 'quickjs',
    scripts,
    entry: evalEntry(code),
    limits,
    realm: {
      key,
      scripts: scripts.length,
      entry: evalEntry("'setup done'"),
      setupHost: () => {
        const host = new FakeHost()
        setups.set(key, [...(setups.get(key) ?? []), host])
        return host
      },
    },
  }
}

test('the first job builds the realm (its top-level calls go to setupHost), later ones start from it', async () => {
  const before = pool.engineCounters()
  const host = new FakeHost()
  assert.is(await pool.start(realmJob('basic', 'bump()'), host).result, '1:top-level')
  assert.is(setups.get('basic')?.length, 1)
  assert.equal(setups.get('basic')![0]!.calls.map((c) => `${c.op} ${c.payload}`), ['echo top-level'])
  assert.equal(host.calls, [], 'the job handler saw none of the setup calls')
  for (let i = 0; i < 5; i++) {
    // Each job starts from the saved state: the counter the previous job bumped is back at 0.
    assert.is(await pool.start(realmJob('basic', 'bump()'), host).result, '1:top-level')
  }
  assert.is(setups.get('basic')?.length, 1, 'the top level ran once on this worker')
  assert.equal(host.calls, [])
  const after = pool.engineCounters()
  assert.is(after.realmSaves - before.realmSaves, 1)
  assert.is(after.savedRealmStarts - before.savedRealmStarts, 5)
})

test("after the setup, the job's own host calls go to its handler", async () => {
  const host = new FakeHost()
  const result = await pool.start(realmJob('calls', "__gearbox_host_call('upper', 'main') + ' ' + bump()"), host).result
  assert.is(result, 'MAIN 1:top-level')
  assert.equal(host.calls.map((c) => c.op), ['upper'])
  const again = new FakeHost()
  assert.is(await pool.start(realmJob('calls', "__gearbox_host_call('upper', 'x')"), again).result, 'X')
  assert.equal(again.calls.map((c) => c.op), ['upper'])
})

test('a job without a realm after realm jobs gets a fresh interpreter', async () => {
  await pool.start(realmJob('fresh', 'bump()'), new FakeHost()).result
  const plain: ExecutionJob = { engine: 'quickjs', scripts: [], entry: evalEntry('typeof bump + typeof counter'), limits: SMALL_LIMITS }
  assert.is(await pool.start(plain, new FakeHost()).result, 'undefinedundefined')
  // And the saved realm is still there for the next job of its key.
  const setupsBefore = setups.get('fresh')?.length
  assert.is(await pool.start(realmJob('fresh', 'bump()'), new FakeHost()).result, '1:top-level')
  assert.is(setups.get('fresh')?.length, setupsBefore)
})

test('the setup may wait for async host calls; the realm is saved once they settled', async () => {
  const scripts: GuestScript[] = [
    { name: 'async.js', code: `var late = 'unset'; var ready = __gearbox_host_start('echo', 'async-top').then((v) => { late = v })` },
  ]
  const job = (code: string): ExecutionJob => {
    const base = realmJob('async', code, scripts)
    return { ...base, realm: { ...base.realm!, entry: evalEntry("ready.then(() => 'setup done')") } }
  }
  assert.is(await pool.start(job('late'), new FakeHost()).result, 'async-top')
  assert.is(await pool.start(job('late'), new FakeHost()).result, 'async-top')
  assert.is(setups.get('async')?.length, 1)
  assert.equal(setups.get('async')![0]!.calls.map((c) => `${c.mode} ${c.op}`), ['async echo'])
})

test('a setup that throws fails the job and saves nothing: the next job builds again', async () => {
  const scripts: GuestScript[] = [{ name: 'bad.js', code: `__gearbox_host_call('echo', 'x'); throw new RangeError('top level broke')` }]
  const before = pool.engineCounters()
  for (let i = 0; i < 2; i++) {
    const error = await failure(pool.start(realmJob('bad', "'never'", scripts), new FakeHost()).result)
    assert.instance(error, GuestError)
    assert.is((error as GuestError).guestName, 'RangeError')
    assert.match(error.message, 'top level broke')
  }
  assert.is(setups.get('bad')?.length, 2)
  assert.is(pool.engineCounters().realmSaves - before.realmSaves, 0)
  // The worker goes on serving.
  assert.is(await pool.start(realmJob('after-bad', 'bump()'), new FakeHost()).result, '1:top-level')
})

test('a realm left with a host promise pending is not saved; the job still runs', async () => {
  const scripts: GuestScript[] = [{ name: 'pending.js', code: `var waiting = __gearbox_host_start('never', ''); var x = 'ran'` }]
  const before = pool.engineCounters()
  for (let i = 0; i < 2; i++) assert.is(await pool.start(realmJob('pending', 'x', scripts), new FakeHost()).result, 'ran')
  assert.is(pool.engineCounters().realmSaves - before.realmSaves, 0)
  assert.is(setups.get('pending')?.length, 2, 'nothing saved: each job built it')
})

test('a worker keeps several saved realms, the least recently used ones go first', async () => {
  const keys = Array.from({ length: SAVED_STATES_MAX_COUNT + 2 }, (_, i) => `lru-${i}`)
  const code = (i: number): GuestScript => ({ name: 'lru.js', code: `var id = ${i}` })
  for (const [i, key] of keys.entries()) assert.is(await pool.start(realmJob(key, 'String(id)', [code(i)]), new FakeHost()).result, String(i))
  // The most recent ones are still saved; the first two were evicted.
  for (const i of [keys.length - 1, keys.length - 2, 2]) {
    assert.is(await pool.start(realmJob(keys[i]!, 'String(id)', [code(i)]), new FakeHost()).result, String(i))
    assert.is(setups.get(keys[i]!)?.length, 1, `${keys[i]} was still saved`)
  }
  assert.is(await pool.start(realmJob(keys[0]!, 'String(id)', [code(0)]), new FakeHost()).result, '0')
  assert.is(setups.get(keys[0]!)?.length, 2, `${keys[0]} was evicted and built again`)
})

test('the job limits bound the setup too (a top level that loops fails with the CPU limit)', async () => {
  const scripts: GuestScript[] = [{ name: 'loop.js', code: 'while (true) {}' }]
  const limits: Limits = { ...SMALL_LIMITS, cpuMs: 200 }
  const error = await failure(pool.start(realmJob('loop', "'never'", scripts, limits), new FakeHost()).result)
  assert.is(error.code, 'ERR_GEARBOX_CPU_LIMIT')
  assert.is(await pool.start(realmJob('after-loop', 'bump()'), new FakeHost()).result, '1:top-level')
})

test('job.realm is checked', async () => {
  const base = realmJob('checked', 'bump()')
  for (const realm of [
    { ...base.realm!, key: '' },
    { ...base.realm!, scripts: 5 },
    { ...base.realm!, entry: { entry: '', args: [] } },
    { ...base.realm!, setupHost: 'no' as unknown as () => FakeHost },
  ]) {
    assert.throws(() => pool.start({ ...base, realm }, new FakeHost()), /job\.realm/)
  }
})

test.run()
