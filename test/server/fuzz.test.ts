/**
 * Bad input and many clients: a seeded fuzz of the request reader (120,000 generated and mutated
 * inputs: partial frames, huge and negative lengths, deep nesting, garbage), the same kind of
 * input sent to a live server (protocol error and close for that connection, the server and its
 * other clients unaffected), and 1,000 concurrent connections served.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { Resp2ProtocolError, Resp2Reader, type RedisReply } from '../../host/resp/index.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { RawClient, serveGearbox, type Served } from './support.js'
import { prng } from '../helpers/prng.js'

const test = suite('server: fuzzed requests and many clients')
let redis: TestRedis
let served: Served

test.before(async () => {
  redis = await startRedis()
  served = await serveGearbox(redis.url)
})

test.after(async () => {
  await served.close()
  await redis.stop()
})


const enc = new TextEncoder()
const SEED = 0x9e3779b9

function generator(random: () => number) {
  const int = (n: number): number => Math.floor(random() * n)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!
  const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(256))
  const command = (): Uint8Array[] => Array.from({ length: 1 + int(5) }, () => (random() < 0.5 ? enc.encode(pick(['GET', 'SET', 'k', 'v', 'PING'])) : bytes(int(20))))
  const multibulk = (args: readonly Uint8Array[]): Uint8Array => {
    const parts: Uint8Array[] = [enc.encode(`*${args.length}\r\n`)]
    for (const a of args) parts.push(enc.encode(`$${a.length}\r\n`), a, enc.encode('\r\n'))
    return concat(parts)
  }
  const hostile = (): Uint8Array =>
    enc.encode(
      pick([
        `*${pick(['-1', '-99999999999', '99999999999999999999', '2147483648', 'x', ''])}\r\n`,
        `*1\r\n$${pick(['-2', '99999999999', '1e3', '', '9'.repeat(80)])}\r\n`,
        '*1\r\n'.repeat(1 + int(5000)),
        `*2\r\n${pick(['+OK', ':1', '-ERR', '*1', '_'])}\r\n`,
        `GET "${'a'.repeat(int(10))}\r\n`,
        'x'.repeat(65 * 1024 + int(1000)),
      ]),
    )
  const mutate = (input: Uint8Array): Uint8Array => {
    const out = Uint8Array.from(input)
    const kind = int(4)
    if (kind === 0 && out.length > 0) out[int(out.length)] = int(256)
    else if (kind === 1) return out.subarray(0, int(out.length + 1))
    else if (kind === 2) return concat([out, bytes(1 + int(30))])
    else if (out.length > 0) out[int(out.length)] = pick([0x2a, 0x24, 0x0d, 0x0a, 0x2d, 0x22])
    return out
  }
  return { int, command, multibulk, hostile, mutate, bytes }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

type Outcome = { readonly kind: 'commands'; readonly commands: number } | { readonly kind: 'protocol'; readonly commandsBefore: number; readonly message: string }

/** Feeds `input` split at random points; any exception but a protocol error fails the test. */
function parse(input: Uint8Array, random: () => number, collected?: RedisReply[]): Outcome {
  let commands = 0
  const reader = new Resp2Reader(
    {
      budget: () => 1024 * 1024,
      reply: (v) => {
        commands++
        collected?.push(v)
      },
      refused: () => {
        commands++
      },
    },
    { request: true },
  )
  try {
    let pos = 0
    while (pos < input.length) {
      const n = 1 + Math.floor(random() * 64)
      reader.feed(input.subarray(pos, pos + n))
      pos += n
    }
  } catch (error) {
    if (!(error instanceof Resp2ProtocolError)) throw error
    assert.match(error.message, /^Protocol error: /)
    return { kind: 'protocol', commandsBefore: commands, message: error.message }
  }
  return { kind: 'commands', commands }
}

