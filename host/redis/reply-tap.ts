/**
 * Exact replies out of ioredis.
 *
 * ioredis 6 decodes RESP status replies and bulk strings to the same thing (a Buffer, or a
 * string with utf8 encoding) and integers to JS numbers (digits accumulated in a double, so
 * values beyond 2^53 are silently rounded; `stringNumbers` would make every integer a string,
 * indistinguishable from a status). A bridge that must proxy replies faithfully needs neither
 * loss, so gearbox reads each reply itself:
 *
 * - The connectors below tap every socket they open: the data listener ioredis installs is
 *   wrapped so that each chunk is first read by a {@link Resp2Reader}, then handed to ioredis one
 *   top-level reply at a time. While ioredis decodes the bytes of reply N (which resolves the
 *   command that reply belongs to, synchronously), `delivering` holds our reading of reply N.
 * - {@link TappedCommand} (the only command class gearbox sends) takes that reading in
 *   `transformReply` instead of ioredis's value. Commands ioredis sends for itself (handshake,
 *   CLUSTER SLOTS) are untouched.
 * - A command written to a socket that closes before its reply arrived is rejected with
 *   ConnectionError (ioredis would otherwise hold it until a reconnect and then drop or resend
 *   it).
 *
 * If the reader ever meets bytes it does not understand, that socket falls back to converting
 * ioredis's own values (status and bulk then both arrive as bytes).
 *
 * This leans on ioredis 6.0.0 internals (pinned exactly): its DataHandler installs the socket's
 * data listener with `prependListener`, its decoder completes replies where Resp2Reader says,
 * and it resolves a command synchronously inside that listener. test/redis/reply-tap.test.ts
 * checks the pairing against ioredis's decoder for every chunk split; the integration tests
 * fail (status replies arriving as bytes) if an upgrade changes any of it.
 */
import type { Socket } from 'node:net'
import { Command, SentinelConnector } from 'ioredis'
import StandaloneConnectorModule from 'ioredis/built/connectors/StandaloneConnector.js'
import { ConnectionError } from '../errors.js'
import { Resp2ProtocolError, Resp2Reader } from './resp2-reader.js'
import { NestedReplyError, type RedisArg, type RedisReply } from './types.js'

const NOTHING: unique symbol = Symbol('no reply being delivered')
let delivering: RedisReply | typeof NOTHING = NOTHING

export type DataListener = (chunk: Buffer) => void

/**
 * Wraps ioredis's data listener so that each reply is read by us first (see the module comment).
 * Exported for tests.
 */
export function tapListener(listener: DataListener): DataListener {
  let chunk: Buffer = Buffer.alloc(0)
  let start = 0
  let broken = false
  const reader = new Resp2Reader((reply, end) => {
    delivering = reply
    try {
      listener(chunk.subarray(start, end))
    } finally {
      delivering = NOTHING
    }
    start = end
  })
  return (data: Buffer) => {
    if (broken) return listener(data)
    chunk = data
    start = 0
    try {
      reader.feed(data)
    } catch (err) {
      broken = true
      if (!(err instanceof Resp2ProtocolError)) throw err
    }
    if (start < data.length) listener(data.subarray(start))
  }
}

interface TrackedSocket {
  readonly inFlight: Set<TappedCommand>
  /** `host:port` of the peer, read while connected (a closed socket no longer knows it). */
  address: string | undefined
}
const tracked = new WeakMap<object, TrackedSocket>()

/** Installs the reply tap and in-flight tracking on a freshly created socket. */
function tapSocket(socket: Socket): Socket {
  type Prepend = (this: Socket, event: string | symbol, listener: (...args: unknown[]) => void) => Socket
  const original = socket.prependListener as unknown as Prepend
  let tapped = false
  const prepend: Prepend = function (event, listener) {
    if (event !== 'data' || tapped) return original.call(this, event, listener)
    tapped = true
    return original.call(this, 'data', tapListener(listener as DataListener) as (...args: unknown[]) => void)
  }
  socket.prependListener = prepend as unknown as Socket['prependListener']
  const state: TrackedSocket = { inFlight: new Set(), address: undefined }
  tracked.set(socket, state)
  socket.once('close', () => {
    const address = state.address ?? 'server'
    for (const command of state.inFlight) {
      if (command.isSettled) continue
      command.reject(
        new ConnectionError(
          `connection to Redis ${address} closed before the reply to ${command.name.toUpperCase()} arrived; ` +
            `the command may or may not have run (gearbox does not resend it)`,
        ),
      )
    }
    state.inFlight.clear()
  })
  return socket
}

