/**
 * The RESP codec of host/resp: the request reader (multibulk, inline, partial frames, Redis'
 * limits and protocol error texts) and the RESP2/RESP3 reply encoders for every reply shape.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  NestedReplyError,
  Resp2ProtocolError,
  Resp2Reader,
  RespBoolean,
  RespDouble,
  RespMap,
  RespPush,
  RespSet,
  RespVerbatim,
  encodeCommand,
  encodeReply,
  splitInline,
  type ReaderOptions,
  type RedisReply,
} from '../../host/resp/index.js'

const test = suite('resp: codec')
const enc = new TextEncoder()
const dec = new TextDecoder()
const b = (s: string): Uint8Array => enc.encode(s)
const s2 = (v: Parameters<typeof encodeReply>[0]): string => dec.decode(encodeReply(v, 2))
const s3 = (v: Parameters<typeof encodeReply>[0]): string => dec.decode(encodeReply(v, 3))

/** Feeds `chunks` to a request reader; returns the commands as text arrays. */
function requests(chunks: readonly (string | Uint8Array)[], options: ReaderOptions = {}): string[][] {
  const out: string[][] = []
  const reader = new Resp2Reader(
    { budget: () => Infinity, reply: (v: RedisReply) => out.push((v as Uint8Array[]).map((a) => dec.decode(a))), refused: () => out.push(['<refused>']) },
    { request: true, ...options },
  )
  for (const c of chunks) reader.feed(typeof c === 'string' ? b(c) : c)
  return out
}

function protocolError(chunks: readonly string[], options: ReaderOptions = {}): string {
  try {
    requests(chunks, options)
  } catch (error) {
    assert.instance(error, Resp2ProtocolError)
    return (error as Error).message
  }
  throw new Error('no protocol error')
}

test('request reader: multibulk commands, pipelined and split at every byte', () => {
  const wire = '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nxy\r\n*1\r\n$4\r\nPING\r\n'
  const whole = requests([wire])
  assert.equal(whole, [['SET', 'k', 'v\r\nxy'], ['PING']])
  assert.equal(requests([...wire]), whole)
})

test('request reader: inline commands with quotes and escapes; empty lines and *0 are ignored', () => {
  assert.equal(requests(['PING\r\n', '\r\n', 'set  k "a b\\x41\\n"\n', "get 'it\\'s'\r\n", '*0\r\n', '*-1\r\n']), [
    ['PING'],
    ['set', 'k', 'a bA\n'],
    ['get', "it's"],
  ])
  assert.throws(() => splitInline(b('"unterminated')), /unbalanced quotes/)
  assert.equal(splitInline(b('a\tb  c\r')).map((a) => dec.decode(a)), ['a', 'b', 'c'])
})

test('request reader: Redis protocol error texts', () => {
  assert.is(protocolError(['*2\r\n+OK\r\n']), "Protocol error: expected '$', got '+'")
  assert.is(protocolError(['*2\r\n*1\r\n']), "Protocol error: expected '$', got '*'")
  assert.is(protocolError(['*abc\r\n']), 'Protocol error: invalid multibulk length')
  assert.is(protocolError(['*2000000\r\n']), 'Protocol error: invalid multibulk length')
  assert.is(protocolError(['*1\r\n$-5\r\n']), 'Protocol error: invalid bulk length')
  assert.is(protocolError(['*1\r\n$600000000\r\n']), 'Protocol error: invalid bulk length')
  assert.is(protocolError(['*1\r\n$' + '9'.repeat(100)]), 'Protocol error: too big bulk count string')
  assert.is(protocolError(['GET "abc\r\n']), 'Protocol error: unbalanced quotes in request')
  assert.is(protocolError(['A'.repeat(70_000)]), 'Protocol error: too big inline request')
  assert.is(protocolError(['*1\r\n$10\r\n'], { maxBulkLength: 5 }), 'Protocol error: invalid bulk length')
})

test('request reader: a command over the query budget is refused', () => {
  const out: string[] = []
  const reader = new Resp2Reader({ budget: () => 100, reply: () => out.push('reply'), refused: () => out.push('refused') }, { request: true })
  reader.feed(b(`*1\r\n$200\r\n${'x'.repeat(200)}\r\n`))
  assert.equal(out, ['refused'])
})

test('reply reader: nesting deeper than maxDepth is a protocol error', () => {
  const reader = new Resp2Reader({ budget: () => Infinity, reply: () => {}, refused: () => {} }, { maxDepth: 10 })
  assert.throws(() => reader.feed(b('*1\r\n'.repeat(11))), /nested deeper than 10/)
})

