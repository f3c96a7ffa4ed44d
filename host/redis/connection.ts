/**
 * One connection to one Redis node, gearbox's own (node:net / node:tls): RESP2 out, and every
 * reply read once, by the Resp2Reader (exact kinds, a reply budget per command).
 *
 * Handshake: AUTH (username + password, or password alone) and SELECT db, pipelined with the
 * first commands' write; `prepare` (e.g. creating the function ACL user) runs before each
 * connect. Calls made while (re)connecting wait for the connection up to `connectTimeoutMs`.
 *
 * Failures: an error reply rejects with RedisReplyError (Redis's text); a reply over its budget
 * rejects with ReplyLimitError and is skipped as it streams (the connection stays usable); a
 * lost connection rejects every command in flight with ConnectionError and nothing is resent;
 * `commandTimeoutMs` rejects a command whose reply is late with ConnectionError (its reply,
 * when it comes, is read and dropped). A reconnecting connection tries again with backoff
 * (50 ms doubling up to `maxReconnectDelayMs`); a non-reconnecting one (dedicated) stays closed.
 */
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type ConnectionOptions as TlsOptions } from 'node:tls'
import { ClosedError, ConnectionError, GearboxError, RedisBlobReplyError, RedisReplyError, ReplyLimitError } from '../errors.js'
import { commandSizeBound, encodeCommand, encodeCommandInto } from '../resp/encoder.js'
import { RespPush } from '../resp/types.js'
import { Resp2ProtocolError, Resp2Reader, type ReplySink } from '../resp/reader.js'
import { NestedReplyError, type RedisArg, type RedisReply } from './types.js'
import { WriteBatcher } from './write-batch.js'

export interface NodeAddress {
  readonly host: string
  readonly port: number
}

export interface ConnectionConfig {
  /** Where to connect; a function is asked again at each connect (sentinel). */
  readonly address: NodeAddress | (() => Promise<NodeAddress>)
  readonly tls?: TlsOptions | undefined
  readonly username?: string | undefined
  readonly password?: string | undefined
  readonly db?: number | undefined
  readonly connectTimeoutMs: number
  readonly commandTimeoutMs?: number | undefined
  readonly maxReconnectDelayMs: number
  /** Reconnect after a loss (shared connections) or stay closed (dedicated ones). */
  readonly reconnect: boolean
  /** Runs before each connect attempt; a GearboxError it throws fails the waiting calls with it. */
  readonly prepare?: (() => Promise<void>) | undefined
  /**
   * 3: the handshake is `HELLO 3` (with AUTH inside) and replies are read as RESP3 (the RESP
   * server's forwarding for RESP3 clients; they may hold the codec's RESP3 kinds). Default 2.
   */
  readonly protocol?: 2 | 3 | undefined
  /** Keep `*-1` apart from `$-1` (NULL_ARRAY): forwarding connections pass replies through as sent. */
  readonly keepNullArrays?: boolean | undefined
  /**
   * Coalesce the commands written in one synchronous run into one socket write (flushed in a
   * microtask): forwarding connections carry other clients' pipelines, where a write per command
   * (or a corked writev of many small buffers) costs more than the proxying itself.
   */
  readonly coalesceWrites?: boolean | undefined
  /** Told about every connection failure (the backend keeps the last for messages). */
  readonly onError?: ((error: Error) => void) | undefined
  /**
   * A subscriber connection: pub/sub messages (RESP2 arrays `message`/`pmessage`) go here
   * instead of answering a command. Only for a connection used for (P)SUBSCRIBE alone.
   */
  readonly onPush?: ((message: readonly RedisReply[]) => void) | undefined
  /** Told each time the connection is ready (after the handshake): a subscriber subscribes again. */
  readonly onReady?: (() => void) | undefined
}

/** True for a RESP2 pub/sub message array: ['message', channel, payload] or ['pmessage', pattern, channel, payload]. */
function isPushMessage(value: RedisReply): value is RedisReply[] {
  if (!Array.isArray(value) || value.length < 3) return false
  const kind = value[0]
  const text = kind instanceof Uint8Array ? Buffer.from(kind.buffer, kind.byteOffset, kind.byteLength).toString('latin1') : kind
  return (text === 'message' && value.length === 3) || (text === 'pmessage' && value.length === 4)
}

/** coalesceWrites: the size of a burst's buffer (allocUnsafe takes buffers under 4 KiB from Node's pool). */
const ARENA_BYTES = 4095

/** One shared batcher: commands written in one tick leave in one write per socket. */
const batcher = new WriteBatcher()

