/**
 * gearbox: RedisGears functions, sandboxed in WebAssembly, for any Redis.
 *
 * @example
 * import { Gearbox } from 'gearbox'
 * const gearbox = await Gearbox.create({ redis: 'redis://127.0.0.1:6379' })
 * await gearbox.execute(`execute('SET', 'greeting', 'hello'); log(execute('GET', 'greeting'))`)
 * await gearbox.close()
 *
 * @module
 */
export {
  Gearbox,
  type ExecuteOptions,
  type Executions,
  type GearboxOptions,
  type GuestLanguage,
  type RedisTarget,
  type Registrations,
  type Sessions,
} from './gearbox.js'
export type { SessionInfo } from './gears/sessions.js'
export { RESERVED_PREFIX } from './redis/reserved-keys.js'
export type { ExecuteReply } from './gears/session.js'
export {
  DEFAULT_MAX_EXECUTIONS,
  type ExecutionInfo,
  type ExecutionResults,
  type ExecutionStatus,
  type ExecutionSummary,
  type StepInfo,
} from './gears/executions.js'
export { consoleLogger, type GearsLogger, type LogLevel } from './runtime/logger.js'
export { DEFAULT_ATOMIC_RETRIES } from './runtime/handler.js'
export { TOP_LEVEL_RECORDING_MAX_CALLS, TOP_LEVEL_RECORDING_MAX_CHARS } from './runtime/replay.js'
export { DEFAULT_LIMITS, MAX_STACK_BYTES, resolveLimits } from './sandbox/limits.js'
export type { Limits } from './sandbox/types.js'
export type { SandboxPlatform } from './sandbox/platform.js'
export {
  createRedisBackend,
  DEFAULT_DENY_COMMANDS,
  type RedisBackend,
  type FunctionUser,
  type RedisBackendOptions,
  type RedisSource,
  type ShardInfo,
} from './redis/index.js'
export {
  AbortedError,
  AtomicConflictError,
  ClosedError,
  CommandDeniedError,
  ConnectionError,
  CpuLimitError,
  ExecutionNotFoundError,
  ExecutionRunningError,
  FunctionUserError,
  GearboxError,
  GuestError,
  HostCallLimitError,
  InvalidArgumentError,
  InvalidStringError,
  MemoryLimitError,
  NestingLimitError,
  RedisReplyError,
  RegistrationsNotBuiltError,
  RegistrationError,
  RegistrationNotFoundError,
  RegistrationPauseError,
  TriggerNotFoundError,
  KeyspaceNotificationsError,
  RedisServerMissingError,
  RedisServerStartError,
  ReplyLimitError,
  SandboxError,
  StackLimitError,
  TopLevelRecordingLimitError,
  UnexpectedReplyError,
  WallLimitError,
  SessionError,
  StoreError,
} from './errors.js'
