/**
 * The slot → hashtag table behind the RedisGears `hashtag()` function: `{<hashtagForSlot(s)>}`
 * in a key puts that key in slot `s`.
 */
import { InvalidArgumentError } from '../errors.js'
import { SLOT_HASHTAGS_TEXT } from './slot-hashtags.generated.js'
import { SLOT_COUNT } from './slots.js'

let table: readonly string[] | undefined

/** All 16384 hashtags, index = slot (split from the embedded text on first use, ~1 ms). */
export function slotHashtags(): readonly string[] {
  table ??= Object.freeze(SLOT_HASHTAGS_TEXT.trim().split(/\s+/))
  return table
}

/**
 * The short string whose hash slot is `slot` (RedisGears 1.2's table: slot 0 → `06S`, 1 → `Qi`).
 * Throws InvalidArgumentError for anything but an integer in 0..16383.
 */
export function hashtagForSlot(slot: number): string {
  const tag = Number.isInteger(slot) && slot >= 0 && slot < SLOT_COUNT ? slotHashtags()[slot] : undefined
  if (tag === undefined) throw new InvalidArgumentError(`hashtagForSlot: slot must be an integer in 0..${SLOT_COUNT - 1}, got ${slot}`)
  return tag
}
