/**
 * `atomic(fn)` as an optimistic transaction (RedisGears holds the Redis lock instead; a library
 * next to Redis cannot). One attempt of a block:
 *
 * - the first command that needs Redis reserves a dedicated connection to the master owning the
 *   block's slot (`backend.dedicated(slot)`);
 * - a read (a command Redis flags `readonly`) WATCHes its keys on that connection, then runs at
 *   once and returns its real reply;
 * - a keyless command without side effects (PING, TIME, DBSIZE: see hasSideEffects) runs at once
 *   on the normal path, outside the transaction;
 * - every other command is a write: it is queued and returns the status `QUEUED`; reading a key
 *   the block already wrote is refused (the write is not applied yet, so the read could only
 *   return the old value);
 * - commit sends MULTI, the queued writes and EXEC. EXEC answering nil means a watched key changed
 *   since it was read: the attempt reports a conflict and the guest runs the block again.
 *   A block with no writes still sends an empty MULTI/EXEC when it read keys, so its reads are
 *   checked to be one consistent snapshot;
 * - abort (the block threw or returned a promise) drops the queue and releases the connection
 *   (the backend UNWATCHes it): nothing of the block is applied.
 * In a cluster every key of a block must hash to one slot (MULTI/EXEC cannot span slots).
 */
import { keySlot } from '../cluster/slots.js'
import { ConnectionError, GearboxError, RedisReplyError } from '../errors.js'
import { commandKeys, hasCommandFlag, isReadOnly, resolveCommand } from '../redis/command-metadata.js'
import {
  NestedReplyError,
  type CallOptions,
  type DedicatedCallOptions,
  type DedicatedConnection,
  type RedisArg,
  type RedisBackend,
  type RedisReply,
} from '../redis/types.js'
import { GuestFacingError } from './guest-facing-error.js'

/** The status a write inside an atomic block returns: it runs at the end of the block. */
export const QUEUED = 'QUEUED'

/** Commands atomic() itself issues; a block may not send them. */
const TRANSACTION_COMMANDS: ReadonlySet<string> = new Set(['multi', 'exec', 'discard', 'watch', 'unwatch'])

const utf8 = new TextEncoder()

/** One identity per key whether the guest gave it as a string or as bytes. */
function keyId(key: RedisArg): string {
  const bytes = typeof key === 'string' ? utf8.encode(key) : key
  let id = ''
  for (let i = 0; i < bytes.length; i++) id += String.fromCharCode(bytes[i]!)
  return id
}

function keyText(key: RedisArg): string {
  return typeof key === 'string' ? key : new TextDecoder().decode(key)
}

export interface AtomicAttemptOptions {
  readonly backend: RedisBackend
  /** Options for commands that leave the transaction (keyless reads). */
  readonly callOptions: CallOptions | undefined
  /** The slot whose master takes keyless writes when the block names no key (current shard). */
  readonly defaultSlot: () => Promise<number>
}

/** One attempt of one atomic block. */
export class AtomicAttempt {
  readonly #options: AtomicAttemptOptions
  #connection: Promise<DedicatedConnection> | undefined
  #slot: number | undefined
  readonly #watched = new Set<string>()
  readonly #written = new Set<string>()
  readonly #queue: (readonly RedisArg[])[] = []
  #finished = false

  constructor(options: AtomicAttemptOptions) {
    this.#options = options
  }

