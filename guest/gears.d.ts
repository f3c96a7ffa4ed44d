/**
 * Types for gearbox function authors: the RedisGears 1.2 runtime API as JavaScript globals.
 *
 * Reference it from a function script with
 * `/// <reference types="gearbox/gears.d.ts" />` (or `/// <reference path=".../guest/gears.d.ts" />`).
 *
 * A script runs in a fresh QuickJS interpreter per execution, with hard memory/CPU/wall limits.
 * Its top level runs once per submission. Every function below is a global; reassigning one only
 * affects the script that does it. Errors from the API are {@link GearsError}s with RedisGears'
 * texts, so ported checks on messages keep working.
 */

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/**
 * The error class of the runtime API (RedisGears `gears.error`).
 *
 * - Redis error replies raise it with Redis's exact text (`WRONGTYPE Operation against a key ...`).
 * - API misuse raises it with RedisGears' text (`the given command must be a string`, ...).
 * - Host-side failures raise it with a {@link GearsError.code}: `ERR_GEARBOX_CONNECTION` (Redis
 *   unreachable or the connection dropped during the call), `ERR_GEARBOX_COMMAND_DENIED` (the
 *   command policy refused the command), `ERR_GEARBOX_ATOMIC_CONFLICT` (an {@link atomic} block kept
 *   conflicting), ...
 */
