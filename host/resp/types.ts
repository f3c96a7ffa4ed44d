/** The values of the RESP codec: a reply as Redis sends it, kept exact. */

/** An error element nested inside an array reply (a top-level error rejects a call instead). */
export class NestedReplyError {
  constructor(
    readonly message: string,
    /** Redis sent it as a RESP3 blob error (`!`): a RESP3 client gets it the same way. */
    readonly blob = false,
  ) {}
}

/**
 * A Redis reply as the backend delivers it (RESP2 shapes): bulk strings stay bytes so that
 * binary values are never lost; status replies are strings; integers are numbers, or bigint
 * beyond 2^53; nil is null.
 */
export type RedisReply = Uint8Array | string | number | bigint | null | NestedReplyError | RedisReply[]

// RESP3-only kinds: the RESP server builds them, and the reader produces them on connections
// switched to RESP3 (the server's forwarding connections of RESP3 clients only).

/** Any value of the codec: a {@link RedisReply} or a RESP3 kind, nested. */
export type RespValue = RedisReply | RespMap | RespSet | RespPush | RespDouble | RespBoolean | RespVerbatim | RespNullArray | readonly RespValue[]

/**
 * A RESP2 null array (`*-1`, e.g. BLPOP's timeout, an aborted EXEC), kept apart from a nil bulk
 * (`$-1`) on forwarding connections so that it passes through as Redis sent it; RESP3: null.
 */
export class RespNullArray {}
export const NULL_ARRAY = new RespNullArray()

/** A RESP3 map (`%`); RESP2: a flat array of key, value, key, value, ... */
export class RespMap {
  constructor(readonly entries: readonly (readonly [RespValue, RespValue])[]) {}
}
/** A RESP3 set (`~`); RESP2: an array. */
export class RespSet {
  constructor(readonly items: readonly RespValue[]) {}
}
/** A RESP3 push (`>`), e.g. a pub/sub message; RESP2: an array. */
export class RespPush {
  constructor(readonly items: readonly RespValue[]) {}
}
/** A RESP3 double (`,`); RESP2: its text as a bulk string. */
export class RespDouble {
  constructor(
    readonly value: number,
    /** The text Redis sent (kept so that it passes through byte for byte). */
    readonly text?: string,
  ) {}
}
/** A RESP3 boolean (`#`); RESP2: integer 1 or 0. */
export class RespBoolean {
  constructor(readonly value: boolean) {}
}
/** A RESP3 verbatim string (`=`, format `txt` or `mkd`); RESP2: a bulk string. */
export class RespVerbatim {
  constructor(
    readonly format: 'txt' | 'mkd',
    readonly text: string,
  ) {}
}

