/**
 * The prelude's wire encoder (guest/js/00_prelude.js encodeWire): own data properties only,
 * through builtins captured before user code, bounded nesting with a coded error.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { GUEST_JS } from '../../host/generated/guest-js.js'
import { nodePlatform } from '../../host/platform/node.js'
import { SandboxPool } from '../../host/sandbox/index.js'
import { decodeWire } from '../../host/runtime/wire.js'
import { FakeHost, job, SMALL_LIMITS } from './fixtures.js'

let pool: SandboxPool
// The prelude without its seal: the test reaches the encoder through the internals object.
const PRELUDE = GUEST_JS.filter((script) => !script.name.endsWith('99_seal.js'))

test.before(async () => {
  pool = await SandboxPool.create({ platform: nodePlatform(), workers: 1, memoryBytes: SMALL_LIMITS.memoryBytes })
})
test.after(async () => {
  await pool.close()
})

function encode(setup: string, value: string): Promise<string> {
  const entry = `(() => { const G = __gearbox_internals; ${setup}; try { return G.encodeWire(${value}) } catch (e) { return 'threw ' + e.code + ': ' + e.message } })()`
  return pool.start(job(entry, SMALL_LIMITS, PRELUDE), new FakeHost()).result
}

test('plain values encode as JSON, bytes and bigints as wire objects', async () => {
  const text = await encode('', `{ a: [1, 'x', null, true, undefined, () => 1], b: new Uint8Array([0, 255]), n: 2n ** 70n, d: new Date(0), s: new String('boxed'), u: undefined, nan: NaN }`)
  assert.equal(decodeWire(text), {
    a: [1, 'x', null, true, null, null],
    b: new Uint8Array([0, 255]),
    n: 2n ** 70n,
    d: '1970-01-01T00:00:00.000Z',
    s: 'boxed',
    nan: null,
  })
})

test('prototype toJSON, getters, Symbol.toPrimitive and replaced builtins change nothing', async () => {
  const setup = `
    Object.prototype.toJSON = function () { return 'hijacked' }
    Array.prototype.toJSON = function () { return 'hijacked' }
    Date.prototype.toJSON = function () { return 'hijacked' }
    Object.defineProperty(Object.prototype, 'value', { __proto__: null, get() { throw new Error('value getter') }, configurable: true })
    Object.defineProperty(Object.prototype, 'length', { __proto__: null, get() { return 0 }, configurable: true })
    Object.defineProperty(Object.getPrototypeOf(Uint8Array.prototype), 'length', { __proto__: null, get() { return 0 }, configurable: true })
    Object.prototype[Symbol.toPrimitive] = () => 'hijacked'
    JSON.stringify = () => '"hijacked"'
    Object.keys = () => []
    Object.getOwnPropertyDescriptors = () => ({})
    Array.isArray = () => false`
  const text = await encode(setup, `{ kind: 'ok', list: [1, [2]], bytes: new Uint8Array([7, 8]), when: new Date(0) }`)
  assert.equal(decodeWire(text), { kind: 'ok', list: [1, [2]], bytes: new Uint8Array([7, 8]), when: '1970-01-01T00:00:00.000Z' })
})

test('own accessors are skipped (no getter runs); holes are null', async () => {
  const text = await encode('', `(() => { const o = { a: 1 }; Object.defineProperty(o, 'g', { enumerable: true, get() { throw new Error('ran') } }); const arr = [1, , 3]; return { o, arr } })()`)
  assert.equal(decodeWire(text), { o: { a: 1 }, arr: [1, null, 3] })
})

test('nesting deeper than 1000 is a coded error, at 5,000 and at 1,001; 1,000 passes', async () => {
  for (const depth of [5000, 1001]) {
    const text = await encode(`let a = []; for (let i = 1; i < ${depth}; i++) a = [a]`, 'a')
    assert.is(text, 'threw ERR_GEARBOX_NESTING_LIMIT: a value nested deeper than 1000 arrays/objects cannot cross to the host')
  }
  const ok = await encode(`let a = []; for (let i = 1; i < 1000; i++) a = { x: [a] }.x`, 'a')
  assert.ok(ok.startsWith('[[['))
})

test('keys starting with U+0000 are refused', async () => {
  assert.is(await encode('', `{ '\\u0000b': 'x' }`), 'threw undefined: object keys starting with U+0000 cannot cross to the host')
})

test.run()
