/**
 * The value model of the runtime and the JavaScript guest's wire codec.
 *
 * How values cross into a guest belongs to its engine (host/sandbox/engines/<engine>/); the
 * runtime handler and the gears layer build JavaScript jobs only today, so they use QuickJS's
 * codec through these names. A handler for another engine's jobs takes `wireCodec(engine)`.
 */
export { MAX_NESTING_DEPTH, type WireValue } from '../sandbox/engine.js'
export {
  BIGINT_KEY,
  BYTES_KEY,
  bytesToLatin1,
  decodeWire,
  encodeWire,
  latin1ToBytes,
  replyCodedError,
  replyGearsError,
  replyValue,
} from '../sandbox/engines/quickjs/wire-codec.js'

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Decodes bytes as UTF-8, or returns undefined when they are not valid UTF-8. */
export function utf8OrUndefined(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}
