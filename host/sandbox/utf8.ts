/** UTF-8 sizes of JS strings, as `TextEncoder` encodes them (a lone surrogate becomes 3 bytes). */

/** Exact UTF-8 byte length of `text`. O(n); prefer {@link exceedsUtf8Bytes} for limit checks. */
export function utf8ByteLength(text: string): number {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}

/**
 * Whether `text` takes more than `maxBytes` bytes in UTF-8. Every UTF-16 unit takes 1 to 3 bytes,
 * so only strings between `maxBytes / 3` and `maxBytes` units long need counting.
 */
export function exceedsUtf8Bytes(text: string, maxBytes: number): boolean {
  if (text.length * 3 <= maxBytes) return false
  if (text.length > maxBytes) return true
  return utf8ByteLength(text) > maxBytes
}