declare class GearsError extends Error {
  constructor(message?: string, code?: string)
  readonly name: 'GearsError'
  /** Set for host-side failures (`ERR_GEARBOX_...`); undefined for Redis and API errors. */
  readonly code?: string
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

/**
 * A Redis reply as a script sees it: an array reply is an Array; a bulk string is a string, or a
 * Uint8Array when it is not valid UTF-8; a status reply (`OK`) is a string; an integer is a
 * number, or a bigint beyond 2^53; nil is null; an error nested in an array is its text.
 */
type GearsReply = string | number | bigint | null | Uint8Array | GearsReply[]

/**
 * Runs one Redis command and returns its reply. Synchronous: the interpreter waits for Redis.
 *
 * Arguments: a Uint8Array is sent binary-safe; every other value is sent as `String(value)`
 * (`1` → `'1'`, `null` → `'null'`). With no arguments at all it returns `[]`.
 * Strings go to Redis as UTF-8, which cannot carry a lone surrogate (`'k\uD800'`): such a string
 * is refused (GearsError with `.code` `ERR_GEARBOX_INVALID_STRING`) rather than written as U+FFFD,
 * which would make `'k\uD800'` and `'k\uDC00'` the same key. Send binary data as a Uint8Array.
 * A sequence of execute() calls is not atomic: use {@link atomic} for that.
 *
 * In a cluster, a keyed command goes to the master owning its key's slot; a keyless command to the
 * shard this execution runs on.
 *
 * @throws GearsError `the given command must be a string` when `command` is not a string.
 * @throws GearsError with Redis's text when Redis answers with an error reply.
 * @throws GearsError with `.code` `ERR_GEARBOX_CONNECTION` or `ERR_GEARBOX_COMMAND_DENIED`;
 *   `ERR_GEARBOX_INVALID_STRING` for a string argument holding a lone surrogate;
 *   `ERR_GEARBOX_NESTING_LIMIT` for a reply nested deeper than 1000 arrays.
 * @example
 * execute('SET', 'user:1', 'ada')
 * execute('HSET', 'h', 'n', 42)          // 42 is sent as '42'
 * const v = execute('GET', 'user:1')     // 'ada'
 */
declare function execute(command: string, ...args: unknown[]): GearsReply
declare function execute(): []

/**
 * Runs `fn` as one optimistic transaction and returns what `fn` returns.
 *
 * RedisGears' `atomic()` holds the Redis lock; gearbox runs next to Redis, so a block is a
 * WATCH/MULTI/EXEC transaction on a connection of its own instead:
 *
 * - **Reads** (read-only commands: GET, HGET, EXISTS, ...) WATCH their keys, run at once and return
 *   their real replies. Keyless reads (TIME, PING) run outside the transaction.
 * - **Writes** (every other command: SET, INCR, DEL, ...) are queued and return the status
 *   string `'QUEUED'`; they are applied together, with MULTI/EXEC, when `fn` returns. Their own
 *   replies are not returned: read what you need before writing (`GET` then `SET`, not `INCR`).
 * - **Reading a key the block already wrote** raises a GearsError (the write is not applied yet,
 *   so the read could only see the old value).
 * - **Conflicts**: when another client changed a key the block read before the block's writes
 *   were applied, nothing is applied and `fn` runs again, from the start, with fresh reads — so `fn`
 *   must not have side effects outside Redis other than log(). After `atomicRetries` re-runs
 *   (a Gearbox option, default 16) it raises GearsError with code `ERR_GEARBOX_ATOMIC_CONFLICT`.
 *   A block that only reads still checks at its end that its reads were one consistent snapshot.
 * - **Exceptions** thrown by `fn` abort the transaction (nothing of the block is applied) and
 *   propagate.
 * - A write that Redis refuses when queued (wrong arity, unknown command) aborts the whole block
 *   with Redis's error. A write that fails when applied (e.g. WRONGTYPE) raises a GearsError with
 *   Redis's text after the block, but the block's other writes *were* applied: Redis has no rollback.
 * - A lost connection raises GearsError `ERR_GEARBOX_CONNECTION`; when it drops while the block's
 *   writes are being applied, they may or may not have been applied.
 * - MULTI, EXEC, DISCARD, WATCH and UNWATCH are refused inside a block.
 * - **Cluster**: every key of one block must hash to one slot: give the keys a common hashtag
 *   (`{user:1}:name`, `{user:1}:visits`, or `` `{${hashtag()}}key` ``).
 *
 * @throws GearsError `Already inside an atomic block` when called inside another atomic block.
 * @throws GearsError `await is not allow inside atomic block` when `fn` returns a promise
 *   (an async function, or one that awaits): the block is aborted and nothing of it is applied.
 *   The async function's code after its first `await` still runs later, outside any block.
 * @example
 * const next = atomic(() => {
 *   const v = Number(execute('GET', 'counter') ?? 0)
 *   execute('SET', 'counter', v + 1)          // returns 'QUEUED'
 *   return v + 1
 * })
 */
declare function atomic<T>(fn: () => T): T

// ---------------------------------------------------------------------------------------------
// Configuration, shard, logging
// ---------------------------------------------------------------------------------------------

/**
 * A value of the extra configuration (the Gearbox `config` option), or null when absent.
 * RedisGears' own settings (MaxExecutions, ExecutionThreads, ...) are never visible here.
 *
 * @throws GearsError `get_config function must get a single key input` unless exactly one argument.
 * @throws GearsError `get_config key must be a string` when the key is not a string.
 */
declare function configGet(key: string): string | null

/** `configGet(key)`, or `defaultValue` (default null) when it is null. */
declare function gearsConfigGet<D = null>(key: string, defaultValue?: D): string | D

/**
 * A short string that hashes to the lowest slot the current shard owns: `{${hashtag()}}name` is a
 * key on this shard. `'06S'` (slot 0) on a standalone Redis.
 */
declare function hashtag(): string

/** Log levels, as in the Redis log. */
type GearsLogLevel = 'debug' | 'verbose' | 'notice' | 'warning'

/**
 * Writes `GEARS: <message>` to the gearbox logger (the `logger` option; by default stderr).
 * The legacy RedisGears form `log(level, message)` is accepted with a deprecation warning.
 *
 * @throws GearsError `log function must get a log message as input` with 0 or more than 2 arguments.
 * @throws GearsError `Log message must be a string`.
 * @throws GearsError `Log level must be a sting (debug/verbose/notice/warning)` (sic).
 * @throws GearsError `Log level should be one of the following : debug,verbose,notice,warning`.
 */
declare function log(message: string, level?: GearsLogLevel): void

// ---------------------------------------------------------------------------------------------
// Futures and coroutines
// ---------------------------------------------------------------------------------------------

/** A promise that code holding it settles: from {@link createFuture}. */
interface GearsFuture<T = unknown> extends Promise<T> {
  /** Same as `setFutureResults(this, value)`. */
  readonly resolve: (value: T) => void
  /** Same as `setFutureException(this, error)`. */
  readonly reject: (error: unknown) => void
}

/** A new unsettled {@link GearsFuture}; await it in async code. */
declare function createFuture<T = unknown>(): GearsFuture<T>

/** Fulfils `future` with `result`. A second settle, or a value that is not a future, is ignored. */
declare function setFutureResults<T>(future: GearsFuture<T>, result: T): void

/**
 * Rejects `future` with `exception` (an Error as is, anything else as `new Error(String(x))`).
 * A second settle, or a value that is not a future, is ignored.
 */
declare function setFutureException<T>(future: GearsFuture<T>, exception: unknown): void

/**
 * Runs `coroutine` in the background: an async function (called after the delay) or a promise.
 * It is scheduled, not called at once: it starts after the current synchronous code (so one
 * started inside an {@link atomic} block runs after the block, outside its transaction).
 * When it finishes, its value fulfils `future` (or its error rejects it); with `future` null the
 * outcome is discarded. `delaySeconds` (default 0) waits first; pass a function rather than an
 * already started promise for the delay to matter. Any finite delay is honoured, however long
 * (never fired early), within the wall-time limit.
 *
 * The execution waits for every runCoroutine task (and the tasks they start) before it finishes,
 * bounded by the wall-time limit (`limits.wallMs`): a task that awaits a future nothing settles
 * ends the execution with ERR_GEARBOX_WALL_LIMIT. Promise jobs the top level starts without
 * runCoroutine (`Promise.resolve().then(() => execute(...))`) also run before the script ends.
 *
 * @throws GearsError when `coroutine` is neither a function nor a promise, `future` is not from
 *   createFuture(), or `delaySeconds` is not a non-negative number.
 */
declare function runCoroutine<T>(
  coroutine: PromiseLike<T> | (() => PromiseLike<T> | T),
  future?: GearsFuture<T> | null,
  delaySeconds?: number,
): void

/** False at the script's top level; true inside GearsBuilder step callbacks that may be async. */
declare function isAsyncAllow(): boolean

// ---------------------------------------------------------------------------------------------
// Errors and command contexts
// ---------------------------------------------------------------------------------------------

/**
 * Throws a GearsError whose text is reported verbatim in an execution's errors (no name, no stack).
 * @throws GearsError `not enough arguments for time flat error` unless exactly one argument.
 */
declare function flat_error(message: unknown): never

/**
 * Inside a command hook's execution (CommandReader `hook=`, under `gearbox serve`): runs the next
 * matching hook, or the hooked command itself with `args` (the arguments without the command name:
 * `call_next(...record.slice(1))`), as the client that sent it, and returns its reply converted like
 * `execute()`'s. Arguments other than strings and bytes are converted with `String()`.
 * @throws GearsError with Redis' text when the command's reply is an error.
 * @throws GearsError `Can not get CommandHook ctx` outside a hook (`Failed executing command` in a
 *   `trigger=` execution).
 */
declare function call_next(...args: unknown[]): unknown

/**
 * Inside an execution linked to a client's command (KeysReader `commands=[...]`, under `gearbox
 * serve`): the client gets `reply` (converted by spec §3: `'+x'` a status, `'-x'` an error, integers,
 * `%lf` floats, booleans as 1/0, arrays, bytes, null as nil, an object as its JSON) instead of the
 * command's own reply. The first call wins.
 * @throws GearsError `Override reply must get a single argument`, `Can only override reply once`,
 *   `Can not get command ctx` (no linked command: another reader, no `commands=`, inside MULTI).
 */
declare function override_reply(reply: unknown): null

// ---------------------------------------------------------------------------------------------
// GearsBuilder — types appended by the GearsBuilder implementation (issue 3) below this line.
// ---------------------------------------------------------------------------------------------

/**
 * A record of the KeysReader. `value` and `type` are absent with `readValue: false`.
 *
 * | Redis type | `type`     | `value`                                                   |
 * | ---------- | ---------- | --------------------------------------------------------- |
 * | string     | `'string'` | the string (a Uint8Array when it is not valid UTF-8)       |
 * | hash       | `'hash'`   | `{field: value}` (HGETALL)                                 |
 * | list       | `'list'`   | the elements, in list order (LRANGE 0 -1)                  |
 * | set        | `'set'`    | the members (SMEMBERS; no order)                           |
 * | sorted set | `'zset'`   | `[member, score]` pairs by ascending score; ±inf is ±Infinity |
 * | stream     | `'stream'` | `{id, value: {field: value}}` entries by id                |
 * | module     | `'module'` | `null`                                                     |
 * | (missing, `noScan`) | `'empty'` | `null`                                             |
 *
 * RedisGears 1.2 gives `None` for set, zset and stream values (users asked for them, issue #290)
 * and calls a stream `'unknown'`. A key name that is not valid UTF-8 is a Uint8Array.
 */
interface KeysReaderRecord {
  readonly key: string | Uint8Array
  readonly value?: GearsReply | Record<string, GearsReply> | [GearsReply, number][] | { id: string; value: Record<string, GearsReply> }[]
  readonly type?: 'string' | 'hash' | 'list' | 'set' | 'zset' | 'stream' | 'module' | 'empty'
  /** Always null for run() (registrations set the event name). */
  readonly event: null
}

/** A record of the StreamReader: one stream entry. */
interface StreamReaderRecord {
  readonly key: string
  readonly id: string
  readonly value: Record<string, GearsReply>
}

/** What localgroupby, groupby, batchgroupby, aggregateby and countby output: one record per key. */
interface GroupRecord<V> {
  /** The group key, always a string (see {@link GearsBuilder.groupby}). */
  readonly key: string
  readonly value: V
}

/** A step callback may return a promise: the record waits for it (other records go on). */
type MaybePromise<T> = T | PromiseLike<T>

/** The options of {@link GearsBuilder.run}. Options another reader uses are ignored. */
interface RunOptions {
  /**
   * `'async'` (default): every master of a cluster reads its keys and runs the flow. `'async_local'`:
   * only the shard this script's execution runs on (the master owning slot 0). Without a cluster both
   * are the same. `'sync'` (registrations only) is refused: `unknown execution mode`.
   */
  readonly mode?: 'async' | 'async_local'
  /** Append a map turning every record into a string (see {@link GearsBuilder.run}). Default true. */
  readonly convertToStr?: boolean
  /** Append a collect() (results gathered from every shard either way in gearbox). Default true. */
  readonly collect?: boolean
  /** KeysReader, KeysOnlyReader: the argument is a key name, not a pattern. Default false. */
  readonly noScan?: boolean
  /** KeysReader: read values (else records are `{key, event}`). Default true. */
  readonly readValue?: boolean
  /** KeysOnlyReader: SCAN's COUNT. Default 1000. */
  readonly count?: number
  /** KeysOnlyReader: called on each shard, returns `[pattern, noScan]` to use there. */
  readonly patternGenerator?: () => [string, boolean?]
  /** StreamReader: read the entries after this id (exclusive). Default `'0-0'`. */
  readonly fromId?: string
}

/** register()'s options: RedisGears' register() keyword arguments. */
interface RegisterOptions {
  /** The prefix (also the first argument; `regex` is its deprecated name). Default `'*'`. */
  readonly prefix?: string
  readonly regex?: string
  /** `'async'` (default: every master's events, each run on its key's shard), `'async_local'` (this host's shard only), `'sync'` (under gearbox serve, before the client's reply; in the library, at once, in order per key). */
  readonly mode?: 'async' | 'async_local' | 'sync'
  /** Called with no arguments once the registration is applied (its failure is logged). */
  readonly onRegistered?: () => unknown
  /** KeysReader: the events that trigger it (case-insensitive, e.g. `['set', 'hset', 'del', 'expired', 'keymiss']`); default all. */
  readonly eventTypes?: Iterable<string> | null
  /** KeysReader: the key types that trigger it (`empty string list hash set zset module stream`); default all. */
  readonly keyTypes?: Iterable<string> | null
  /** KeysReader: read the value into the record. Default true. */
  readonly readValue?: boolean
  /** KeysReader: only events caused by these commands (needs the RESP front: stored, inactive). */
  readonly commands?: Iterable<string> | null
  /** StreamReader: entries per execution. Default 1. With `duration` 0, a partial batch waits for the rest. */
  readonly batch?: number
  /** StreamReader: milliseconds after which a partial batch runs. Default 0 (never: wait for `batch` entries). */
  readonly duration?: number
  /**
   * StreamReader, when an execution fails (case-insensitive): `'continue'` (default: the batch is
   * acknowledged, and sent to `deadLetter` if given), `'abort'` (the registration stops, status
   * `ABORTED`, the batch stays pending; `registrations.unpause(id)` reads again), `'retry'` (the
   * batch runs again every `onFailedRetryInterval` seconds until it succeeds). An error whose text
   * starts with `PAUSE` (e.g. `flat_error('PAUSE ...')`) pauses the registration instead.
   */
  readonly onFailedPolicy?: string
  /** StreamReader: seconds between retries. Default 1. */
  readonly onFailedRetryInterval?: number
  /** StreamReader: delete entries once processed (XDEL of the batch's ids after XACK). Default true. */
  readonly trimStream?: boolean
  /**
   * StreamReader: the id the consumer group starts after when gearbox creates it on a stream
   * (exclusive). Default `'0-0'`: entries already in the stream are processed. A stream that has
   * the group already keeps its position.
   */
  readonly fromId?: string
  /**
   * StreamReader, beyond RedisGears: a stream that receives each entry the policy gave up on
   * (`'continue'`), as `gearbox:stream <stream> gearbox:id <id> gearbox:error <text>
   * gearbox:registration <id>` followed by the entry's own fields. Default none.
   */
  readonly deadLetter?: string
  /**
   * StreamReader, beyond RedisGears: milliseconds an entry stays pending on a consumer that does
   * not renew it before another host takes it over (XAUTOCLAIM): the time a dead host's entries
   * wait. Live hosts renew what they hold. Default 30000.
   */
  readonly claimIdleMs?: number
  /** CommandReader: the trigger name (`gearbox.trigger(name, ...)`). */
  readonly trigger?: string
  /** CommandReader: the command to hook (active under `gearbox serve`; in the library alone stored, inactive). */
  readonly hook?: string
  /** CommandReader with `hook`: only calls on keys starting with this. */
  readonly keyprefix?: string
  /** CommandReader: run in order (async_local). Default false. */
  readonly inorder?: boolean
  /** As run()'s. Default true. */
  readonly convertToStr?: boolean
  readonly collect?: boolean
}

/**
 * A batch flow: a reader, then steps, then `run()`. Every step returns the builder itself.
 *
 * Readers (`reader` argument):
 * - `'KeysReader'` (default): {@link KeysReaderRecord} for every key matching the run's pattern
 *   (default argument `'*'`, a Redis glob matched by SCAN).
 * - `'KeysOnlyReader'`: the key names.
 * - `'StreamReader'`: {@link StreamReaderRecord} for the entries of the stream named by the argument.
 * - `'ShardsIDReader'`: one record per master, its 40-character id (`'1'` without a cluster, as
 *   RedisGears).
 * - `'PythonReader'` (alias `'GeneratorReader'`): the argument is a function called with no
 *   arguments (once per shard) returning an iterable or async iterable, e.g. a generator
 *   function; its values are the records.
 * - `'CommandReader'`: registrations only; run() refuses it.
 *
 * How steps run:
 * - Records flow through the steps in batches (1000 records, the `batchSize` Gearbox option):
 *   a step sees a whole batch before the next step does, so side effects of different steps
 *   interleave by batch, not by record.
 * - A callback that throws turns that record into an error text (`Name: message`; `flat_error()`
 *   texts verbatim); the record skips the later steps and the run goes on: run() replies
 *   `[results, errors]` with partial results. accumulate (and groupby for that key) restarts from
 *   `null` after an error.
 * - A callback may return a promise: the record is parked until it settles. Extractors and
 *   batchgroupby reducers must be synchronous (`coroutine are not allow on extractor` /
 *   `... on reduce`).
 * - {@link isAsyncAllow} is true inside callbacks.
 *
 * On a Redis Cluster (mode `'async'`): each master reads its own keys and runs the steps up to the
 * first collect/repartition/groupby (aggregate, count, countby, avg, distinct and sort contain one)
 * in its own sandbox execution, in parallel; gearbox then moves the records (to the shard owning
 * the key's slot, or all to one shard) and runs the next stage the same way. The answers are those
 * of the same data on one Redis. Rules this brings:
 * - **The top level is evaluated again for each stage and shard**, with its host calls (execute,
 *   log, configGet, ...) answered from the first evaluation's recording instead of run again: its
 *   side effects happen once, and values it read are the same everywhere. It must therefore make
 *   the same calls and build the same flow every time: no `Math.random()` or `Date` there (the
 *   stage fails with an error saying so). Compute such values inside steps.
 * - Global state a step changes lives in that shard's interpreter only.
 * - Records that move between shards, and accumulators of aggregate and friends, travel as JSON
 *   plus Uint8Array and bigint: Map, Set, class instances, undefined and functions do not survive
 *   the move.
 * - `execute()` in a step routes keyed commands by key slot; keyless commands (DBSIZE, SCAN, ...) go
 *   to the shard the stage runs on; {@link hashtag} returns that shard's hashtag.
 */
interface GearsBuilder<T = KeysReaderRecord> {
  /** Replaces each record by `f(record)`. */
  map<U>(f: (record: T) => MaybePromise<U>): GearsBuilder<U>
  /**
   * Replaces each record by the elements of the array `f(record)` returns, in array order (RedisGears
   * 1.2 emits them last to first); a non-array result is one record; `[]` drops the record.
   */
  flatmap<U>(f: (record: T) => MaybePromise<U[] | U>): GearsBuilder<U>
  /** Calls `f(record)` and keeps the record (the result is ignored). */
  foreach(f: (record: T) => unknown): GearsBuilder<T>
  /** Keeps the records for which `f(record)` is truthy. */
  filter(f: (record: T) => unknown): GearsBuilder<T>
  /**
   * `acc = f(acc, record)` over every record, `acc` starting as null; emits one record, the final
   * `acc`, or nothing when there was no record (per shard: follow it with collect() and a second
   * accumulate, or use aggregate()).
   */
  accumulate<A>(f: (accumulator: A | null, record: T) => MaybePromise<A>): GearsBuilder<A>
  /**
   * Per key `extractor(record)`: `acc = reducer(key, acc, record)` (acc starts null); emits
   * `{key, value: acc}` per key, in first-seen order, on each shard separately (no data moves).
   * Keys are strings: a string as it is, other primitives `String(x)`, objects and arrays their JSON.
   */
  localgroupby<A>(extractor: (record: T) => unknown, reducer: (key: string, accumulator: A | null, record: T) => MaybePromise<A>): GearsBuilder<GroupRecord<A>>
  /** As localgroupby, over all shards: records move to the shard owning their key first. */
  groupby<A>(extractor: (record: T) => unknown, reducer: (key: string, accumulator: A | null, record: T) => MaybePromise<A>): GearsBuilder<GroupRecord<A>>
  /** Groups all records of a key (over all shards), then `{key, value: reducer(key, records)}`; the reducer is synchronous. */
  batchgroupby<V>(extractor: (record: T) => unknown, reducer: (key: string, records: T[]) => V): GearsBuilder<GroupRecord<V>>
  /** Moves every record to one shard (the one run() started on). A no-op without a cluster. */
  collect(): GearsBuilder<T>
  /** Moves each record to the shard owning the slot of `extractor(record)` (as a key). A no-op without a cluster. */
  repartition(extractor: (record: T) => unknown): GearsBuilder<T>
  /**
   * Keeps the records numbered `[start, start + length)` (on each shard; after a collect, of all)
   * and stops reading once past them. @throws GearsError `limit argument must be a number`.
   */
  limit(length: number, start?: number): GearsBuilder<T>
  /**
   * `seqOp` folds each shard's records into a copy of `zero`, then `combOp` folds the shards'
   * results (one record). The accumulator is replaced by a deep copy of `zero` when it is null
   * (RedisGears 1.2 also replaces any falsy accumulator: 0, '', [] ...). Nothing on no input.
   */
  aggregate<A>(zero: A, seqOp: (accumulator: A, record: T) => MaybePromise<A>, combOp: (accumulator: A, shardResult: A) => MaybePromise<A>): GearsBuilder<A>
  /** aggregate per key: `{key, value}` per key (localgroupby with seqOp, then groupby with combOp). */
  aggregateby<A>(
    extractor: (record: T) => unknown,
    zero: A,
    seqOp: (key: string, accumulator: A, record: T) => MaybePromise<A>,
    combOp: (key: string, accumulator: A, shardResult: A) => MaybePromise<A>,
  ): GearsBuilder<GroupRecord<A>>
  /** The number of records (one record; nothing on no input, as RedisGears). */
  count(): GearsBuilder<number>
  /** `{key, value: count}` per key; the extractor defaults to the record itself. */
  countby(extractor?: (record: T) => unknown): GearsBuilder<GroupRecord<number>>
  /** The mean of `extractor(record)` (default `Number(record)`) as one number. */
  avg(extractor?: (record: T) => number): GearsBuilder<number>
  /** The records without repeats (compared by their JSON: `'1'` and `1` differ), first occurrence kept. */
  distinct(): GearsBuilder<T>
  /**
   * All records sorted ascending, or descending with `reverse` true: numbers (and bigints)
   * numerically, then strings by UTF-16 code units, then bytes, then other values by their JSON;
   * null and booleans first. (RedisGears 1.2's `sort()` is `sort(reverse=True)` and also ascending.)
   */
  sort(reverse?: boolean): GearsBuilder<T>
  /**
   * Runs the flow. At most once per script, at its top level (not inside a step). `arg` is the
   * reader's argument (a falsy one means the builder's default: `'*'`); `options` see {@link RunOptions}.
   *
   * With `convertToStr` (the default) every result becomes a string: strings as they are, numbers,
   * booleans, null, undefined and bigints `String(x)`, arrays, plain objects, Map and Set their JSON
   * (bigint as decimal text, bytes as latin1 text), errors `Name: message`; Uint8Array values stay
   * bytes. The script's reply is `[results, errors]` once the run finished, or the execution id when
   * executed with `unblocking` (see `gearbox.executions`).
   *
   * @throws GearsError `Can not run more then 1 executions in a single script`,
   *   `unknown execution mode`, `execution mode must be a string`,
   *   `Given reader do not support run or not exists`, `regex argument must be a string`,
   *   `exactMatch value is not boolean`, `readValue value is not boolean`,
   *   `fromId argument must be a string`, `pyreader argument must be a function`.
   */
  run(arg?: string | (() => Iterable<unknown> | AsyncIterable<unknown>) | null, options?: RunOptions): void

