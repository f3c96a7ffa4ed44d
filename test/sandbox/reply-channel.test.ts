/**
 * The sync reply channel on its own (host/sandbox/reply-channel.ts): both ends in this thread
 * (the reader finds the reply already published and does not wait).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { INITIAL_REPLY_BYTES, newReplyBuffer, ReplyReader, ReplyWriter } from '../../host/sandbox/reply-channel.js'
import { REPLY_SPIN, STATE_BYTES, stateWords } from '../../host/sandbox/shared-state.js'

const MiB = 1024 * 1024

function channel(maxBytes: number): { writer: ReplyWriter; reader: ReplyReader } {
  const words = stateWords(new SharedArrayBuffer(STATE_BYTES))
  const data = newReplyBuffer(maxBytes)
  return { writer: new ReplyWriter(words, data), reader: new ReplyReader(words, data) }
}

/** Writes `text` and reads it back; undefined when the writer refused it. */
function roundTrip(c: ReturnType<typeof channel>, text: string, maxBytes: number): string | undefined {
  c.reader.arm()
  if (!c.writer.write(text, maxBytes)) return undefined
  return c.reader.await()
}

test('each reply tells the worker whether to spin for the next one (a worker running alone spins, one of several parks)', () => {
  const words = stateWords(new SharedArrayBuffer(STATE_BYTES))
  const data = newReplyBuffer(MiB)
  const writer = new ReplyWriter(words, data)
  const reader = new ReplyReader(words, data)
  reader.arm()
  assert.ok(writer.write('alone', MiB))
  assert.is(Atomics.load(words, REPLY_SPIN), 1)
  assert.is(reader.await(), 'alone')
  reader.arm()
  assert.ok(writer.write('with others', MiB, false))
  assert.is(Atomics.load(words, REPLY_SPIN), 0)
  // The reply is read the same way when the worker does not spin.
  assert.is(reader.await(), 'with others')
})

test('a sequence of growing replies, ASCII and multi-byte, arrives intact', () => {
  const c = channel(16 * MiB)
  const texts = [
    'small',
    'a'.repeat(72 * 1024),
    'é'.repeat(50 * 1000),
    '✓'.repeat(100 * 1000),
    'x'.repeat(400 * 1000) + '𝄞'.repeat(1000),
    '𝄞'.repeat(600 * 1000),
    'b'.repeat(3 * MiB),
    '',
  ]
  for (const text of texts) {
    const back = roundTrip(c, text, 16 * MiB)
    assert.ok(back === text, `reply of ${text.length} units did not round-trip`)
  }
})

test('the buffer grows to room for 3 bytes per unit at once: the next reply of that size fits without growing', () => {
  const c = channel(16 * MiB)
  assert.is(c.writer.buffer.byteLength, INITIAL_REPLY_BYTES)
  const text = 'a'.repeat(72 * 1024)
  assert.is(roundTrip(c, text, 16 * MiB), text)
  const grown = c.writer.buffer.byteLength
  assert.ok(grown >= 3 * text.length, `grew to ${grown} bytes for a ${text.length} unit reply`)
  const multiByte = '✓'.repeat(72 * 1024)
  assert.is(roundTrip(c, multiByte, 16 * MiB), multiByte)
  assert.is(c.writer.buffer.byteLength, grown)
})

test('growth stops at maxBytes; the size check is exact in UTF-8 bytes', () => {
  const max = 300 * 1000 + 1
  const c = channel(16 * MiB)
  // 3-byte characters: 100 000 of them take 300 000 bytes, fits; one ASCII more still fits; two do not.
  const exact = '✓'.repeat(100 * 1000) + 'a'
  assert.is(roundTrip(c, exact, max), exact)
  assert.ok(c.writer.buffer.byteLength <= max, `grew to ${c.writer.buffer.byteLength} bytes past the ${max} byte cap`)
  assert.is(roundTrip(c, exact + 'a', max), undefined)
  // A 4-byte code point straddling the limit is refused whole.
  assert.is(roundTrip(c, '✓'.repeat(100 * 1000) + '𝄞', max), undefined)
  // A lone surrogate takes 3 bytes (U+FFFD), as TextEncoder encodes it.
  assert.is(roundTrip(c, 'a'.repeat(max - 3) + '\ud800', max), 'a'.repeat(max - 3) + '\ufffd')
  assert.is(roundTrip(c, 'a'.repeat(max - 2) + '\ud800', max), undefined)
})

test('a buffer larger than this reply cap (left by a job with a larger cap) still refuses exactly', () => {
  const c = channel(4 * MiB)
  assert.is(roundTrip(c, 'z'.repeat(3 * MiB), 4 * MiB)!.length, 3 * MiB)
  assert.is(roundTrip(c, 'z'.repeat(1000), 1000), 'z'.repeat(1000))
  assert.is(roundTrip(c, 'z'.repeat(1001), 1000), undefined)
  assert.is(roundTrip(c, 'é'.repeat(500), 1000), 'é'.repeat(500))
  assert.is(roundTrip(c, 'é'.repeat(501), 1000), undefined)
})

test('a refused reply leaves the channel usable', () => {
  const c = channel(1 * MiB)
  assert.is(roundTrip(c, 'é'.repeat(600 * 1000), 1 * MiB), undefined)
  assert.is(roundTrip(c, 'ok', 1 * MiB), 'ok')
})

test.run()