/**
 * A forwarded command whose reply goes on as Redis' bytes (the RESP server's fast path): no value
 * is built, no promise made. See {@link RedisConnection.expectRawReply}.
 */
export interface RawReplyTarget {
  readonly raw: true
  /** Redis' reply: the bytes of one complete frame (an error reply too), `chunk[start, end)`. */
  deliver(chunk: Uint8Array, start: number, end: number): void
  /** A RESP3 push frame Redis sent ahead of the reply, while running the command (DEBUG PROTOCOL push). */
  push(bytes: Uint8Array): void
  /** No reply will come (the connection was lost). */
  fail(error: Error): void
}

interface Pending {
  readonly raw: false
  /** The command's name (for messages; decoded only when one is written). */
  readonly first: RedisArg | undefined
  readonly budget: number
  /** performance.now() when it was written. */
  readonly sentAt: number
  resolve(reply: RedisReply): void
  reject(error: Error): void
  /** Settled early (timeout): the reply is read and dropped when it comes. */
  settled: boolean
  timer: ReturnType<typeof setTimeout> | undefined
}

const enum Status {
  Connecting,
  Ready,
  Waiting,
  Closed,
}

/** RESP2 encoding of one command (the codec's encoder, host/resp). */
export { encodeCommand }

export function commandName(args: readonly RedisArg[]): string {
  const first = args[0]
  if (first === undefined) return ''
  return (typeof first === 'string' ? first : Buffer.from(first.buffer, first.byteOffset, first.byteLength).toString('utf8')).toUpperCase()
}

export class RedisConnection implements ReplySink {
  private socket: Socket | undefined
  private reader: Resp2Reader | undefined
  private status = Status.Waiting
  private readonly inFlight: (Pending | RawReplyTarget)[] = []
  /** Calls waiting for the connection: resolved on ready, rejected on failure/timeout. */
  private readonly waiters = new Set<{ ok: () => void; fail: (e: Error) => void }>()
  private attempts = 0
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined
  private lastError: Error | undefined
  private fatal: GearboxError | undefined
  private where: string
  /** Tunnel mode: every value read goes here, in order, with no command to match (pub/sub, MONITOR). */
  private tap: ((value: RedisReply) => void) | undefined

  constructor(private readonly config: ConnectionConfig) {
    this.where = typeof config.address === 'function' ? '(resolving)' : `${config.address.host}:${config.address.port}`
    this.open()
  }

  /** `host:port` of the node (for messages). */
  get description(): string {
    return this.where
  }

  get isClosed(): boolean {
    return this.status === Status.Closed
  }

  get isReady(): boolean {
    return this.status === Status.Ready
  }

  /** Replies owed by Redis on this connection. */
  get pendingCount(): number {
    return this.inFlight.length
  }

  /** True while a big or refused reply is streaming in: new commands would wait behind it. */
  get isDraining(): boolean {
    const reader = this.reader
    return reader !== undefined && (reader.isSkipping || reader.pendingCost > DRAINING_COST)
  }

  /**
   * True when the oldest reply owed has been awaited longer than a loopback round trip takes
   * (a slow command ahead, such as KEYS over a big keyspace): new commands would wait behind it.
   */
  get isStalled(): boolean {
    const oldest = this.inFlight[0]
    return oldest !== undefined && !oldest.raw && performance.now() - oldest.sentAt > STALLED_AFTER_MS
  }

  /**
   * Sends one command. `budget` bounds what its reply may cost the host (see resp/reader.ts);
   * the message of a refusal names `budgetName`.
   */
  send(args: readonly RedisArg[], budget = Infinity, budgetName = 'the reply budget'): Promise<RedisReply> {
    if (this.status === Status.Ready) return this.write(args, budget, budgetName)
    if (this.status === Status.Closed) {
      return Promise.reject(
        this.config.reconnect
          ? new ClosedError('the Redis connection is closed')
          : new ConnectionError(`the dedicated connection to Redis ${this.where} was lost; take a new one with dedicated()`),
      )
    }
    return this.whenReady().then(() => this.write(args, budget, budgetName))
  }

  /** Sends several commands back to back in one write (nothing of others in between). */
  sendMany(commands: readonly (readonly RedisArg[])[], budget = Infinity, budgetName = 'the reply budget'): Promise<RedisReply>[] {
    if (this.status === Status.Ready) return commands.map((args) => this.write(args, budget, budgetName))
    const ready = this.status === Status.Closed ? this.send(['PING']) : this.whenReady()
    // Once ready, the writes happen in one synchronous run: nothing interleaves.
    const written = ready.then(() => commands.map((args) => this.write(args, budget, budgetName)))
    return commands.map((_, i) => written.then((replies) => replies[i]!))
  }

