/** How `gearbox run` prints a reply: like redis-cli by default, or as JSON with --json. */
import { NestingLimitError } from '../errors.js'
import type { ExecuteReply } from '../gears/session.js'
import { MAX_NESTING_DEPTH } from '../runtime/wire.js'

/**
 * Deepest reply printed: a guest value nests at most {@link MAX_NESTING_DEPTH} levels, and a
 * reply wraps it in a few more (`[results, errors]`, ...).
 */
const MAX_RENDER_DEPTH = MAX_NESTING_DEPTH + 8

function tooDeep(): NestingLimitError {
  return new NestingLimitError(`the reply is nested deeper than ${MAX_RENDER_DEPTH} arrays: not printed`)
}

/**
 * redis-cli style: a top-level string prints as is (`OK`, an execution id); inside arrays strings
 * are quoted with redis-cli's escapes, integers print as `(integer) n`, nil as `(nil)`, and arrays
 * as numbered, indented lines.
 */
export function renderPlain(reply: ExecuteReply): string {
  if (typeof reply === 'string') return reply
  return renderNested(reply, '', 0)
}

function renderNested(reply: ExecuteReply, indent: string, depth: number): string {
  if (reply === null) return '(nil)'
  if (typeof reply === 'number' || typeof reply === 'bigint') return `(integer) ${reply}`
  if (typeof reply === 'string') return quote(reply.length, (i) => reply.charCodeAt(i), false)
  if (reply instanceof Uint8Array) return quote(reply.length, (i) => reply[i]!, true)
  if (reply.length === 0) return '(empty array)'
  if (depth >= MAX_RENDER_DEPTH) throw tooDeep()
  const width = String(reply.length).length
  const lines: string[] = []
  reply.forEach((item, i) => {
    const label = `${String(i + 1).padStart(width)}) `
    const pad = ' '.repeat(label.length)
    lines.push((i === 0 ? '' : indent) + label + renderNested(item, indent + pad, depth + 1))
  })
  return lines.join('\n')
}

/**
 * redis-cli's sdscatrepr quoting of `length` code units read by `at`. Bytes (binary) >= 0x80 print
 * as \xNN; the characters of a (decoded UTF-8) string print as text.
 */
function quote(length: number, at: (i: number) => number, binary: boolean): string {
  let out = '"'
  for (let i = 0; i < length; i++) {
    const c = at(i)
    if (c === 0x22) out += '\\"'
    else if (c === 0x5c) out += '\\\\'
    else if (c === 0x0a) out += '\\n'
    else if (c === 0x0d) out += '\\r'
    else if (c === 0x09) out += '\\t'
    else if (c === 0x07) out += '\\a'
    else if (c === 0x08) out += '\\b'
    else if (c < 0x20 || c === 0x7f || (binary && c >= 0x80)) {
      out += `\\x${c.toString(16).padStart(2, '0')}`
    } else out += String.fromCharCode(c)
  }
  return out + '"'
}

/** JSON: bigints as decimal strings, bytes as {"base64": "..."}. */
export function renderJson(reply: ExecuteReply): string {
  return JSON.stringify(toJson(reply, 0))
}

type Json = string | number | null | { base64: string } | Json[]

function toJson(reply: ExecuteReply, depth: number): Json {
  if (typeof reply === 'bigint') return reply.toString()
  if (reply instanceof Uint8Array) {
    let latin1 = ''
    for (let i = 0; i < reply.length; i++) latin1 += String.fromCharCode(reply[i]!)
    return { base64: btoa(latin1) }
  }
  if (Array.isArray(reply)) {
    if (depth >= MAX_RENDER_DEPTH) throw tooDeep()
    return (reply as readonly ExecuteReply[]).map((item) => toJson(item, depth + 1))
  }
  return reply as string | number | null
}
