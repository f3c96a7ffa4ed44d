/**
 * Hostile guests: each one must fail with its exact coded error (or be contained, with a value
 * proving it), and the pool must serve the next execution.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { nodePlatform } from '../../host/platform/node.js'
import { resolveLimits, SandboxPool, type GuestScript, type Limits } from '../../host/sandbox/index.js'
import { CPU_LIMITS, failure, FakeHost, FakeHostError, job, ROOMY_CPU_LIMITS, SMALL_LIMITS } from './fixtures.js'

let pool: SandboxPool

test.before(async () => {
  pool = await SandboxPool.create({ platform: nodePlatform(), workers: 2, memoryBytes: SMALL_LIMITS.memoryBytes })
})

test.after(async () => {
  await pool.close()
})

/**
 * The pool still runs a normal job after a hostile one: with a host call, and with most of its
 * memory budget free (6 of 8 MiB), so nothing of the previous execution is left in the heap.
 */
async function assertPoolHealthy(): Promise<void> {
  const host = new FakeHost()
  const entry = `const keep = []; for (let i = 0; i < 6; i++) keep.push(new Uint8Array(1 << 20).fill(i)); 'alive:' + keep.length + __gearbox_host_call('upper', 'ok')`
  const value = await pool.start(job(entry), host).result
  assert.is(value, 'alive:6OK')
}

/** Runs a hostile entry that must fail with `code`; then checks the pool is healthy. */
function hostile(name: string, entry: string, code: string, limits: Limits = SMALL_LIMITS, scripts: readonly GuestScript[] = []): void {
  test(name, async () => {
    const error = await failure(pool.start(job(entry, limits, scripts), new FakeHost()).result)
    assert.is(error.code, code, `${name}: ${error.message}`)
    await assertPoolHealthy()
  })
}

/** Runs a hostile entry that must be contained and return `expected`; then checks the pool. */
function contained(name: string, entry: string, expected: string, scripts: readonly GuestScript[] = []): void {
  test(name, async () => {
    const value = await pool.start(job(entry, SMALL_LIMITS, scripts), new FakeHost()).result
    assert.is(value, expected)
    await assertPoolHealthy()
  })
}

const CPU = 'ERR_GEARBOX_CPU_LIMIT'
const MEMORY = 'ERR_GEARBOX_MEMORY_LIMIT'
const STACK = 'ERR_GEARBOX_STACK_LIMIT'

// CPU: the interrupt handler -------------------------------------------------------------------

hostile('while (true) {}', `while (true) {}`, CPU, CPU_LIMITS)
hostile('for (;;) {}', `for (;;) {}`, CPU, CPU_LIMITS)
hostile('generator loop without recursion', `function* g() { for (;;) yield 1 } let n = 0; for (const x of g()) n += x`, CPU, CPU_LIMITS)
hostile('try/catch around an infinite loop', `try { while (true) {} } catch (e) {} 'escaped the interrupt'`, CPU, CPU_LIMITS)
hostile('finally that loops again', `for (;;) { try { while (true) {} } finally { continue } }`, CPU, CPU_LIMITS)
hostile('infinite loop inside a promise job', `Promise.resolve().then(() => { for (;;) {} })`, CPU, CPU_LIMITS)
hostile('catastrophic regex backtracking', `/^(a+)+$/.test('a'.repeat(40) + 'b') ? 'matched' : 'no'`, CPU, CPU_LIMITS)
hostile('error whose message getter loops', `throw { get message() { for (;;) {} }, name: 'Trap' }`, CPU, CPU_LIMITS)

// CPU: builtins the interrupt never reaches (the watchdog terminates the worker) ----------------

