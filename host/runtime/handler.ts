/**
 * The runtime API on the host side: answers the host calls the guest prelude makes
 * (guest/js/10_runtime.js) over a RedisBackend. Engine-agnostic: it sees (op, payload) strings.
 *
 * Ops (payloads are wire JSON arrays of arguments):
 *   execute [command, ...args]         run a command (or queue it inside an atomic block)
 *   atomic.begin / .commit / .abort [] one attempt of an atomic block (see atomic.ts)
 *   configGet [key]                    a value of the `config` option, or null
 *   hashtag []                         the slot-table string of the current shard's lowest slot
 *   log [level, message]               a line for the logger
 *   sleep [ms]                         resolves after ms (runCoroutine delays; async)
 *   toplevel.done []                   the top level finished (the boundary of replay.ts)
 * plus the ops the caller adds (`ops`), e.g. the gears layer's.
 */
import { hashtagForSlot } from '../cluster/hashtags.js'
import { AtomicConflictError, GearboxError, RedisReplyError, ReplyLimitError } from '../errors.js'
import type { HostHandler } from '../sandbox/types.js'
import type { CallOptions, RedisArg, RedisBackend, RedisReply, ShardInfo } from '../redis/types.js'
import { AtomicAttempt } from './atomic.js'
import { extraConfigValue } from './config.js'
import { GuestFacingError } from './guest-facing-error.js'
import { consoleLogger, isLogLevel, type GearsLogger } from './logger.js'
import {
  divergedCallMessage,
  missingCallsMessage,
  ReplayCursor,
  type TopLevelMode,
} from './replay.js'
import { redisReplyToWire } from './reply.js'
import { checkWellFormed } from './strings.js'
import { decodeWire, replyCodedError, replyGearsError, replyValue, type WireValue } from './wire.js'

/** Default for {@link HostHandlerOptions.atomicRetries}. */
export const DEFAULT_ATOMIC_RETRIES = 16

/** What one execution's host calls run against; handed to extra ops. */
export interface ExecutionContext {
  readonly backend: RedisBackend
  /** The shard this execution runs on (keyless commands go there). */
  currentShard(): Promise<ShardInfo>
  /** Runs one command the way the guest's execute() does (inside an atomic block: queued/watched). */
  execute(args: readonly RedisArg[]): Promise<RedisReply>
  /** True between atomic.begin and its commit/abort. */
  readonly inAtomic: boolean
}

/**
 * An extra host operation. `args` is the decoded wire payload. Return the value the guest gets;
 * throw a `GuestFacingError` for a GearsError, a `GearboxError` for a coded GearsError; any other
 * throw fails the whole execution.
 */
export type HostOp = (args: WireValue, context: ExecutionContext, mode: 'sync' | 'async') => Promise<WireValue> | WireValue

export interface HostHandlerOptions {
  readonly backend: RedisBackend
  /** Where log() lines go. Default: {@link consoleLogger}. */
  readonly logger?: GearsLogger
  /** The RedisGears "extra config" dictionary configGet() reads. Default: empty. */
  readonly config?: Readonly<Record<string, string>>
  /** How many times an atomic block is re-run after a conflict before AtomicConflictError. Default 16. */
  readonly atomicRetries?: number
  /** The shard this execution runs on. Default: `backend.currentShard()`. */
  readonly shard?: ShardInfo
  /** Record or replay the top level's host calls (see replay.ts). Default: neither. */
  readonly topLevel?: TopLevelMode
  /** Extra ops by name (may not replace the built-in ones). */
  readonly ops?: Readonly<Record<string, HostOp>>
  /** The reply budget of each command the execution sends: its `limits.maxReplyBytes`. Default: none. */
  readonly maxReplyBytes?: number
}

/** A HostHandler for one execution. */
export interface RuntimeHostHandler extends HostHandler {
  /**
   * Releases what an execution that ended early may hold: an atomic block's dedicated connection
   * (its writes are dropped) and sleep timers. Call it once the execution's result settled.
   */
  dispose(): Promise<void>
}

const BUILTIN_OPS: ReadonlySet<string> = new Set([
  'execute',
  'atomic.begin',
  'atomic.commit',
  'atomic.abort',
  'configGet',
  'hashtag',
  'log',
  'sleep',
  'toplevel.done',
])

/** Creates the host side of one execution. */
export function createHostHandler(options: HostHandlerOptions): RuntimeHostHandler {
  for (const name of Object.keys(options.ops ?? {})) {
    if (BUILTIN_OPS.has(name)) throw new TypeError(`createHostHandler: op '${name}' is built in and cannot be replaced`)
  }
  return new RuntimeHandler(options)
}

