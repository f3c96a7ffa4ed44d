/** Normal behaviour of the sandbox pool: limits, host calls, results, queueing, abort, close. */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ClosedError, InvalidArgumentError } from '../../host/errors.js'
import { nodePlatform } from '../../host/platform/node.js'
import { DEFAULT_LIMITS, resolveLimits, SandboxPool, type ExecutionJob, type HostHandler, type SandboxPlatform } from '../../host/sandbox/index.js'
import { MAX_REQUEST_BYTES } from '../../host/sandbox/request-channel.js'
import { CPU_LIMITS, failure, FakeHost, job, SMALL_LIMITS } from './fixtures.js'

let pool: SandboxPool

test.before(async () => {
  pool = await SandboxPool.create({ platform: nodePlatform(), workers: 2, memoryBytes: SMALL_LIMITS.memoryBytes })
})

test.after(async () => {
  await pool.close()
})

// Limits ----------------------------------------------------------------------------------------

test('DEFAULT_LIMITS are the documented defaults', () => {
  assert.equal(
    { ...DEFAULT_LIMITS },
    {
      memoryBytes: 64 * 1024 * 1024,
      cpuMs: 5000,
      wallMs: 30000,
      stackBytes: 256 * 1024,
      maxHostCalls: 1_000_000,
      maxReplyBytes: 64 * 1024 * 1024,
    },
  )
  assert.equal(resolveLimits(), DEFAULT_LIMITS)
  assert.equal(resolveLimits({ cpuMs: 10 }), { ...DEFAULT_LIMITS, cpuMs: 10 })
})

test('resolveLimits rejects bad values, naming the option', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ cpuMs: 0 }, /limits\.cpuMs/],
    [{ wallMs: -5 }, /limits\.wallMs/],
    [{ memoryBytes: 1.5 }, /limits\.memoryBytes/],
    [{ maxHostCalls: Number.POSITIVE_INFINITY }, /limits\.maxHostCalls/],
    [{ maxReplyBytes: '10' }, /limits\.maxReplyBytes/],
    [{ stackBytes: 512 * 1024 }, /limits\.stackBytes must be at most 262144/],
    [{ cpuMS: 5 }, /unknown limit limits\.cpuMS/],
  ]
  for (const [partial, message] of cases) {
    assert.throws(
      () => resolveLimits(partial),
      (error: unknown) => error instanceof InvalidArgumentError && error.code === 'ERR_GEARBOX_INVALID_ARGUMENT' && message.test(error.message),
      JSON.stringify(partial),
    )
  }
})

// Results and guest errors ----------------------------------------------------------------------

test('a string completion value is the result', async () => {
  assert.is(await pool.start(job(`'hello ' + (6 * 7)`), new FakeHost()).result, 'hello 42')
})

test('a promise of a string is awaited', async () => {
  assert.is(await pool.start(job(`(async () => { await null; return 'later' })()`), new FakeHost()).result, 'later')
})

test('a non-string result is a SandboxError', async () => {
  for (const [entry, got] of [
    ['42', 'number'],
    ['({})', 'object'],
    ['undefined', 'undefined'],
    ['Promise.resolve(7)', 'a promise of number'],
  ]) {
    const error = await failure(pool.start(job(entry as string), new FakeHost()).result)
    assert.is(error.code, 'ERR_GEARBOX_SANDBOX')
    assert.match(error.message, `got ${got}`)
  }
})

test('guest exceptions are GuestErrors with name, message and stack', async () => {
  const scripts = [{ name: 'user.js', code: `function explode() { throw new TypeError('bad thing') }` }]
  const error = await failure(pool.start(job(`explode()`, SMALL_LIMITS, scripts), new FakeHost()).result)
  assert.is(error.code, 'ERR_GEARBOX_GUEST')
  assert.is(error.message, 'bad thing')
  assert.is((error as unknown as { guestName: string }).guestName, 'TypeError')
  assert.match((error as unknown as { guestStack: string }).guestStack, 'user.js')

  const rejected = await failure(pool.start(job(`Promise.reject(new RangeError('nope'))`), new FakeHost()).result)
  assert.is(rejected.code, 'ERR_GEARBOX_GUEST')
  assert.is((rejected as unknown as { guestName: string }).guestName, 'RangeError')

  const thrownString = await failure(pool.start(job(`throw 'plain string'`), new FakeHost()).result)
  assert.is(thrownString.message, 'plain string')

  const syntax = await failure(pool.start(job(`'unterminated`), new FakeHost()).result)
  assert.is((syntax as unknown as { guestName: string }).guestName, 'SyntaxError')
})

