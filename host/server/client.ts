/**
 * One client of the RESP server: reads its commands with the codec's request reader, runs them,
 * and writes the replies in order (pipelining), RESP2 or RESP3 as the client chose with HELLO.
 *
 * Order: forwarded commands are sent as they arrive (one shared connection per master keeps them
 * in order); commands that change the client's state or run gears (AUTH, HELLO, RESET, RG.*, the
 * first stateful command) wait until every earlier command of the client has replied, and later
 * commands wait for them, as they would in Redis' single thread.
 *
 * Fast path: while the client is in none of those states (no pinned connection, MULTI, WATCH or
 * pending barrier), on a standalone backend, a command that is not RG.*, not one of the commands
 * handled here, and that the command path leaves alone goes to the shared connection as the bytes
 * the client sent (the request reader offers canonical frames before decoding them); its reply
 * comes back as Redis' bytes into the same queue of replies, so order holds across both paths.
 * Consecutive such commands of one read go out in one write.
 *
 * Pinning: the first stateful command (MULTI, WATCH, SELECT, blocking commands, SUBSCRIBE,
 * CLIENT ...) gives the client a backend connection of its own, kept until RESET or disconnect;
 * from then on all its forwarded commands use it. SUBSCRIBE/PSUBSCRIBE/SSUBSCRIBE and MONITOR turn
 * that connection into a tunnel: everything Redis sends is passed on as it comes (RESP3 clients
 * get pub/sub messages as push frames).
 */
import type { Socket } from 'node:net'
import { ConnectionError, RedisBlobReplyError, RedisReplyError } from '../errors.js'
import type { RawReplyTarget, RedisConnection } from '../redis/connection.js'
import { Resp2ProtocolError, Resp2Reader, type ReplySink } from '../resp/reader.js'
import { encodeError, encodeReply, RespMap, RespPush, RespVerbatim, type RespProtocol, type RespValue } from '../resp/encoder.js'
import { NestedReplyError, type RedisReply } from '../resp/types.js'
import type { PathClient } from './command-path.js'
import type { ClientCredentials } from './forward.js'
import type { ServerContext } from './server.js'
import { commandDocsEntries, commandInfoEntries, isRgCommandName, rgInfoSection } from './command-docs.js'
import { runRgCommand } from './rg-commands.js'

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

/** Commands that need a backend connection of the client's own. */
const STATEFUL = new Set([
  'MULTI', 'EXEC', 'DISCARD', 'WATCH', 'UNWATCH', 'SELECT', 'CLIENT', 'READONLY', 'READWRITE', 'ASKING',
  'BLPOP', 'BRPOP', 'BLMOVE', 'BRPOPLPUSH', 'BLMPOP', 'BZPOPMIN', 'BZPOPMAX', 'BZMPOP', 'WAIT', 'WAITAOF',
  'SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE', 'MONITOR',
])
const TUNNEL = new Set(['SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE', 'MONITOR'])
/** Commands #dispatch handles itself or that may need a pinned connection: never on the fast path. */
const NOT_FAST = new Set([...STATEFUL, 'QUIT', 'HELLO', 'AUTH', 'RESET', 'INFO', 'COMMAND', 'XREAD', 'XREADGROUP'])
const PUSH_KINDS = new Set(['message', 'pmessage', 'smessage', 'subscribe', 'psubscribe', 'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe'])

/** The command name, upper-cased (ASCII fast path: this runs for every command). */
function commandName(bytes: Uint8Array, start = 0, end = bytes.length): string {
  if (end - start > 32) return text(bytes.subarray(start, end)).toUpperCase()
  let name = ''
  for (let i = start; i < end; i++) {
    const c = bytes[i]!
    if (c >= 0x80) return text(bytes.subarray(start, end)).toUpperCase()
    name += String.fromCharCode(c >= 0x61 && c <= 0x7a ? c - 32 : c)
  }
  return name
}

/** XREAD / XREADGROUP with BLOCK block; without it they are stateless. */
function isBlockingStream(name: string, args: readonly Uint8Array[]): boolean {
  if (name !== 'XREAD' && name !== 'XREADGROUP') return false
  return args.some((a) => a.length === 5 && text(a).toUpperCase() === 'BLOCK')
}