class RuntimeHandler implements RuntimeHostHandler, ExecutionContext {
  readonly backend: RedisBackend
  readonly #logger: GearsLogger
  readonly #config: Readonly<Record<string, string>>
  readonly #atomicRetries: number
  readonly #ops: Readonly<Record<string, HostOp>>
  readonly #callOptions: CallOptions | undefined
  #shard: Promise<ShardInfo> | undefined
  #atomic: AtomicAttempt | undefined
  #atomicConflicts = 0
  readonly #timers = new Set<ReturnType<typeof setTimeout>>()
  #disposed = false

  // Top-level record/replay state.
  readonly #topLevel: TopLevelMode | undefined
  readonly #replay: ReplayCursor | undefined
  #topLevelDone = false

  constructor(options: HostHandlerOptions) {
    this.backend = options.backend
    this.#logger = options.logger ?? consoleLogger
    this.#config = options.config ?? {}
    this.#atomicRetries = options.atomicRetries ?? DEFAULT_ATOMIC_RETRIES
    this.#ops = options.ops ?? {}
    const callOptions: CallOptions = {
      ...(options.shard === undefined ? {} : { shard: options.shard.id }),
      ...(options.maxReplyBytes === undefined ? {} : { maxReplyBytes: options.maxReplyBytes }),
    }
    this.#callOptions = Object.keys(callOptions).length === 0 ? undefined : callOptions
    if (options.shard !== undefined) this.#shard = Promise.resolve(options.shard)
    this.#topLevel = options.topLevel
    this.#replay = options.topLevel?.mode === 'replay' ? new ReplayCursor(options.topLevel.recording) : undefined
  }

  get inAtomic(): boolean {
    return this.#atomic !== undefined
  }

  /**
   * Sync `execute` calls may be sent by the worker itself (HostHandler.directCalls): a standalone
   * backend, a reply budget per command, and no top level being recorded or replayed (those
   * calls must pass here). Atomic blocks and setup runs are told apart in the worker.
   */
  get directCalls(): boolean {
    return this.backend.mode === 'standalone' && this.#topLevel === undefined && this.#callOptions?.maxReplyBytes !== undefined
  }

  currentShard(): Promise<ShardInfo> {
    this.#shard ??= this.backend.currentShard()
    return this.#shard
  }

  execute(args: readonly RedisArg[]): Promise<RedisReply> {
    if (this.#atomic !== undefined) return this.#atomic.execute(args)
    return this.backend.call(args, this.#callOptions)
  }

  call(op: string, payload: string, mode: 'sync' | 'async'): Promise<string> | string {
    if (this.#topLevel === undefined || this.#topLevelDone) return this.#answer(op, payload, mode)
    if (op === 'toplevel.done') return this.#finishTopLevel()
    if (this.#replay !== undefined) {
      return this.#replay.next(op, payload) ?? replyGearsError(divergedCallMessage(op, payload))
    }
    const recording = this.#topLevel.recording
    // An overflowed recording keeps nothing more (replay.ts): the call just runs.
    if (recording.overflow !== undefined) return this.#answer(op, payload, mode)
    return this.#answer(op, payload, mode).then((reply) => {
      recording.add({ op, payload, reply })
      return reply
    })
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return
    this.#disposed = true
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    const attempt = this.#atomic
    this.#atomic = undefined
    if (attempt !== undefined) await attempt.abort()
  }

  #finishTopLevel(): string {
    this.#topLevelDone = true
    if (this.#replay !== undefined) {
      const unused = this.#replay.unused
      if (unused > 0) return replyGearsError(missingCallsMessage(unused))
    } else {
      this.#topLevel?.recording.finish()
    }
    return replyValue(null)
  }

  /** Runs one op and encodes its outcome as a wire reply. */
  async #answer(op: string, payload: string, mode: 'sync' | 'async'): Promise<string> {
    let args: WireValue
    try {
      // Payloads without wire special objects parse without the reviver (the common case).
      args = payload.includes('\\u0000') ? decodeWire(payload) : (JSON.parse(payload) as WireValue)
    } catch {
      return replyGearsError(`gearbox: malformed payload for host call '${op}'`)
    }
    try {
      return replyValue(await this.#dispatch(op, args, mode))
    } catch (error) {
      if (error instanceof GuestFacingError || error instanceof RedisReplyError) return replyGearsError(error.message)
      // A reply over limits.maxReplyBytes is a limit like the sandbox's own reply cap: it stops the
      // execution (thrown to the pool) instead of reaching the guest as a catchable GearsError.
      if (error instanceof ReplyLimitError) throw error
      if (error instanceof GearboxError) return replyCodedError(error.code, error.message)
      throw error
    }
  }

