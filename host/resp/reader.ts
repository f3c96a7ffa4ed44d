/**
 * The one parse of every Redis reply gearbox reads: an incremental RESP2 reader that keeps what
 * generic clients lose (status replies stay strings, bulk strings stay bytes, integers beyond
 * 2^53 stay exact as bigint) and that bounds what a reply may cost the host.
 *
 * Budget: before each top-level reply the reader asks its sink for that reply's budget, in host
 * bytes. A reply costs its payload bytes plus {@link ELEMENT_COST} per value (what a JS value
 * costs beside its bytes). The cost is charged from headers, before anything is buffered: a
 * bulk string's length, an array's element count × ELEMENT_COST; a line (status, error,
 * integer) as its bytes arrive. A reply over budget is refused at that point and skipped as it
 * streams (nothing more of it is kept), then the sink hears `refused`; the next reply is read
 * normally, so the connection stays usable.
 *
 * Chunks may split a reply anywhere; state carries over between `feed` calls. The work per chunk
 * is linear in the chunk's length (socket chunks are ≤ 64 KiB), so no chunk holds the I/O
 * thread for long.
 *
 * Request mode ({@link ReaderOptions.request}): the same reader decodes what clients send a RESP
 * server: multibulk commands (`*<n>` of `$<len>` bulks) and inline commands (a line of words, as
 * typed in telnet), under Redis's limits (bulk and multibulk lengths, inline line length) with
 * Redis's protocol error texts. Each command reaches the sink as an array of Uint8Array.
 *
 * Frames (the RESP server's forwarding fast path): a request-mode sink with `frame` is offered
 * each canonical multibulk command that lies whole in one chunk, as a byte range, before it is
 * decoded; a reply-mode sink with `rawNext` may take the next reply as the bytes of its frame
 * (`rawReply`) instead of a value. Both use this reader's grammar: the request scan accepts only
 * the canonical form (what encodeCommand writes for the same arguments) and leaves anything else
 * to the decoder; a reply frame is passed over as a refused reply is, its bytes kept.
 */
import { NestedReplyError, NULL_ARRAY, RespBoolean, RespDouble, RespMap, RespPush, RespSet, RespVerbatim, type RedisReply, type RespValue } from './types.js'

/** A byte the reader does not know as a RESP2 type (e.g. RESP3 after a stray HELLO 3), or a broken request. */
export class Resp2ProtocolError extends Error {
  override readonly name = 'Resp2ProtocolError'
}

export interface ReaderOptions {
  /** Decode client requests instead of replies (see the file comment). Default false. */
  readonly request?: boolean
  /** Request mode: the longest bulk argument (Redis' proto-max-bulk-len). Default 512 MiB. */
  readonly maxBulkLength?: number
  /** Request mode: the most arguments of one command. Default 1024 × 1024. */
  readonly maxArrayLength?: number
  /** Request mode: the longest inline command line. Default 64 KiB (Redis' PROTO_INLINE_MAX_SIZE). */
  readonly maxInlineLength?: number
  /** Reply mode: the deepest nesting of arrays accepted. Default 1000. */
  readonly maxDepth?: number
}

export const DEFAULT_MAX_BULK_LENGTH = 512 * 1024 * 1024
export const DEFAULT_MAX_ARRAY_LENGTH = 1024 * 1024
export const DEFAULT_MAX_INLINE_LENGTH = 64 * 1024
export const DEFAULT_MAX_DEPTH = 1000

/** What one value costs the host beyond its payload bytes (object header, array slot). */
export const ELEMENT_COST = 64

export interface ReplySink {
  /** The budget (host bytes) of the next top-level reply; `Infinity` for none. */
  budget(): number
  /** A complete top-level reply (a top-level error arrives as NestedReplyError). */
  reply(value: RedisReply): void
  /** The top-level reply went over its budget; `cost` is what it had reached when refused. */
  refused(cost: number): void
  /**
   * Request mode: a complete canonical multibulk command, `chunk[start, end)`, its name at
   * `chunk[nameStart, nameEnd)`, within the query budget. Return true to take it as bytes (it is
   * not decoded), false to have it decoded and passed to `reply` as usual.
   */
  frame?(chunk: Uint8Array, start: number, end: number, nameStart: number, nameEnd: number): boolean
  /** Reply mode, at each top-level reply (a RESP3 push too): true to get it as its frame's bytes (`rawReply`). */
  rawNext?(): boolean
  /**
   * One complete top-level reply asked for with `rawNext`: its bytes are `chunk[start, end)` (the
   * socket's chunk when it fits in one, else a copy). Consecutive replies in one chunk are adjacent.
   */
  rawReply?(chunk: Uint8Array, start: number, end: number): void
}