const SPLIT_JOIN = `let s = 'ab,'.repeat(100000); for (;;) s = s.split(',').join(',')`
hostile('split/join loop', SPLIT_JOIN, CPU, ROOMY_CPU_LIMITS)
hostile(
  'JSON.stringify/parse round trips',
  `let o = Array.from({ length: 20000 }, (_, i) => ({ i, s: 'v' + i })); for (;;) o = JSON.parse(JSON.stringify(o))`,
  CPU,
  ROOMY_CPU_LIMITS,
)
/** 1e6 JSValues take 16 MB. */
const SORT_LIMITS = resolveLimits({ ...ROOMY_CPU_LIMITS, memoryBytes: 128 * 1024 * 1024 })
// Built by a builtin (fill), so the guest is inside sort() almost at once: one default sort of
// 1e6 elements converts values to strings for ~2e7 comparisons and takes about half a second.
const SORT_1E6 = `const a = Array(1e6).fill(7); for (;;) a.sort()`
test('Array.prototype.sort of 1e6 elements (the watchdog terminates the worker)', async () => {
  const before = pool.stats().respawns
  const error = await failure(pool.start(job(SORT_1E6, SORT_LIMITS), new FakeHost()).result)
  assert.is(error.code, CPU)
  await assertPoolHealthy()
  // One sort() call runs for seconds without polling the interrupt handler: only terminating the
  // worker stops it, and the pool replaces it.
  for (let i = 0; i < 100 && pool.stats().respawns === before; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.is(pool.stats().respawns, before + 1)
})

// Memory: the capped WebAssembly.Memory -----------------------------------------------------------

hostile('string doubling', `let s = 'x'; for (;;) { s = s + s; s.charCodeAt(s.length - 1) }`, MEMORY)
test('string doubling by concatenation alone stops at the string length limit, using no memory', async () => {
  // QuickJS concatenates into ropes: `s + s` allocates a node, not 2^30 characters. The guest hits
  // the engine's maximum string length, an ordinary guest error, long before the memory cap.
  const error = await failure(pool.start(job(`let s = 'x'; for (;;) s = s + s`), new FakeHost()).result)
  assert.is(error.code, 'ERR_GEARBOX_GUEST')
  assert.is(error.message, 'string too long')
  await assertPoolHealthy()
})
hostile('array push of objects', `const a = []; for (;;) a.push({ a: 1, b: [1, 2, 3] })`, MEMORY)
hostile('typed-array allocation', `const a = []; for (;;) a.push(new Uint8Array(1 << 20))`, MEMORY)
hostile('Map growth', `const m = new Map(); for (let i = 0; ; i++) m.set(i, 'v' + i)`, MEMORY)
hostile('huge Array(n).fill', `Array(5e7).fill(0).length`, MEMORY)
hostile('string repeat beyond the cap', `'x'.repeat(2 ** 28).length`, MEMORY)
hostile('growing repeated strings', `const a = []; for (;;) a.push('y'.repeat(1 << 20) + a.length)`, MEMORY)
hostile(
  'out of memory caught by the guest',
  `let r = 'never'; try { const a = []; for (;;) a.push(new Uint8Array(1 << 20)) } catch (e) { r = 'caught ' + e } r`,
  MEMORY,
)
hostile(
  'out of memory inside a promise job',
  `Promise.resolve().then(() => { const a = []; for (;;) a.push(new Uint8Array(1 << 20)) })`,
  MEMORY,
)

// Stack -----------------------------------------------------------------------------------------

hostile('plain recursion', `function f(n) { return f(n + 1) + 1 } f(0)`, STACK)
hostile('recursion through Array.map', `function f(n) { return [n].map(f) } f(0)`, STACK)
hostile('recursion through getters', `const o = {}; Object.defineProperty(o, 'x', { get() { return this.x } }); o.x`, STACK)
hostile('parser recursion (nested parentheses)', `eval('('.repeat(100000) + '1' + ')'.repeat(100000))`, STACK)
hostile('JSON.parse of deep nesting', `JSON.parse('['.repeat(100000) + ']'.repeat(100000))`, STACK)

// Forged limit errors: codes come from what the engine observed, not from what was thrown ------

const GUEST = 'ERR_GEARBOX_GUEST'
hostile('a thrown object shaped like an out-of-memory error', `throw { name: 'InternalError', message: 'out of memory' }`, GUEST)
hostile('new InternalError("out of memory")', `throw new InternalError('out of memory')`, GUEST)
hostile('new InternalError("stack overflow")', `throw new InternalError('stack overflow')`, GUEST)
hostile('new RangeError("stack overflow")', `throw new RangeError('stack overflow')`, GUEST)
hostile('a SyntaxError "stack overflow" from eval of a small string', `eval('throw new SyntaxError("stack overflow")')`, GUEST)
hostile(
  'a forged overflow thrown from a promise job',
  `Promise.resolve().then(() => { throw new InternalError('stack overflow') })`,
  GUEST,
)
hostile(
  'a real overflow caught, then rethrown later',
  `let saved; function f() { f() } try { f() } catch (e) { saved = e } throw saved`,
  STACK,
)
hostile(
  'a real overflow caught, then a different error thrown',
  `function f() { f() } try { f() } catch (e) {} throw new Error('something else')`,
  STACK,
)
contained(
  'a real overflow caught and recovered from: the execution succeeds',
  `function f() { f() } let r = 'none'; try { f() } catch (e) { r = e.name + ': ' + e.message } r`,
  'InternalError: stack overflow',
)
hostile(
  'a real out-of-memory caught, then a forged one thrown',
  `try { const a = []; for (;;) a.push(new Uint8Array(1 << 20)) } catch (e) {} throw new InternalError('stack overflow')`,
  MEMORY,
)
hostile('one allocation larger than the whole cap', `new Uint8Array(64 * 1024 * 1024).length + ''`, MEMORY)
test('deep legitimate recursion that stays under the limit, then a forged overflow: guest error', async () => {
  // Recursion to a depth that fits comfortably, then a thrown look-alike.
  const entry = `function f(n) { return n > 0 ? f(n - 1) + 1 : 0 } f(800); throw new InternalError('stack overflow')`
  const error = await failure(pool.start(job(entry), new FakeHost()).result)
  assert.is(error.code, GUEST)
  assert.is(error.message, 'stack overflow')
  await assertPoolHealthy()
})

// Escape attempts: nothing of the host is reachable -----------------------------------------------

/** What a real prelude does: capture the host functions, then delete them from the global. */
const PRELUDE: GuestScript = {
  name: 'prelude.js',
  code: `(() => {
    const call = globalThis.__gearbox_host_call
    delete globalThis.__gearbox_host_call
    delete globalThis.__gearbox_host_start
    Object.defineProperty(globalThis, 'hostEcho', { value: (s) => call('echo', s) })
  })()`,
}

contained(
  "Function('return process')()",
  `try { Function('return process')(); 'escaped' } catch (e) { e.name + ': ' + e.message }`,
  "ReferenceError: 'process' is not defined",
)
contained(
  'constructor.constructor',
  `(() => {}).constructor.constructor('return [typeof process, typeof require, typeof globalThis.module].join()')()`,
  'undefined,undefined,undefined',
)
contained(
  '(async () => {}).constructor',
  `(async () => {}).constructor('return [typeof process, typeof require, typeof Deno].join()')()`,
  'undefined,undefined,undefined',
)
contained(
  'globalThis probes after the prelude deleted the host functions',
  `[
    'process', 'require', 'module', 'Buffer', 'Deno', 'Bun', 'WebAssembly', 'SharedArrayBuffer', 'Atomics',
    'fetch', 'setTimeout', 'importScripts', 'std', 'os', '__gearbox_host_call', '__gearbox_host_start',
  ].filter((name) => typeof globalThis[name] !== 'undefined' || name in globalThis).join() || 'none:' + hostEcho('still works')`,
  'none:still works',
  [PRELUDE],
)
hostile('static import statement', `import fs from 'fs'; 'loaded'`, 'ERR_GEARBOX_GUEST')
// The import runs in a script (as user code does): the fixture's entry is an indirect eval,
// whose code QuickJS gives no referrer for import() (a TypeError before any loading is tried).
contained(
  "dynamic import('fs') is rejected",
  `dynamicImport`,
  'rejected: ReferenceError',
  [{ name: 'user.js', code: `var dynamicImport = import('fs').then(() => 'loaded', (e) => 'rejected: ' + e.name)` }],
)

test('prototype pollution stays inside its execution', async () => {
  const host = new FakeHost()
  const polluter = `
    Object.prototype.polluted = 'yes'
    Array.prototype.push = function () { return 'hijacked' }
    JSON.parse = () => 'hijacked'
    String.prototype.toUpperCase = () => 'hijacked'
    globalThis.leftover = 'still here'
    ;[({}).polluted, [].push(1), JSON.parse('1')].join('|')`
  assert.is(await pool.start(job(polluter), host).result, 'yes|hijacked|hijacked')
  // Each check may land on either worker: run enough to see both.
  for (let i = 0; i < 4; i++) {
    const check = `[typeof ({}).polluted, [].push(7), JSON.stringify(JSON.parse('{"a":1}')), 'ok'.toUpperCase(), typeof leftover].join('|')`
    assert.is(await pool.start(job(check), host).result, 'undefined|1|{"a":1}|OK|undefined')
  }
})

// Host-call and size caps -----------------------------------------------------------------------

hostile('sync host-call flood', `for (;;) __gearbox_host_call('noop', '')`, 'ERR_GEARBOX_HOST_CALL_LIMIT')
hostile(
  'host-call flood that swallows the limit error',
  `for (let i = 0; i < 5000; i++) { try { __gearbox_host_call('noop', '') } catch (e) {} } 'got away with it'`,
  'ERR_GEARBOX_HOST_CALL_LIMIT',
)
hostile(
  'async host-call flood',
  `(async () => { for (;;) await __gearbox_host_start('noop', '') })()`,
  'ERR_GEARBOX_HOST_CALL_LIMIT',
)
hostile('sync reply beyond maxReplyBytes', `__gearbox_host_call('big', String(2 * 1024 * 1024)).length + ''`, 'ERR_GEARBOX_REPLY_LIMIT')
hostile(
  'async reply beyond maxReplyBytes',
  `__gearbox_host_start('big', String(2 * 1024 * 1024)).then((r) => r.length + '')`,
  'ERR_GEARBOX_REPLY_LIMIT',
)
hostile('guest payload beyond maxReplyBytes', `__gearbox_host_call('echo', 'x'.repeat(2 * 1024 * 1024))`, 'ERR_GEARBOX_REPLY_LIMIT')
hostile('result beyond maxReplyBytes', `'x'.repeat(2 * 1024 * 1024)`, 'ERR_GEARBOX_REPLY_LIMIT')

// Wall time and abort ---------------------------------------------------------------------------

const SHORT_WALL = resolveLimits({ ...SMALL_LIMITS, wallMs: 400 })
hostile('a promise that never settles', `new Promise(() => {})`, 'ERR_GEARBOX_WALL_LIMIT', SHORT_WALL)
hostile('waiting on an async host call that never answers', `__gearbox_host_start('never', '')`, 'ERR_GEARBOX_WALL_LIMIT', SHORT_WALL)
hostile('blocked in a sync host call that never answers', `__gearbox_host_call('never', '')`, 'ERR_GEARBOX_WALL_LIMIT', SHORT_WALL)

const LONG_CPU = resolveLimits({ ...ROOMY_CPU_LIMITS, cpuMs: 20000, wallMs: 20000 })

test('abort() of a guest spinning in the interpreter', async () => {
  const handle = pool.start(job(`for (;;) {}`, LONG_CPU), new FakeHost())
  setTimeout(() => handle.abort('test'), 50)
  const error = await failure(handle.result)
  assert.is(error.code, 'ERR_GEARBOX_ABORTED')
  assert.match(error.message, 'test')
  await assertPoolHealthy()
})

test('abort() of a guest stuck inside a builtin', async () => {
  const handle = pool.start(job(SPLIT_JOIN, LONG_CPU), new FakeHost())
  setTimeout(() => handle.abort(), 100)
  const error = await failure(handle.result)
  assert.is(error.code, 'ERR_GEARBOX_ABORTED')
  await assertPoolHealthy()
})

// Host failures ---------------------------------------------------------------------------------

test('a throwing host handler fails the execution with its own error, unseen by the guest', async () => {
  const host = new FakeHost()
  const entry = `let seen = 'nothing'; try { __gearbox_host_call('fail', 'k1') } catch (e) { seen = String(e) } 'guest saw ' + seen`
  const error = await failure(pool.start(job(entry), host).result)
  assert.instance(error, FakeHostError)
  assert.is(error.code, 'ERR_FAKE_HOST')
  assert.is(error.message, 'host failed on k1')
  await assertPoolHealthy()
})

test('a rejecting async host handler fails the execution with its own error', async () => {
  const host = new FakeHost()
  host.call = (op, payload, mode) => (op === 'fail' ? Promise.reject(new FakeHostError('async boom')) : new FakeHost().call(op, payload, mode))
  const error = await failure(pool.start(job(`__gearbox_host_start('fail', '').then(() => 'no', () => 'caught')`), host).result)
  assert.instance(error, FakeHostError)
  assert.is(error.message, 'async boom')
  await assertPoolHealthy()
})

test('the pool replaced every terminated worker', async () => {
  // An aborted worker is terminated only after a grace period, and its replacement then starts:
  // wait for both (bounded).
  const settled = () => pool.stats().workers === 2 && pool.stats().busy === 0
  for (let i = 0; i < 100 && !settled(); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  const stats = pool.stats()
  assert.is(stats.workers, 2)
  assert.is(stats.busy, 0)
  assert.ok(stats.respawns >= 1, `respawns ${stats.respawns}`)
})

test.run()
