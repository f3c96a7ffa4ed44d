/**
 * The server's fast path (client.ts): plain commands go to Redis as the bytes the client sent and
 * Redis' replies come back as its bytes. Replies are byte-identical to Redis direct (RESP2 and
 * RESP3, every kind, replies spanning reads); order holds when fast and slow commands interleave
 * across many pipelining clients; a client that never reads still hits the output cap; a hook or
 * a `commands=` registration made while clients pipeline applies to their next commands; and a
 * seeded fuzz shows that the reader's frame scans agree with its decoder.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeCommand, encodeReply, Resp2ProtocolError, Resp2Reader, RespDouble, RespMap, RespPush, RespSet, RespVerbatim, type RedisReply, type RespValue } from '../../host/resp/index.js'
import { NestedReplyError, NULL_ARRAY } from '../../host/resp/types.js'
import { Redis } from 'ioredis'
import { startRedisServer } from '../../host/platform/redis-server.js'
import type { TestRedis } from '../helpers/redis.js'
import { RawClient, serveGearbox, type Served } from './support.js'
import { prng } from '../helpers/prng.js'

const test = suite('server: fast path (bytes through, order, limits, registrations)')
let redis: TestRedis
let served: Served
/** Redis direct, and an admin client of the server (RG.* set-up). */
let direct: Redis
let admin: Redis

const END = encodeCommand(['ECHO', '__end__'])
const END_REPLY = '$7\r\n__end__\r\n'

test.before(async () => {
  // DEBUG PROTOCOL sends every RESP3 kind (big number, verbatim, push ...) on request.
  redis = await startRedisServer({ args: ['--enable-debug-command', 'local'] })
  served = await serveGearbox(redis.url)
  direct = new Redis(redis.url)
  admin = new Redis({ host: '127.0.0.1', port: served.port, maxRetriesPerRequest: 0, protocol: 2 } as Record<string, unknown>)
})

test.after(async () => {
  direct.disconnect()
  admin.disconnect()
  await served.close()
  await redis.stop()
})

function frames(commands: readonly (readonly (string | Uint8Array)[])[]): Uint8Array {
  return Buffer.concat(commands.map((c) => encodeCommand(c)))
}

/** Writes `bytes` then the end marker; resolves with everything received before the marker's reply. */
async function exchange(c: RawClient, bytes: Uint8Array, timeoutMs = 10_000): Promise<string> {
  c.clear()
  c.write(Buffer.concat([bytes, END]))
  const text = await c.until((t) => t.endsWith(END_REPLY), timeoutMs)
  assert.ok(text.endsWith(END_REPLY), `the end marker's reply arrived (got ${JSON.stringify(text.slice(-200))})`)
  return text.slice(0, -END_REPLY.length)
}

const BINARY = Uint8Array.from([0x00, 0x0d, 0x0a, 0x24, 0x2a, 0xff, 0x0d, 0x0a])
const SETUP: (string | Uint8Array)[][] = [
  ['SET', 'fp:big', 'b'.repeat(300 * 1024)],
  ['RPUSH', 'fp:many', ...Array.from({ length: 6000 }, (_, i) => `element-${String(i).padStart(12, '0')}`)],
  ['SET', 'fp:bin', BINARY],
]
const COMPARED: (string | Uint8Array)[][] = [
  ['SET', 'fp:s', 'hello'],
  ['GET', 'fp:s'],
  ['GET', 'fp:none'],
  ['INCR', 'fp:n'],
  ['INCR', 'fp:s'],
  ['GET'],
  ['NOSUCHCOMMAND', 'x'],
  ['SET', 'fp:empty', ''],
  ['GET', 'fp:empty'],
  ['GET', 'fp:bin'],
  ['RPUSH', 'fp:l', 'a', 'b', 'c'],
  ['LRANGE', 'fp:l', '0', '-1'],
  ['LMPOP', '1', 'fp:nolist', 'LEFT'],
  ['HSET', 'fp:h', 'f1', 'v1', 'f2', 'v2'],
  ['HGETALL', 'fp:h'],
  ['SADD', 'fp:set', 'a'],
  ['SMEMBERS', 'fp:set'],
  ['ZADD', 'fp:z', '1.5', 'm'],
  ['ZSCORE', 'fp:z', 'm'],
  ['XADD', 'fp:x', '1-1', 'a', '1'],
  ['XRANGE', 'fp:x', '-', '+'],
  ['EVAL', "return {1, {2, {3, 'x'}}, redis.status_reply('FINE')}", '0'],
  ['EVAL', "return redis.error_reply('MY own error')", '0'],
  ['GET', 'fp:big'],
  ['LRANGE', 'fp:many', '0', '-1'],
  ['DEBUG', 'PROTOCOL', 'bignum'],
  ['DEBUG', 'PROTOCOL', 'verbatim'],
  ['DEBUG', 'PROTOCOL', 'push'],
  ['DEBUG', 'PROTOCOL', 'double'],
  ['DEBUG', 'PROTOCOL', 'map'],
  ['DEBUG', 'PROTOCOL', 'set'],
  ['DEBUG', 'PROTOCOL', 'true'],
  ['DEBUG', 'PROTOCOL', 'null'],
]