interface ArrayFrame {
  readonly items: RespValue[]
  filled: number
  /** The aggregate's type byte (`*`, or RESP3's `%`, `~`, `>`). */
  readonly kind: number
}

const CR = 0x0d
const LF = 0x0a
const DASH = 0x2d
const STATUS = 0x2b // '+'
const ERROR = 0x2d // '-'
const INTEGER = 0x3a // ':'
const BULK = 0x24 // '$'
const ARRAY = 0x2a // '*'
// RESP3 (accepted once `resp3` is on)
const NULL = 0x5f // '_'
const DOUBLE = 0x2c // ','
const BOOLEAN = 0x23 // '#'
const BIG_NUMBER = 0x28 // '('
const VERBATIM = 0x3d // '='
const BLOB_ERROR = 0x21 // '!'
const MAP = 0x25 // '%'
const SET = 0x7e // '~'
const PUSH = 0x3e // '>'
const RESP3_TYPES = new Set([NULL, DOUBLE, BOOLEAN, BIG_NUMBER, VERBATIM, BLOB_ERROR, MAP, SET, PUSH])
const MAX_SAFE_DIGITS = 15 // any 15-digit integer is below 2^53
/** Longest header line (bulk/array length, integer) accepted: longer means a broken stream. */
const MAX_HEADER_LINE = 64
const utf8 = new TextDecoder()

const enum State {
  /** Expecting a type byte. */
  Type,
  /** Inside a line (after its type byte), up to CR. */
  Line,
  /** Inside a bulk payload being kept. */
  Payload,
  /** After a bulk payload: its CR LF. */
  PayloadEnd,
  /** Request mode: inside an inline command line, up to LF. */
  Inline,
}

/**
 * Decodes a status or error line. Redis builds these from ASCII in practice; a Lua
 * `status_reply` may carry any bytes, which decode as UTF-8 (invalid sequences as U+FFFD).
 */
function lineText(bytes: Uint8Array, start: number, end: number): string {
  // The most common status line (SET's reply).
  if (end - start === 2 && bytes[start] === 0x4f && bytes[start + 1] === 0x4b) return 'OK'
  if (end - start <= 64) {
    let out = ''
    for (let i = start; i < end; i++) {
      const b = bytes[i]!
      if (b >= 0x80) return utf8.decode(bytes.subarray(start, end))
      out += String.fromCharCode(b)
    }
    return out
  }
  return utf8.decode(bytes.subarray(start, end))
}

