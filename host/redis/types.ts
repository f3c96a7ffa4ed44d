/** The Redis backend contract used by the runtime and gears layers. */
import type { ShardInfo } from '../cluster/topology.js'
import type { RedisReplyError } from '../errors.js'
import type { RedisReply } from '../resp/types.js'

export type { ShardInfo }

/** A command argument: strings are sent as UTF-8, bytes as they are. */
export type RedisArg = string | Uint8Array

export { NestedReplyError, type RedisReply } from '../resp/types.js'

export interface CallOptions {
  /** Where keyless commands go; keyed commands always route by slot. Default: the current shard. */
  readonly shard?: string
  /**
   * The host itself sends this command (configGet, readers, persistence), not a guest: the
   * command policy is skipped and the command is sent as given. Default false.
   */
  readonly internal?: boolean
  /**
   * The reply budget: a reply that would cost the host more (its bytes plus a per-value
   * overhead, see resp/reader.ts) is refused from its header or as it arrives, never buffered
   * whole, and the call rejects with ReplyLimitError. Executions pass their
   * `limits.maxReplyBytes`. Default: none for functions' calls, the backend's
   * `internalMaxReplyBytes` for internal ones.
   */
  readonly maxReplyBytes?: number
}

export interface PipelineOptions {
  /** As {@link CallOptions.internal}: skip the command policy. Default false. */
  readonly internal?: boolean
  /** As {@link CallOptions.maxReplyBytes}, for each reply. */
  readonly maxReplyBytes?: number
}

export interface DedicatedCallOptions {
  /** As {@link CallOptions.maxReplyBytes}. */
  readonly maxReplyBytes?: number
}

export interface ScanOptions {
  /** SCAN's MATCH pattern. */
  readonly match?: string | Uint8Array
  /** SCAN's COUNT hint. */
  readonly count?: number
  /** SCAN's TYPE filter (`string`, `hash`, `list`, `set`, `zset`, `stream`). */
  readonly type?: string
}

export interface ScanPage {
  /** The cursor for the next call; `'0'` when the scan is complete. */
  readonly cursor: string
  readonly keys: Uint8Array[]
}

/** A command ready to send (see {@link RedisBackend.prepareCommand}). */
export interface PreparedCommand {
  readonly args: readonly RedisArg[]
  /** Converts the reply of a rewritten (non-blocking) command back to the original's shape. */
  readonly adaptReply?: (reply: RedisReply) => RedisReply
}

/**
 * A connection reserved for one caller (WATCH/MULTI/EXEC for atomic blocks), pinned to one master,
 * authenticated as the function user (Redis enforces the function ACL; the host policy is not
 * applied: see {@link RedisBackend.prepareCommand}). `release()` returns it to a small pool only
 * in a known-idle state: no reply pending, and DISCARD/UNWATCH answered when a transaction or
 * watch was left open; otherwise it is closed. Calls after `release()` reject with ClosedError.
 */
export interface DedicatedConnection {
  call(args: readonly RedisArg[], options?: DedicatedCallOptions): Promise<RedisReply>
  release(): void
}

/** What a pub/sub subscription tells its owner. */
export interface SubscriptionListener {
  /** A message: the channel and the payload (bytes, as Redis sent them). */
  message(channel: Uint8Array, payload: Uint8Array): void
  /**
   * The subscriber connection is (again) subscribed. `resubscribed` is true after a reconnection:
   * messages published while it was disconnected are lost (pub/sub keeps nothing).
   */
  subscribed(resubscribed: boolean): void
}

/**
 * A connection of its own to one master, as the configured (internal) user, for blocking reads
 * (XREADGROUP ... BLOCK) of stream registrations: a blocked command there holds up nothing else.
 * It reconnects after a loss (calls in flight then reject with ConnectionError) and is closed with
 * the backend; `close()` is immediate (a blocked call rejects at once).
 */
