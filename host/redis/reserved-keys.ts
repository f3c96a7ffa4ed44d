/**
 * The key prefix gearbox keeps its own state under in the Redis it serves (sessions,
 * registrations, keyspace leases: gears/store.ts), and how functions are kept out of it.
 *
 * One hashtag, so in a cluster every such key is on one slot. Functions may neither read nor
 * write these keys, nor publish on their channels: the function user's ACL gets key and channel
 * patterns that match every name except those starting with the prefix (Redis ACL patterns
 * cannot exclude, but the complement of one prefix is a short list of globs), and the host policy
 * refuses such keys first with a clear text (command-policy.ts).
 */

/** The prefix of every key and channel gearbox itself uses in Redis. */
export const RESERVED_PREFIX = '{gearbox}:'

const prefixBytes = new TextEncoder().encode(RESERVED_PREFIX)

/** True when `name` (a key or channel, text or bytes) starts with {@link RESERVED_PREFIX}. */
export function isReserved(name: string | Uint8Array): boolean {
  if (typeof name === 'string') return name.startsWith(RESERVED_PREFIX)
  if (name.length < prefixBytes.length) return false
  for (let i = 0; i < prefixBytes.length; i++) if (name[i] !== prefixBytes[i]) return false
  return true
}

/**
 * Glob patterns (Redis stringmatch) that together match every name except those starting with
 * `prefix`: for each position i, names that share the prefix's first i
 * characters and then differ (`{gear[^b]*`), and names that are exactly the prefix's first i
 * characters (`{gear`, and the empty name). The prefix must hold no glob character (`*?[]\`).
 */
export function complementPatterns(prefix: string = RESERVED_PREFIX): string[] {
  if (/[*?[\]\\]/.test(prefix)) throw new Error(`complementPatterns: the prefix ${JSON.stringify(prefix)} holds a glob character`)
  const out: string[] = []
  for (let i = 0; i < prefix.length; i++) {
    const head = prefix.slice(0, i)
    out.push(head)
    out.push(`${head}[^${prefix[i]!}]*`)
  }
  return out
}