  /**
   * Registers the flow as an event handler (RedisGears `register()`); returns the registration id
   * (`<shard id>-<n>`). `register(options)` is `register('*', options)`. At the top level only.
   * The registrations of a script apply once its top level finished, all or nothing: a script
   * that throws registers nothing, and `gearbox.execute()` of a registering script resolves `'OK'`.
   *
   * Each execution starts from the interpreter as the top level left it (functions, globals,
   * closures), restored from a copy each worker saved after evaluating the script once more with its
   * top-level host calls answered from the first run's recording (no `execute()` of the top level
   * runs twice). What one execution changes is not seen by the next. The top level must build the
   * same flows every time (no `Math.random()` or `Date` deciding them).
   *
   * - KeysReader: keyspace notifications of every master (gearbox adds the classes it needs to
   *   `notify-keyspace-events`); records `{key, event, type, value}` (`{key, event}` with
   *   `readValue: false`); `prefix` is not a glob: a trailing `*` matches keys starting with the
   *   rest, anything else the exact key. At most once, as in RedisGears. Events of one key run in
   *   order; events that queued up while the previous execution ran are the records of one
   *   execution (a global a step sets is then seen by the next record of that batch).
   * - CommandReader `trigger`: run with `gearbox.trigger(name, ...args)` (record `[name, ...args]`)
   *   or `gearbox.triggerOnKey(name, key, ...args)` (record `[name, key, ...args]`, on the key's shard).
   * - StreamReader: the streams named by `prefix` (a trailing `*`: every stream whose name starts
   *   with the rest, found when created and by a periodic scan; otherwise that stream, created
   *   empty if missing), read through the consumer group `__gears_consumer_group__`, each host a
   *   consumer; records `{key: stream, id, value: {field: value}}`, `batch` per execution. At least
   *   once: entries are acknowledged only after their execution succeeded or the policy moved on;
   *   a dead host's entries are taken over after `claimIdleMs`.
   * - CommandReader `hook` (+ `keyprefix`) and KeysReader `commands` act under `gearbox serve`
   *   (README "Functions in the command path"); in the library alone they are checked and stored
   *   with status `INACTIVE`. Mode `'sync'` runs before the client's reply under `gearbox serve`,
   *   and in the library at once, in event order per key.
   *
   * @throws GearsError with RedisGears' texts: `regex argument must be a string`, `unknown execution mode`,
   *   `OnRegistered argument must be a function`, `given eventTypes is not iterable`, `given event type is not string`,
   *   `given keyTypes is not iterable`, `given key type is not string`, `unknown key type`, `readValue is not boolean`,
   *   `given commands is not iterable`, `given command type is not string`, `... bad reply` (unknown command),
   *   `Can not hook a command with moveable keys by key prefix`, `Can not hook a command which are not allowed inside a script`,
   *   `batch argument must be a number`, `duration argument must be a number`, `onFailedPolicy must be Continue/Abort/Retry`,
   *   `onFailedPolicy must be a string (Continue/Abort/Retry)`, `retryInterval argument must be a number`,
   *   `pyTrimmStream argument must be a boolean`, `ExecutionMode sync can only be combined with OnFailedPolicy Continue`,
   *   `fromId argument must be a string`; gearbox's own: `deadLetter argument must be a string (a stream name)`,
   *   `claimIdleMs argument must be a number`, `claimIdleMs argument must be a number of milliseconds ≥ 1`,
   *   `trigger argument is not string`, `keyprefix argument is not string`, `hook argument is not string`,
   *   `inorder argument is be boolean`, `trigger argument can not be given with keyprefix or hook`,
   *   `no trigger or hook argument was given`, `trigger already registered`, `trigger already registered in this session`,
   *   `Can not override an unexisting command`, `Can not override a command which are not allowed inside a script`,
   *   `Can not override a command with moveable keys by key prefix`,
   *   `given reader does not exists or does not support register`.
   */
  register(prefix?: string | RegisterOptions, options?: RegisterOptions): string
}

interface GearsBuilderConstructor {
  /**
   * @throws GearsError `reader argument must be a string`, `The given reader does not exists`,
   *   `desc argument must be a string`; every step checks its callbacks (`map argument must be a function`).
   */
  new <T = KeysReaderRecord>(reader?: string, defaultArg?: string, desc?: string | null): GearsBuilder<T>
  <T = KeysReaderRecord>(reader?: string, defaultArg?: string, desc?: string | null): GearsBuilder<T>
}

/** A batch flow builder (RedisGears `GearsBuilder`); callable with or without `new`. */
declare const GearsBuilder: GearsBuilderConstructor
/** Alias of {@link GearsBuilder}. */
declare const GB: GearsBuilderConstructor
