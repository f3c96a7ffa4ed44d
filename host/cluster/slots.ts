/**
 * Redis Cluster key slots: CRC16/XMODEM of the key (or of its hash tag) modulo 16384.
 * Pure TypeScript with no Node built-ins, so it runs in every runtime the host supports.
 */

/** Number of hash slots in a Redis Cluster. */
export const SLOT_COUNT = 16384

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    table[i] = crc
  }
  return table
})()

function crcByte(crc: number, byte: number): number {
  return ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >>> 8) ^ byte) & 0xff]!
}

/** CRC16/XMODEM over `bytes[start, end)`. */
function crcBytes(bytes: Uint8Array, start: number, end: number): number {
  let crc = 0
  for (let i = start; i < end; i++) crc = crcByte(crc, bytes[i]!)
  return crc
}

/**
 * CRC16/XMODEM over the UTF-8 encoding of `text[start, end)`, encoding on the fly (no
 * allocation). Lone surrogates count as U+FFFD, as `TextEncoder` and ioredis encode them.
 */
function crcUtf8(text: string, start: number, end: number): number {
  let crc = 0
  for (let i = start; i < end; i++) {
    let c = text.charCodeAt(i)
    if (c < 0x80) {
      crc = crcByte(crc, c)
      continue
    }
    if (c < 0x800) {
      crc = crcByte(crcByte(crc, 0xc0 | (c >> 6)), 0x80 | (c & 0x3f))
      continue
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < end ? text.charCodeAt(i + 1) : 0
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00)
        i++
        crc = crcByte(crc, 0xf0 | (cp >> 18))
        crc = crcByte(crc, 0x80 | ((cp >> 12) & 0x3f))
        crc = crcByte(crc, 0x80 | ((cp >> 6) & 0x3f))
        crc = crcByte(crc, 0x80 | (cp & 0x3f))
        continue
      }
      c = 0xfffd
    }
    crc = crcByte(crc, 0xe0 | (c >> 12))
    crc = crcByte(crc, 0x80 | ((c >> 6) & 0x3f))
    crc = crcByte(crc, 0x80 | (c & 0x3f))
  }
  return crc
}

const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d

/**
 * The hash slot (0..16383) Redis Cluster assigns to `key`. Strings count as their UTF-8 bytes.
 * Hash tags follow Redis: when the key has a `{` followed later by a `}` with at least one byte
 * between them, only the bytes between the first `{` and the first `}` after it are hashed
 * (`{user1000}.following` and `{user1000}.followers` share a slot; `{}x` hashes whole).
 */
export function keySlot(key: string | Uint8Array): number {
  if (typeof key === 'string') {
    const open = key.indexOf('{')
    if (open !== -1) {
      const close = key.indexOf('}', open + 1)
      if (close > open + 1) return crcUtf8(key, open + 1, close) & 0x3fff
    }
    return crcUtf8(key, 0, key.length) & 0x3fff
  }
  const open = key.indexOf(OPEN_BRACE)
  if (open !== -1) {
    const close = key.indexOf(CLOSE_BRACE, open + 1)
    if (close > open + 1) return crcBytes(key, open + 1, close) & 0x3fff
  }
  return crcBytes(key, 0, key.length) & 0x3fff
}
