/**
 * The RESP2 and RESP3 encoders of the codec: commands (what gearbox sends Redis) and replies
 * (what the RESP server sends its clients). A reply is a {@link RespValue}: the exact kinds the
 * reader keeps (a status stays a status, bulk bytes stay bytes, integers beyond 2^53 stay exact),
 * plus the RESP3-only kinds the server builds itself (map, set, push, double, boolean, verbatim).
 * A RESP2 client gets each RESP3 kind the way Redis downgrades it: map → flat array, set and push
 * → array, double → bulk string, boolean → integer 1/0, null → nil bulk.
 */
import { NestedReplyError, RespBoolean, RespDouble, RespMap, RespNullArray, RespPush, RespSet, RespVerbatim, type RedisReply, type RespValue } from './types.js'

export { RespBoolean, RespDouble, RespMap, RespPush, RespSet, RespVerbatim }

export type { RespValue }

export type RespProtocol = 2 | 3

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const utf8 = new TextEncoder()
const CRLF = utf8.encode('\r\n')

/** Collects encoded pieces; `bytes()` joins them once. */
export class RespWriter {
  private readonly parts: Uint8Array[] = []
  private text = ''
  private size = 0

  /** ASCII or UTF-8 text. */
  write(text: string): void {
    this.text += text
  }

  writeBytes(bytes: Uint8Array): void {
    this.flushText()
    this.parts.push(bytes)
    this.size += bytes.length
  }

  private flushText(): void {
    if (this.text === '') return
    const encoded = utf8.encode(this.text)
    this.parts.push(encoded)
    this.size += encoded.length
    this.text = ''
  }

  bytes(): Uint8Array {
    this.flushText()
    if (this.parts.length === 1) return this.parts[0]!
    const out = new Uint8Array(this.size)
    let offset = 0
    for (const p of this.parts) {
      out.set(p, offset)
      offset += p.length
    }
    return out
  }
}

/** A status or error line may not hold CR or LF: Redis replaces them with spaces. */
function oneLine(text: string): string {
  return /[\r\n]/.test(text) ? text.replace(/[\r\n]+/g, ' ') : text
}

function formatDouble(value: number): string {
  if (Number.isNaN(value)) return 'nan'
  if (value === Infinity) return 'inf'
  if (value === -Infinity) return '-inf'
  return String(value)
}

function writeBulk(w: RespWriter, bytes: Uint8Array): void {
  w.write(`$${bytes.length}\r\n`)
  w.writeBytes(bytes)
  w.writeBytes(CRLF)
}

function writeBulkText(w: RespWriter, text: string): void {
  writeBulk(w, utf8.encode(text))
}

function writeItems(w: RespWriter, prefix: string, items: readonly RespValue[], protocol: RespProtocol): void {
  w.write(`${prefix}${items.length}\r\n`)
  for (const item of items) writeValue(w, item, protocol)
}

function writeValue(w: RespWriter, value: RespValue, protocol: RespProtocol): void {
  if (value === null) {
    w.write(protocol === 3 ? '_\r\n' : '$-1\r\n')
  } else if (typeof value === 'string') {
    w.write(`+${oneLine(value)}\r\n`)
  } else if (value instanceof Uint8Array) {
    writeBulk(w, value)
  } else if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) w.write(`:${value}\r\n`)
    else if (protocol === 3) w.write(`,${formatDouble(value)}\r\n`)
    else writeBulkText(w, formatDouble(value))
  } else if (typeof value === 'bigint') {
    if (value >= INT64_MIN && value <= INT64_MAX) w.write(`:${value}\r\n`)
    else if (protocol === 3) w.write(`(${value}\r\n`)
    else writeBulkText(w, value.toString())
  } else if (value instanceof NestedReplyError) {
    // RESP3: Redis' own blob errors stay blobs. gearbox's error texts are flattened for every
    // protocol, as Redis does for module error replies (RedisModule_ReplyWithError).
    if (protocol === 3 && value.blob) {
      const body = utf8.encode(value.message)
      w.write(`!${body.length}\r\n`)
      w.writeBytes(body)
      w.writeBytes(CRLF)
    } else {
      w.write(`-${oneLine(value.message)}\r\n`)
    }
  } else if (value instanceof RespNullArray) {
    w.write(protocol === 3 ? '_\r\n' : '*-1\r\n')
  } else if (Array.isArray(value)) {
    writeItems(w, '*', value as readonly RespValue[], protocol)
  } else if (value instanceof RespMap) {
    if (protocol === 3) {
      w.write(`%${value.entries.length}\r\n`)
      for (const [k, v] of value.entries) {
        writeValue(w, k, protocol)
        writeValue(w, v, protocol)
      }
    } else {
      writeItems(w, '*', value.entries.flat(), protocol)
    }
  } else if (value instanceof RespSet) {
    writeItems(w, protocol === 3 ? '~' : '*', value.items, protocol)
  } else if (value instanceof RespPush) {
    writeItems(w, protocol === 3 ? '>' : '*', value.items, protocol)
  } else if (value instanceof RespDouble) {
    const text = value.text ?? formatDouble(value.value)
    if (protocol === 3) w.write(`,${text}\r\n`)
    else writeBulkText(w, text)
  } else if (value instanceof RespBoolean) {
    w.write(protocol === 3 ? `#${value.value ? 't' : 'f'}\r\n` : `:${value.value ? 1 : 0}\r\n`)
  } else if (value instanceof RespVerbatim) {
    if (protocol === 3) {
      const body = utf8.encode(`${value.format}:${value.text}`)
      w.write(`=${body.length}\r\n`)
      w.writeBytes(body)
      w.writeBytes(CRLF)
    } else {
      writeBulkText(w, value.text)
    }
  } else {
    throw new TypeError('not a RESP value')
  }
}