test('120,000 generated and mutated inputs: commands or a protocol error, nothing else; valid input round-trips', () => {
  const random = prng(SEED)
  const g = generator(random)
  let protocol = 0
  let parsed = 0
  let roundTrips = 0
  for (let i = 0; i < 120_000; i++) {
    const roll = g.int(4)
    if (roll === 0) {
      // Valid pipelines must parse back exactly, whatever the chunking.
      const commands = Array.from({ length: 1 + g.int(3) }, () => g.command())
      const got: RedisReply[] = []
      const outcome = parse(concat(commands.map(g.multibulk)), random, got)
      assert.is(outcome.kind, 'commands')
      assert.equal(got, commands)
      roundTrips++
      continue
    }
    const base = roll === 1 ? g.hostile() : roll === 2 ? g.mutate(g.multibulk(g.command())) : g.bytes(1 + g.int(200))
    const outcome = parse(base, random)
    if (outcome.kind === 'protocol') protocol++
    else parsed++
  }
  assert.ok(protocol > 10_000, `protocol errors: ${protocol}`)
  assert.ok(parsed > 10_000, `inputs that parsed: ${parsed}`)
  assert.ok(roundTrips > 20_000, `round trips: ${roundTrips}`)
})

test('bad input over the wire: that connection gets the protocol error and is closed; the server and other clients are unaffected', async () => {
  const random = prng(SEED + 1)
  const g = generator(random)
  const bystander = new Redis({ host: '127.0.0.1', port: served.port, maxRetriesPerRequest: 0 })
  await bystander.set('fuzz:bystander', '0')
  // Only inputs that fail before any complete command: nothing they hold is ever run.
  const inputs: { readonly bytes: Uint8Array; readonly message: string }[] = []
  for (let tries = 0; inputs.length < 600 && tries < 100_000; tries++) {
    const bytes = g.int(2) === 0 ? g.hostile() : g.mutate(g.hostile())
    const outcome = parse(bytes, prng(tries))
    if (outcome.kind === 'protocol' && outcome.commandsBefore === 0) inputs.push({ bytes, message: outcome.message })
  }
  assert.is(inputs.length, 600)
  for (let batch = 0; batch < inputs.length; batch += 50) {
    await Promise.all(
      inputs.slice(batch, batch + 50).map(async ({ bytes, message }) => {
        const raw = await RawClient.open(served.port)
        raw.write(bytes)
        assert.ok(await raw.closedByServer(10_000), `closed after ${JSON.stringify(message)}`)
        assert.is(raw.text(), `-ERR ${message}\r\n`)
      }),
    )
    assert.is(await bystander.incr('fuzz:bystander'), batch / 50 + 1)
  }
  // Partial frames: the server waits for the rest, and answers once it comes.
  const partial = await RawClient.open(served.port)
  partial.write('*2\r\n$4\r\nECHO\r\n$5\r\nhel')
  await new Promise((r) => setTimeout(r, 50))
  partial.write('lo\r\n')
  assert.is(await partial.until((t) => t.endsWith('hello\r\n')), '$5\r\nhello\r\n')
  partial.close()
  bystander.disconnect()
})

test('1,000 concurrent connections are served', async () => {
  const sockets = await Promise.all(Array.from({ length: 1000 }, () => RawClient.open(served.port)))
  try {
    for (const s of sockets) s.write('PING\r\nINCR conc:n\r\n')
    const replies = await Promise.all(sockets.map((s) => s.until((t) => /^\+PONG\r\n:\d+\r\n$/.test(t), 20_000)))
    assert.ok(replies.every((r) => r.startsWith('+PONG\r\n:')))
    const counts = replies.map((r) => Number(/:(\d+)/.exec(r)![1])).sort((a, b) => a - b)
    assert.equal(counts, Array.from({ length: 1000 }, (_, i) => i + 1))
    // Every one of them is a client of the server at once.
    assert.is(served.handle.clients, 1000)
  } finally {
    for (const s of sockets) s.close()
  }
})

test.run()