  /** The execution's reply budget, for the commands sent on the dedicated connection. */
  get #budget(): DedicatedCallOptions {
    const max = this.#options.callOptions?.maxReplyBytes
    return max === undefined ? {} : { maxReplyBytes: max }
  }

  /** Runs (a read) or queues (a write) one command of the block. */
  async execute(args: readonly RedisArg[]): Promise<RedisReply> {
    const command = typeof args[0] === 'string' ? args[0].toLowerCase() : ''
    if (TRANSACTION_COMMANDS.has(command)) {
      throw new GuestFacingError(
        `${command.toUpperCase()} is not allowed inside an atomic block: atomic() runs WATCH/MULTI/EXEC itself`,
      )
    }
    const { backend } = this.#options
    const keys = commandKeys(args)
    if (keys.length === 0 && !hasSideEffects(args)) return backend.call(args, this.#options.callOptions)
    // Dedicated connections apply no command policy: check (and rewrite blocking commands) here.
    const prepared = backend.prepareCommand(args)
    this.#claimSlot(keys)
    if (isReadOnly(args)) {
      for (const key of keys) {
        if (this.#written.has(keyId(key))) {
          throw new GuestFacingError(
            `atomic block reads key '${keyText(key)}' after writing it: writes inside atomic() are applied ` +
              'when the block ends, so read keys before writing them',
          )
        }
      }
      const connection = await this.#connect()
      const fresh = keys.filter((key) => !this.#watched.has(keyId(key)))
      if (fresh.length > 0) {
        await connection.call(['WATCH', ...fresh], this.#budget)
        for (const key of fresh) this.#watched.add(keyId(key))
      }
      const reply = await connection.call(prepared.args, this.#budget)
      return prepared.adaptReply === undefined ? reply : prepared.adaptReply(reply)
    }
    for (const key of keys) this.#written.add(keyId(key))
    this.#queue.push(prepared.args)
    return QUEUED
  }

  /**
   * Applies the queued writes. Resolves true when applied, false on a conflict (the block must run
   * again). Throws a GuestFacingError when a queued command failed.
   */
  async commit(): Promise<boolean> {
    try {
      if (this.#queue.length === 0 && this.#watched.size === 0) return true
      const connection = await this.#connect()
      await connection.call(['MULTI'])
      const queued = this.#queue.map((args) => connection.call(args, this.#budget))
      const exec = connection.call(['EXEC'], this.#budget)
      const [execResult, ...queuedResults] = await Promise.allSettled([exec, ...queued])
      if (execResult === undefined) throw new Error('unreachable: EXEC has a result')
      if (execResult.status === 'rejected') {
        // EXECABORT: a write was refused when queued (wrong arity, unknown command): nothing applied.
        const refused = queuedResults.find((r) => r.status === 'rejected')
        const reason: unknown = refused?.status === 'rejected' ? refused.reason : execResult.reason
        throw toGuestError(reason)
      }
      const reply = execResult.value
      if (reply === null) return false
      if (Array.isArray(reply)) {
        // Redis has no rollback: the other writes were applied; the block still fails loudly.
        const failed = reply.find((r): r is NestedReplyError => r instanceof NestedReplyError)
        if (failed !== undefined) throw new GuestFacingError(failed.message)
      }
      return true
    } finally {
      await this.#release()
    }
  }

  /** Drops the queued writes and the watches: nothing of this attempt is applied. */
  async abort(): Promise<void> {
    await this.#release()
  }

  #claimSlot(keys: readonly RedisArg[]): void {
    if (this.#options.backend.mode !== 'cluster') return
    for (const key of keys) {
      const slot = keySlot(key)
      if (this.#slot === undefined) this.#slot = slot
      else if (slot !== this.#slot) {
        throw new GuestFacingError(
          `atomic block keys must hash to one slot in a cluster: key '${keyText(key)}' is in slot ${slot}, ` +
            `the block already uses slot ${this.#slot} (give its keys a common {hashtag})`,
        )
      }
    }
  }

  #connect(): Promise<DedicatedConnection> {
    this.#connection ??= (async () => {
      const slot = this.#slot ?? (await this.#options.defaultSlot())
      this.#slot ??= slot
      return this.#options.backend.dedicated(slot)
    })()
    return this.#connection
  }

  /** Returns the connection; the backend sends UNWATCH/DISCARD for what the attempt left open. */
  async #release(): Promise<void> {
    if (this.#finished) return
    this.#finished = true
    const pending = this.#connection
    if (pending === undefined) return
    try {
      ;(await pending).release()
    } catch {
      // The connection never opened: nothing to release.
    }
  }
}

/**
 * Keyless commands that must wait for the block's commit: writes (FLUSHDB), pub/sub (PUBLISH),
 * administration (CONFIG SET), scripts (EVAL ... 0 may write any key) and unknown commands.
 */
function hasSideEffects(args: readonly RedisArg[]): boolean {
  const command = resolveCommand(args)
  if (command.flags === undefined) return true
  return ['write', 'pubsub', 'admin', 'script_runner'].some((flag) => hasCommandFlag(command, flag))
}

/** Maps a failure of a transaction command to what the guest sees. */
function toGuestError(reason: unknown): Error {
  if (reason instanceof RedisReplyError) return new GuestFacingError(reason.message)
  if (reason instanceof GearboxError) return reason
  return new ConnectionError(`atomic block commit failed: ${String(reason)}`, { cause: reason })
}