/** Runs SETUP then COMPARED on a fresh keyspace, as RESP `protocol`; returns COMPARED's replies. */
async function session(port: number, protocol: 2 | 3): Promise<{ readonly text: string; readonly framed: number }> {
  assert.is(await direct.flushall(), 'OK')
  const c = await RawClient.open(port)
  try {
    if (protocol === 3) {
      c.write(encodeCommand(['HELLO', '3']))
      await c.until((t) => t.includes('proto'))
    }
    // Set-up commands (some span reads) also make the shared connection of this protocol ready.
    await exchange(c, frames(SETUP))
    const before = served.handle.forwardedAsBytes
    const text = await exchange(c, frames(COMPARED))
    return { text, framed: served.handle.forwardedAsBytes - before }
  } finally {
    c.close()
  }
}

for (const protocol of [2, 3] as const) {
  test(`RESP${protocol}: every reply kind passes through byte for byte, as Redis direct sends it`, async () => {
    const direct = await session(redis.port, protocol)
    const through = await session(served.port, protocol)
    // The data are what this test is about: each kind is in there.
    const expected =
      protocol === 2
        ? ['+OK\r\n', '$-1\r\n', ':1\r\n', '-ERR value is not an integer', '$0\r\n\r\n', '*-1\r\n', '*3\r\n:1\r\n*2\r\n:2\r\n*2\r\n:3\r\n$1\r\nx\r\n+FINE\r\n', '-MY own error\r\n', '1234567999999999999999999999999999999\r\n']
        : ['%2\r\n', '~1\r\n', ',1.5\r\n', '(1234567999999999999999999999999999999\r\n', '=29\r\ntxt:', '>2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n$40\r\n', '#t\r\n', '_\r\n']
    for (const piece of expected) assert.ok(direct.text.includes(piece), `Redis sent ${JSON.stringify(piece)}`)
    assert.ok(direct.text.length > 300 * 1024 + 6000 * 20, 'replies that span several reads are in the comparison')
    assert.ok(through.text === direct.text, `served replies differ from Redis': ${firstDifference(direct.text, through.text)}`)
    // Every compared command took the fast path (their request fits in one read), and the end marker.
    assert.is(through.framed, COMPARED.length + 1)
  })
}

function firstDifference(a: string, b: string): string {
  let i = 0
  while (i < a.length && a[i] === b[i]) i++
  return `at byte ${i}: direct ${JSON.stringify(a.slice(Math.max(0, i - 20), i + 40))}, served ${JSON.stringify(b.slice(Math.max(0, i - 20), i + 40))}`
}


