/**
 * The RESP2 reader (the one parse of every reply), without a server: every way of splitting a
 * byte stream into chunks gives the same replies, with and without refused (over-budget) replies
 * skipped in between.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { ELEMENT_COST, Resp2ProtocolError, Resp2Reader } from '../../host/resp/reader.js'
import { NestedReplyError, type RedisReply } from '../../host/redis/types.js'

const test = suite('redis: RESP2 reader')

/** A compact, comparable rendering: bytes as b:<latin1>, errors as N:<text>, bigints as <n>n, refusals as REFUSED. */
function show(value: RedisReply | Error): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'bigint') return `${v}n`
    if (v instanceof Uint8Array) return `b:${Buffer.from(v).toString('latin1')}`
    if (v instanceof NestedReplyError) return `N:${v.message}`
    if (v instanceof Error) return `E:${v.message}`
    return v
  })
}

/** Feeds `chunks` to a reader whose replies get `budgets` in turn (Infinity after). */
function read(chunks: readonly Uint8Array[], budgets: readonly number[] = []): string[] {
  const out: string[] = []
  let next = 0
  const reader = new Resp2Reader({
    budget: () => budgets[next++] ?? Infinity,
    reply: (value) => out.push(show(value)),
    refused: () => out.push('"REFUSED"'),
  })
  for (const chunk of chunks) reader.feed(chunk)
  return out
}

function collect(replies: RedisReply[]): Resp2Reader {
  return new Resp2Reader({ budget: () => Infinity, reply: (v) => replies.push(v), refused: () => replies.push('REFUSED') })
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
  'N:WRONGTYPE Operation against a key holding the wrong kind of value',
  ['b:\xff\x00\r', [1]],
  'b:\r\n\r\n',
  9007199254740991,
  '9007199254740992n',
].map((v) => JSON.stringify(v))

test('one chunk: every reply type, status apart from bulk, exact big integers', () => {
  assert.equal(read([WIRE]), EXPECTED)
})

test('every split into two and three chunks gives the same replies', () => {
  let checked = 0
  for (let a = 1; a < WIRE.length; a++) {
    assert.equal(read([WIRE.subarray(0, a), WIRE.subarray(a)]), EXPECTED, `split at ${a}`)
    for (let b = a + 1; b < WIRE.length; b += 3) {
      assert.equal(read([WIRE.subarray(0, a), WIRE.subarray(a, b), WIRE.subarray(b)]), EXPECTED, `split at ${a}, ${b}`)
      checked++
    }
  }
  assert.ok(checked > 1000)
})

test('byte by byte', () => {
  const chunks: Buffer[] = []
  for (let i = 0; i < WIRE.length; i++) chunks.push(WIRE.subarray(i, i + 1))
  assert.equal(read(chunks), EXPECTED)
})

// Over-budget replies between kept ones: a big bulk (refused from its header), a big array
// (from its element count), a nested bulk inside an array, a long status line (as it arrives),
// and an array whose elements add up over budget (refused part-way through).
const BIG = 'x'.repeat(600)
const SKIP_WIRE = Buffer.from(
  '+first\r\n' +
    `$${BIG.length}\r\n${BIG}\r\n` +
    ':1\r\n' +
    '*50\r\n' + ':7\r\n'.repeat(50) +
    '$2\r\nok\r\n' +
    `*3\r\n$1\r\na\r\n*2\r\n$${BIG.length}\r\n${BIG}\r\n:5\r\n$-1\r\n` +
    `+${BIG}\r\n` +
    `-${BIG}\r\n` +
    `*4\r\n$100\r\n${BIG.slice(0, 100)}\r\n*1\r\n$100\r\n${BIG.slice(0, 100)}\r\n*0\r\n*-1\r\n` +
    '+last\r\n',
  'latin1',
)
const BUDGET = 8 * ELEMENT_COST // 512: every big reply above is over it, each small one under
const SKIP_EXPECTED = ['"first"', '"REFUSED"', '1', '"REFUSED"', '"b:ok"', '"REFUSED"', '"REFUSED"', '"REFUSED"', '"REFUSED"', '"last"']
const SKIP_BUDGETS = SKIP_EXPECTED.map(() => BUDGET)

test('skip mode: over-budget replies are refused and passed over; every split gives the same outcome', () => {
  assert.equal(read([SKIP_WIRE], SKIP_BUDGETS), SKIP_EXPECTED)
  let checked = 0
  for (let a = 1; a < SKIP_WIRE.length; a++) {
    assert.equal(read([SKIP_WIRE.subarray(0, a), SKIP_WIRE.subarray(a)], SKIP_BUDGETS), SKIP_EXPECTED, `split at ${a}`)
    for (let b = a + 1; b < SKIP_WIRE.length; b += 37) {
      assert.equal(read([SKIP_WIRE.subarray(0, a), SKIP_WIRE.subarray(a, b), SKIP_WIRE.subarray(b)], SKIP_BUDGETS), SKIP_EXPECTED, `split ${a}, ${b}`)
      checked++
    }
  }
  assert.ok(checked > 1000)
  const bytes: Buffer[] = []
  for (let i = 0; i < SKIP_WIRE.length; i++) bytes.push(SKIP_WIRE.subarray(i, i + 1))
  assert.equal(read(bytes, SKIP_BUDGETS), SKIP_EXPECTED, 'byte by byte')
  // With room enough, the same stream is read whole.
  const whole = read([SKIP_WIRE])
  assert.is(whole.length, SKIP_EXPECTED.length)
  assert.not.ok(whole.includes('"REFUSED"'))
})

test('a refused bulk is never buffered: its payload is not kept while it streams', () => {
  const replies: RedisReply[] = []
  let refusedCost = 0
  const reader = new Resp2Reader({ budget: () => 1000, reply: (v) => replies.push(v), refused: (cost) => (refusedCost = cost) })
  const size = 50 * 1024 * 1024
  reader.feed(Buffer.from(`$${size}\r\n`))
  assert.ok(refusedCost > size, 'refused from the header, reported at once')
  const chunk = Buffer.alloc(64 * 1024, 0x61)
  for (let sent = 0; sent < size; sent += chunk.length) {
    assert.ok(reader.isSkipping, 'still passing over the payload')
    reader.feed(chunk.subarray(0, Math.min(chunk.length, size - sent)))
  }
  reader.feed(Buffer.from('\r\n+after\r\n'))
  assert.equal(replies, ['after'])
  assert.not.ok(reader.isSkipping)
})

test('a header line that never ends is a protocol error, not a growing buffer', () => {
  const reader = collect([])
  assert.throws(() => reader.feed(Buffer.from('*' + '1'.repeat(100))), (e: Error) => e instanceof Resp2ProtocolError)
})

test('bulk strings are plain Uint8Array views (not Buffers) and copies when split', () => {
  const replies: RedisReply[] = []
  const reader = collect(replies)
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
  const reader = collect(replies)
  reader.feed(Buffer.from(':9007199254740991\r\n:-9007199254740991\r\n:9007199254740992\r\n:-9223372036854775808\r\n:0\r\n'))
  assert.equal(replies, [9007199254740991, -9007199254740991, 9007199254740992n, -9223372036854775808n, 0])
})

test('bytes the reader does not understand are a protocol error', () => {
  // '%' is a RESP3 map, never sent on a RESP2 connection: the connection is dropped.
  const replies: RedisReply[] = []
  const reader = collect(replies)
  assert.throws(() => reader.feed(Buffer.from('+OK\r\n%1\r\n+a\r\n:1\r\n')), (e: Error) => e instanceof Resp2ProtocolError)
  assert.equal(replies, ['OK'])
})

test.run()
