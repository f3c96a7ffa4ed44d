import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { decodeWire, encodeWire, replyValue } from '../../host/runtime/wire.js'

test('bytes and bigints round-trip through the wire format, Buffers included', () => {
  const bytes = new Uint8Array([0, 1, 127, 128, 200, 255])
  const value = { a: [1, 'x', null, true], b: bytes, c: 2n ** 70n, d: Buffer.from([255, 0]) }
  const { json, special } = encodeWire(value)
  assert.ok(special)
  const back = decodeWire(json) as Record<string, unknown>
  assert.equal(back['a'], [1, 'x', null, true])
  assert.equal(Array.from(back['b'] as Uint8Array), [0, 1, 127, 128, 200, 255])
  assert.is(back['c'], 2n ** 70n)
  assert.equal(Array.from(back['d'] as Uint8Array), [255, 0])
})

test('plain values are tagged v, values with bytes or bigints x', () => {
  assert.is(replyValue(['a', 1]), 'v["a",1]')
  assert.is(replyValue([new Uint8Array([255])]).slice(0, 1), 'x')
  assert.is(replyValue(5n).slice(0, 1), 'x')
})

test('a one-key object that only looks special stays an object unless its value has the right type', () => {
  const json = JSON.stringify({ '\u0000b': 5 })
  assert.equal(decodeWire(json), { '\u0000b': 5 })
})

test.run()
