export { createRedisBackend, type FunctionUser, type RedisBackendOptions, type RedisSource } from './backend.js'
export { CommandPolicy, DEFAULT_DENY_COMMANDS, type CommandPolicyOptions } from './command-policy.js'
export { commandKeyIndexes, commandKeys, isReadOnly } from './command-metadata.js'
export {
  NestedReplyError,
  type CallOptions,
  type DedicatedCallOptions,
  type DedicatedConnection,
  type PipelineOptions,
  type PreparedCommand,
  type RedisArg,
  type RedisBackend,
  type RedisReply,
  type ScanOptions,
  type ScanPage,
  type ShardInfo,
} from './types.js'
export { SLOT_COUNT, keySlot } from '../cluster/slots.js'
export { hashtagForSlot } from '../cluster/hashtags.js'
export { STANDALONE_SHARD_ID, shardOwningSlot } from '../cluster/topology.js'