test('order: 20 clients pipeline fast and slow commands interleaved (RG.TRIGGER, inline, CLIENT, split frames); each gets its replies in order', async () => {
  assert.is(await admin.call('RG.JSEXECUTE', "GB('CommandReader').map((x) => execute('INCR', x[1])).register({ trigger: 'fp-incr', convertToStr: false })"), 'OK')
  const random = prng(0x5eed)
  const before = served.handle.forwardedAsBytes
  const clients = await Promise.all(Array.from({ length: 20 }, () => RawClient.open(served.port)))
  try {
    const runs = clients.map(async (c, i) => {
      const key = `ord:${i}`
      let counter = 0
      let wire = ''
      let expected = ''
      for (let step = 0; step < 150; step++) {
        // Mostly fast commands, with slow ones in between: a barrier (RG.TRIGGER) now and then,
        // inline commands and CLIENT SETINFO (decoded, answered in turn) more often.
        const kind = step % 50 === 49 ? 'trigger' : (['incr', 'get', 'incr', 'inline', 'ping', 'xlen', 'get', 'setinfo'] as const)[step % 8]!
        switch (kind) {
          case 'incr':
            wire += latin(encodeCommand(['INCR', key]))
            expected += `:${++counter}\r\n`
            break
          case 'get':
            wire += latin(encodeCommand(['GET', key]))
            expected += `$${String(counter).length}\r\n${counter}\r\n`
            break
          case 'trigger':
            wire += latin(encodeCommand(['RG.TRIGGER', 'fp-incr', key]))
            expected += `*1\r\n:${++counter}\r\n`
            break
          case 'inline':
            wire += `INCR ${key}\r\n`
            expected += `:${++counter}\r\n`
            break
          case 'setinfo':
            wire += latin(encodeCommand(['CLIENT', 'SETINFO', 'LIB-NAME', 'fp']))
            expected += '+OK\r\n'
            break
          case 'ping':
            wire += latin(encodeCommand(['PING']))
            expected += '+PONG\r\n'
            break
          case 'xlen':
            wire += latin(encodeCommand(['XLEN', key]))
            expected += '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n'
        }
      }
      // Written in pieces cut anywhere: some frames span reads (decoded, not framed), others do not.
      const bytes = Buffer.from(wire, 'latin1')
      for (let pos = 0; pos < bytes.length; ) {
        const n = 1 + Math.floor(random() * 300)
        c.write(bytes.subarray(pos, pos + n))
        pos += n
        if (random() < 0.3) await new Promise((r) => setImmediate(r))
      }
      const got = await c.until((t) => t.length >= expected.length, 20_000)
      assert.is(got, expected, `client ${i}'s replies in order`)
    })
    await Promise.all(runs)
  } finally {
    for (const c of clients) c.close()
    await unregisterAll()
  }
  assert.ok(served.handle.forwardedAsBytes - before > 100, 'some commands took the fast path')
})

function latin(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('latin1')
}

async function unregisterAll(): Promise<void> {
  const dump = (await admin.call('RG.DUMPREGISTRATIONS')) as unknown[][]
  for (const entry of dump) assert.is(await admin.call('RG.UNREGISTER', String(entry[1])), 'OK')
}

