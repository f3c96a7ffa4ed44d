/**
 * Strings bound for Redis. Redis keys and values are bytes; a JS string reaches Redis as UTF-8,
 * which cannot encode a lone surrogate (TextEncoder and Node write U+FFFD instead), so
 * `'k\uD800'` and `'k\uDC00'` would silently become the same key. gearbox refuses such strings
 * with a coded error rather than encode them lossily; binary data travels as Uint8Array.
 */
import { InvalidStringError } from '../errors.js'

const SURROGATE = /[\uD800-\uDFFF]/
const isWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed

/** Whether `text` is well-formed UTF-16 (every surrogate in a pair). */
export function wellFormed(text: string): boolean {
  if (!SURROGATE.test(text)) return true
  if (isWellFormed !== undefined) return isWellFormed.call(text)
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit < 0xd800 || unit > 0xdfff) continue
    const next = text.charCodeAt(i + 1)
    if (unit > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return false
    i++
  }
  return true
}

/**
 * Returns `text` when it is well-formed; throws {@link InvalidStringError} naming argument
 * `index` (0 is the command name) otherwise.
 */
export function checkWellFormed(text: string, index: number): string {
  if (wellFormed(text)) return text
  throw new InvalidStringError(
    `execute argument ${index} holds a lone surrogate (not valid Unicode): Redis would store it as U+FFFD and ` +
      'two different strings as the same key; pass the bytes as a Uint8Array instead',
  )
}