export interface BlockingConnection {
  /** `host:port` of the master, for messages. */
  readonly description: string
  call(args: readonly RedisArg[], options?: DedicatedCallOptions): Promise<RedisReply>
  close(): Promise<void>
}

/** A dedicated subscriber connection (see {@link RedisBackend.subscribe}). */
export interface Subscription {
  close(): Promise<void>
}

/** See {@link RedisBackend.directAccess}. */
export interface DirectAccess {
  readonly host: string
  readonly port: number
  readonly username: string
  readonly password: string
  /** The db to SELECT (0: none). */
  readonly db: number
  /** Lower-case names of the commands `prepareCommand` passes unchanged whatever their arguments (but reserved names). */
  readonly commands: readonly string[]
}

export interface RedisBackend {
  /**
   * Opens a subscriber connection to one master as the configured (internal) user and
   * PSUBSCRIBEs `patterns` on it, again after every reconnection. Resolves once first subscribed.
   * Optional: a backend without it cannot feed KeysReader registrations.
   */
  subscribe?(shardId: string, patterns: readonly string[], listener: SubscriptionListener): Promise<Subscription>
  /**
   * Opens a {@link BlockingConnection} to the master of shard `shardId`. Optional: a backend
   * without it cannot feed StreamReader registrations.
   */
  blockingConnection?(shardId: string): Promise<BlockingConnection>
  /**
   * Where a function's plain commands may be sent by another client of its own (a sandbox worker's
   * direct connection): a standalone master over TCP without TLS, as the function user, once that
   * user is set up there. Undefined otherwise. Optional: without it every call passes `call()`.
   */
  directAccess?(): Promise<DirectAccess | undefined>
  readonly mode: 'standalone' | 'cluster'
  /**
   * Sends one command: a function's command (not `internal`) as the function ACL user, an
   * internal one as the configured user. Top-level error replies reject with `RedisReplyError`
   * (the Redis text as message, e.g. NOPERM for what the function user may not run); a lost
   * connection rejects with `ConnectionError` (never resent); refused commands with
   * `CommandDeniedError`; a reply over `maxReplyBytes` with `ReplyLimitError` (the connection
   * stays usable); a function user gearbox cannot set up with `FunctionUserError`. In a cluster,
   * MOVED and ASK are followed (a bounded number of times).
   */
  call(args: readonly RedisArg[], options?: CallOptions): Promise<RedisReply>
  /** The masters, ordered by their lowest slot. */
  shards(): Promise<readonly ShardInfo[]>
  /** The shard keyless commands go to by default (the shard owning slot 0 in a cluster). */
  currentShard(): Promise<ShardInfo>
  /** A dedicated connection to the master owning `slot` (any master in standalone mode). */
  dedicated(slot: number): Promise<DedicatedConnection>
  /**
   * Sends `commands` to one master in a single write and resolves with one entry per command:
   * its reply, or the RedisReplyError Redis answered it with. Keys must belong to that master:
   * nothing is redirected (a key elsewhere answers with Redis's MOVED error in its place). A
   * reply over `maxReplyBytes` rejects the whole call with ReplyLimitError.
   * Refused commands reject the whole call with CommandDeniedError before anything is sent; a
   * lost connection rejects it with ConnectionError.
   */
  pipeline(
    shardId: string,
    commands: readonly (readonly RedisArg[])[],
    options?: PipelineOptions,
  ): Promise<(RedisReply | RedisReplyError)[]>
  /** One SCAN step on one master (host-internal: no command policy). */
  scanShard(shardId: string, cursor: string, options?: ScanOptions): Promise<ScanPage>
  /**
   * What `call` does to a function's command before sending it: the policy check (throws
   * CommandDeniedError) and the non-blocking rewrite of blocking commands. For callers that send
   * a function's commands on a {@link DedicatedConnection}, which applies no policy.
   */
  prepareCommand(args: readonly RedisArg[]): PreparedCommand
  close(): Promise<void>
}