test('a client that pipelines fast GETs and never reads is disconnected at the output cap; others are served', async () => {
  const own = await serveGearbox(redis.url, { limits: { maxOutputBytes: 1024 * 1024 } })
  try {
    assert.is(await direct.set('cap:big', 'x'.repeat(256 * 1024)), 'OK')
    const lazy = await RawClient.open(own.port)
    // The shared connection is up once a first command went through.
    lazy.write(frames([['PING']]))
    assert.is(await lazy.until((t) => t.endsWith('\r\n')), '+PONG\r\n')
    lazy.socket.pause()
    const before = own.handle.forwardedAsBytes
    lazy.write(frames(Array.from({ length: 200 }, () => ['GET', 'cap:big'])))
    const deadline = Date.now() + 10_000
    while (own.handle.clients > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    assert.is(own.handle.clients, 0, 'the server dropped the lazy client')
    assert.ok(own.handle.forwardedAsBytes - before > 0, 'its GETs took the fast path')
    lazy.socket.resume()
    assert.ok(await lazy.closedByServer(10_000))
    assert.ok(lazy.text().length < 200 * 256 * 1024, 'not every reply was delivered')
    const other = await RawClient.open(own.port)
    other.write(frames([['STRLEN', 'cap:big'], ['PING']]))
    assert.is(await other.until((t) => t.endsWith('PONG\r\n')), `:${256 * 1024}\r\n+PONG\r\n`)
    other.close()
  } finally {
    await own.close()
  }
})

test('a lost shared connection fails the fast commands in flight with the error text; the next ones are served', async () => {
  const c = await RawClient.open(served.port)
  try {
    // The shared connection is up (a command went through).
    assert.is(await exchange(c, frames([['SET', 'lost:k', 'v']])), '+OK\r\n')
    // Writes pause in Redis: the next SET waits there, on the shared connection.
    assert.is(await direct.call('CLIENT', 'PAUSE', '5000', 'WRITE'), 'OK')
    const before = served.handle.forwardedAsBytes
    c.clear()
    c.write(frames([['SET', 'lost:k', 'w'], ['GET', 'lost:k']]))
    let shared: string | undefined
    for (let i = 0; i < 200 && shared === undefined; i++) {
      const list = String(await direct.call('CLIENT', 'LIST'))
      shared = /^id=(\d+) .* cmd=set\b/m.exec(list)?.[1]
      if (shared === undefined) await new Promise((r) => setTimeout(r, 10))
    }
    assert.ok(shared !== undefined, 'the paused SET is on a connection of the server')
    assert.is(served.handle.forwardedAsBytes - before, 2, 'both took the fast path')
    assert.is(await direct.call('CLIENT', 'KILL', 'ID', shared!), 1)
    const text = await c.until((t) => (t.match(/\r\n/g) ?? []).length >= 2)
    const lost = /^-ERR gearbox serve: connection to Redis \S+ closed before the reply arrived; the command may or may not have run \(gearbox does not resend it\)\r\n/
    assert.match(text, lost)
    assert.is(text.replace(lost, '').match(lost)?.length, 1, `both replies are the error: ${JSON.stringify(text)}`)
  } finally {
    await direct.call('CLIENT', 'UNPAUSE')
  }
  // The shared connection reconnects: the client goes on.
  assert.is(await exchange(c, frames([['GET', 'lost:k']]), 15_000), '$1\r\nv\r\n')
  c.close()
})

/**
 * One client pipelines batches of GET `key` while another makes `registration`; every batch sent
 * after the registration's reply arrived gets `changedReply`; the switch happens once (monotonic).
 */
async function registrationWhilePipelining(key: string, plainReply: string, changedReply: string, registration: string): Promise<void> {
  const worker = await RawClient.open(served.port)
  const batch = frames(Array.from({ length: 20 }, () => ['GET', key]))
  const replyPattern = /\$-1\r\n|\$\d+\r\n[^\r]*\r\n/g
  let registered = false
  let registering: Promise<unknown> | undefined
  const seen: { readonly afterRegistration: boolean; readonly replies: string[] }[] = []
  try {
    const deadline = Date.now() + 20_000
    for (let round = 0; round < 200 && Date.now() < deadline; round++) {
      const afterRegistration = registered
      worker.clear()
      worker.write(batch)
      if (round === 3) {
        registering = admin.call('RG.JSEXECUTE', registration).then((reply) => {
          registered = true
          return reply
        })
      }
      const text = await worker.until((t) => (t.match(replyPattern) ?? []).length >= 20)
      const replies = text.match(replyPattern) ?? []
      assert.is(replies.length, 20, `round ${round}: 20 replies (${JSON.stringify(text.slice(0, 100))})`)
      seen.push({ afterRegistration, replies })
      if (seen.filter((s) => s.afterRegistration).length >= 5) break
    }
    assert.is(await registering, 'OK')
    const after = seen.filter((s) => s.afterRegistration)
    assert.ok(after.length >= 5, 'batches were sent after the registration')
    for (const s of after) assert.equal(s.replies, Array.from({ length: 20 }, () => changedReply))
    assert.ok(seen[0]!.replies.every((r) => r === plainReply), 'before it, the plain reply')
    // Once changed, never plain again.
    const flat = seen.flatMap((s) => s.replies)
    const firstChanged = flat.indexOf(changedReply)
    assert.ok(firstChanged > 0)
    assert.ok(flat.slice(firstChanged).every((r) => r === changedReply), 'the switch happened once')
    for (const r of flat) assert.ok(r === plainReply || r === changedReply, r)
  } finally {
    worker.close()
    await unregisterAll()
  }
}

test('a hook registered while a client pipelines fast GETs takes them off the fast path from the next command', async () => {
  assert.is(await direct.set('hk:k', 'plain!'), 'OK')
  await registrationWhilePipelining(
    'hk:k',
    '$6\r\nplain!\r\n',
    '$6\r\nhooked\r\n',
    "GB('CommandReader').map(() => 'hooked').register({ hook: 'get', keyprefix: 'hk:', convertToStr: false })",
  )
  // Unregistered: GETs are forwarded as bytes again.
  const before = served.handle.forwardedAsBytes
  const c = await RawClient.open(served.port)
  c.write(frames([['GET', 'hk:k']]))
  assert.is(await c.until((t) => t.endsWith('plain!\r\n')), '$6\r\nplain!\r\n')
  c.close()
  assert.ok(served.handle.forwardedAsBytes > before, 'fast again once the hook is gone')
})

test('a commands= registration made while a client pipelines fast GETs applies to its next GETs (override_reply on a miss)', async () => {
  await direct.del('lk:k')
  await registrationWhilePipelining(
    'lk:k',
    '$-1\r\n',
    '$6\r\nlinked\r\n',
    "GB().foreach(() => override_reply('linked')).register('lk:*', { eventTypes: ['keymiss'], commands: ['get'], mode: 'async_local' })",
  )
})

// ---- the reader's frame scans agree with its decoder (seeded fuzz) -------------------------

const enc = new TextEncoder()

function generator(random: () => number) {
  const int = (n: number): number => Math.floor(random() * n)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!
  const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(256))
  const command = (): Uint8Array[] => Array.from({ length: 1 + int(5) }, () => (random() < 0.5 ? enc.encode(pick(['GET', 'SET', 'k', 'v', 'PING', ''])) : bytes(int(20))))
  const mutate = (input: Uint8Array): Uint8Array => {
    const out = Uint8Array.from(input)
    const kind = int(5)
    if (kind === 0 && out.length > 0) out[int(out.length)] = int(256)
    else if (kind === 1) return out.subarray(0, int(out.length + 1))
    else if (kind === 2) return Buffer.concat([out, bytes(1 + int(30))])
    else if (kind === 3 && out.length > 0) out[int(out.length)] = pick([0x2a, 0x24, 0x0d, 0x0a, 0x2d, 0x30, 0x2b, 0x3e])
    else if (out.length > 0) {
      // A leading zero or sign in a length.
      const at = int(out.length)
      return Buffer.concat([out.subarray(0, at), enc.encode(pick(['0', '-', '+', ' '])), out.subarray(at)])
    }
    return out
  }
  const value = (depth: number): RespValue => {
    const roll = int(depth > 3 ? 8 : depth === 0 ? 14 : 13)
    switch (roll) {
      case 0:
        return pick(['OK', 'QUEUED', 'a status'])
      case 1:
        return bytes(int(40))
      case 2:
        return int(2) === 0 ? int(1_000_000) - 500_000 : 2n ** 70n
      case 3:
        return null
      case 4:
        return new NestedReplyError(pick(['ERR x', 'WRONGTYPE y']), random() < 0.3)
      case 5:
        return new RespDouble(random() * 100, undefined)
      case 6:
        return new RespVerbatim('txt', 'some text')
      case 7:
        return NULL_ARRAY
      case 8:
      case 9:
        return Array.from({ length: int(4) }, () => value(depth + 1))
      case 10:
        return new RespMap(Array.from({ length: int(3) }, () => [value(depth + 1), value(depth + 1)] as const))
      case 11:
        return new RespSet(Array.from({ length: int(3) }, () => value(depth + 1)))
      case 12:
        return new RespPush(Array.from({ length: 1 + int(3) }, () => value(depth + 1)))
      default:
        // Longer than a read: the capture path takes it when cut.
        return new Uint8Array(70_000 + int(1000)).fill(0x61 + int(26))
    }
  }
  return { int, command, mutate, value, bytes }
}

