/**
 * ioredis failures as gearbox errors: Redis error replies become RedisReplyError with Redis's
 * text unchanged; everything that means "no reply from Redis" becomes ConnectionError with a
 * message naming the option to change.
 */
import { ReplyError } from 'ioredis'
import { ConnectionError, GearboxError, RedisReplyError } from '../errors.js'

/** What the messages name: the command and the options that bound the wait. */
export interface ErrorContext {
  readonly command: string
  readonly where: string
  readonly connectTimeoutMs: number
  readonly commandTimeoutMs: number | undefined
}

export function toGearboxError(err: unknown, context: ErrorContext): Error {
  if (err instanceof GearboxError) return err
  if (err instanceof ReplyError) return new RedisReplyError((err as Error).message)
  const message = err instanceof Error ? err.message : String(err)
  const name = context.command.toUpperCase()
  if (message === 'Command timed out') {
    return new ConnectionError(
      `no reply to ${name} from Redis ${context.where} within commandTimeoutMs (${context.commandTimeoutMs ?? '?'} ms); ` +
        `the command may or may not have run`,
      { cause: err },
    )
  }
  if (message.startsWith('Too many Cluster redirections')) {
    return new ConnectionError(`${name}: ${message}`, { cause: err })
  }
  return new ConnectionError(
    `${name} could not be sent to Redis ${context.where}: ${message} ` +
      `(gearbox reconnects in the background; connectTimeoutMs is ${context.connectTimeoutMs} ms)`,
    { cause: err },
  )
}
