/**
 * Every error the host raises is a {@link GearboxError} with a stable `code`.
 * Match on `err.code`, not on the message: messages may improve, codes do not change.
 *
 * Guest failures inside a flow are *results* (`[results, errors]`); these classes are for
 * whole-execution failures and host misuse.
 */
export class GearboxError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** The guest used more linear memory than `limits.memoryBytes`. */
export class MemoryLimitError extends GearboxError {
  constructor(message = 'execution exceeded limits.memoryBytes') {
    super('ERR_GEARBOX_MEMORY_LIMIT', message)
  }
}

/** The guest ran longer than `limits.cpuMs` of interpreter time. */
export class CpuLimitError extends GearboxError {
  constructor(message = 'execution exceeded limits.cpuMs') {
    super('ERR_GEARBOX_CPU_LIMIT', message)
  }
}

/** The execution (including time waiting for Redis) ran longer than `limits.wallMs`. */
export class WallLimitError extends GearboxError {
  constructor(message = 'execution exceeded limits.wallMs') {
    super('ERR_GEARBOX_WALL_LIMIT', message)
  }
}

/** The guest recursed deeper than `limits.stackBytes` allows. */
export class StackLimitError extends GearboxError {
  constructor(message = 'execution exceeded limits.stackBytes') {
    super('ERR_GEARBOX_STACK_LIMIT', message)
  }
}

/** The guest made more host calls (execute, log, ...) than `limits.maxHostCalls`. */
export class HostCallLimitError extends GearboxError {
  constructor(message = 'execution exceeded limits.maxHostCalls') {
    super('ERR_GEARBOX_HOST_CALL_LIMIT', message)
  }
}

/** A Redis reply or the execution's result was larger than `limits.maxReplyBytes`. */
export class ReplyLimitError extends GearboxError {
  constructor(message = 'reply exceeded limits.maxReplyBytes') {
    super('ERR_GEARBOX_REPLY_LIMIT', message)
  }
}

/** The execution was aborted (`abort()`, `gearbox.close()`). */
export class AbortedError extends GearboxError {
  constructor(message = 'execution aborted') {
    super('ERR_GEARBOX_ABORTED', message)
  }
}

/** The guest script threw; `message` is the guest's error text (with its stack when available). */
export class GuestError extends GearboxError {
  readonly guestName: string
  readonly guestStack: string | undefined
  /**
   * The `code` of what the guest threw, when it had one: an uncaught host error the guest was
   * handed (e.g. `ERR_GEARBOX_CONNECTION`, `ERR_GEARBOX_COMMAND_DENIED`) keeps its code here.
   */
  readonly guestCode: string | undefined
  constructor(name: string, message: string, stack?: string, guestCode?: string) {
    super('ERR_GEARBOX_GUEST', message)
    this.guestName = name
    this.guestStack = stack
    this.guestCode = guestCode
  }
}

/** The sandbox itself failed (worker crashed, engine aborted); the pool replaces the worker. */
export class SandboxError extends GearboxError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_GEARBOX_SANDBOX', message, options)
  }
}

/** Redis could not be reached or the connection dropped during a call. */
export class ConnectionError extends GearboxError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_GEARBOX_CONNECTION', message, options)
  }
}

/** A command refused by the command policy (noscript commands, the deny list). */
export class CommandDeniedError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_COMMAND_DENIED', message)
  }
}

/** An `atomic()` block kept conflicting with other clients after `atomicRetries` re-runs. */
export class AtomicConflictError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_ATOMIC_CONFLICT', message)
  }
}

/** Bad options or arguments given to the host API (library misuse). */
export class InvalidArgumentError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_INVALID_ARGUMENT', message)
  }
}

/** The Gearbox (or pool) was used after `close()`. */
export class ClosedError extends GearboxError {
  constructor(message = 'gearbox is closed') {
    super('ERR_GEARBOX_CLOSED', message)
  }
}

/** redis-server was needed (throwaway server for the CLI or tests) but is not installed. */
export class RedisServerMissingError extends GearboxError {
  constructor(message = 'redis-server is not installed: install it (apt-get install redis-server) or pass --redis <url>') {
    super('ERR_GEARBOX_REDIS_SERVER_MISSING', message)
  }
}

/** An execution id that the registry does not know. */
export class ExecutionNotFoundError extends GearboxError {
  constructor(message = 'execution plan does not exist') {
    super('ERR_GEARBOX_EXECUTION_NOT_FOUND', message)
  }
}

/** Redis answered a command with an error reply; `message` is Redis's text, unchanged. */
export class RedisReplyError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_REDIS_ERROR', message)
  }
}

/** A throwaway redis-server (CLI default mode, tests) failed to start. */
export class RedisServerStartError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_REDIS_SERVER_START', message)
  }
}