type Outcome = { readonly items: readonly string[]; readonly error: string | undefined }

/** Frames the framed readers handed over (requests taken as bytes, replies as raw frames). */
const handedOver = { requests: 0, replies: 0 }

/** Feeds `input` in the same pieces to a reader; collects what it gives (decoded, or frames decoded apart). */
function run(input: Uint8Array, cuts: readonly number[], mode: 'request' | 'reply', framed: boolean, resp3: boolean): Outcome {
  const items: string[] = []
  const show = (v: RedisReply): string => Buffer.from(encodeReply(v, 3)).toString('latin1')
  const decodeOne = (bytes: Uint8Array): string => {
    const got: RedisReply[] = []
    const reader = new Resp2Reader({ budget: () => Infinity, reply: (v) => got.push(v), refused: () => {} }, { request: mode === 'request' })
    reader.resp3 = resp3
    reader.nullArrays = true
    reader.feed(bytes)
    assert.is(got.length, 1, `a frame is exactly one value: ${JSON.stringify(Buffer.from(bytes).toString('latin1').slice(0, 300))}`)
    return show(got[0]!)
  }
  const reader = new Resp2Reader(
    {
      // Requests: a small query budget (the frame scan must refuse what the decoder refuses).
      budget: () => (mode === 'request' ? 4096 : Infinity),
      reply: (v) => items.push(show(v)),
      refused: () => items.push('refused'),
      ...(framed && mode === 'request'
        ? {
            frame: (chunk: Uint8Array, start: number, end: number, nameStart: number, nameEnd: number) => {
              const bytes = chunk.subarray(start, end)
              const text = decodeOne(bytes)
              // Canonical: exactly what encodeCommand writes for the same arguments; the name is the first.
              const args: Uint8Array[] = []
              new Resp2Reader({ budget: () => Infinity, reply: (v) => args.push(...(v as Uint8Array[])), refused: () => {} }, { request: true }).feed(bytes)
              assert.equal(Buffer.from(encodeCommand(args)), Buffer.from(bytes))
              assert.equal(Buffer.from(chunk.subarray(nameStart, nameEnd)), Buffer.from(args[0]!))
              items.push(text)
              handedOver.requests++
              return true
            },
          }
        : {}),
      ...(framed && mode === 'reply' ? { rawNext: () => true, rawReply: (chunk: Uint8Array, start: number, end: number) => (handedOver.replies++, items.push(decodeOne(chunk.subarray(start, end)))) } : {}),
    },
    { request: mode === 'request' },
  )
  reader.resp3 = resp3
  reader.nullArrays = true
  try {
    let pos = 0
    for (const n of cuts) {
      if (pos >= input.length) break
      reader.feed(input.subarray(pos, pos + n))
      pos += n
    }
    if (pos < input.length) reader.feed(input.subarray(pos))
  } catch (error) {
    // A mutated reply count too big to allocate (the decoder's new Array): no frame to compare.
    if (!framed && mode === 'reply' && error instanceof RangeError) return { items, error: 'RangeError' }
    if (!(error instanceof Resp2ProtocolError)) throw error
    return { items, error: error.message }
  }
  return { items, error: undefined }
}