test('scripts run in order at global scope, then the entry', async () => {
  const big = `globalThis.padding = ${JSON.stringify('p'.repeat(4000))}; var fromBig = padding.length;`
  const scripts = [
    { name: 'first.js', code: `var order = ['first']; const shared = 10` },
    { name: 'big.js', code: big },
    { name: 'second.js', code: `order.push('second'); function double(x) { return x * 2 }` },
  ]
  // The large script goes to each worker once and is then named by its cache slot.
  for (let i = 0; i < 5; i++) {
    const value = await pool.start(job(`order.join('>') + ':' + double(shared) + ':' + fromBig`, SMALL_LIMITS, scripts), new FakeHost()).result
    assert.is(value, 'first>second:20:4000')
  }
})

// Host calls ------------------------------------------------------------------------------------

test('sync host calls round-trip op and payload', async () => {
  const host = new FakeHost()
  const value = await pool.start(job(`__gearbox_host_call('upper', 'héllo wörld ✓ 𝄞') + '/' + __gearbox_host_call('echo', '')`), host).result
  assert.is(value, 'HÉLLO WÖRLD ✓ 𝄞/')
  assert.equal(host.calls, [
    { op: 'upper', payload: 'héllo wörld ✓ 𝄞', mode: 'sync' },
    { op: 'echo', payload: '', mode: 'sync' },
  ])
})

test('sync replies larger than the initial reply buffer', async () => {
  const value = await pool.start(job(`const r = __gearbox_host_call('big', '300000'); r.length + ':' + r.slice(-3)`), new FakeHost()).result
  assert.is(value, '300000:xxx')
  const multiByte = await pool.start(job(`__gearbox_host_call('echo', 'é'.repeat(100000)).length + ''`), new FakeHost()).result
  assert.is(multiByte, '100000')
})

test('a sequence of growing sync replies in one execution, up to exactly limits.maxReplyBytes', async () => {
  const sizes = [70_000, 150_000, 400_000, SMALL_LIMITS.maxReplyBytes]
  const entry = `${JSON.stringify(sizes)}.map((n) => { const r = __gearbox_host_call('big', String(n)); return r.length === n && r[n - 1] === 'x' }).join()
    + '/' + [30000, 90000, 200000].map((n) => __gearbox_host_call('echo', '✓é'.repeat(n)) === '✓é'.repeat(n)).join()`
  assert.is(await pool.start(job(entry), new FakeHost()).result, 'true,true,true,true/true,true,true')
})

test('sync host calls answered asynchronously by the handler', async () => {
  const host: HostHandler = { call: (_op, payload) => new Promise((resolve) => setTimeout(() => resolve(`late ${payload}`), 20)) }
  assert.is(await pool.start(job(`__gearbox_host_call('any', 'a') + ',' + __gearbox_host_call('any', 'b')`), host).result, 'late a,late b')
})

test('async host calls are awaited, in parallel and out of order', async () => {
  const resolvers = new Map<string, (value: string) => void>()
  const host: HostHandler = {
    call: (_op, payload, mode) => {
      assert.is(mode, 'async')
      return new Promise((resolve) => {
        resolvers.set(payload, resolve)
        if (resolvers.size === 3) {
          for (const key of ['c', 'a', 'b']) resolvers.get(key)?.(key.toUpperCase())
        }
      })
    },
  }
  const entry = `Promise.all(['a', 'b', 'c'].map((k) => __gearbox_host_start('get', k))).then((r) => r.join(''))`
  assert.is(await pool.start(job(entry), host).result, 'ABC')
})

