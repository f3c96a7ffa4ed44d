/**
 * The reply tap against ioredis's own decoder, without a server: for every way of splitting a
 * byte stream into chunks, each reply gearbox reads must complete exactly where ioredis's decoder
 * completes it, so that the command ioredis resolves receives gearbox's reading of that reply.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import decoderModule from 'ioredis/built/resp/decoder.js'
import { Resp2Reader } from '../../host/redis/resp2-reader.js'
import { tapListener, TappedCommand } from '../../host/redis/reply-tap.js'
import { NestedReplyError, type RedisReply } from '../../host/redis/types.js'

const test = suite('redis: RESP2 reader and reply tap')

/** A compact, comparable rendering: bytes as b:<latin1>, errors as E:<text>, bigints as <n>n. */
function show(value: RedisReply | Error): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'bigint') return `${v}n`
    if (v instanceof Uint8Array) return `b:${Buffer.from(v).toString('latin1')}`
    if (v instanceof NestedReplyError) return `N:${v.message}`
    if (v instanceof Error) return `E:${v.message}`
    return v
  })
}

interface DecoderLike {
  write(chunk: Buffer): void
}
const { Decoder, RESP_TYPES } = decoderModule as unknown as {
  RESP_TYPES: Record<'SIMPLE_STRING' | 'BLOB_STRING' | 'VERBATIM_STRING' | 'BIG_NUMBER' | 'DOUBLE' | 'BOOLEAN' | 'MAP' | 'SET', number>
  Decoder: new (config: {
    getTypeMapping: () => object
    onReply: (v: unknown) => void
    onErrorReply: (e: Error) => void
    onPush: (v: unknown) => void
  }) => DecoderLike
}
// The mapping ioredis's DataHandler uses for `replyMapping: 'legacy'` (every string type as a
// Buffer): with it, a reply the tap failed to deliver would show up as bytes, not as a status.
const LEGACY_TYPE_MAPPING = {
  [RESP_TYPES.SIMPLE_STRING]: Buffer,
  [RESP_TYPES.BLOB_STRING]: Buffer,
  [RESP_TYPES.VERBATIM_STRING]: Buffer,
  [RESP_TYPES.BIG_NUMBER]: String,
  [RESP_TYPES.DOUBLE]: Buffer,
  [RESP_TYPES.BOOLEAN]: Number,
  [RESP_TYPES.MAP]: Array,
  [RESP_TYPES.SET]: Array,
}

/** Runs `chunks` through the tap in front of ioredis's decoder; returns what the commands got. */
async function throughTap(chunks: readonly Buffer[]): Promise<string[]> {
  const settled: Promise<RedisReply | Error>[] = []
  const decoder = new Decoder({
    getTypeMapping: () => LEGACY_TYPE_MAPPING,
    onReply: (value) => {
      // What ioredis's DataHandler does: resolve the command at the head of the queue.
      const command = new TappedCommand(['X'])
      command.resolve(value)
      settled.push(command.reply)
    },
    onErrorReply: (err) => settled.push(Promise.resolve(err)),
    onPush: () => {},
  })
  const listener = tapListener((segment) => decoder.write(segment))
  for (const chunk of chunks) listener(Buffer.from(chunk))
  return (await Promise.all(settled)).map(show)
}

const WIRE = Buffer.from(
  '+OK\r\n' +
    '$5\r\nhello\r\n' +
    '$-1\r\n' +
    '*-1\r\n' +
    '*0\r\n' +
    ':12\r\n' +
    ':-9007199254740993\r\n' +
    '$0\r\n\r\n' +
    '*3\r\n$1\r\na\r\n*2\r\n+FINE\r\n-ERR x\r\n$-1\r\n' +
    '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n' +
    '*2\r\n$3\r\n\xff\x00\r\r\n*1\r\n:1\r\n' +
    '$4\r\n\r\n\r\n\r\n' +
    ':9007199254740991\r\n' +
    ':9007199254740992\r\n',
  'latin1',
)
const EXPECTED = [
  'OK',
  'b:hello',
  null,
  null,
  [],
  12,
  '-9007199254740993n',
  'b:',
  ['b:a', ['FINE', 'N:ERR x'], null],
  'E:WRONGTYPE Operation against a key holding the wrong kind of value',
  ['b:\xff\x00\r', [1]],
  'b:\r\n\r\n',
  9007199254740991,
  '9007199254740992n',
].map((v) => JSON.stringify(v))

test('one chunk: every reply type, status apart from bulk, exact big integers', async () => {
  assert.equal(await throughTap([WIRE]), EXPECTED)
})

test('every split into two and three chunks gives the same replies', async () => {
  let checked = 0
  for (let a = 1; a < WIRE.length; a++) {
    assert.equal(await throughTap([WIRE.subarray(0, a), WIRE.subarray(a)]), EXPECTED, `split at ${a}`)
    for (let b = a + 1; b < WIRE.length; b += 3) {
      assert.equal(await throughTap([WIRE.subarray(0, a), WIRE.subarray(a, b), WIRE.subarray(b)]), EXPECTED, `split at ${a}, ${b}`)
      checked++
    }
  }
  assert.ok(checked > 1000)
})

test('byte by byte', async () => {
  const chunks: Buffer[] = []
  for (let i = 0; i < WIRE.length; i++) chunks.push(WIRE.subarray(i, i + 1))
  assert.equal(await throughTap(chunks), EXPECTED)
})

test('bulk strings are plain Uint8Array views (not Buffers) and copies when split', () => {
  const replies: RedisReply[] = []
  const reader = new Resp2Reader((reply) => replies.push(reply))
  const wire = Buffer.from('$3\r\nabc\r\n$6\r\nsplit!\r\n')
  reader.feed(wire.subarray(0, 20))
  reader.feed(wire.subarray(20))
  const [whole, split] = replies
  assert.instance(whole, Uint8Array)
  assert.not.ok(Buffer.isBuffer(whole), 'a plain Uint8Array')
  assert.is((whole as Uint8Array).buffer, wire.buffer, 'a view, not a copy')
  assert.is(Buffer.from(split as Uint8Array).toString(), 'split!')
})

test('big integers: number up to 2^53-1, bigint beyond, both signs', () => {
  const replies: RedisReply[] = []
  const reader = new Resp2Reader((reply) => replies.push(reply))
  reader.feed(Buffer.from(':9007199254740991\r\n:-9007199254740991\r\n:9007199254740992\r\n:-9223372036854775808\r\n:0\r\n'))
  assert.equal(replies, [9007199254740991, -9007199254740991, 9007199254740992n, -9223372036854775808n, 0])
})

test('bytes the reader does not understand switch the tap to ioredis values, not to wrong pairings', async () => {
  // '%' is a RESP3 map, never sent on a RESP2 connection; the tap must not crash or mispair.
  const replies = await throughTap([Buffer.from('+OK\r\n%1\r\n+a\r\n:1\r\n+PONG\r\n')])
  assert.is(replies[0], '"OK"', 'read by gearbox before the unknown byte')
  assert.is(replies[1], '["b:a",1]', 'ioredis value (a RESP3 map arrives as a flat array)')
  assert.is(replies[2], '"b:PONG"', 'after the fallback, status replies arrive as bytes')
})

test.run()