const StandaloneConnector = StandaloneConnectorModule.default

/** ioredis's standalone connector with the reply tap installed on each socket. */
export class TappedStandaloneConnector extends StandaloneConnector {
  // ioredis constructs connectors from its whole options object (typed `unknown` there).
  constructor(options: unknown) {
    super(options as ConstructorParameters<typeof StandaloneConnector>[0])
  }

  override connect(emitter: Parameters<InstanceType<typeof StandaloneConnector>['connect']>[0]): Promise<Socket> {
    return super.connect(emitter).then((stream) => tapSocket(stream as Socket))
  }
}

/** ioredis's sentinel connector with the reply tap installed on each socket. */
export class TappedSentinelConnector extends SentinelConnector {
  constructor(options: unknown) {
    super(options as ConstructorParameters<typeof SentinelConnector>[0])
  }

  override connect(emitter: Parameters<SentinelConnector['connect']>[0]): Promise<Socket> {
    return super.connect(emitter).then((stream) => tapSocket(stream as Socket))
  }
}

/** Converts an ioredis value (the fallback path, without status/bulk distinction). */
export function fromIoredisValue(value: unknown): RedisReply {
  if (value === null || value === undefined) return null
  if (value instanceof Uint8Array) return new Uint8Array(value.buffer, value.byteOffset, value.length)
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') return value
  if (Array.isArray(value)) return value.map(fromIoredisValue)
  if (value instanceof Error) return new NestedReplyError(value.message)
  return String(value)
}

// ioredis rewrites the arguments of these commands when they look like objects (a Buffer does):
// its transformers are keyed by the lowercase name, so these names are sent upper-cased.
const ARGUMENT_TRANSFORMED = new Set(['mset', 'msetnx', 'hset', 'hmset'])

function toCommandArg(arg: RedisArg): string | Buffer {
  return typeof arg === 'string' ? arg : Buffer.from(arg.buffer, arg.byteOffset, arg.length)
}

/**
 * A command whose reply is gearbox's own reading of the wire (see the module comment).
 * `args[0]` is the command name; its case is kept, so Redis's error texts echo it as given.
 */
export class TappedCommand extends Command {
  private socket: object | undefined
  /** The reply as a {@link RedisReply}; ConnectionError/ReplyError rejections pass through as is. */
  readonly reply: Promise<RedisReply>

  constructor(args: readonly RedisArg[], slot?: number) {
    const first = args[0]
    let name = first === undefined ? '' : typeof first === 'string' ? first : Buffer.from(first).toString('utf8')
    if (ARGUMENT_TRANSFORMED.has(name)) name = name.toUpperCase()
    super(name, args.slice(1).map(toCommandArg), { replyEncoding: null })
    // Route by gearbox's own slot computation (ioredis's `slot` field is private in its types).
    if (slot !== undefined) (this as unknown as { slot: number }).slot = slot
    this.reply = (this.promise as Promise<RedisReply>).finally(() => this.untrack())
  }

  override toWritable(socket: object): string | Buffer {
    const state = tracked.get(socket)
    if (state) {
      const peer = socket as Socket
      state.address ??= peer.remoteAddress === undefined ? undefined : `${peer.remoteAddress}:${peer.remotePort ?? '?'}`
      state.inFlight.add(this)
      this.socket = socket
    }
    return super.toWritable(socket)
  }

  override transformReply(result: Buffer | Buffer[]): ReturnType<Command['transformReply']> {
    const reply = delivering === NOTHING ? fromIoredisValue(result) : delivering
    delivering = NOTHING
    // ioredis's declared return type knows only strings and Buffers; the promise carries RedisReply.
    return reply as unknown as ReturnType<Command['transformReply']>
  }

  private untrack(): void {
    if (this.socket) tracked.get(this.socket)?.inFlight.delete(this)
  }
}