test('sync and async host calls mix across awaits', async () => {
  const entry = `(async () => {
    const a = __gearbox_host_call('upper', 'one')
    const b = await __gearbox_host_start('echo', 'two')
    const c = __gearbox_host_call('upper', 'three')
    const d = await __gearbox_host_start('slow', 'four')
    return [a, b, c, d].join(' ')
  })()`
  assert.is(await pool.start(job(entry), new FakeHost()).result, 'ONE two THREE four')
})

test('an async call started before a sync call reaches the host first', async () => {
  const host = new FakeHost()
  const entry = `(async () => {
    const started = ['one', 'two'].map((k) => __gearbox_host_start('slow', k))
    const now = __gearbox_host_call('upper', 'three')
    return (await Promise.all(started)).join(' ') + ' ' + now
  })()`
  for (let round = 0; round < 20; round++) {
    host.calls.length = 0
    assert.is(await pool.start(job(entry), host).result, 'one two THREE')
    assert.equal(host.calls.map((call) => call.payload), ['one', 'two', 'three'], `round ${round}`)
  }
})

test('sync calls right after async ones are never missed (no lost wake-up)', async () => {
  // Each sync reply is followed at once by an async call's message, then by the next sync call:
  // the I/O thread sees messages in flight while it decides whether to wait for the next call.
  const entry = `(async () => {
    let n = 0
    for (let i = 0; i < 300; i++) {
      n += __gearbox_host_call('echo', 'ab').length
      n += (await __gearbox_host_start('echo', 'c')).length
    }
    return String(n)
  })()`
  for (let round = 0; round < 3; round++) assert.is(await pool.start(job(entry), new FakeHost()).result, '900')
})

test('a sync call too large for the request buffer goes by message, intact', async () => {
  const limits = resolveLimits({ ...SMALL_LIMITS, memoryBytes: 96 * 1024 * 1024, maxReplyBytes: 32 * 1024 * 1024 })
  const entry = `const big = 'q'.repeat(${MAX_REQUEST_BYTES} + 10); const n = __gearbox_host_call('echo', big).length; n + ':' + __gearbox_host_call('upper', 'after')`
  const host = new FakeHost()
  assert.is(await pool.start(job(entry, limits), host).result, `${MAX_REQUEST_BYTES + 10}:AFTER`)
  assert.equal(host.calls.map((call) => call.payload.length), [MAX_REQUEST_BYTES + 10, 5])
})

test('time blocked in host calls does not count as interpreter time', async () => {
  // Eight 150 ms host waits (1.2 s) under a 300 ms cpuMs budget.
  const entry = `(async () => { let n = 0; for (let i = 0; i < 4; i++) { n += (await __gearbox_host_start('slow', 'x')).length; n += __gearbox_host_call('echo', 'y').length } return String(n) })()`
  const host: HostHandler = {
    call: (op, payload, mode) =>
      mode === 'sync' ? new Promise((resolve) => setTimeout(() => resolve(payload), 150)) : new FakeHost().call(op, payload, mode),
  }
  assert.is(await pool.start(job(entry, CPU_LIMITS), host).result, '8')
})

test('host functions reject wrong argument types', async () => {
  const value = await pool.start(job(`try { __gearbox_host_call('echo', 42) } catch (e) { e.name + ': ' + e.message }`), new FakeHost()).result
  assert.is(value, 'TypeError: __gearbox_host_call(op, payload) takes two strings')
})

test('a host handler returning a non-string fails the execution', async () => {
  const host = { call: () => 42 } as unknown as HostHandler
  const error = await failure(pool.start(job(`__gearbox_host_call('x', '')`), host).result)
  assert.is(error.code, 'ERR_GEARBOX_SANDBOX')
  assert.match(error.message, 'must return a string')
})

// Preloaded scripts -----------------------------------------------------------------------------

/** A prelude in the style of guest/js: captures the host function and hides it. */
const CAPTURING_PRELUDE = {
  name: 'prelude.js',
  code: `var preludeRuns = (globalThis.preludeRuns || 0) + 1
    const hostCall = globalThis.__gearbox_host_call
    delete globalThis.__gearbox_host_call
    function shout(text) { return hostCall('upper', text) }`,
}