  async #dispatch(op: string, args: WireValue, mode: 'sync' | 'async'): Promise<WireValue> {
    switch (op) {
      case 'execute':
        return redisReplyToWire(await this.execute(commandArgs(args)))
      case 'atomic.begin':
        if (this.#atomic !== undefined) throw new GuestFacingError('Already inside an atomic block')
        this.#atomic = new AtomicAttempt({
          backend: this.backend,
          callOptions: this.#callOptions,
          defaultSlot: async () => (await this.currentShard()).minSlot,
        })
        return null
      case 'atomic.commit':
        return this.#commitAtomic()
      case 'atomic.abort': {
        const attempt = this.#takeAtomic()
        this.#atomicConflicts = 0
        await attempt.abort()
        return null
      }
      case 'configGet':
        return extraConfigValue(this.#config, stringArg(args, 0, 'configGet'))
      case 'hashtag':
        return hashtagForSlot((await this.currentShard()).minSlot)
      case 'log': {
        const level = stringArg(args, 0, 'log')
        if (!isLogLevel(level)) throw new GuestFacingError('Log level should be one of the following : debug,verbose,notice,warning')
        this.#logger.log(level, stringArg(args, 1, 'log'))
        return null
      }
      case 'sleep':
        await this.#sleep(numberArg(args, 0, 'sleep'))
        return null
      case 'toplevel.done':
        return null
      default: {
        const extra = Object.prototype.hasOwnProperty.call(this.#ops, op) ? this.#ops[op] : undefined
        if (extra === undefined) {
          // call_next / override_reply outside a command hook or a command-linked execution.
          const noContext = Object.prototype.hasOwnProperty.call(NO_COMMAND_CONTEXT, op) ? NO_COMMAND_CONTEXT[op] : undefined
          throw new GuestFacingError(noContext ?? `gearbox: unknown host call '${op}'`)
        }
        return extra(args, this, mode)
      }
    }
  }

  async #commitAtomic(): Promise<boolean> {
    const attempt = this.#takeAtomic()
    let committed: boolean
    try {
      committed = await attempt.commit()
    } catch (error) {
      this.#atomicConflicts = 0
      throw error
    }
    if (committed) {
      this.#atomicConflicts = 0
      return true
    }
    this.#atomicConflicts++
    if (this.#atomicConflicts > this.#atomicRetries) {
      const runs = this.#atomicConflicts
      this.#atomicConflicts = 0
      throw new AtomicConflictError(
        `atomic block conflicted with concurrent writers ${runs} times in a row (re-run ${runs - 1} times): ` +
          `raise the atomicRetries option (now ${this.#atomicRetries})`,
      )
    }
    return false
  }

  #takeAtomic(): AtomicAttempt {
    const attempt = this.#atomic
    if (attempt === undefined) throw new GuestFacingError('Not inside an atomic block')
    this.#atomic = undefined
    return attempt
  }

  /**
   * Waits `ms`, however long: a timer holds at most 2^31-1 ms (longer delays fire at once in
   * Node), so long waits chain timers. The execution's wall limit ends what it cannot outlive.
   */
  #sleep(ms: number): Promise<void> {
    if (!(ms >= 0 && ms < Infinity)) throw new GuestFacingError('sleep duration must be a non-negative number of milliseconds')
    const until = Date.now() + ms
    return new Promise((resolve) => {
      const wait = (): void => {
        const left = until - Date.now()
        if (left <= 0 || this.#disposed) {
          resolve()
          return
        }
        const timer = setTimeout(() => {
          this.#timers.delete(timer)
          wait()
        }, Math.min(left, MAX_TIMER_MS))
        this.#timers.add(timer)
      }
      wait()
    })
  }
}

/**
 * RedisGears' errors for the command-path calls when the execution has no such context (the RESP
 * server adds these ops to hook and command-linked executions).
 */
const NO_COMMAND_CONTEXT: Readonly<Record<string, string>> = {
  'command.callNext': 'Can not get CommandHook ctx',
  'command.overrideReply': 'Can not get command ctx',
}

/** The longest delay one timer holds (setTimeout fires at once beyond it). */
const MAX_TIMER_MS = 2 ** 31 - 1

function commandArgs(args: WireValue): RedisArg[] {
  if (!Array.isArray(args) || args.length === 0 || typeof args[0] !== 'string') {
    throw new GuestFacingError('the given command must be a string')
  }
  const out: RedisArg[] = []
  for (const arg of args as readonly WireValue[]) {
    if (typeof arg === 'string') out.push(checkWellFormed(arg, out.length))
    else if (arg instanceof Uint8Array) out.push(arg)
    else throw new GuestFacingError('gearbox: execute arguments must be strings or bytes')
  }
  return out
}

function stringArg(args: WireValue, index: number, op: string): string {
  const value = Array.isArray(args) ? (args as readonly WireValue[])[index] : undefined
  if (typeof value !== 'string') throw new GuestFacingError(`gearbox: host call '${op}' expects a string argument ${index}`)
  return value
}

function numberArg(args: WireValue, index: number, op: string): number {
  const value = Array.isArray(args) ? (args as readonly WireValue[])[index] : undefined
  if (typeof value !== 'number') throw new GuestFacingError(`gearbox: host call '${op}' expects a number argument ${index}`)
  return value
}
