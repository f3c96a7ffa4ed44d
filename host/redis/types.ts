/** The Redis backend contract used by the runtime and gears layers. */

/** A command argument: strings are sent as UTF-8, bytes as they are. */
export type RedisArg = string | Uint8Array

/** An error element nested inside an array reply (top-level errors reject instead). */
export class NestedReplyError {
  constructor(readonly message: string) {}
}

/**
 * A Redis reply as the backend delivers it (RESP2 shapes): bulk strings stay bytes so that
 * binary values are never lost; status replies are strings; integers are numbers, or bigint
 * beyond 2^53; nil is null.
 */
export type RedisReply = Uint8Array | string | number | bigint | null | NestedReplyError | RedisReply[]

/** One master. In standalone mode there is exactly one, owning every slot. */
export interface ShardInfo {
  /** 40-character id (the cluster node id; forty '0' characters in standalone mode). */
  readonly id: string
  readonly host: string
  readonly port: number
  /** Inclusive slot ranges this master owns. */
  readonly slots: readonly (readonly [number, number])[]
  /** The lowest slot it owns (0 in standalone mode). */
  readonly minSlot: number
}

export interface CallOptions {
  /** Where keyless commands go; keyed commands always route by slot. Default: the current shard. */
  readonly shard?: string
}

/** A connection reserved for one caller (WATCH/MULTI/EXEC for atomic blocks), pinned to one master. */
export interface DedicatedConnection {
  call(args: readonly RedisArg[]): Promise<RedisReply>
  release(): void
}

export interface RedisBackend {
  readonly mode: 'standalone' | 'cluster'
  /**
   * Sends one command. Top-level error replies reject with `RedisReplyError` (the Redis text as
   * message); a lost connection rejects with `ConnectionError`; refused commands with
   * `CommandDeniedError`.
   */
  call(args: readonly RedisArg[], options?: CallOptions): Promise<RedisReply>
  /** The masters, ordered by their lowest slot. */
  shards(): Promise<readonly ShardInfo[]>
  /** The shard keyless commands go to by default (the shard owning slot 0 in a cluster). */
  currentShard(): Promise<ShardInfo>
  /** A dedicated connection to the master owning `slot` (any master in standalone mode). */
  dedicated(slot: number): Promise<DedicatedConnection>
  close(): Promise<void>
}
