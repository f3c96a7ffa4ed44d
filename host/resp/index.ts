export { Resp2ProtocolError, Resp2Reader, splitInline, ELEMENT_COST, type ReaderOptions, type ReplySink } from './reader.js'
export {
  RespBoolean,
  RespDouble,
  RespMap,
  RespPush,
  RespSet,
  RespVerbatim,
  RespWriter,
  encodeCommand,
  encodeError,
  encodeReply,
  type RespProtocol,
  type RespValue,
} from './encoder.js'
export { NestedReplyError, NULL_ARRAY, RespNullArray, type RedisReply } from './types.js'
