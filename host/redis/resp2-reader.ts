/**
 * An incremental RESP2 reader that keeps what generic clients lose: status replies stay
 * distinguishable from bulk strings (string vs bytes), and integers beyond 2^53 stay exact
 * (bigint). Chunks may split a reply anywhere; state carries over between `feed` calls.
 *
 * It reports a reply complete at exactly the byte where ioredis 6's decoder does (reply-tap.ts
 * relies on this to pair each reply with the command ioredis resolves): a line-terminated value
 * at its CR, a bulk string at the CR after its payload, a nil (`$-1`, `*-1`) at its '-'. The
 * bytes after that point (LF, the rest of `-1\r\n`) may arrive in the next chunk; they are skipped.
 */
import { NestedReplyError, type RedisReply } from './types.js'

/** A byte the reader does not know as a RESP2 type (e.g. RESP3 after a stray HELLO 3). */
export class Resp2ProtocolError extends Error {
  override readonly name = 'Resp2ProtocolError'
}

interface ArrayFrame {
  readonly items: RedisReply[]
  filled: number
}

const CR = 0x0d
const DASH = 0x2d
const STATUS = 0x2b // '+'
const ERROR = 0x2d // '-'
const INTEGER = 0x3a // ':'
const BULK = 0x24 // '$'
const ARRAY = 0x2a // '*'
const MAX_SAFE_DIGITS = 15 // any 15-digit integer is below 2^53
const utf8 = new TextDecoder()

const enum State {
  /** Expecting a type byte. */
  Type,
  /** After '$' or '*': a '-' means nil, anything else starts the length line. */
  NilCheck,
  /** Inside a line (after its type byte), up to CR. */
  Line,
  /** Inside a bulk payload. */
  Payload,
  /** After a bulk payload: the CR that completes it. */
  PayloadEnd,
}

/**
 * Decodes a status or error line. Redis builds these from ASCII in practice; a Lua
 * `status_reply` may carry any bytes, which decode as UTF-8 (invalid sequences as U+FFFD).
 */
function lineText(bytes: Uint8Array, start: number, end: number): string {
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

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0
  for (const p of parts) total += p.length
  const out = new Uint8Array(total)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

/**
 * Call `feed(chunk)` with each chunk read from the socket; `onReply(reply, end)` is called for
 * every complete top-level reply, `end` being the offset in the current chunk just past it.
 * Replies: bulk → Uint8Array (a plain view into the chunk when it fits in one, else a copy),
 * status → string, integer → number or bigint, nil and null arrays → null, errors →
 * NestedReplyError (the caller knows that a top-level error is a failed command).
 * After a Resp2ProtocolError the reader is unusable.
 */
export class Resp2Reader {
  private readonly stack: ArrayFrame[] = []
  private state = State.Type
  private type = 0
  /** Bytes to skip before anything else (the tail of a terminator split across chunks). */
  private skip = 0
  /** Pieces of the current line that arrived in earlier chunks. */
  private lineParts: Uint8Array[] | undefined
  /** The bulk payload: a view when it fits in one chunk, else a buffer being filled. */
  private payload: Uint8Array = new Uint8Array(0)
  private payloadFilled = 0

  constructor(private readonly onReply: (reply: RedisReply, end: number) => void) {}

  feed(chunk: Uint8Array): void {
    const length = chunk.length
    let pos = 0
    while (pos < length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, length - pos)
        this.skip -= n
        pos += n
        continue
      }
      switch (this.state) {
        case State.Type: {
          const type = chunk[pos++]!
          if (type === BULK || type === ARRAY) this.state = State.NilCheck
          else if (type === STATUS || type === ERROR || type === INTEGER) this.state = State.Line
          else throw new Resp2ProtocolError(`unexpected RESP type byte 0x${type.toString(16)}`)
          this.type = type
          break
        }
        case State.NilCheck:
          if (chunk[pos] === DASH) {
            // `$-1\r\n` / `*-1\r\n`: complete at the '-', the other three bytes skipped.
            pos = this.after(pos + 4, length)
            this.state = State.Type
            this.value(null, pos)
          } else {
            this.state = State.Line
          }
          break
        case State.Line: {
          const cr = chunk.indexOf(CR, pos)
          if (cr === -1) {
            ;(this.lineParts ??= []).push(chunk.subarray(pos))
            pos = length
            break
          }
          let line: Uint8Array = chunk
          let start = pos
          let end = cr
          if (this.lineParts) {
            this.lineParts.push(chunk.subarray(pos, cr))
            line = concat(this.lineParts)
            this.lineParts = undefined
            start = 0
            end = line.length
          }
          pos = this.after(cr + 2, length)
          this.state = State.Type
          pos = this.line(line, start, end, chunk, pos)
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
        case State.PayloadEnd: {
          // chunk[pos] is the CR after the payload.
          pos = this.after(pos + 2, length)
          this.state = State.Type
          const value = this.payload
          this.payload = new Uint8Array(0)
          this.value(value, pos)
          break
        }
      }
    }
  }

  /** Clamps a position past the end of the chunk and remembers how much to skip in the next one. */
  private after(position: number, length: number): number {
    if (position <= length) return position
    this.skip = position - length
    return length
  }

  /**
   * Handles a complete line `line[start, end)` of type `this.type`; `pos` is past its
   * terminator in `chunk`. Returns where to continue in `chunk`.
   */
  private line(line: Uint8Array, start: number, end: number, chunk: Uint8Array, pos: number): number {
    switch (this.type) {
      case STATUS:
        this.value(lineText(line, start, end), pos)
        return pos
      case ERROR:
        this.value(new NestedReplyError(lineText(line, start, end)), pos)
        return pos
      case INTEGER:
        this.value(lineInteger(line, start, end), pos)
        return pos
      case ARRAY: {
        const n = Number(lineInteger(line, start, end))
        if (n === 0) this.value([], pos)
        else this.stack.push({ items: new Array<RedisReply>(n), filled: 0 })
        return pos
      }
      default: {
        // BULK: the payload follows. When it and the CR after it are in this chunk, take a view.
        const n = Number(lineInteger(line, start, end))
        if (this.skip === 0 && pos + n < chunk.length) {
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

  /** Places a complete value into the array being filled, or emits it as a top-level reply. */
  private value(value: RedisReply, end: number): void {
    let v = value
    for (;;) {
      const top = this.stack[this.stack.length - 1]
      if (!top) {
        this.onReply(v, end)
        return
      }
      top.items[top.filled++] = v
      if (top.filled < top.items.length) return
      this.stack.pop()
      v = top.items
    }
  }
}