test('encoder: RESP2 keeps status vs bulk, big integers, nil, nested errors', () => {
  assert.is(s2('OK'), '+OK\r\n')
  assert.is(s2(b('OK')), '$2\r\nOK\r\n')
  assert.is(s2(42), ':42\r\n')
  assert.is(s2(2n ** 62n), `:${2n ** 62n}\r\n`)
  assert.is(s2(2n ** 64n), `$20\r\n${2n ** 64n}\r\n`)
  assert.is(s2(null), '$-1\r\n')
  assert.is(s2([b('a'), new NestedReplyError('ERR x'), [1, null]]), '*3\r\n$1\r\na\r\n-ERR x\r\n*2\r\n:1\r\n$-1\r\n')
  assert.is(s2(new NestedReplyError('ERR two\r\nlines')), '-ERR two lines\r\n')
  assert.is(s2(1.5), '$3\r\n1.5\r\n')
})

test('encoder: RESP3 kinds and their RESP2 downgrades', () => {
  const map = new RespMap([[b('k'), 1]])
  assert.is(s3(map), '%1\r\n$1\r\nk\r\n:1\r\n')
  assert.is(s2(map), '*2\r\n$1\r\nk\r\n:1\r\n')
  assert.is(s3(new RespSet([1])), '~1\r\n:1\r\n')
  assert.is(s2(new RespSet([1])), '*1\r\n:1\r\n')
  assert.is(s3(new RespPush([b('message')])), '>1\r\n$7\r\nmessage\r\n')
  assert.is(s2(new RespPush([b('message')])), '*1\r\n$7\r\nmessage\r\n')
  assert.is(s3(new RespDouble(1.25)), ',1.25\r\n')
  assert.is(s3(new RespDouble(-Infinity)), ',-inf\r\n')
  assert.is(s2(new RespDouble(1.25)), '$4\r\n1.25\r\n')
  assert.is(s3(new RespBoolean(true)), '#t\r\n')
  assert.is(s2(new RespBoolean(false)), ':0\r\n')
  assert.is(s3(null), '_\r\n')
  assert.is(s3(2n ** 64n), `(${2n ** 64n}\r\n`)
  assert.is(s3(new RespVerbatim('txt', 'hi')), '=6\r\ntxt:hi\r\n')
  assert.is(s2(new RespVerbatim('txt', 'hi')), '$2\r\nhi\r\n')
})

test('encoder → reader round trip keeps kinds exactly', () => {
  const value: RedisReply = ['status', b('bulk'), 7, 2n ** 60n, null, [b('\u0000\xff')], new NestedReplyError('WRONGTYPE no')]
  const got: RedisReply[] = []
  new Resp2Reader({ budget: () => Infinity, reply: (v) => got.push(v), refused: () => {} }).feed(encodeReply(value, 2))
  assert.equal(got, [value])
})

test('encodeCommand → request reader: the same arguments, strings as UTF-8 and bytes as they are', () => {
  const bytes = Uint8Array.from([0, 13, 10, 255])
  const wire = encodeCommand(['SET', 'clé', bytes])
  assert.is(dec.decode(wire.subarray(0, 4)), '*3\r\n')
  const got: RedisReply[] = []
  new Resp2Reader({ budget: () => Infinity, reply: (v) => got.push(v), refused: () => {} }, { request: true }).feed(wire)
  assert.equal(got, [[b('SET'), b('clé'), bytes]])
})

test('RESP3 reader (resp3 on): every kind, and re-encoding gives the same bytes', () => {
  const wire =
    '%2\r\n$1\r\na\r\n,0.10000000000000001\r\n$1\r\nb\r\n~2\r\n#t\r\n_\r\n' +
    '>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n' +
    '(12345678901234567890123\r\n' +
    '=9\r\ntxt:hello\r\n' +
    '!5\r\nERR x\r\n' +
    '*2\r\n,inf\r\n#f\r\n'
  const got: RedisReply[] = []
  const reader = new Resp2Reader({ budget: () => Infinity, reply: (v) => got.push(v), refused: () => {} })
  assert.throws(() => new Resp2Reader({ budget: () => Infinity, reply: () => {}, refused: () => {} }).feed(b('%1\r\n')), /unexpected RESP type byte 0x25/)
  reader.resp3 = true
  for (const ch of wire) reader.feed(b(ch))
  assert.is(got.length, 6)
  const map = got[0] as unknown as RespMap
  assert.instance(map, RespMap)
  assert.instance(got[1], RespPush)
  assert.is(got[2], 12345678901234567890123n)
  assert.instance(got[3], RespVerbatim)
  assert.instance(got[4], NestedReplyError)
  // A blob error stays a blob error (RESP3), so every kind re-encodes to the same bytes.
  assert.is(got.map((v) => dec.decode(encodeReply(v, 3))).join(''), wire)
})

test.run()
