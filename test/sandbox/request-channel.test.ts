/**
 * The sync request channel on its own (host/sandbox/request-channel.ts): both ends in this thread.
 * Its use by the pool (ordering after posted messages, the postMessage fallback) is in pool.test.ts.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { INITIAL_REQUEST_BYTES, MAX_REQUEST_BYTES, newRequestBuffer, RequestReader, RequestWriter, requestChannelSupported } from '../../host/sandbox/request-channel.js'
import { STATE_BYTES, stateWords } from '../../host/sandbox/shared-state.js'

function channel(): { writer: RequestWriter; reader: RequestReader; data: SharedArrayBuffer } {
  const words = stateWords(new SharedArrayBuffer(STATE_BYTES))
  const data = newRequestBuffer()
  return { writer: new RequestWriter(words, data), reader: new RequestReader(words, data), data }
}

test('Node has Atomics.waitAsync, so the pool uses the channel here', () => {
  assert.ok(requestChannelSupported())
})

test('calls of growing size, ASCII and multi-byte, arrive intact and in turn', () => {
  const c = channel()
  const calls: [string, string][] = [
    ['get', '["k"]'],
    ['é-op', ''],
    ['', 'a'.repeat(72 * 1024)],
    ['set', '✓'.repeat(100 * 1000)],
    ['x', 'y'.repeat(400 * 1000) + '𝄞'.repeat(1000)],
    ['log', '𝄞'.repeat(600 * 1000)],
    ['small', 'again'],
  ]
  for (const [op, payload] of calls) {
    assert.not.ok(c.reader.pending)
    assert.ok(c.writer.write(op, payload))
    assert.ok(c.reader.pending)
    const taken = c.reader.take()
    assert.ok(taken !== undefined && taken.op === op && taken.payload === payload, `call ${op} of ${payload.length} units did not round-trip`)
    assert.is(c.reader.take(), undefined, 'a call is taken once')
  }
  assert.ok(c.data.byteLength > INITIAL_REQUEST_BYTES, 'the buffer grew')
})

test('a call larger than MAX_REQUEST_BYTES is refused without a signal; the channel stays usable', () => {
  const c = channel()
  assert.not.ok(c.writer.write('set', 'z'.repeat(MAX_REQUEST_BYTES)))
  assert.not.ok(c.reader.pending)
  assert.ok(c.writer.write('set', 'z'.repeat(MAX_REQUEST_BYTES - 3)))
  assert.is(c.reader.take()?.payload.length, MAX_REQUEST_BYTES - 3)
  assert.ok(c.writer.write('get', 'k'))
  assert.equal(c.reader.take(), { op: 'get', payload: 'k' })
})

test('whenPending settles at once for a waiting call, and on a later write', async () => {
  const c = channel()
  c.writer.write('a', '1')
  await c.reader.whenPending()
  assert.equal(c.reader.take(), { op: 'a', payload: '1' })
  const waiting = c.reader.whenPending()
  let settled = false
  void waiting.then(() => (settled = true))
  await new Promise((resolve) => setTimeout(resolve, 5))
  assert.not.ok(settled, 'no call, no wake-up')
  c.writer.write('b', '2')
  await waiting
  assert.equal(c.reader.take(), { op: 'b', payload: '2' })
})

test('posted messages are counted for the reader', () => {
  const c = channel()
  assert.is(c.reader.posted, 0)
  c.writer.countPosted()
  c.writer.countPosted()
  assert.is(c.reader.posted, 2)
})

test.run()