test('preloaded scripts: one fresh evaluation per execution, host calls still reach the right job', async () => {
  const user = { name: 'user.js', code: `var userRuns = (globalThis.userRuns || 0) + 1` }
  for (let i = 0; i < 6; i++) {
    const host = new FakeHost()
    const entry = `[preludeRuns, userRuns, typeof __gearbox_host_call, shout('run ${i}')].join('|')`
    const value = await pool.start({ ...job(entry, SMALL_LIMITS, [CAPTURING_PRELUDE, user]), preload: 1 }, host).result
    assert.is(value, `1|1|undefined|RUN ${i}`)
    assert.equal(host.calls, [{ op: 'upper', payload: `run ${i}`, mode: 'sync' }])
  }
  // A job with other scripts (or none preloaded) never sees the prelude's globals.
  const other = { name: 'other.js', code: `var otherRuns = 1` }
  for (let i = 0; i < 3; i++) {
    const probe = `[typeof shout, typeof preludeRuns, typeof otherRuns, typeof __gearbox_host_call].join('|')`
    assert.is(await pool.start({ ...job(probe, SMALL_LIMITS, [other]), preload: 1 }, new FakeHost()).result, 'undefined|undefined|number|function')
    assert.is(await pool.start(job(probe), new FakeHost()).result, 'undefined|undefined|undefined|function')
  }
})

test('snapshot restore: an execution starts from the post-prelude state, whatever the last one did', async () => {
  const prelude = { name: 'prelude.js', code: 'var counter = 0; var shared = { items: [] }' }
  const user = { name: 'user.js', code: 'counter++; shared.items.push(counter); globalThis.leaked = true; Array.prototype.polluted = 1' }
  const entry = `JSON.stringify([counter, shared.items, typeof leaked, [].polluted === undefined])`
  for (let i = 0; i < 8; i++) {
    const value = await pool.start({ ...job(entry, SMALL_LIMITS, [prelude, user]), preload: 1 }, new FakeHost()).result
    assert.is(value, '[1,[1],"boolean",false]')
    // A heap-heavy execution in between must not leave anything behind either.
    const heavy = 'let a = []; for (let i = 0; i < 50000; i++) a.push({ i, s: "x" + i }); String(a.length)'
    assert.is(await pool.start({ ...job(heavy, SMALL_LIMITS, [prelude]), preload: 1 }, new FakeHost()).result, '50000')
  }
})

test('the snapshot path is taken: one restore per execution, and no realm is built for it', async () => {
  const own = await SandboxPool.create({ platform: nodePlatform(), workers: 1, memoryBytes: SMALL_LIMITS.memoryBytes })
  try {
    const prelude = { name: 'prelude.js', code: 'var base = 41' }
    const run = () => own.start({ ...job('String(++base)', SMALL_LIMITS, [prelude]), preload: 1 }, new FakeHost()).result
    // The worker counts a restore right after it reports the result: wait (bounded) for it.
    const restoresReach = async (count: number): Promise<number> => {
      const until = Date.now() + 5000
      while (own.engineCounters().snapshotRestores < count && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5))
      return own.engineCounters().snapshotRestores
    }
    // Warm-up: the first job runs in the bare realm the worker started with; then the worker
    // builds the realm with the prelude preloaded and snapshots it.
    for (let i = 0; i < 3; i++) assert.is(await run(), '42')
    assert.is(await restoresReach(3), 3)
    const builds = own.engineCounters().realmBuilds
    assert.ok(builds >= 1, `realm builds ${builds}`)
    for (let i = 1; i <= 5; i++) {
      assert.is(await run(), '42', 'every execution starts from the snapshot')
      assert.is(await restoresReach(3 + i), 3 + i, `restores after execution ${i}`)
      assert.is(own.engineCounters().realmBuilds, builds, `realm builds after execution ${i}`)
    }
    // A job with other preloaded scripts needs a realm of its own: the counter sees the build.
    const other = { name: 'other.js', code: 'var base = 1' }
    assert.is(await own.start({ ...job('String(base)', SMALL_LIMITS, [other]), preload: 1 }, new FakeHost()).result, '1')
    assert.is(await own.start({ ...job('String(base)', SMALL_LIMITS, [other]), preload: 1 }, new FakeHost()).result, '1')
    assert.ok(own.engineCounters().realmBuilds > builds, 'a realm for other preloaded scripts is counted')
  } finally {
    await own.close()
  }
})

