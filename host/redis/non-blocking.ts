/**
 * Blocking commands, run the way Redis runs them inside scripts and RedisGears runs them
 * through RM_Call: without blocking. `BLPOP k 5` on an empty list answers nil at once instead
 * of holding the connection (which gearbox shares among all executions) for five seconds.
 *
 * A blocking command is never sent as it is. Its arguments are read with Redis 7.0's own grammar
 * (arity, then each command's parse order: redis-number.ts for timeouts, xreadCommand's option
 * loop for XREAD/XREADGROUP, `strcasecmp` option names), and then either
 * - rewritten to its non-blocking twin, the reply converted back to the blocking command's
 *   shape (errors the twin gives from the same code path, e.g. WRONGTYPE, stay Redis's own), or
 * - refused here with the error Redis itself would answer (a {@link RedisReplyError} carrying
 *   Redis's text), when Redis would refuse it before it could block.
 */
import { RedisReplyError } from '../errors.js'
import { commandEntry } from './acl-check.js'
import { redisLongLong, redisTimeoutMilliseconds, redisTimeoutSeconds, sameOption } from './redis-number.js'
import type { RedisArg, RedisReply } from './types.js'

export interface NonBlockingForm {
  readonly args: readonly RedisArg[]
  /** Converts the reply of the rewritten command to the shape the original command has. */
  readonly adaptReply?: (reply: RedisReply) => RedisReply
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

/** Throws Redis's error when it would refuse the timeout (UNIT_SECONDS). */
function requireSecondsTimeout(arg: RedisArg | undefined): void {
  const verdict = redisTimeoutSeconds(arg)
  if (!verdict.ok) throw new RedisReplyError(verdict.error)
}

/** Redis's arity check (processCommand), run before any argument is read. */
function requireArity(name: string, args: readonly RedisArg[]): void {
  const arity = commandEntry(name)?.arity
  if (arity === undefined) return
  if ((arity > 0 && args.length !== arity) || args.length < -arity) {
    throw new RedisReplyError(`ERR wrong number of arguments for '${name}' command`)
  }
}

/**
 * XREAD/XREADGROUP without their BLOCK options, read as xreadCommand's loop reads them: BLOCK,
 * COUNT, GROUP and NOACK in any order and any number of times, up to STREAMS. Errors the loop
 * and the checks after it raise are thrown here with Redis's texts, so that a command carrying
 * BLOCK never reaches Redis in a form the host did not fully read.
 */
function streamReadWithoutBlock(name: 'xread' | 'xreadgroup', args: readonly RedisArg[]): NonBlockingForm {
  const isGroupRead = name === 'xreadgroup'
  const kept: RedisArg[] = [args[0]!]
  let sawBlock = false
  let streamsAt = 0
  let group = false
  const fail = (text: string): never => {
    throw new RedisReplyError(text)
  }
  for (let i = 1; i < args.length; i++) {
    const moreArgs = args.length - i - 1
    const o = args[i]
    if (sameOption(o, 'BLOCK') && moreArgs > 0) {
      i++
      const verdict = redisTimeoutMilliseconds(args[i])
      if (!verdict.ok) fail(verdict.error)
      sawBlock = true
    } else if (sameOption(o, 'COUNT') && moreArgs > 0) {
      i++
      if (redisLongLong(args[i]) === undefined) fail('ERR value is not an integer or out of range')
      kept.push(o!, args[i]!)
    } else if (sameOption(o, 'STREAMS') && moreArgs > 0) {
      streamsAt = i + 1
      if ((args.length - streamsAt) % 2 !== 0) {
        fail("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.")
      }
      kept.push(...args.slice(i))
      break
    } else if (sameOption(o, 'GROUP') && moreArgs >= 2) {
      if (!isGroupRead) fail('ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.')
      group = true
      kept.push(o!, args[i + 1]!, args[i + 2]!)
      i += 2
    } else if (sameOption(o, 'NOACK')) {
      if (!isGroupRead) fail('ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.')
      kept.push(o!)
    } else {
      fail('ERR syntax error')
    }
  }
  if (!sawBlock) return { args }
  if (streamsAt === 0) fail('ERR syntax error')
  if (isGroupRead && !group) fail('ERR Missing GROUP option for XREADGROUP')
  return { args: kept }
}

/** Blocking commands this module has a non-blocking form for. */
export const REWRITTEN_BLOCKING_COMMANDS: ReadonlySet<string> = new Set([
  'blpop',
  'brpop',
  'bzpopmin',
  'bzpopmax',
  'blmpop',
  'bzmpop',
  'brpoplpush',
  'blmove',
  'xread',
  'xreadgroup',
])

/**
 * The non-blocking form of a blocking command (lowercase `name`), `undefined` when `name` has
 * none (the policy refuses those). Throws a RedisReplyError with Redis's text for forms Redis
 * would refuse before blocking.
 */
export function nonBlockingForm(name: string, args: readonly RedisArg[]): NonBlockingForm | undefined {
  if (!REWRITTEN_BLOCKING_COMMANDS.has(name)) return undefined
  requireArity(name, args)
  switch (name) {
    case 'blpop':
    case 'brpop': {
      // BLPOP key [key ...] timeout → LMPOP numkeys key [key ...] LEFT
      requireSecondsTimeout(args[args.length - 1])
      const keys = args.slice(1, -1)
      return {
        args: ['LMPOP', String(keys.length), ...keys, name === 'blpop' ? 'LEFT' : 'RIGHT'],
        adaptReply: popOneElement,
      }
    }
    case 'bzpopmin':
    case 'bzpopmax': {
      // BZPOPMIN key [key ...] timeout → ZMPOP numkeys key [key ...] MIN
      requireSecondsTimeout(args[args.length - 1])
      const keys = args.slice(1, -1)
      return {
        args: ['ZMPOP', String(keys.length), ...keys, name === 'bzpopmin' ? 'MIN' : 'MAX'],
        adaptReply: popOneMember,
      }
    }
    case 'blmpop':
    case 'bzmpop':
      // BLMPOP timeout numkeys key ... → LMPOP numkeys key ...: the timeout is read first, the
      // rest by the same code LMPOP runs (same errors, same reply).
      requireSecondsTimeout(args[1])
      return { args: [name === 'blmpop' ? 'LMPOP' : 'ZMPOP', ...args.slice(2)] }
    case 'brpoplpush':
      // BRPOPLPUSH source destination timeout → RPOPLPUSH source destination
      requireSecondsTimeout(args[3])
      return { args: ['RPOPLPUSH', args[1]!, args[2]!] }
    case 'blmove': {
      // BLMOVE source destination wherefrom whereto timeout → LMOVE ...: Redis reads the two
      // positions before the timeout; a bad position makes LMOVE answer the same syntax error.
      const position = (a: RedisArg | undefined): boolean => sameOption(a, 'LEFT') || sameOption(a, 'RIGHT')
      if (position(args[3]) && position(args[4])) requireSecondsTimeout(args[5])
      return { args: ['LMOVE', ...args.slice(1, 5)] }
    }
    case 'xread':
    case 'xreadgroup':
      return streamReadWithoutBlock(name, args)
    default:
      return undefined
  }
}
