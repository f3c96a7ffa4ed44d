export { SLOT_COUNT, keySlot } from './slots.js'
export { hashtagForSlot, slotHashtags } from './hashtags.js'
export {
  STANDALONE_SHARD_ID,
  parseClusterShards,
  parseClusterSlots,
  shardOwningSlot,
  standaloneShard,
  type ShardInfo,
} from './topology.js'
