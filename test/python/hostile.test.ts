/**
 * Hostile Python guests: each must fail with its coded error (or be contained, with a value proving
 * it), and the next execution must run normally in a fresh interpreter (nothing of the hostile
 * one's globals, heap state or interrupts left) while Redis keeps answering.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { GearboxError } from '../../host/errors.js'
import { Gearbox } from '../../host/gearbox.js'
import type { Limits } from '../../host/sandbox/types.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'

const test = suite('python hostile')
const ctx: { redis?: TestRedis; gearbox?: Gearbox } = {}
const gearbox = (): Gearbox => {
  if (ctx.gearbox === undefined) throw new Error('the suite has not started')
  return ctx.gearbox
}

test.before(async () => {
  ctx.redis = await startRedis()
  ctx.gearbox = await Gearbox.create({ redis: ctx.redis.url, workers: 2 })
})
test.after(async () => {
  await ctx.gearbox?.close()
  await ctx.redis?.stop()
})

const CPU: Partial<Limits> = { cpuMs: 300 }
const SMALL: Partial<Limits> = { memoryBytes: 8 * 1024 * 1024, cpuMs: 3000 }

async function failure(source: string, limits: Partial<Limits>): Promise<GearboxError> {
  try {
    await gearbox().execute(source, { language: 'python', limits })
  } catch (error) {
    assert.instance(error, GearboxError)
    return error as GearboxError
  }
  throw new Error(`expected the script to fail: ${source}`)
}

let healthChecks = 0
/** A normal execution after a hostile one: fresh globals, the heap free, Redis answering. */
async function assertHealthy(): Promise<void> {
  healthChecks++
  const reply = await gearbox().execute(
    [
      "assert 'leaked' not in globals(), 'a global of the previous execution survived'",
      'keep = [bytearray(1024 * 1024) for _ in range(5)]',
      `assert execute('INCR', 'py:health') == ${healthChecks}`,
      'leaked = True',
    ].join('\n'),
    { language: 'python', limits: SMALL },
  )
  assert.is(reply, 'OK')
}

function hostile(name: string, source: string, code: string, limits: Partial<Limits> = SMALL): void {
  test(name, async () => {
    const error = await failure(`leaked = True\n${source}`, limits)
    assert.is(error.code, code, `${name}: ${error.message}`)
    await assertHealthy()
  })
}

/** A guest error (the escape attempt failed inside Python) whose message matches `message`. */
function contained(name: string, source: string, message: RegExp): void {
  test(name, async () => {
    const error = await failure(`leaked = True\n${source}`, SMALL)
    assert.is(error.code, 'ERR_GEARBOX_GUEST', error.message)
    assert.match(error.message, message)
    await assertHealthy()
  })
}

const CPU_LIMIT = 'ERR_GEARBOX_CPU_LIMIT'
const MEMORY_LIMIT = 'ERR_GEARBOX_MEMORY_LIMIT'
const STACK_LIMIT = 'ERR_GEARBOX_STACK_LIMIT'

// CPU ------------------------------------------------------------------------------------------
hostile('while True: pass', 'while True:\n    pass', CPU_LIMIT, CPU)
hostile('except BaseException around a loop', 'while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass', CPU_LIMIT, CPU)
hostile(
  'except BaseException around a loop of host calls (the interrupt is re-armed at each call)',
  "while True:\n    try:\n        while True:\n            execute('PING')\n    except BaseException:\n        pass",
  CPU_LIMIT,
  CPU,
)
hostile('finally that loops again', 'while True:\n    try:\n        while True: pass\n    finally:\n        continue', CPU_LIMIT, CPU)
hostile('generator loop', 'def g():\n    while True:\n        yield 1\nfor x in g():\n    pass', CPU_LIMIT, CPU)
hostile('exec of a loop', "exec('while True: pass')", CPU_LIMIT, CPU)
hostile('eval inside a loop', "while True:\n    eval('1 + 1')", CPU_LIMIT, CPU)
hostile('a loop in a coroutine', 'async def spin():\n    while True:\n        pass\nrunCoroutine(spin())', CPU_LIMIT, CPU)

// Memory ---------------------------------------------------------------------------------------
hostile('one allocation past the cap', 'x = bytearray(40 * 1024 * 1024)', MEMORY_LIMIT)
/**
 * Garbage-producing loops at the cap: MicroPython collects only when control returns to the host,
 * and at the cap its allocator can spin inside the interpreter, where no interrupt reaches it;
 * the pool's watchdog then ends the run as a CPU overrun (README: Python limits).
 */
function capped(name: string, source: string): void {
  test(name, async () => {
    const error = await failure(`leaked = True\n${source}`, SMALL)
    assert.ok(error.code === MEMORY_LIMIT || error.code === CPU_LIMIT, `${name}: ${error.code} ${error.message}`)
    await assertHealthy()
  })
}
capped('an append loop', "l = []\nwhile True:\n    l.append('x' * 1000)")
hostile('a growing string', "s = 'x'\nwhile True:\n    s = s + s", MEMORY_LIMIT)
capped('a dict bomb', 'd = {}\ni = 0\nwhile True:\n    d[i] = [i] * 100\n    i += 1')
hostile('MemoryError caught and allocation retried', "l = []\nfor _ in range(100000):\n    try:\n        l.append(bytearray(1024 * 1024))\n    except MemoryError:\n        pass\nraise Exception('survived')", MEMORY_LIMIT)