/**
 * Redis answered with a reply of a shape gearbox does not expect for that command (a
 * CLUSTER SHARDS/SLOTS or SCAN reply it cannot read), or the topology names no master for a slot.
 */
export class UnexpectedReplyError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_UNEXPECTED_REPLY', message)
  }
}

/** An execution that has not finished yet was asked for its results, or to be dropped. */
export class ExecutionRunningError extends GearboxError {
  constructor(message = 'execution is still running') {
    super('ERR_GEARBOX_EXECUTION_RUNNING', message)
  }
}

/**
 * A distributed run() needs to replay the script's top level on every shard, but the top level
 * made more host calls (or moved more text through them) than the recording keeps
 * (runtime/replay.ts TOP_LEVEL_RECORDING_MAX_CALLS / TOP_LEVEL_RECORDING_MAX_CHARS).
 */
export class TopLevelRecordingLimitError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_TOP_LEVEL_RECORDING_LIMIT', message)
  }
}

/** A part of registrations gearbox has not built yet (StreamReader registrations). */
export class RegistrationsNotBuiltError extends GearboxError {
  constructor(message = 'register(): registrations are not built yet in gearbox; run() a batch flow instead') {
    super('ERR_GEARBOX_NOT_BUILT', message)
  }
}

/**
 * A value nested deeper than gearbox converts (`MAX_NESTING_DEPTH` levels of arrays/objects):
 * a guest value crossing to the host, a Redis reply, a reply the CLI prints. Conversions are
 * bounded so that no conversion can overflow a stack with an uncoded error.
 */
export class NestingLimitError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_NESTING_LIMIT', message)
  }
}

/**
 * A string bound for Redis is not well-formed Unicode (it holds a lone surrogate, e.g.
 * `'k\uD800'`): Redis takes bytes, and UTF-8 cannot encode it, so two different strings would
 * become the same key. Pass a `Uint8Array` for binary data.
 */
export class InvalidStringError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_INVALID_STRING', message)
  }
}

/**
 * gearbox could not set up the Redis ACL user functions' commands run as (ACL SETUSER refused:
 * NOPERM, a managed Redis, ACL disabled), or the configured function user cannot log in. The
 * message prints the `ACL SETUSER ...` line to apply and the option that passes the user.
 */
export class FunctionUserError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_FUNCTION_USER', message)
  }
}

/**
 * A registration's trigger or event failed: RG.TRIGGER's reply when the execution had errors
 * (the message is the first error text), or a registration that could not be applied (a trigger
 * name another session took meanwhile).
 */
export class RegistrationError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_REGISTRATION', message)
  }
}

/** `gearbox.trigger()` / `triggerOnKey()` of a name no registration has (RG.TRIGGER's `ERR subcommand not found`). */
export class TriggerNotFoundError extends GearboxError {
  constructor(message = 'ERR subcommand not found') {
    super('ERR_GEARBOX_TRIGGER_NOT_FOUND', message)
  }
}

/** `registrations.unregister(id)` of an id no registration has (RG.UNREGISTER's `execution is not registered`). */
export class RegistrationNotFoundError extends GearboxError {
  constructor(message = 'execution is not registered') {
    super('ERR_GEARBOX_REGISTRATION_NOT_FOUND', message)
  }
}

/**
 * KeysReader registrations need keyspace notifications: gearbox adds the classes it needs to
 * `notify-keyspace-events` with CONFIG SET, and a Redis that refuses it (managed Redis, ACL)
 * fails with this error; the message names the setting and the value to configure.
 */
export class KeyspaceNotificationsError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_KEYSPACE_NOTIFICATIONS', message)
  }
}

/**
 * A session rule of `execute()` (RG.PYEXECUTE's ID / UPGRADE / REPLACE_WITH): the message is
 * RedisGears' text, e.g. `Session <id> already exists`.
 */
export class SessionError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_SESSION', message)
  }
}

/**
 * gearbox could not read or write its own state in Redis (stored sessions and registrations,
 * under the reserved `{gearbox}:` prefix): a registration that could not be stored is not kept.
 */
export class StoreError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_STORE', message)
  }
}

/**
 * `registrations.pause(id)` / `unpause(id)` of a registration that cannot pause: only StreamReader
 * registrations do (RG.PAUSEREGISTRATIONS' `Reader KeysReader does not support pause`).
 */
export class RegistrationPauseError extends GearboxError {
  constructor(message: string) {
    super('ERR_GEARBOX_REGISTRATION_PAUSE', message)
  }
}

/** An error reply Redis sent as a RESP3 blob error (`!`): the RESP server passes it on as one. */
export class RedisBlobReplyError extends RedisReplyError {}