/** Parses `[start, end)` as a decimal integer (optional leading '-'); bigint beyond 2^53. */
function lineInteger(bytes: Uint8Array, start: number, end: number): number | bigint {
  const negative = bytes[start] === DASH
  const digitsStart = negative ? start + 1 : start
  if (end - digitsStart <= MAX_SAFE_DIGITS) {
    if (end === digitsStart) throw new Resp2ProtocolError('empty integer')
    let n = 0
    for (let i = digitsStart; i < end; i++) {
      const d = bytes[i]! - 0x30
      if (d < 0 || d > 9) throw new Resp2ProtocolError(`invalid integer ${JSON.stringify(lineText(bytes, start, end))}`)
      n = n * 10 + d
    }
    return negative ? -n : n
  }
  const text = lineText(bytes, start, end)
  if (!/^-?\d+$/.test(text)) throw new Resp2ProtocolError(`invalid integer ${JSON.stringify(text)}`)
  const big = BigInt(text)
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

/**
 * Call `feed(chunk)` with each chunk read from the socket. Replies: bulk → Uint8Array (a view
 * into the chunk when it fits in one, else a copy), status → string, integer → number or
 * bigint, nil and null arrays → null, errors → NestedReplyError (the caller knows that a
 * top-level error is a failed command). After a Resp2ProtocolError the reader is unusable.
 */
export class Resp2Reader {
  private readonly stack: ArrayFrame[] = []
  private state = State.Type
  private type = 0
  /** Bytes to drop before anything else (a refused payload, a terminator split across chunks). */
  private drop = 0
  /** Pieces of the current line that arrived in earlier chunks, and their length. */
  private lineParts: Uint8Array[] | undefined
  private lineLength = 0
  /** The bulk payload being filled. */
  private payload: Uint8Array = new Uint8Array(0)
  private payloadFilled = 0
  /** The current top-level reply's budget and cost so far. */
  private budget = Infinity
  private cost = 0
  /** Skip mode: values still to pass over before the refused reply is done (0: not skipping). */
  private skipping = 0
  /** A raw reply spanning chunks is being passed over (skip mode) and its bytes kept. */
  private capturing = false
  private captureParts: Uint8Array[] = []
  private captureLength = 0
  /** Where the captured reply starts in the current chunk (0 after its first chunk). */
  private captureStart = 0
  /** The last scanned request's name range (see scanRequest). */
  private nameStart = 0
  private nameEnd = 0

  private readonly request: boolean
  private readonly maxBulkLength: number
  private readonly maxArrayLength: number
  private readonly maxInlineLength: number
  private readonly maxDepth: number
  /** The payload being read is a bulk string, a verbatim string or a blob error. */
  private payloadType = BULK
  /**
   * Accept RESP3 replies (after HELLO 3 on the connection): maps, sets, pushes, doubles,
   * booleans, null, big numbers, verbatim strings and blob errors, as the codec's RESP3 kinds.
   */
  resp3 = false
  /** Read `*-1` as {@link NULL_ARRAY} instead of null (forwarding connections keep `*-1` and `$-1` apart). */
  nullArrays = false

  constructor(
    private readonly sink: ReplySink,
    options: ReaderOptions = {},
  ) {
    this.request = options.request === true
    this.maxBulkLength = options.maxBulkLength ?? DEFAULT_MAX_BULK_LENGTH
    this.maxArrayLength = options.maxArrayLength ?? DEFAULT_MAX_ARRAY_LENGTH
    this.maxInlineLength = options.maxInlineLength ?? DEFAULT_MAX_INLINE_LENGTH
    this.maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH
  }

  /**
   * True while a refused reply is being passed over. (The refusal is reported as soon as the
   * reader knows how much to skip, e.g. at a bulk's header, before its bytes have streamed by.)
   */
  get isSkipping(): boolean {
    return this.skipping > 0 || this.drop > 0
  }

  /** What the reply being read has cost so far (0 between replies). */
  get pendingCost(): number {
    return this.cost
  }

  feed(chunk: Uint8Array): void {
    const length = chunk.length
    let pos = 0
    while (pos < length) {
      if (this.capturing && this.skipping === 0 && this.drop === 0) this.endCapture(chunk, pos)
      if (this.drop > 0) {
        const n = Math.min(this.drop, length - pos)
        this.drop -= n
        pos += n
        continue
      }
      switch (this.state) {
        case State.Type: {
          if (this.stack.length === 0 && this.skipping === 0 && !this.capturing) {
            const sink = this.sink
            if (this.request) {
              if (sink.frame !== undefined && chunk[pos] === ARRAY) {
                const end = this.scanRequest(chunk, pos)
                if (end > 0 && sink.frame(chunk, pos, end, this.nameStart, this.nameEnd)) {
                  pos = end
                  break
                }
              }
            } else if (sink.rawNext !== undefined && sink.rawNext()) {
              const end = this.scanReply(chunk, pos)
              if (end > 0) {
                sink.rawReply!(chunk, pos, end)
                pos = end
                break
              }
              // Not whole in this chunk (or unusual): passed over as a refused reply is, its bytes kept.
              this.capturing = true
              this.captureStart = pos
              this.skipping = 1
            }
          }
          if (this.request) {
            const next = chunk[pos]!
            if (this.stack.length === 0 && this.skipping === 0) {
              if (next !== ARRAY) {
                this.state = State.Inline
                break
              }
            } else if (next !== BULK) {
              throw new Resp2ProtocolError(`Protocol error: expected '$', got '${String.fromCharCode(next)}'`)
            }
          }
          const type = chunk[pos++]!
          if (type !== BULK && type !== ARRAY && type !== STATUS && type !== ERROR && type !== INTEGER && !(this.resp3 && RESP3_TYPES.has(type))) {
            throw new Resp2ProtocolError(`unexpected RESP type byte 0x${type.toString(16)}`)
          }
          if (this.stack.length === 0 && this.skipping === 0) {
            this.budget = this.sink.budget()
            this.cost = 0
            if (this.charge(ELEMENT_COST)) this.refuse()
          }
          this.type = type
          this.state = State.Line
          break
        }
        case State.Line: {
          const cr = chunk.indexOf(CR, pos)
          const end = cr === -1 ? length : cr
          const piece = end - pos
          const t = this.type
          const isHeader = t === BULK || t === ARRAY || t === INTEGER || t === MAP || t === SET || t === PUSH || t === VERBATIM || t === BLOB_ERROR || t === BIG_NUMBER
          if (isHeader && this.lineLength + piece > MAX_HEADER_LINE) {
            if (this.request) throw new Resp2ProtocolError(`Protocol error: too big ${this.type === ARRAY ? 'mbulk' : 'bulk'} count string`)
            throw new Resp2ProtocolError('a length or integer line is too long')
          }
          // A status or error line is charged as its bytes arrive; over budget, it is skipped to its CR.
          if (!isHeader && this.skipping === 0 && this.charge(piece)) this.refuse()
          if (this.skipping === 0 || isHeader) {
            if (cr === -1) (this.lineParts ??= []).push(chunk.subarray(pos))
          }
          this.lineLength += piece
          if (cr === -1) {
            pos = length
            break
          }
          let line: Uint8Array = chunk
          let start = pos
          let lineEnd = cr
          if (this.lineParts) {
            this.lineParts.push(chunk.subarray(pos, cr))
            line = concat(this.lineParts, this.lineLength)
            start = 0
            lineEnd = line.length
          }
          this.lineParts = undefined
          this.lineLength = 0
          pos = this.after(cr + 2, length)
          this.state = State.Type
          pos = this.line(line, start, lineEnd, chunk, pos)
          break
        }
        case State.Payload: {
          const n = Math.min(this.payload.length - this.payloadFilled, length - pos)
          this.payload.set(chunk.subarray(pos, pos + n), this.payloadFilled)
          this.payloadFilled += n
          pos += n
          if (this.payloadFilled === this.payload.length) this.state = State.PayloadEnd
          break
        }
        case State.Inline: {
          pos = this.inline(chunk, pos)
          break
        }
        case State.PayloadEnd: {
          // chunk[pos] is the CR after the payload.
          pos = this.after(pos + 2, length)
          this.state = State.Type
          const value = this.payload
          this.payload = new Uint8Array(0)
          this.value(this.payloadValue(value))
          break
        }
      }
    }
    if (this.capturing) {
      if (this.skipping === 0 && this.drop === 0) this.endCapture(chunk, length)
      else {
        const part = chunk.subarray(this.captureStart)
        this.captureParts.push(part)
        this.captureLength += part.length
        this.captureStart = 0
      }
    }
  }

  /** The captured reply ends at `end` in `chunk`: its bytes go to the sink. */
  private endCapture(chunk: Uint8Array, end: number): void {
    const parts = this.captureParts
    const start = this.captureStart
    this.capturing = false
    this.captureParts = []
    this.captureStart = 0
    this.cost = 0
    if (parts.length === 0) {
      this.sink.rawReply!(chunk, start, end)
      return
    }
    const last = chunk.subarray(start, end)
    const bytes = concat([...parts, last], this.captureLength + last.length)
    this.captureLength = 0
    this.sink.rawReply!(bytes, 0, bytes.length)
  }

  /**
   * Request mode: the end of the canonical multibulk command at `chunk[pos]` (`*<n>` then n
   * `$<len>` bulks, lengths without sign or leading zero, every CR LF in place, within the
   * reader's limits and the sink's budget), or -1 when it is not whole in this chunk or not in
   * that form (the decoder then reads it, with its errors). Sets nameStart/nameEnd.
   */
  private scanRequest(chunk: Uint8Array, pos: number): number {
    const length = chunk.length
    let p = pos + 1
    let count = 0
    let digits = 0
    for (; p < length; p++) {
      const d = chunk[p]! - 0x30
      if (d < 0 || d > 9) break
      if ((d === 0 && digits === 0) || ++digits > 8) return -1
      count = count * 10 + d
    }
    if (digits === 0 || count > this.maxArrayLength || p + 1 >= length || chunk[p] !== CR || chunk[p + 1] !== LF) return -1
    p += 2
    let cost = ELEMENT_COST * (count + 1)
    for (let i = 0; i < count; i++) {
      if (p >= length || chunk[p] !== BULK) return -1
      p++
      let n = 0
      digits = 0
      for (; p < length; p++) {
        const d = chunk[p]! - 0x30
        if (d < 0 || d > 9) break
        if ((digits === 1 && n === 0) || ++digits > 10) return -1
        n = n * 10 + d
      }
      if (digits === 0 || n > this.maxBulkLength || p + 1 >= length || chunk[p] !== CR || chunk[p + 1] !== LF) return -1
      p += 2
      const end = p + n
      if (end + 1 >= length || chunk[end] !== CR || chunk[end + 1] !== LF) return -1
      if (i === 0) {
        this.nameStart = p
        this.nameEnd = end
      }
      cost += n
      p = end + 2
    }
    return cost > this.sink.budget() ? -1 : p
  }

  /**
   * Reply mode: the end of the complete reply at `chunk[pos]`, or -1 when it is not whole in
   * this chunk or holds anything but well-formed frames of the connection's protocol (the
   * capture path then passes over it with the reader's own checks and errors).
   */
  private scanReply(chunk: Uint8Array, pos: number): number {
    const length = chunk.length
    const resp3 = this.resp3
    let p = pos
    let need = 1
    while (need > 0) {
      if (p >= length) return -1
      const type = chunk[p++]!
      // The line after the type byte: an integer, length or count parsed (as the decoder checks it), any other line passed over.
      let n = 0
      let negative = false
      let lineStart = p
      let isNumber = false
      switch (type) {
        case BULK:
        case ARRAY:
          isNumber = true
          break
        case INTEGER:
          isNumber = true
          break
        case STATUS:
        case ERROR:
          break
        case VERBATIM:
        case BLOB_ERROR:
        case MAP:
        case SET:
        case PUSH:
          if (!resp3) return -1
          isNumber = true
          break
        case BIG_NUMBER:
          if (!resp3) return -1
          isNumber = true
          break
        case NULL:
        case DOUBLE:
        case BOOLEAN:
          if (!resp3) return -1
          break
        default:
          return -1
      }
      if (isNumber) {
        if (chunk[p] === DASH) {
          negative = true
          p++
          lineStart = p
        }
        for (; p < length; p++) {
          const d = chunk[p]! - 0x30
          if (d < 0 || d > 9) break
          n = n * 10 + d
        }
        if (p === lineStart || p - lineStart > MAX_SAFE_DIGITS) return -1
        // '-0' is 0, as the decoder reads it (an empty bulk, an empty array).
        if (n === 0) negative = false
      } else {
        while (p < length && chunk[p] !== CR) p++
      }
      if (p + 1 >= length || chunk[p] !== CR || chunk[p + 1] !== LF) return -1
      p += 2
      if (!isNumber || negative || type === INTEGER || type === BIG_NUMBER) {
        need--
      } else if (type === BULK || type === VERBATIM || type === BLOB_ERROR) {
        p += n + 2
        if (p > length) return -1
        need--
      } else {
        // An aggregate: its elements replace it (a map's count is of pairs).
        need += (type === MAP ? 2 * n : n) - 1
      }
    }
    return p
  }

  /** Adds to the current reply's cost; true when that takes it over budget (and not yet skipping). */
  private charge(bytes: number): boolean {
    this.cost += bytes
    return this.skipping === 0 && this.cost > this.budget
  }

  /**
   * Refuses the current reply: what was built is dropped, and the values still expected (the
   * open arrays' missing elements, or the top-level value itself) are passed over.
   */
  private refuse(): void {
    // Each open array's missing elements, less the slot every inner open array fills in its parent.
    let remaining = 0
    for (const frame of this.stack) remaining += frame.items.length - frame.filled
    if (this.stack.length > 1) remaining -= this.stack.length - 1
    this.stack.length = 0
    this.skipping = Math.max(1, remaining)
  }

  /** Clamps a position past the end of the chunk and remembers how much to drop in the next one. */
  private after(position: number, length: number): number {
    if (position <= length) return position
    this.drop += position - length
    return length
  }

  /**
   * Handles a complete line `line[start, end)` of type `this.type`; `pos` is past its
   * terminator in `chunk`. Returns where to continue in `chunk`.
   */
  private line(line: Uint8Array, start: number, end: number, chunk: Uint8Array, pos: number): number {
    switch (this.type) {
      case STATUS:
        this.value(this.skipping > 0 ? null : lineText(line, start, end))
        return pos
      case ERROR:
        this.value(this.skipping > 0 ? null : new NestedReplyError(lineText(line, start, end)))
        return pos
      case INTEGER:
      case BIG_NUMBER:
        this.value(lineInteger(line, start, end))
        return pos
      case NULL:
        this.value(null)
        return pos
      case DOUBLE: {
        const text = lineText(line, start, end)
        const n = text === 'inf' ? Infinity : text === '-inf' ? -Infinity : Number(text)
        this.value(new RespDouble(n, text) as unknown as RedisReply)
        return pos
      }
      case BOOLEAN:
        this.value(new RespBoolean(line[start] === 0x74) as unknown as RedisReply)
        return pos
      case MAP:
      case SET:
      case PUSH:
      case ARRAY: {
        const count = this.request ? this.requestLength(line, start, end, this.maxArrayLength, 'multibulk') : Number(lineInteger(line, start, end))
        const kind = this.type
        // A map's count is of pairs: it holds twice as many values.
        const n = kind === MAP ? count * 2 : count
        if (n <= 0 && this.request) {
          // Redis ignores `*0` and `*-1` from a client.
          if (this.stack.length === 0 && this.skipping === 0) this.cost = 0
          return pos
        }
        if (n <= 0) {
          this.value(n < 0 ? (this.nullArrays && kind === ARRAY ? (NULL_ARRAY as unknown as RedisReply) : null) : this.aggregate(kind, []))
          return pos
        }
        if (this.charge(n * ELEMENT_COST)) this.refuse()
        if (this.skipping > 0) {
          // The array is replaced by its n elements in the count of values to pass over.
          this.skipping += n - 1
        } else {
          if (this.stack.length >= this.maxDepth) throw new Resp2ProtocolError(`a reply nested deeper than ${this.maxDepth} arrays`)
          this.stack.push({ items: new Array<RespValue>(n), filled: 0, kind })
        }
        return pos
      }
      default: {
        // BULK (or RESP3's verbatim string and blob error): the payload follows.
        this.payloadType = this.type
        const n = this.request ? this.requestLength(line, start, end, this.maxBulkLength, 'bulk') : Number(lineInteger(line, start, end))
        if (n < 0 && this.request) throw new Resp2ProtocolError('Protocol error: invalid bulk length')
        if (n < 0) {
          this.value(null)
          return pos
        }
        if (this.charge(n)) this.refuse()
        if (this.skipping > 0) {
          // Passed over as it streams: nothing of it is kept.
          const available = chunk.length - pos
          const take = Math.min(available, n + 2)
          this.drop += n + 2 - take
          this.value(null)
          return pos + take
        }
        if (this.drop === 0 && pos + n < chunk.length) {
          // The payload and the CR after it are in this chunk: take a view.
          this.payload = new Uint8Array(chunk.buffer, chunk.byteOffset + pos, n)
          this.state = State.PayloadEnd
          return pos + n
        }
        this.payload = new Uint8Array(n)
        this.payloadFilled = 0
        this.state = n === 0 ? State.PayloadEnd : State.Payload
        return pos
      }
    }
  }

  /** A complete aggregate as its kind: an array, or a RESP3 map, set or push. */
  private aggregate(kind: number, items: RespValue[]): RedisReply {
    if (kind === ARRAY) return items as RedisReply[]
    let value: RespValue
    if (kind === MAP) {
      const entries: [RespValue, RespValue][] = []
      for (let i = 0; i + 1 < items.length; i += 2) entries.push([items[i]!, items[i + 1]!])
      value = new RespMap(entries)
    } else value = kind === SET ? new RespSet(items) : new RespPush(items)
    // RESP3 kinds travel as replies of RESP3 connections (see `resp3`).
    return value as unknown as RedisReply
  }

  /** A complete payload as its kind. */
  private payloadValue(bytes: Uint8Array): RedisReply {
    if (this.payloadType === BULK) return bytes
    const text = utf8.decode(bytes)
    if (this.payloadType === BLOB_ERROR) return new NestedReplyError(text, true)
    const format = text.slice(0, 3)
    return new RespVerbatim(format === 'mkd' ? 'mkd' : 'txt', text.slice(4)) as unknown as RedisReply
  }

  /** Request mode: a multibulk or bulk length, checked as Redis checks it. */
  private requestLength(line: Uint8Array, start: number, end: number, max: number, what: 'multibulk' | 'bulk'): number {
    let n: number
    try {
      n = Number(lineInteger(line, start, end))
    } catch {
      throw new Resp2ProtocolError(`Protocol error: invalid ${what} length`)
    }
    if (n > max || (what === 'bulk' && n < 0)) throw new Resp2ProtocolError(`Protocol error: invalid ${what} length`)
    return n
  }

  /** Request mode: reads an inline command line up to LF; returns where to continue. */
  private inline(chunk: Uint8Array, pos: number): number {
    const lf = chunk.indexOf(LF, pos)
    const end = lf === -1 ? chunk.length : lf
    if (this.lineLength + (end - pos) > this.maxInlineLength) throw new Resp2ProtocolError('Protocol error: too big inline request')
    if (lf === -1) {
      ;(this.lineParts ??= []).push(chunk.subarray(pos))
      this.lineLength += end - pos
      return end
    }
    let line = chunk.subarray(pos, lf)
    if (this.lineParts) {
      this.lineParts.push(line)
      line = concat(this.lineParts, this.lineLength + line.length)
    }
    this.lineParts = undefined
    this.lineLength = 0
    this.state = State.Type
    const args = splitInline(line)
    if (args.length > 0) {
      this.cost = 0
      this.sink.reply(args)
    }
    return lf + 1
  }

  /** Places a complete value into the array being filled, or emits it as a top-level reply. */
  private value(value: RedisReply): void {
    if (this.skipping > 0) {
      if (--this.skipping === 0 && !this.capturing) {
        const cost = this.cost
        this.cost = 0
        this.sink.refused(cost)
      }
      return
    }
    let v = value
    for (;;) {
      const top = this.stack[this.stack.length - 1]
      if (!top) {
        this.cost = 0
        this.sink.reply(v)
        return
      }
      top.items[top.filled++] = v
      if (top.filled < top.items.length) return
      this.stack.pop()
      v = this.aggregate(top.kind, top.items)
    }
  }
}

const QUOTE_ESCAPES: Readonly<Record<string, number>> = { n: 0x0a, r: 0x0d, t: 0x09, b: 0x08, a: 0x07 }

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
}