test('Math.random is reseeded per execution (snapshots would otherwise repeat it)', async () => {
  const seen = new Set<string>()
  for (let i = 0; i < 6; i++) {
    const value = await pool.start(job('String(Math.random())'), new FakeHost()).result
    const n = Number(value)
    assert.ok(n >= 0 && n < 1, `Math.random() in [0, 1): ${value}`)
    seen.add(value)
  }
  assert.is(seen.size, 6, 'six executions, six different first values')
})

test('a preloaded script that throws is reported by every job', async () => {
  const broken = { name: 'broken.js', code: `throw new Error('broken prelude')` }
  for (let i = 0; i < 3; i++) {
    const error = await failure(pool.start({ ...job(`'unreachable'`, SMALL_LIMITS, [broken]), preload: 1 }, new FakeHost()).result)
    assert.is(error.code, 'ERR_GEARBOX_GUEST')
    assert.is(error.message, 'broken prelude')
  }
})

test('preloaded top levels run before the job, outside its limits', async () => {
  // One worker, so the second job surely gets the realm prepared after the first. The prelude
  // recurses deeper than the job's 16 KiB stack allows: evaluated inside the first job it hits
  // the job's limit; preloaded for the second, it ran under the engine's 256 KiB.
  const own = await SandboxPool.create({ platform: nodePlatform(), workers: 1, memoryBytes: SMALL_LIMITS.memoryBytes })
  try {
    const deep = { name: 'deep.js', code: `function depth(n) { return n === 0 ? 0 : 1 + depth(n - 1) } var reached = depth(400)` }
    const tinyStack = { ...job(`'reached ' + reached`, resolveLimits({ ...SMALL_LIMITS, stackBytes: 16 * 1024 }), [deep]), preload: 1 }
    assert.is((await failure(own.start(tinyStack, new FakeHost()).result)).code, 'ERR_GEARBOX_STACK_LIMIT')
    assert.is(await own.start(tinyStack, new FakeHost()).result, 'reached 400')
  } finally {
    await own.close()
  }
})

// Limits per job --------------------------------------------------------------------------------

test('jobs with other memory budgets and larger reply caps run', async () => {
  const limits = resolveLimits({ memoryBytes: 32 * 1024 * 1024, maxReplyBytes: 128 * 1024 * 1024 })
  const entry = `const a = []; for (let i = 0; i < 12; i++) a.push(new Uint8Array(1 << 20)); String(a.length) + ':' + __gearbox_host_call('big', '70000').length`
  assert.is(await pool.start(job(entry, limits), new FakeHost()).result, '12:70000')
  assert.is(await pool.start(job(`'back to small'`), new FakeHost()).result, 'back to small')
})

// Queueing, abort, close ------------------------------------------------------------------------

test('more jobs than workers are queued and all finish', async () => {
  const handles = Array.from({ length: 12 }, (_, i) =>
    pool.start(job(`(async () => (await __gearbox_host_start('slow', '${i}')) + ':' + __gearbox_host_call('upper', 'w'))()`), new FakeHost()),
  )
  assert.ok(pool.stats().queued > 0, 'some jobs wait for a worker')
  const values = await Promise.all(handles.map((handle) => handle.result))
  assert.equal(values, Array.from({ length: 12 }, (_, i) => `${i}:W`))
  const stats = pool.stats()
  assert.is(stats.queued, 0)
  assert.is(stats.busy, 0)
})