/** Encodes one reply for a client speaking `protocol`. */
export function encodeReply(value: RespValue, protocol: RespProtocol): Uint8Array {
  // Fast paths for the most common replies (a forwarded GET or SET).
  if (value instanceof Uint8Array) {
    const header = `$${value.length}\r\n`
    const out = new Uint8Array(header.length + value.length + 2)
    for (let i = 0; i < header.length; i++) out[i] = header.charCodeAt(i)
    out.set(value, header.length)
    out[out.length - 2] = 0x0d
    out[out.length - 1] = 0x0a
    return out
  }
  // Shared and never written to: callers only send or copy reply bytes.
  if (value === 'OK') return OK_REPLY
  if (typeof value === 'string' && value.length < 64 && /^[\x20-\x7e]*$/.test(value)) return ascii(`+${value}\r\n`)
  if (typeof value === 'number' && Number.isSafeInteger(value)) return ascii(`:${value}\r\n`)
  const w = new RespWriter()
  writeValue(w, value, protocol)
  return w.bytes()
}

const OK_REPLY = new TextEncoder().encode('+OK\r\n')

function ascii(line: string): Uint8Array {
  const out = new Uint8Array(line.length)
  for (let i = 0; i < line.length; i++) out[i] = line.charCodeAt(i)
  return out
}

/** A top-level error reply (`-<text>`); Redis' texts start with a code such as `ERR`. */
export function encodeError(text: string): Uint8Array {
  return utf8.encode(`-${oneLine(text)}\r\n`)
}

/** The RESP2 multibulk form of a command (what gearbox sends Redis): strings as UTF-8, bytes as they are. */
export function encodeCommand(args: readonly (string | Uint8Array)[]): Uint8Array {
  const parts = args.map((arg) => (typeof arg === 'string' ? utf8.encode(arg) : arg))
  let size = 16
  for (const p of parts) size += p.length + 24
  const out = new Uint8Array(size)
  let o = putAscii(out, 0, `*${parts.length}\r\n`)
  for (const p of parts) {
    o = putAscii(out, o, `$${p.length}\r\n`)
    out.set(p, o)
    o += p.length
    out[o++] = 0x0d
    out[o++] = 0x0a
  }
  return out.subarray(0, o)
}

/**
 * Bytes {@link encodeCommandInto} may need for `args` (bulk arguments exact; strings at their
 * UTF-8 worst case of 3 bytes per UTF-16 unit).
 */
export function commandSizeBound(args: readonly (string | Uint8Array)[]): number {
  let size = 16
  for (const arg of args) size += (typeof arg === 'string' ? arg.length * 3 : arg.length) + 24
  return size
}

/**
 * Writes the RESP2 multibulk form of `args` into `out` from `offset` (which must have
 * {@link commandSizeBound} bytes free); returns the offset after it. No allocation for bytes.
 */
export function encodeCommandInto(args: readonly (string | Uint8Array)[], out: Uint8Array, offset: number): number {
  let o = putDecimalLine(out, offset, 0x2a, args.length)
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? utf8.encode(arg) : arg
    o = putDecimalLine(out, o, 0x24, bytes.length)
    out.set(bytes, o)
    o += bytes.length
    out[o++] = 0x0d
    out[o++] = 0x0a
  }
  return o
}

/** `<prefix><n>\r\n` (n ≥ 0). */
function putDecimalLine(out: Uint8Array, offset: number, prefix: number, n: number): number {
  out[offset++] = prefix
  if (n < 10) out[offset++] = 0x30 + n
  else offset = putAscii(out, offset, String(n))
  out[offset++] = 0x0d
  out[offset++] = 0x0a
  return offset
}

function putAscii(out: Uint8Array, offset: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[offset + i] = text.charCodeAt(i)
  return offset + text.length
}