interface Slot {
  bytes: Uint8Array | undefined
  done: boolean
  /** Close the connection once this reply is written (QUIT). */
  closeAfter: boolean
  /** Called once this reply and every earlier one were written (barriers wait on it). */
  written?: (() => void)[]
}

const noop = (): void => {}

/** A fast-path command's place in the reply order; Redis' reply bytes fill it. */
class ForwardedSlot implements Slot, RawReplyTarget {
  readonly raw = true
  bytes: Uint8Array | undefined = undefined
  done = false
  readonly closeAfter = false
  written?: (() => void)[]
  /** The reply as `chunk[start, end)` of the backend's read (kept as a range: adjacent replies go out as one piece). */
  chunk: Uint8Array | undefined = undefined
  start = 0
  end = 0

  /** RESP3 pushes Redis sent while running the command: they go out just before its reply. */
  #pushes: Uint8Array[] | undefined

  constructor(private readonly client: ClientSession) {}

  deliver(chunk: Uint8Array, start: number, end: number): void {
    const pushes = this.#pushes
    if (pushes === undefined) this.client.settleForwarded(this, chunk, start, end)
    else {
      const bytes = Buffer.concat([...pushes, chunk.subarray(start, end)])
      this.client.settleForwarded(this, bytes, 0, bytes.length)
    }
  }

  push(bytes: Uint8Array): void {
    ;(this.#pushes ??= []).push(bytes)
  }

  fail(error: Error): void {
    const bytes = encodeError(errorText(error))
    this.client.settleForwarded(this, bytes, 0, bytes.length)
  }
}

/** Replies owed to one client before its socket is no longer read (pipelining backpressure). */
const MAX_QUEUED_COMMANDS = 10_000

export class ClientSession implements ReplySink {
  readonly id: number
  protocol: RespProtocol = 2
  credentials: ClientCredentials | undefined
  #pinned: RedisConnection | undefined
  #tunnel = false
  #inMulti = false
  /**
   * Cluster: MULTI answered here, not sent yet: the transaction goes to the master of its first
   * command's keys (as cluster clients send it), pinned then.
   */
  #deferredMulti = false
  /** WATCH is in effect (until EXEC, DISCARD, UNWATCH or RESET). */
  #watching = false
  #closed = false
  readonly #queue: Slot[] = []
  /** Replies ready to write, coalesced into one socket write at the end of the current run (a microtask). */
  #outgoing: Uint8Array[] = []
  #outgoingBytes = 0
  /** Bytes of replies ready but waiting behind an earlier reply. */
  #heldBytes = 0
  /** Reading is paused (too many replies owed). */
  #paused = false
  /** Set while a barrier command is pending: later commands start after it. */
  #gate: Promise<void> | undefined
  readonly #reader: Resp2Reader
  /** Executions this client is running (drain waits for them). */
  running = 0
  /** Fast path: the shared connection, for the credentials and protocol it was taken for. */
  #fastConn: RedisConnection | undefined
  #fastFor: { readonly credentials: ClientCredentials | undefined; readonly protocol: RespProtocol } | undefined
  /** Fast path: frames taken from the current chunk and not yet written, `chunk[start, end)`. */
  #runConn: RedisConnection | undefined
  #runChunk: Uint8Array | undefined
  #runStart = 0
  #runEnd = 0