test('fuzz (60,000 seeded inputs): framed requests and raw replies give what the decoder gives, split anywhere', () => {
  const random = prng(0xf4a57)
  const g = generator(random)
  let framedRequests = 0
  let rawReplies = 0
  let errors = 0
  let heldBack = 0
  let unallocatable = 0
  for (let i = 0; i < 60_000; i++) {
    const request = i % 2 === 0
    let input: Uint8Array
    const resp3 = !request && g.int(2) === 0
    if (request) {
      const commands = Array.from({ length: 1 + g.int(4) }, () => encodeCommand(g.command()))
      input = Buffer.concat(commands)
      if (g.int(2) === 0) input = g.mutate(input)
    } else {
      const values = Array.from({ length: 1 + g.int(3) }, () => encodeReply(g.value(0), resp3 ? 3 : 2))
      input = Buffer.concat(values)
      if (g.int(3) === 0) input = g.mutate(input)
    }
    // Whole, or cut into small pieces (frames then span pieces: the decoder or the capture takes them).
    const cuts = g.int(2) === 0 ? [input.length] : Array.from({ length: 200 }, () => 1 + g.int(input.length > 1000 ? 20_000 : 40))
    const plain = run(input, cuts, request ? 'request' : 'reply', false, resp3)
    if (plain.error === 'RangeError') {
      unallocatable++
      continue
    }
    const framed = run(input, cuts, request ? 'request' : 'reply', true, resp3)
    const where = `input ${i}: ${JSON.stringify(Buffer.from(input.subarray(0, 200)).toString('latin1'))}`
    if (plain.error === undefined && input[input.length - 1] === 0x0d && framed.items.length === plain.items.length - 1) {
      // Input cut between a line's CR and LF: the decoder has the line's value, a frame ends after its LF.
      assert.equal(framed, { items: plain.items.slice(0, -1), error: undefined }, where)
      heldBack++
      continue
    }
    assert.equal(framed, plain, where)
    if (plain.error !== undefined) errors++
    else if (request) framedRequests++
    else rawReplies++
  }
  assert.ok(handedOver.requests > 20_000 && handedOver.replies > 20_000, `frames handed over: ${JSON.stringify(handedOver)}`)
  assert.ok(framedRequests > 10_000, `framed request inputs: ${framedRequests}`)
  assert.ok(rawReplies > 10_000, `raw reply inputs: ${rawReplies}`)
  assert.ok(errors > 1_000, `protocol errors: ${errors}`)
  assert.ok(heldBack < 1_000, `frames held back for their LF: ${heldBack}`)
  assert.ok(unallocatable < 1_000, `replies with counts too big to allocate: ${unallocatable}`)
})

test.run()
