/** The values of the RESP codec: a reply as Redis sends it, kept exact. */

/** An error element nested inside an array reply (a top-level error rejects a call instead). */
export class NestedReplyError {
  constructor(readonly message: string) {}
}

/**
 * A Redis reply as the backend delivers it (RESP2 shapes): bulk strings stay bytes so that
 * binary values are never lost; status replies are strings; integers are numbers, or bigint
 * beyond 2^53; nil is null.
 */
export type RedisReply = Uint8Array | string | number | bigint | null | NestedReplyError | RedisReply[]
