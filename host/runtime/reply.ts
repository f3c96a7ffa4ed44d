import { NestingLimitError } from '../errors.js'
import { NestedReplyError, type RedisReply } from '../redis/types.js'
import { MAX_NESTING_DEPTH, utf8OrUndefined, type WireValue } from './wire.js'

/**
 * A Redis reply as the guest sees it (RedisGears 1.2 `execute()` rules): arrays stay arrays; a
 * bulk string becomes a string, or bytes when it is not valid UTF-8; status replies are strings;
 * integers numbers (bigint beyond 2^53); nil null; an error nested in an array becomes its text.
 */
export function redisReplyToWire(reply: RedisReply, depth = 0): WireValue {
  if (reply instanceof Uint8Array) {
    return utf8OrUndefined(reply) ?? reply
  }
  if (Array.isArray(reply)) {
    if (depth >= MAX_NESTING_DEPTH) {
      throw new NestingLimitError(`a Redis reply nested deeper than ${MAX_NESTING_DEPTH} arrays cannot cross to the guest`)
    }
    return reply.map((item: RedisReply) => redisReplyToWire(item, depth + 1))
  }
  if (reply instanceof NestedReplyError) return reply.message
  return reply
}