  constructor(
    readonly socket: Socket,
    private readonly server: ServerContext,
    id: number,
  ) {
    this.id = id
    const limits = server.limits
    this.#reader = new Resp2Reader(this, {
      request: true,
      maxBulkLength: limits.maxBulkLength,
      maxArrayLength: limits.maxArrayLength,
      maxInlineLength: limits.maxInlineLength,
    })
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      if (this.#closed) return
      try {
        this.#reader.feed(chunk)
        this.#writeRun()
      } catch (err) {
        this.#writeRun()
        // Redis answers a protocol error and closes the connection.
        const message = err instanceof Resp2ProtocolError ? err.message : 'Protocol error'
        this.#protocolError(`ERR ${message}`)
      }
    })
    socket.on('error', noop)
    socket.once('close', () => this.#teardown())
  }

  get closed(): boolean {
    return this.#closed
  }

  // ---- ReplySink: the request reader's commands --------------------------------------------

  budget(): number {
    return this.server.limits.maxQueryBytes
  }

  reply(value: RedisReply): void {
    if (this.#closed || !Array.isArray(value) || value.length === 0) return
    // Frames taken before this command go to Redis before it.
    if (this.#runConn !== undefined) this.#writeRun()
    this.#dispatch(value as Uint8Array[])
  }

  /** The fast path (see the file comment): takes the command `chunk[start, end)` as bytes when it may. */
  frame(chunk: Uint8Array, start: number, end: number, nameStart: number, nameEnd: number): boolean {
    if (this.#closed || this.#tunnel || this.#deferredMulti || this.#inMulti || this.#watching || this.#pinned !== undefined || this.#gate !== undefined) {
      return false
    }
    const name = this.#frameName(chunk, nameStart, nameEnd)
    if (name === undefined) return false
    if (this.server.commandPath?.passes(name) === false) return false
    const conn = this.#readyConnection()
    if (conn === undefined) return false
    if (this.#runConn !== conn || this.#runChunk !== chunk || this.#runEnd !== start) {
      if (this.#runConn !== undefined) this.#writeRun()
      this.#runConn = conn
      this.#runChunk = chunk
      this.#runStart = start
    }
    this.#runEnd = end
    const slot = new ForwardedSlot(this)
    this.#push(slot)
    conn.expectRawReply(slot)
    this.server.stats.forwardedAsBytes++
    return true
  }

  /** The last framed command's name, as sent and upper-cased, and whether it may take the fast path at all. */
  readonly #lastNameBytes = new Uint8Array(16)
  #lastNameLength = -1
  #lastName: string | undefined

  /** The upper-cased name of a framed command, or undefined when the command never takes the fast path. */
  #frameName(chunk: Uint8Array, start: number, end: number): string | undefined {
    const length = end - start
    const last = this.#lastNameBytes
    if (length === this.#lastNameLength) {
      let i = 0
      while (i < length && chunk[start + i] === last[i]) i++
      if (i === length) return this.#lastName
    }
    const name = commandName(chunk, start, end)
    const fast = !NOT_FAST.has(name) && !name.startsWith('RG.')
    if (length <= last.length) {
      last.set(chunk.subarray(start, end))
      this.#lastNameLength = length
      this.#lastName = fast ? name : undefined
    }
    return fast ? name : undefined
  }

  #readyConnection(): RedisConnection | undefined {
    const cached = this.#fastConn
    const wanted = this.#fastFor
    if (cached !== undefined && wanted !== undefined && wanted.credentials === this.credentials && wanted.protocol === this.protocol && cached.isReady) {
      return cached
    }
    const conn = this.server.forwarder.readyConnection(this.credentials, this.protocol)
    this.#fastConn = conn
    this.#fastFor = { credentials: this.credentials, protocol: this.protocol }
    return conn
  }

  /** Writes the frames taken so far (one write for consecutive commands of one chunk). */
  #writeRun(): void {
    const conn = this.#runConn
    if (conn === undefined) return
    const bytes = this.#runChunk!.subarray(this.#runStart, this.#runEnd)
    this.#runConn = undefined
    this.#runChunk = undefined
    // Not ready any more cannot happen within one synchronous run; if it did, the replies owed fail with the connection.
    conn.writeFrames(bytes)
  }

  /** A fast-path reply arrived (or failed), `chunk[start, end)`: written in its turn. */
  settleForwarded(slot: ForwardedSlot, chunk: Uint8Array, start: number, end: number): void {
    slot.chunk = chunk
    slot.start = start
    slot.end = end
    slot.done = true
    this.#heldBytes += end - start
    this.#flush()
  }

  refused(): void {
    // Over the query buffer cap: Redis closes such a client.
    this.#protocolError('ERR Protocol error: query buffer limit reached')
  }

  #protocolError(message: string): void {
    if (this.#closed) return
    // The error goes after the replies still owed, then the connection closes.
    this.#enqueueValue(Promise.resolve(new NestedReplyError(message)), true)
    this.#closed = true
    this.#flush()
  }

  // ---- dispatch ----------------------------------------------------------------------------

  #dispatch(args: Uint8Array[]): void {
    const name = commandName(args[0]!)
    if (this.#tunnel) return this.#tunnelCommand(name, args)
    if (this.#deferredMulti && this.#deferredTransaction(name, args)) return
    switch (name) {
      case 'QUIT':
        this.#enqueueValue(Promise.resolve('OK'), true)
        this.#closed = true
        return
      case 'HELLO':
        return this.#barrier(() => this.#hello(args))
      case 'AUTH':
        return this.#barrier(() => this.#auth(args))
      case 'RESET':
        return this.#barrier(async () => {
          await this.#reset()
          return 'RESET'
        })
      case 'INFO':
        return this.#barrier(() => this.#info(args))
      case 'COMMAND':
        if (args.length >= 2) {
          const sub = text(args[1]!).toUpperCase()
          if (sub === 'INFO' || sub === 'DOCS') return this.#barrier(() => this.#command(sub, args))
        }
        break
    }
    if (name.startsWith('RG.')) {
      const inMulti = this.#inMulti
      return this.#barrier(async () => {
        // Redis fails such a transaction at EXEC (EXECABORT): sending it the command makes it do so.
        if (inMulti) await this.#pinned?.send(args).catch(noop)
        this.running++
        try {
          const run = (): Promise<RespValue> => runRgCommand(this.server.gears, name, args, { inMulti })
          const path = this.server.commandPath
          // A sync trigger holds its shard while it runs (other clients' commands there wait).
          if (path !== undefined && !inMulti && (name === 'RG.TRIGGER' || name === 'RG.TRIGGERONKEY') && args.length >= 2) {
            const key = name === 'RG.TRIGGERONKEY' && args[2] !== undefined ? text(args[2]) : undefined
            return await path.withTrigger(text(args[1]!), key, run)
          }
          return await run()
        } finally {
          this.running--
        }
      })
    }
    const path = this.server.commandPath
    if (path !== undefined) {
      // A hook or a linked registration applies: the command path runs it (later commands wait).
      const plan = path.plan(name, args, this.#inMulti)
      if (plan !== undefined) {
        const inMulti = this.#inMulti
        return this.#barrier(() => {
          this.running++
          return path.run(plan, args, this.#pathClient(inMulti)).finally(() => this.running--)
        })
      }
    }
    if (name === 'MULTI' && this.server.forwarder.mode === 'cluster' && !this.#inMulti) {
      this.#inMulti = true
      this.#deferredMulti = true
      return this.#enqueueValue(Promise.resolve('OK'))
    }
    if (name === 'MULTI') this.#inMulti = true
    else if (name === 'EXEC' || name === 'DISCARD') this.#inMulti = false
    if (name === 'WATCH') this.#watching = true
    else if (name === 'EXEC' || name === 'DISCARD' || name === 'UNWATCH') this.#watching = false
    if (name === 'CLIENT' && args.length >= 2 && text(args[1]!).toUpperCase() === 'SETINFO') {
      // Library name/version (Redis 7.2): kept off the shared connections, answered here.
      return this.#enqueueValue(Promise.resolve('OK'))
    }
    if (TUNNEL.has(name)) {
      return this.#barrier(async () => this.#startTunnel(await this.#pin(args), args))
    }
    if (this.#pinned === undefined && (STATEFUL.has(name) || isBlockingStream(name, args))) {
      return this.#barrier(async () => {
        const pinned = await this.#pin(args)
        return pinned.send(args)
      })
    }
    this.#forward(args)
  }

  /**
   * Cluster, after MULTI (answered here): EXEC / DISCARD of an empty transaction are answered
   * here too; any other command first opens the transaction on the master of its keys. Returns
   * true when the command was handled.
   */
  #deferredTransaction(name: string, args: Uint8Array[]): boolean {
    if (name === 'EXEC' || name === 'DISCARD') {
      this.#deferredMulti = false
      this.#inMulti = false
      this.#watching = false
      const pinned = this.#pinned
      if (pinned === undefined) {
        this.#enqueueValue(Promise.resolve(name === 'EXEC' ? [] : 'OK'))
        return true
      }
      // WATCHed keys: Redis says whether the (empty) transaction ran.
      this.#barrier(async () => {
        await pinned.send(['MULTI'])
        return pinned.send(args)
      })
      return true
    }
    if (name === 'QUIT' || name === 'RESET' || name === 'MULTI') return false
    this.#deferredMulti = false
    // A silent step: later commands go to the pinned connection, after its MULTI.
    const watching = this.#watching
    this.#barrier(async () => {
      const current = this.#pinned
      if (current !== undefined && !watching && (await this.server.forwarder.elsewhere(current, args))) {
        // The pinned connection is on another master and holds no WATCH: the transaction moves.
        this.#pinned = undefined
        void current.close(false)
      }
      const pinned = await this.#pin(args)
      await pinned.send(['MULTI'])
      return undefined
    })
    return false
  }

  /** A forwarded command: on the pinned connection if any, else shared; after a pending barrier. */
  #forward(args: Uint8Array[]): void {
    const inMulti = this.#inMulti
    const send = (): Promise<RedisReply> => {
      const pinned = this.#pinned
      if (pinned !== undefined) {
        // Cluster: outside a transaction, a key of another master goes there (shared connection).
        if (this.server.forwarder.mode === 'cluster' && !inMulti) return this.#sendPinnedOrRouted(pinned, args)
        return pinned.send(args)
      }
      return this.server.forwarder.call(args, this.credentials, this.protocol)
    }
    const gate = this.#gate
    // A sync execution holding this command's shard: the command waits until it finished.
    const held = this.server.commandPath?.gate(args)
    if (held !== undefined) {
      this.#enqueueValue((gate === undefined ? held : gate.then(() => held)).then(send))
      return
    }
    this.#enqueueValue(gate === undefined ? send() : gate.then(send))
  }

  async #sendPinnedOrRouted(pinned: RedisConnection, args: Uint8Array[]): Promise<RedisReply> {
    if (await this.server.forwarder.elsewhere(pinned, args)) return this.server.forwarder.call(args, this.credentials, this.protocol)
    return pinned.send(args)
  }

  /** How the command path sends this client's commands (call_next, a linked command). */
  #pathClient(inMulti: boolean): PathClient {
    return {
      inMulti,
      send: (args, resp2) => {
        const pinned = this.#pinned
        if (pinned !== undefined) return pinned.send(args)
        return this.server.forwarder.call(args, this.credentials, resp2 ? 2 : this.protocol)
      },
    }
  }

  /** Runs `work` once every earlier command replied; later commands wait for it. */
  #barrier(work: () => Promise<RespValue | undefined>): void {
    const last = this.#queue[this.#queue.length - 1]
    const earlier = last === undefined ? Promise.resolve() : new Promise<void>((resolve) => (last.written ??= []).push(resolve))
    const run = earlier.then(work)
    const gate = run.then(noop, noop)
    this.#gate = gate
    void gate.then(() => {
      if (this.#gate === gate) this.#gate = undefined
    })
    this.#enqueueValue(run)
  }

  async #pin(args: readonly Uint8Array[]): Promise<RedisConnection> {
    if (this.#pinned !== undefined) return this.#pinned
    const conn = await this.server.forwarder.pin(args, this.credentials, this.protocol)
    // RESP3 pushes outside a tunnel (CLIENT TRACKING invalidations) go to the client as they come.
    conn.onResp3Push = (value) => this.#writeNow(value)
    conn.onLost = () => {
      // The client's transaction, subscriptions or db are gone with it: so is the client.
      if (this.#pinned === conn) this.close()
    }
    this.#pinned = conn
    return conn
  }

  async #startTunnel(pinned: RedisConnection, args: readonly Uint8Array[]): Promise<undefined> {
    // Wait until the connection is up (a PING through it), then pass everything through.
    await pinned.send(['PING'])
    this.#tunnel = true
    pinned.startTunnel((value) => this.#writeNow(this.#tunnelValue(value)))
    pinned.sendRaw(args)
    return undefined
  }

  #tunnelValue(value: RedisReply): RespValue {
    if (this.protocol === 3 && Array.isArray(value)) {
      const kind = value[0]
      if (kind instanceof Uint8Array && PUSH_KINDS.has(text(kind))) return new RespPush(value)
    }
    return value
  }

  #tunnelCommand(name: string, args: Uint8Array[]): void {
    if (name === 'QUIT') {
      this.#writeNow('OK')
      // end(), not destroy(): the OK still corked in the socket must reach the client.
      this.end()
      return
    }
    if (name === 'RESET') {
      void this.#reset().then(
        () => this.#writeNow('RESET'),
        () => this.close(),
      )
      return
    }
    if (name === 'HELLO' && args.length >= 2) {
      // Redis switches the tunnel's protocol: read its answers accordingly, encode ours the same.
      const version = text(args[1]!)
      if (version === '3') this.#pinned?.acceptResp3()
      if (version === '2' || version === '3') this.protocol = version === '3' ? 3 : 2
    }
    if (!this.#pinned?.sendRaw(args)) this.close()
  }

  // ---- connection-level commands -----------------------------------------------------------

  async #auth(args: readonly Uint8Array[]): Promise<RespValue> {
    if (args.length !== 2 && args.length !== 3) return new NestedReplyError("ERR wrong number of arguments for 'auth' command")
    const reply = await this.server.forwarder.authenticate(args)
    this.credentials = args.length === 3 ? { username: text(args[1]!), password: text(args[2]!) } : { password: text(args[1]!) }
    // A pinned connection changes user too (Redis' AUTH acts on the connection).
    if (this.#pinned !== undefined) await this.#pinned.send(args)
    return reply
  }

  async #hello(args: readonly Uint8Array[]): Promise<RespValue> {
    let protocol: RespProtocol = this.protocol
    let i = 1
    if (args.length >= 2) {
      const version = Number(text(args[1]!))
      if (!Number.isInteger(version)) return new NestedReplyError('ERR Protocol version is not an integer or out of range')
      if (version !== 2 && version !== 3) return new NestedReplyError('NOPROTO unsupported protocol version')
      protocol = version
      i = 2
    }
    let setName: Uint8Array | undefined
    for (; i < args.length; i++) {
      const option = text(args[i]!).toUpperCase()
      if (option === 'AUTH' && i + 2 < args.length) {
        const authArgs = [new TextEncoder().encode('AUTH'), args[i + 1]!, args[i + 2]!]
        await this.server.forwarder.authenticate(authArgs)
        this.credentials = { username: text(args[i + 1]!), password: text(args[i + 2]!) }
        if (this.#pinned !== undefined) await this.#pinned.send(authArgs)
        i += 2
      } else if (option === 'SETNAME' && i + 1 < args.length) {
        setName = args[++i]!
      } else {
        return new NestedReplyError(`ERR Syntax error in HELLO option '${text(args[i]!)}'`)
      }
    }
    const pinned = this.#pinned
    if (pinned !== undefined && protocol !== this.protocol) {
      // The client's own connection follows its protocol (its replies pass through as Redis sends them).
      if (protocol === 3) pinned.acceptResp3()
      await pinned.send(['HELLO', String(protocol)])
    }
    this.protocol = protocol
    if (setName !== undefined) {
      const named = await this.#pin([])
      await named.send(['CLIENT', 'SETNAME', setName])
    }
    return new RespMap([
      [bulkOf('server'), bulkOf('redis')],
      [bulkOf('version'), bulkOf(await this.server.redisVersion())],
      [bulkOf('proto'), protocol],
      [bulkOf('id'), this.id],
      [bulkOf('mode'), bulkOf(this.server.forwarder.mode)],
      [bulkOf('role'), bulkOf('master')],
      [bulkOf('modules'), []],
    ])
  }

  async #reset(): Promise<void> {
    const pinned = this.#pinned
    this.#pinned = undefined
    this.#tunnel = false
    this.#inMulti = false
    this.#deferredMulti = false
    this.#watching = false
    this.credentials = undefined
    this.protocol = 2
    if (pinned !== undefined) await pinned.close(false)
  }

  async #info(args: readonly Uint8Array[]): Promise<RespValue> {
    const sections = args.slice(1).map((a) => text(a).toLowerCase())
    const rgOnly = sections.length > 0 && sections.every((s) => s === 'rg')
    const withRg = sections.length === 0 || sections.some((s) => s === 'rg' || s === 'all' || s === 'everything' || s === 'default')
    const forwarded = sections.filter((s) => s !== 'rg')
    let base = ''
    if (!rgOnly) {
      const reply: RespValue = await this.server.forwarder.call(['INFO', ...forwarded], this.credentials, this.protocol)
      base = reply instanceof Uint8Array ? text(reply) : reply instanceof RespVerbatim ? reply.text : String(reply)
    }
    const rg = rgInfoSection(this.server.gears.executions.list().length, this.server.gears.sandboxMemory())
    const body = !withRg ? base : base === '' ? rg : `${base.replace(/\r\n$/, '')}\r\n\r\n${rg}`
    // RESP3: INFO is a verbatim string, as Redis sends it.
    return this.protocol === 3 ? new RespVerbatim('txt', body) : new TextEncoder().encode(body)
  }

  async #command(sub: 'INFO' | 'DOCS', args: readonly Uint8Array[]): Promise<RespValue> {
    const names = args.slice(2).map(text)
    const others = names.filter((n) => !isRgCommandName(n))
    const rg = names.length === 0 ? undefined : names.filter(isRgCommandName)
    if (sub === 'INFO') {
      const ours = commandInfoEntries(rg)
      if (names.length === 0) {
        const all = await this.server.forwarder.call(['COMMAND', 'INFO'], this.credentials, this.protocol)
        return [...(Array.isArray(all) ? all : []), ...ours.values()]
      }
      const theirs = others.length === 0 ? [] : await this.server.forwarder.call(['COMMAND', 'INFO', ...others], this.credentials, this.protocol)
      let j = 0
      return names.map((n) => (isRgCommandName(n) ? (ours.get(n.toUpperCase()) ?? null) : ((theirs as RedisReply[])[j++] ?? null)))
    }
    const ours = commandDocsEntries(rg)
    const theirs: RespValue =
      names.length > 0 && others.length === 0 ? [] : await this.server.forwarder.call(['COMMAND', 'DOCS', ...others], this.credentials, this.protocol)
    // RESP2 shape: a flat list of name, docs; RESP3: a map.
    const flat: (readonly [RespValue, RespValue])[] = []
    if (theirs instanceof RespMap) flat.push(...theirs.entries)
    else if (Array.isArray(theirs)) for (let k = 0; k + 1 < theirs.length; k += 2) flat.push([theirs[k]!, theirs[k + 1]!])
    for (const [name, docs] of ours) flat.push([bulkOf(name.toLowerCase()), docs])
    return new RespMap(flat)
  }

  // ---- replies -----------------------------------------------------------------------------

  /** Takes a place in the reply order. */
  #push(slot: Slot): void {
    this.#queue.push(slot)
    // Backpressure: a client far ahead of its replies is not read until they catch up.
    if (this.#queue.length > MAX_QUEUED_COMMANDS && !this.#paused) {
      this.#paused = true
      this.socket.pause()
    }
  }

  #enqueueValue(reply: Promise<RespValue | undefined>, closeAfter = false): void {
    const slot: Slot = { bytes: undefined, done: false, closeAfter }
    this.#push(slot)
    const settle = (bytes: Uint8Array | undefined): void => {
      slot.bytes = bytes
      slot.done = true
      if (bytes !== undefined) this.#heldBytes += bytes.length
      this.#flush()
    }
    reply.then(
      (value) => settle(value === undefined ? undefined : this.#encode(value)),
      (err: unknown) =>
        // A RESP3 blob error from Redis stays one for a RESP3 client.
        settle(err instanceof RedisBlobReplyError && this.protocol === 3 ? this.#encode(new NestedReplyError(err.message, true)) : encodeError(errorText(err))),
    )
  }

  #encode(value: RespValue): Uint8Array {
    return encodeReply(value, this.protocol)
  }

  #flush(): void {
    while (this.#queue.length > 0 && this.#queue[0]!.done) {
      const slot = this.#queue.shift()!
      if (slot instanceof ForwardedSlot && slot.chunk !== undefined) {
        this.#heldBytes -= slot.end - slot.start
        this.#writeRange(slot.chunk, slot.start, slot.end)
        slot.chunk = undefined
      } else if (slot.bytes !== undefined) {
        this.#heldBytes -= slot.bytes.length
        this.#write(slot.bytes)
      }
      if (slot.written !== undefined) for (const resolve of slot.written) resolve()
      if (slot.closeAfter) {
        this.#flushOutgoing()
        this.socket.end()
        this.#queue.length = 0
        this.#teardown()
        return
      }
    }
    if (this.#paused && this.#queue.length < MAX_QUEUED_COMMANDS / 2 && !this.#closed) {
      this.#paused = false
      this.socket.resume()
    }
    this.#checkOutput()
  }

  /** Tunnel mode: writes at once (no reply is owed in order). */
  #writeNow(value: RespValue): void {
    if (this.socket.destroyed) return
    this.#write(this.#encode(value))
    this.#checkOutput()
  }

  #write(bytes: Uint8Array): void {
    if (this.socket.destroyed) return
    if (this.#rangeChunk !== undefined) this.#endRange()
    if (!this.#flushQueued) {
      this.#flushQueued = true
      queueMicrotask(this.#flushOutgoing)
    }
    this.#outgoing.push(bytes)
    this.#outgoingBytes += bytes.length
  }

  /** Replies written as a range of one backend read: adjacent ones (a client's pipeline) extend it, no copy. */
  #rangeChunk: Uint8Array | undefined
  #rangeStart = 0
  #rangeEnd = 0
  #flushQueued = false

  #writeRange(chunk: Uint8Array, start: number, end: number): void {
    if (this.socket.destroyed) return
    if (this.#rangeChunk === chunk && this.#rangeEnd === start) this.#rangeEnd = end
    else {
      if (this.#rangeChunk !== undefined) this.#endRange()
      this.#rangeChunk = chunk
      this.#rangeStart = start
      this.#rangeEnd = end
    }
    this.#outgoingBytes += end - start
    if (!this.#flushQueued) {
      this.#flushQueued = true
      queueMicrotask(this.#flushOutgoing)
    }
  }

  /** The pending range joins the outgoing pieces (its bytes were counted when written). */
  #endRange(): void {
    const chunk = this.#rangeChunk!
    this.#rangeChunk = undefined
    this.#outgoing.push(chunk.subarray(this.#rangeStart, this.#rangeEnd))
  }

  readonly #flushOutgoing = (): void => {
    this.#flushQueued = false
    if (this.#rangeChunk !== undefined) this.#endRange()
    const chunks = this.#outgoing
    const size = this.#outgoingBytes
    this.#outgoing = []
    this.#outgoingBytes = 0
    if (chunks.length === 0 || this.socket.destroyed) return
    // A reply range is a view into a backend read that holds other clients' replies too: it is
    // copied, so that what a slow reader leaves queued pins only its own bytes (the output cap counts bytes).
    const only = chunks.length === 1 ? chunks[0]! : undefined
    this.socket.write(only !== undefined && only.byteLength === only.buffer.byteLength ? only : Buffer.concat(chunks, size))
  }

  /** A client that does not read its replies is disconnected past the output buffer cap. */
  #checkOutput(): void {
    // Written but unread, plus replies ready but held behind an earlier one.
    if (this.socket.writableLength + this.#outgoingBytes + this.#heldBytes > this.server.limits.maxOutputBytes) {
      this.server.log(`client ${this.id} closed: output buffer over ${this.server.limits.maxOutputBytes} bytes (it does not read its replies)`)
      this.close()
    }
  }

  /** Replies are still owed, or a command runs. */
  get busy(): boolean {
    return this.#queue.length > 0 || this.running > 0
  }

  close(): void {
    this.#closed = true
    this.socket.destroy()
    this.#teardown()
  }

  /** Closes after what was written reaches the socket (a drained server's last replies are not cut), destroying it after `graceMs`. */
  end(graceMs = 1000): void {
    this.#closed = true
    if (this.socket.destroyed) return this.#teardown()
    const timer = setTimeout(() => this.close(), graceMs)
    timer.unref?.()
    this.socket.once('close', () => {
      clearTimeout(timer)
      this.#teardown()
    })
    this.#flushOutgoing()
    this.socket.end()
  }

  #torn = false
  #teardown(): void {
    if (this.#torn) return
    if (!this.socket.destroyed && !this.socket.writableEnded) return
    this.#torn = true
    this.#closed = true
    const pinned = this.#pinned
    this.#pinned = undefined
    if (pinned !== undefined) void pinned.close(false)
    this.server.forget(this)
  }
}

function bulkOf(value: string): Uint8Array {
  return new TextEncoder().encode(value)
}

function errorText(err: unknown): string {
  if (err instanceof RedisReplyError) return err.message
  if (err instanceof ConnectionError) return `ERR gearbox serve: ${err.message}`
  if (err instanceof Error) return `ERR ${err.message}`
  return `ERR ${String(err)}`
}
