/**
 * Blocking commands, run the way Redis runs them inside scripts and RedisGears runs them
 * through RM_Call: without blocking. `BLPOP k 5` on an empty list answers nil at once instead
 * of holding the connection (which gearbox shares among all executions) for five seconds.
 *
 * Each blocking command is rewritten to its non-blocking twin and the reply converted back to
 * the blocking command's shape. A command whose timeout or arity is invalid is sent unchanged:
 * Redis rejects it immediately with its usual error text, so it cannot block either.
 */
import { argText } from './command-metadata.js'
import type { RedisArg, RedisReply } from './types.js'

export interface NonBlockingForm {
  readonly args: readonly RedisArg[]
  /** Converts the reply of the rewritten command to the shape the original command has. */
  readonly adaptReply?: (reply: RedisReply) => RedisReply
}

/** A timeout argument Redis would accept (a finite number ≥ 0); other forms make Redis error out. */
function validTimeout(arg: RedisArg | undefined): boolean {
  const text = argText(arg)
  if (text === '' || text.trim() !== text) return false
  const t = Number(text)
  return Number.isFinite(t) && t >= 0
}

/** `[key, [element]]` (LMPOP) → `[key, element]` (BLPOP/BRPOP). */
function popOneElement(reply: RedisReply): RedisReply {
  if (!Array.isArray(reply)) return reply
  const [key, elements] = reply
  return Array.isArray(elements) && key !== undefined ? [key, elements[0] ?? null] : reply
}

/** `[key, [[member, score]]]` (ZMPOP) → `[key, member, score]` (BZPOPMIN/BZPOPMAX). */
function popOneMember(reply: RedisReply): RedisReply {
  if (!Array.isArray(reply)) return reply
  const [key, pairs] = reply
  const pair = Array.isArray(pairs) ? pairs[0] : undefined
  return Array.isArray(pair) && key !== undefined ? [key, pair[0] ?? null, pair[1] ?? null] : reply
}

/**
 * The non-blocking form of a blocking command, `undefined` when `name` has none (WAIT, WAITAOF,
 * commands newer than this table: the policy refuses those), or the unchanged arguments when
 * they are invalid anyway.
 */
export function nonBlockingForm(name: string, args: readonly RedisArg[]): NonBlockingForm | undefined {
  switch (name) {
    case 'blpop':
    case 'brpop': {
      // BLPOP key [key ...] timeout → LMPOP numkeys key [key ...] LEFT
      if (args.length < 3 || !validTimeout(args[args.length - 1])) return { args }
      const keys = args.slice(1, -1)
      return {
        args: ['LMPOP', String(keys.length), ...keys, name === 'blpop' ? 'LEFT' : 'RIGHT'],
        adaptReply: popOneElement,
      }
    }
    case 'bzpopmin':
    case 'bzpopmax': {
      // BZPOPMIN key [key ...] timeout → ZMPOP numkeys key [key ...] MIN
      if (args.length < 3 || !validTimeout(args[args.length - 1])) return { args }
      const keys = args.slice(1, -1)
      return {
        args: ['ZMPOP', String(keys.length), ...keys, name === 'bzpopmin' ? 'MIN' : 'MAX'],
        adaptReply: popOneMember,
      }
    }
    case 'blmpop':
    case 'bzmpop':
      // BLMPOP timeout numkeys key ... → LMPOP numkeys key ... (same reply)
      if (args.length < 5 || !validTimeout(args[1])) return { args }
      return { args: [name === 'blmpop' ? 'LMPOP' : 'ZMPOP', ...args.slice(2)] }
    case 'brpoplpush':
      // BRPOPLPUSH source destination timeout → RPOPLPUSH source destination
      if (args.length !== 4 || !validTimeout(args[3])) return { args }
      return { args: ['RPOPLPUSH', args[1]!, args[2]!] }
    case 'blmove':
      // BLMOVE source destination wherefrom whereto timeout → LMOVE ...
      if (args.length !== 6 || !validTimeout(args[5])) return { args }
      return { args: ['LMOVE', ...args.slice(1, 5)] }
    case 'xread':
    case 'xreadgroup': {
      // Drop `BLOCK ms` from the options before STREAMS. XREADGROUP's options start after
      // `GROUP group consumer` (a consumer may well be called BLOCK).
      let i = name === 'xread' ? 1 : 4
      while (i < args.length) {
        const token = argText(args[i]).toUpperCase()
        if (token === 'COUNT') i += 2
        else if (token === 'NOACK') i += 1
        else if (token === 'BLOCK') {
          if (!/^\d+$/.test(argText(args[i + 1]))) return { args }
          return { args: [...args.slice(0, i), ...args.slice(i + 2)] }
        } else break
      }
      return { args }
    }
    default:
      return undefined
  }
}
