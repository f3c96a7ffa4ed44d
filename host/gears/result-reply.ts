/**
 * A run()'s records as a RESP-shaped reply value (what `Gearbox.execute` and the RESP server send):
 * strings, numbers, bigints, bytes and null as they are; booleans as integers 1/0 (RedisGears sends
 * Python bools as integers); arrays recursively; objects as their JSON text (RedisGears sends
 * `"PY RECORD"` for a dict: a JSON text says more). `executions.results()` keeps the records as
 * they are instead.
 */
import { bytesToLatin1, type WireValue } from '../runtime/wire.js'
import type { ExecuteReply } from './session.js'

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Uint8Array) return bytesToLatin1(value)
  return value
}

/** One record as a reply value. */
export function recordReply(value: WireValue): ExecuteReply {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') return value
  if (typeof value === 'boolean') return value ? 1 : 0
  if (value instanceof Uint8Array) return value
  if (Array.isArray(value)) return (value as readonly WireValue[]).map(recordReply)
  return JSON.stringify(value, jsonReplacer)
}

/** `[results, errors]`, the reply of a blocking run() and of RG.GETRESULTS. */
export function resultsReply(results: readonly WireValue[], errors: readonly string[]): ExecuteReply {
  return [results.map(recordReply), [...errors]]
}