test('aborting a queued execution: it never runs', async () => {
  const blockers = [0, 1].map(() => pool.start(job(`__gearbox_host_start('slow', 'b')`), new FakeHost()))
  const host = new FakeHost()
  const queued = pool.start(job(`__gearbox_host_call('echo', 'ran')`), host)
  queued.abort('not needed')
  const error = await failure(queued.result)
  assert.is(error.code, 'ERR_GEARBOX_ABORTED')
  assert.is(error.message, 'execution aborted: not needed')
  await Promise.all(blockers.map((blocker) => blocker.result))
  assert.is(host.calls.length, 0)
})

test('abort after the result settled changes nothing', async () => {
  const handle = pool.start(job(`'done'`), new FakeHost())
  assert.is(await handle.result, 'done')
  handle.abort()
  assert.is(await handle.result, 'done')
})

test('malformed jobs and hosts are refused', () => {
  const host = new FakeHost()
  const invalid = (value: unknown) => () => pool.start(value as ExecutionJob, host)
  assert.throws(invalid({ ...job(`'x'`), engine: 'cpython' }), /job\.engine/)
  assert.throws(invalid({ ...job(`'x'`), scripts: [{ name: 1, code: '' }] }), /job\.scripts/)
  assert.throws(invalid({ ...job(`'x'`), entry: undefined }), /job\.entry/)
  assert.throws(invalid({ ...job(`'x'`), limits: { cpuMs: -1 } }), /limits\.cpuMs/)
  assert.throws(invalid({ ...job(`'x'`), preload: 1 }), /job\.preload/)
  assert.throws(() => pool.start(job(`'x'`), {} as HostHandler), /HostHandler/)
})

test('pool options are validated', async () => {
  for (const workers of [0, 1.5, -1]) {
    try {
      await SandboxPool.create({ platform: nodePlatform(), workers })
      assert.unreachable('created a pool with invalid workers')
    } catch (error) {
      assert.instance(error, InvalidArgumentError)
    }
  }
})

test('a crashed worker fails its execution with SandboxError and is replaced', async () => {
  // A platform whose workers the test can crash: it reports an unexpected exit, as Node does
  // when a worker thread dies of an uncaught error.
  const base = nodePlatform()
  const crashers: (() => Promise<void>)[] = []
  const platform: SandboxPlatform = {
    name: 'crashable-node',
    async spawnWorker(events) {
      const worker = await base.spawnWorker(events)
      crashers.push(async () => {
        events.exit(new Error('simulated crash'))
        await worker.terminate()
      })
      return worker
    },
  }
  const own = await SandboxPool.create({ platform, workers: 1, memoryBytes: SMALL_LIMITS.memoryBytes })
  try {
    const running = failure(own.start(job(`new Promise(() => {})`), new FakeHost()).result)
    await crashers[0]?.()
    const error = await running
    assert.is(error.code, 'ERR_GEARBOX_SANDBOX')
    assert.match(error.message, 'simulated crash')
    assert.is(await own.start(job(`'after the crash'`), new FakeHost()).result, 'after the crash')
    assert.is(own.stats().respawns, 1)
  } finally {
    await own.close()
  }
})

test('close() aborts running and queued executions, then refuses new ones', async () => {
  const own = await SandboxPool.create({ platform: nodePlatform(), workers: 1, memoryBytes: SMALL_LIMITS.memoryBytes })
  assert.equal(own.stats(), { workers: 1, busy: 0, queued: 0, respawns: 0, executions: 0, directCalls: 0 })
  const running = failure(own.start(job(`new Promise(() => {})`), new FakeHost()).result)
  const queued = failure(own.start(job(`'never'`), new FakeHost()).result)
  const closed = own.close()
  assert.is(own.close(), closed, 'close() is idempotent')
  await closed
  assert.is((await running).code, 'ERR_GEARBOX_ABORTED')
  assert.is((await queued).code, 'ERR_GEARBOX_ABORTED')
  assert.throws(
    () => own.start(job(`'late'`), new FakeHost()),
    (error: unknown) => error instanceof ClosedError && error.code === 'ERR_GEARBOX_CLOSED',
  )
  assert.is(own.stats().workers, 0)
})

test.run()