// Stack ----------------------------------------------------------------------------------------
hostile('unbounded recursion', 'def r(n):\n    return r(n + 1)\nr(0)', STACK_LIMIT)
hostile('mutual recursion', 'def a(n):\n    return b(n)\ndef b(n):\n    return a(n)\na(0)', STACK_LIMIT)
hostile('recursion error caught then raised again', 'def r(n):\n    return r(n + 1)\ntry:\n    r(0)\nexcept RuntimeError as e:\n    saved = e\nraise saved', STACK_LIMIT)
hostile('recursion through exec', "def r():\n    exec('r()')\nr()", STACK_LIMIT)
hostile('repr of a deeply nested list', 'x = []\nfor _ in range(100000):\n    x = [x]\nrepr(x)', STACK_LIMIT)

test("a worker's first Python execution (its prelude evaluated by the job itself) also reports the stack limit", async () => {
  const fresh = await Gearbox.create({ redis: ctx.redis!.url, workers: 1 })
  try {
    let code: string | undefined
    try {
      await fresh.execute('def r(n):\n    return r(n + 1)\nr(0)', { language: 'python' })
    } catch (error) {
      code = (error as GearboxError).code
    }
    assert.is(code, STACK_LIMIT)
    assert.is(await fresh.execute("assert execute('PING') == 'PONG'", { language: 'python' }), 'OK')
  } finally {
    await fresh.close()
  }
})

test('recursion within the interpreter depth is fine', async () => {
  const reply = await gearbox().execute('def r(n):\n    return 0 if n == 0 else 1 + r(n - 1)\nassert r(100) == 100', { language: 'python' })
  assert.is(reply, 'OK')
})

// Escapes --------------------------------------------------------------------------------------
contained('import js is an empty shadow', 'import js\njs.process.exit(1)', /has no attribute 'process'/)
contained('jsffi is shadowed', 'import jsffi\njsffi.to_js({})', /has no attribute 'to_js'/)
contained(
  'the real jsffi reaches no JS constructor',
  "import sys\ndel sys.modules['jsffi']\nimport jsffi\no = jsffi.to_js({})\nf = o.constructor.constructor\nf('return process')().exit(1)",
  /isn't callable|not callable|has no attribute/,
)
contained('host functions expose nothing', 'import _gearbox_host\n_gearbox_host.call.constructor', /has no attribute|No module named/)
contained("the prelude's host function is not reachable through the user's globals", "_gb_raw_call('execute', '[\"FLUSHALL\"]')", /is not defined/)
contained('eval of a name the prelude hides', "eval('_gb_raw_call')", /is not defined/)
contained('open() has no file system', "open('/etc/passwd').read()", /^OSError|^44$/)

test('micropython.heap_lock() does not outlive its execution', async () => {
  // With the heap locked even raising MemoryError cannot allocate: the interpreter spins, the watchdog ends it.
  const error = await failure('leaked = True\nimport micropython\nmicropython.heap_lock()\nx = [1] * 1000', { ...SMALL, cpuMs: 300 })
  assert.ok(error.code === CPU_LIMIT || error.code === 'ERR_GEARBOX_GUEST', `${error.code} ${error.message}`)
  await assertHealthy()
})

test('gc.disable() and a raised gc threshold do not outlive their execution', async () => {
  assert.is(await gearbox().execute('import gc\ngc.disable()\ngc.threshold(1)\nleaked = True', { language: 'python' }), 'OK')
  assert.is(await gearbox().execute('import gc\nassert gc.isenabled()', { language: 'python' }), 'OK')
  await assertHealthy()
})

test('a pending KeyboardInterrupt does not reach the next execution', async () => {
  const error = await failure("import micropython\nmicropython.kbd_intr(3)\nwhile True:\n    execute('PING')", CPU)
  assert.is(error.code, CPU_LIMIT)
  assert.is(await gearbox().execute('x = 0\nfor i in range(10000):\n    x += i\nassert x == 49995000', { language: 'python' }), 'OK')
  await assertHealthy()
})

test('replacing the runtime API in one execution does not change the next', async () => {
  assert.is(await gearbox().execute("def execute(*a):\n    return 'hijacked'\nimport builtins\nbuiltins.len = None", { language: 'python' }), 'OK')
  assert.is(await gearbox().execute("assert execute('SET', 'py:k', 'v') == 'OK'\nassert len('abc') == 3", { language: 'python' }), 'OK')
})

test('Redis is unaffected: PING answers after the hostile corpus', async () => {
  const reply = await gearbox().execute("assert execute('PING') == 'PONG'", { language: 'python' })
  assert.is(reply, 'OK')
})

test.run()