  private write(args: readonly RedisArg[], budget: number, budgetName: string): Promise<RedisReply> {
    const socket = this.socket!
    const first = args[0]
    return new Promise<RedisReply>((resolve, reject) => {
      const pending: Pending = {
        raw: false,
        first,
        budget,
        sentAt: performance.now(),
        resolve,
        reject: (error) => {
          if (error instanceof ReplyLimitError) {
            reject(new ReplyLimitError(`the reply to ${commandName([first ?? ''])} exceeded ${budgetName}; it was skipped, not read`))
          } else reject(error)
        },
        settled: false,
        timer: undefined,
      }
      const timeout = this.config.commandTimeoutMs
      if (timeout !== undefined) {
        pending.timer = setTimeout(() => {
          pending.settled = true
          reject(
            new ConnectionError(
              `no reply to ${commandName([first ?? ''])} from Redis ${this.where} within commandTimeoutMs (${timeout} ms); the command may or may not have run`,
            ),
          )
        }, timeout)
      }
      this.inFlight.push(pending)
      this.writeCommand(socket, args)
    })
  }

  /** Commands encoded but not yet written (coalesceWrites), and their bytes. */
  private outgoing: Uint8Array[] = []
  private outgoingBytes = 0

  /** coalesceWrites: the buffer commands are encoded into until the flush, and its bytes used. */
  private arena: Buffer | undefined
  private arenaUsed = 0
  private flushScheduled = false

  private writeCommand(socket: Socket, args: readonly RedisArg[]): void {
    if (this.config.coalesceWrites !== true) {
      batcher.hold(socket)
      socket.write(encodeCommand(args))
      return
    }
    // Encoded straight into one buffer per flush: no allocation per command, one write per burst
    // (flushed after the I/O events of this loop turn, so several clients' commands share it).
    const arena = this.reserve(socket, commandSizeBound(args))
    this.arenaUsed = encodeCommandInto(args, arena, this.arenaUsed)
  }

  /** coalesceWrites: an arena with `need` bytes free at arenaUsed; the flush is scheduled. */
  private reserve(socket: Socket, need: number): Buffer {
    let arena = this.arena
    if (arena === undefined || this.arenaUsed + need > arena.length) {
      if (arena !== undefined && this.arenaUsed > 0) {
        this.outgoing.push(arena.subarray(0, this.arenaUsed))
        this.outgoingBytes += this.arenaUsed
      }
      arena = this.arena = Buffer.allocUnsafe(Math.max(ARENA_BYTES, need))
      this.arenaUsed = 0
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(() => this.flushOutgoing(socket))
    }
    return arena
  }

  /**
   * Fast path of the RESP server: the next command written on this connection is one whose reply
   * `target` gets as Redis' bytes. Only on a ready connection outside tunnel mode; the command's
   * bytes follow with {@link writeFrames} in the same synchronous run (nothing else written in
   * between), so that replies and targets stay in step.
   */
  expectRawReply(target: RawReplyTarget): void {
    this.inFlight.push(target)
  }

  /** Writes complete RESP command frames as they are (see {@link expectRawReply}); false when not ready. */
  writeFrames(bytes: Uint8Array): boolean {
    const socket = this.socket
    if (this.status !== Status.Ready || socket === undefined) return false
    if (this.config.coalesceWrites !== true) {
      batcher.hold(socket)
      socket.write(Buffer.from(bytes))
      return true
    }
    const arena = this.reserve(socket, bytes.length)
    arena.set(bytes, this.arenaUsed)
    this.arenaUsed += bytes.length
    return true
  }

