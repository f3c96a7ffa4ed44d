/**
 * Replies pass through gearbox serve as Redis sends them, in the two places the codec used to
 * blur: RESP2 null arrays (`*-1`, kept apart from a nil bulk `$-1`) and RESP3 blob errors (`!`,
 * kept whole for RESP3 clients, one line for RESP2 ones).
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeReply } from '../../host/resp/encoder.js'
import { Resp2Reader, type ReplySink } from '../../host/resp/reader.js'
import { NestedReplyError, NULL_ARRAY, type RedisReply } from '../../host/resp/index.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { RawClient, serveGearbox, type Served } from './support.js'

const test = suite('server: replies pass through (null arrays, blob errors)')
let redis: TestRedis
let served: Served

const enc = new TextEncoder()
const dec = new TextDecoder()

function readAll(bytes: string, setup: (r: Resp2Reader) => void): RedisReply[] {
  const out: RedisReply[] = []
  const sink: ReplySink = { budget: () => Infinity, reply: (v) => out.push(v), refused: () => {} }
  const reader = new Resp2Reader(sink)
  setup(reader)
  reader.feed(enc.encode(bytes))
  return out
}

test.before(async () => {
  redis = await startRedis()
  served = await serveGearbox(redis.url)
})

test.after(async () => {
  await served.close()
  await redis.stop()
})

test('codec: *-1 reads as NULL_ARRAY only when asked, and encodes back as *-1 (RESP3: _)', () => {
  assert.equal(readAll('*-1\r\n$-1\r\n', () => {}), [null, null])
  const kept = readAll('*-1\r\n$-1\r\n', (r) => (r.nullArrays = true))
  assert.is(kept[0], NULL_ARRAY as unknown as RedisReply)
  assert.is(kept[1], null)
  assert.is(dec.decode(encodeReply(NULL_ARRAY, 2)), '*-1\r\n')
  assert.is(dec.decode(encodeReply(NULL_ARRAY, 3)), '_\r\n')
  assert.is(dec.decode(encodeReply(null, 2)), '$-1\r\n')
})

test('codec: a blob error stays a blob for RESP3 and becomes one error line for RESP2', () => {
  const [blob] = readAll('!22\r\nSYNTAX invalid\r\nsyntax\r\n', (r) => (r.resp3 = true))
  assert.ok(blob instanceof NestedReplyError && blob.blob)
  assert.is(dec.decode(encodeReply(blob!, 3)), '!22\r\nSYNTAX invalid\r\nsyntax\r\n')
  assert.is(dec.decode(encodeReply(blob!, 2)), '-SYNTAX invalid syntax\r\n')
  // An error text of gearbox's own with a line break is flattened, as Redis does for module errors.
  assert.is(dec.decode(encodeReply(new NestedReplyError('ERR a\nb'), 3)), '-ERR a b\r\n')
  assert.is(dec.decode(encodeReply(new NestedReplyError('ERR a\nb'), 2)), '-ERR a b\r\n')
})

test('RESP2 through the server: BLPOP timeout and an aborted EXEC are *-1, a missing key $-1', async () => {
  const c = await RawClient.open(served.port)
  const other = await RawClient.open(served.port)
  try {
    c.write('GET nothing\r\n')
    assert.is(await c.until((t) => t.endsWith('\r\n')), '$-1\r\n')
    c.clear()
    c.write('BLPOP nolist 0.05\r\n')
    assert.is(await c.until((t) => t.endsWith('\r\n')), '*-1\r\n')
    c.clear()
    // WATCH, a write by another client, then EXEC: Redis aborts the transaction with a null array.
    c.write('WATCH w\r\n')
    await c.until((t) => t.endsWith('+OK\r\n'))
    other.write('SET w changed\r\n')
    await other.until((t) => t.endsWith('+OK\r\n'))
    c.clear()
    c.write('MULTI\r\nSET w mine\r\nEXEC\r\n')
    assert.is(await c.until((t) => t.endsWith('*-1\r\n')), '+OK\r\n+QUEUED\r\n*-1\r\n')
  } finally {
    c.close()
    other.close()
  }
})

test('RESP3 through the server: a null array is _, an error text with line breaks one flattened line (as Redis does for module errors)', async () => {
  const c = await RawClient.open(served.port)
  try {
    c.write('HELLO 3\r\n')
    await c.until((t) => t.includes('modules'))
    c.clear()
    c.write('BLPOP nolist 0.05\r\n')
    assert.is(await c.until((t) => t.endsWith('\r\n')), '_\r\n')
    c.clear()
    c.write(`RG.JSEXECUTE "throw new Error('first\\\\nsecond')"\r\n`)
    const reply = await c.until((t) => t.endsWith('\r\n') && t.length > 3)
    assert.match(reply, /^-Error: first second[^\r\n]*\r\n$/)
  } finally {
    c.close()
  }
})

test.run()