/**
 * Splits an inline command line as Redis' sdssplitargs does: words separated by blanks, "double
 * quotes" with \xHH, \n, \r, \t, \b, \a escapes, 'single quotes' with \' only; a closing quote
 * must be followed by a blank. A trailing CR is dropped.
 */
export function splitInline(line: Uint8Array): Uint8Array[] {
  let end = line.length
  if (end > 0 && line[end - 1] === CR) end--
  const args: Uint8Array[] = []
  const isBlank = (c: number | undefined): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0b || c === 0x0c || c === 0x00
  let i = 0
  for (;;) {
    while (i < end && isBlank(line[i])) i++
    if (i >= end) return args
    const bytes: number[] = []
    const quote = line[i] === 0x22 ? 0x22 : line[i] === 0x27 ? 0x27 : 0
    if (quote === 0) {
      while (i < end && !isBlank(line[i])) bytes.push(line[i++]!)
    } else {
      i++
      for (;;) {
        if (i >= end) throw new Resp2ProtocolError('Protocol error: unbalanced quotes in request')
        const c = line[i]!
        if (c === 0x5c && i + 1 < end) {
          const next = line[i + 1]!
          if (quote === 0x22 && next === 0x78 && i + 3 < end && isHex(line[i + 2]!) && isHex(line[i + 3]!)) {
            bytes.push(parseInt(String.fromCharCode(line[i + 2]!, line[i + 3]!), 16))
            i += 4
            continue
          }
          if (quote === 0x22) {
            bytes.push(QUOTE_ESCAPES[String.fromCharCode(next)] ?? next)
            i += 2
            continue
          }
          if (next === 0x27) {
            bytes.push(0x27)
            i += 2
            continue
          }
        }
        if (c === quote) {
          i++
          if (i < end && !isBlank(line[i])) throw new Resp2ProtocolError('Protocol error: unbalanced quotes in request')
          break
        }
        bytes.push(c)
        i++
      }
    }
    args.push(Uint8Array.from(bytes))
  }
}