  private flushOutgoing(socket: Socket): void {
    this.flushScheduled = false
    if (this.arena !== undefined && this.arenaUsed > 0) {
      this.outgoing.push(this.arena.subarray(0, this.arenaUsed))
      this.outgoingBytes += this.arenaUsed
    }
    // The socket keeps the written bytes until they are sent: the next burst gets a new buffer.
    this.arena = undefined
    this.arenaUsed = 0
    const chunks = this.outgoing
    if (chunks.length === 0) return
    const size = this.outgoingBytes
    this.outgoing = []
    this.outgoingBytes = 0
    if (socket.destroyed) return
    socket.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))
  }

  private whenReady(): Promise<void> {
    if (this.fatal) return Promise.reject(this.fatal)
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        ok: () => {
          clearTimeout(timer)
          this.waiters.delete(waiter)
          resolve()
        },
        fail: (e: Error) => {
          clearTimeout(timer)
          this.waiters.delete(waiter)
          reject(e)
        },
      }
      const timer = setTimeout(() => {
        const detail = this.lastError ? ` (last error: ${this.lastError.message})` : ''
        waiter.fail(
          new ConnectionError(
            `Redis ${this.where} is not reachable: not connected within connectTimeoutMs (${this.config.connectTimeoutMs} ms)${detail}`,
          ),
        )
      }, this.config.connectTimeoutMs)
      this.waiters.add(waiter)
    })
  }

  /**
   * Switches to tunnel mode (for a subscribed or monitoring client of the RESP server): from now
   * on every value Redis sends, replies and messages alike, goes to `onValue` in order. Call it
   * when no reply is owed; send with {@link sendRaw} afterwards.
   */
  startTunnel(onValue: (value: RedisReply) => void): void {
    this.tap = onValue
  }

  /** Reads RESP3 from now on (before sending HELLO 3 on this connection). */
  acceptResp3(): void {
    if (this.reader) this.reader.resp3 = true
  }

  /** Tunnel mode: writes a command; what Redis answers reaches the tunnel's `onValue`. */
  sendRaw(args: readonly RedisArg[]): boolean {
    const socket = this.socket
    if (this.status !== Status.Ready || socket === undefined) return false
    this.writeCommand(socket, args)
    return true
  }

  /** Called once when the connection is closed for good or lost (tunnel and pinned users). */
  onLost: (() => void) | undefined

  // ReplySink: the reader's view of the command whose reply comes next.
  budget(): number {
    const head = this.inFlight[0]
    return head === undefined || head.raw ? Infinity : head.budget
  }

  rawNext(): boolean {
    return this.inFlight[0]?.raw === true && this.tap === undefined
  }

  rawReply(chunk: Uint8Array, start: number, end: number): void {
    // A push on a shared connection (no tracking, no subscriptions there) comes from the command being run.
    if (chunk[start] === PUSH_BYTE) (this.inFlight[0] as RawReplyTarget).push(chunk.subarray(start, end))
    else (this.inFlight.shift() as RawReplyTarget).deliver(chunk, start, end)
  }

  /** RESP3 push frames outside tunnel mode (e.g. CLIENT TRACKING invalidations): not replies to a command. */
  onResp3Push: ((value: RedisReply) => void) | undefined

  reply(value: RedisReply): void {
    if (this.tap && this.inFlight.length === 0) {
      this.tap(value)
      return
    }
    if (this.tap === undefined && (value as unknown) instanceof RespPush) {
      this.onResp3Push?.(value)
      return
    }
    // A subscriber connection (config.onPush): RESP2 pub/sub messages are not replies either.
    const onPush = this.config.onPush
    if (onPush !== undefined && isPushMessage(value)) {
      onPush(value)
      return
    }
    const pending = this.inFlight.shift()
    if (!pending) return
    if (pending.raw) {
      // Not reached: the reader hands a raw target's reply over as bytes (rawNext).
      pending.fail(new ConnectionError(`a reply from Redis ${this.where} was read as a value where its bytes were expected`))
      return
    }
    if (pending.timer) clearTimeout(pending.timer)
    if (pending.settled) return
    if (value instanceof NestedReplyError) pending.reject(value.blob ? new RedisBlobReplyError(value.message) : new RedisReplyError(value.message))
    else pending.resolve(value)
  }

  refused(): void {
    const pending = this.inFlight.shift()
    if (!pending) return
    if (pending.raw) {
      pending.fail(new ReplyLimitError())
      return
    }
    if (pending.timer) clearTimeout(pending.timer)
    if (!pending.settled) pending.reject(new ReplyLimitError())
  }

  private open(): void {
    if (this.status === Status.Closed) return
    this.status = Status.Connecting
    void this.connectOnce().then(
      (socket) => {
        if (this.status === Status.Closed) {
          socket.destroy()
          return
        }
        this.socket = socket
        this.status = Status.Ready
        this.attempts = 0
        this.fatal = undefined
        this.config.onReady?.()
        for (const waiter of [...this.waiters]) waiter.ok()
      },
      (error: Error) => {
        this.lastError = error
        this.config.onError?.(error)
        if (error instanceof GearboxError && !(error instanceof ConnectionError)) {
          // Not a network failure (e.g. the function user cannot be created): tell the waiting calls now.
          this.fatal = error
          for (const waiter of [...this.waiters]) waiter.fail(error)
        }
        this.lost()
      },
    )
  }

  /** Connects, authenticates and selects the db. */
  private async connectOnce(): Promise<Socket> {
    await this.config.prepare?.()
    const address = typeof this.config.address === 'function' ? await this.config.address() : this.config.address
    this.where = `${address.host}:${address.port}`
    const socket = await new Promise<Socket>((resolve, reject) => {
      const tls = this.config.tls
      const s: Socket = tls
        ? tlsConnect({ servername: address.host, ...tls, host: address.host, port: address.port })
        : netConnect({ host: address.host, port: address.port })
      const timer = setTimeout(() => {
        s.destroy()
        reject(new ConnectionError(`connect to ${this.where} timed out after ${this.config.connectTimeoutMs} ms`))
      }, this.config.connectTimeoutMs)
      s.once(tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer)
        s.off('error', onError)
        resolve(s)
      })
      const onError = (e: Error): void => {
        clearTimeout(timer)
        s.destroy()
        reject(e)
      }
      s.once('error', onError)
    })
    socket.setNoDelay(true)
    socket.setKeepAlive(true, 30_000)
    const reader = new Resp2Reader(this)
    reader.resp3 = this.config.protocol === 3
    reader.nullArrays = this.config.keepNullArrays === true
    this.reader = reader
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.feed(chunk)
      } catch (error) {
        // A stream we cannot read any more: drop the connection (its commands fail, not resent).
        this.lastError = error instanceof Resp2ProtocolError ? error : new Error(String(error))
        socket.destroy()
      }
    })
    socket.on('error', (e: Error) => {
      this.lastError = e
      this.config.onError?.(e)
    })
    socket.once('close', () => {
      if (this.socket === socket) this.onClose()
    })
    const handshake: RedisArg[][] = []
    if (this.config.protocol === 3) {
      const { username, password } = this.config
      handshake.push(password === undefined ? ['HELLO', '3'] : ['HELLO', '3', 'AUTH', username ?? 'default', password])
    } else if (this.config.password !== undefined) {
      handshake.push(this.config.username !== undefined ? ['AUTH', this.config.username, this.config.password] : ['AUTH', this.config.password])
    }
    if (this.config.db !== undefined && this.config.db !== 0) handshake.push(['SELECT', String(this.config.db)])
    try {
      await Promise.all(handshake.map((args) => this.write(args, 64 * 1024, 'the handshake budget')))
    } catch (error) {
      socket.destroy()
      throw error instanceof RedisReplyError ? new ConnectionError(`${this.where}: ${error.message}`) : error
    }
    return socket
  }

  private onClose(): void {
    this.socket = undefined
    this.reader = undefined
    const lost = this.inFlight.splice(0)
    for (const pending of lost) {
      if (pending.raw) {
        pending.fail(
          new ConnectionError(
            `connection to Redis ${this.where} closed before the reply arrived; the command may or may not have run (gearbox does not resend it)`,
          ),
        )
        continue
      }
      if (pending.timer) clearTimeout(pending.timer)
      if (pending.settled) continue
      pending.reject(
        new ConnectionError(
          `connection to Redis ${this.where} closed before the reply to ${commandName([pending.first ?? ''])} arrived; ` +
            'the command may or may not have run (gearbox does not resend it)',
        ),
      )
    }
    this.lost()
  }

  private lost(): void {
    if (this.status === Status.Closed) return
    if (!this.config.reconnect) {
      this.status = Status.Closed
      this.onLost?.()
      const error = this.fatal ?? new ConnectionError(`the dedicated connection to Redis ${this.where} was lost; take a new one with dedicated()`)
      for (const waiter of [...this.waiters]) waiter.fail(error)
      return
    }
    this.status = Status.Waiting
    const delay = Math.min(50 * 2 ** Math.min(this.attempts, 10), this.config.maxReconnectDelayMs)
    this.attempts++
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      this.open()
    }, delay)
  }

  /**
   * Closes the connection: QUIT when `graceful` (pending replies arrive first, up to 1 s), else
   * at once (commands in flight reject with ConnectionError).
   */
  async close(graceful = true): Promise<void> {
    if (this.status === Status.Closed) return
    const socket = this.socket
    const wasReady = this.status === Status.Ready
    this.status = Status.Closed
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    for (const waiter of [...this.waiters]) waiter.fail(new ClosedError('the Redis connection was closed'))
    if (!socket) return
    if (graceful && wasReady) {
      await Promise.race([
        this.write(['QUIT'], 1024, 'QUIT').catch(() => undefined),
        new Promise((resolve) => setTimeout(resolve, 1000)),
      ])
    }
    socket.destroy()
  }
}

const PUSH_BYTE = 0x3e // '>'

/** A reply past this cost counts as draining (new commands go to another connection). */
const DRAINING_COST = 1024 * 1024
/** A reply awaited longer than this counts as stalled (new commands go to another connection). */
const STALLED_AFTER_MS = 5
