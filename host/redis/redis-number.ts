/**
 * Redis 7.0's own number and timeout parsing, so the host can tell exactly which timeouts Redis
 * accepts (and with which error it refuses the others) without sending a blocking command:
 * string2ll (util.c), string2ld (util.c: strtold on a NUL-terminated copy) and
 * getTimeoutFromObjectOrReply (timeout.c) as of Redis 7.0 (checked against redis-server 7.0 by
 * test/redis/non-blocking.test.ts), with x86-64's 80-bit long double arithmetic emulated
 * exactly on BigInts (64-bit significand, round half to even, subnormals down to 2^-16445).
 */
import type { RedisArg } from './types.js'

const encoder = new TextEncoder()

/** An argument's bytes (strings as UTF-8, as they go on the wire). */
export function argBytes(arg: RedisArg | undefined): Uint8Array {
  if (arg === undefined) return new Uint8Array(0)
  return typeof arg === 'string' ? encoder.encode(arg) : arg
}

/** The bytes as a string of code points 0-255 (no decoding: every byte stays one char). */
function latin1(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += String.fromCharCode(b)
  return s
}

/**
 * strcasecmp(arg, word) == 0 as Redis compares option names: C strings, so an argument's bytes
 * after a NUL are not compared (`BLOCK\0x` is BLOCK), ASCII case folding only.
 */
export function sameOption(arg: RedisArg | undefined, word: string): boolean {
  const bytes = argBytes(arg)
  const nul = bytes.indexOf(0)
  const text = latin1(nul === -1 ? bytes : bytes.subarray(0, nul))
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase()) === word.toLowerCase()
}

const LLONG_MAX = (1n << 63n) - 1n
const LLONG_MIN = -(1n << 63n)

/** string2ll: the long long Redis reads from `arg`, undefined where Redis refuses it. */
export function redisLongLong(arg: RedisArg | undefined): bigint | undefined {
  const s = latin1(argBytes(arg))
  // No sign but '-', no leading zeros, no spaces, at most 20 characters.
  if (s.length === 0 || s.length >= 21) return undefined
  if (s === '0') return 0n
  if (!/^-?[1-9][0-9]*$/.test(s)) return undefined
  const v = BigInt(s)
  return v > LLONG_MAX || v < LLONG_MIN ? undefined : v
}

/** An x86-64 long double: sign and magnitude `n × 2^q` (n < 2^64), or infinite. */
interface LongDouble {
  readonly negative: boolean
  readonly n: bigint
  readonly q: bigint
  readonly infinite: boolean
}

const SIGNIFICAND_BITS = 64n
const MIN_NORMAL_EXP = -16382n // 2^-16382 is the smallest normal
const MAX_EXP = 16383n // largest finite < 2^16384

function bitLength(x: bigint): bigint {
  return BigInt(x.toString(2).length)
}

/** Rounds `num / den` (positive) to the nearest long double, ties to even; undefined is zero. */
function roundToLongDouble(num: bigint, den: bigint): { n: bigint; q: bigint; infinite: boolean } {
  // e = floor(log2(num/den)).
  let e = bitLength(num) - bitLength(den)
  if (e >= 0n ? num < den << e : num << -e < den) e -= 1n
  if (e > MAX_EXP + 1n) return { n: 0n, q: 0n, infinite: true }
  const q = (e < MIN_NORMAL_EXP ? MIN_NORMAL_EXP : e) - (SIGNIFICAND_BITS - 1n)
  // n = round(num / (den × 2^q))
  const scaledNum = q >= 0n ? num : num << -q
  const scaledDen = q >= 0n ? den << q : den
  let n = scaledNum / scaledDen
  const rem2 = (scaledNum % scaledDen) * 2n
  if (rem2 > scaledDen || (rem2 === scaledDen && (n & 1n) === 1n)) n += 1n
  // n may have carried to 2^64: still exact as (n/2) × 2^(q+1).
  let outQ = q
  if (n === 1n << SIGNIFICAND_BITS) {
    n >>= 1n
    outQ += 1n
  }
  if (n !== 0n && bitLength(n) + outQ - 1n > MAX_EXP) return { n: 0n, q: 0n, infinite: true }
  return { n, q: outQ, infinite: false }
}

/**
 * string2ld: the long double Redis reads from `arg` (strtold over all of its bytes: no leading
 * space, nothing left over, no NUL, no NaN, no overflow, no underflow to zero; infinities are
 * accepted), undefined where Redis refuses it.
 */
export function redisLongDouble(arg: RedisArg | undefined): LongDouble | undefined {
  const bytes = argBytes(arg)
  if (bytes.length === 0 || bytes.length >= 5 * 1024) return undefined
  const first = bytes[0]!
  if (first === 0x20 || (first >= 0x09 && first <= 0x0d)) return undefined
  // strtold stops at a NUL, and Redis wants all `slen` bytes read.
  if (bytes.includes(0)) return undefined
  const s = latin1(bytes)
  const inf = /^([+-]?)(?:inf|infinity)$/i.exec(s)
  if (inf) return { negative: inf[1] === '-', n: 0n, q: 0n, infinite: true }
  let negative: boolean
  let mantissa: bigint
  let num: bigint
  let den: bigint
  const hex = /^([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?$/.exec(s)
  if (hex) {
    const [, sign = '', int = '', frac = '', exp = '0'] = hex
    if (int === '' && frac === '') return undefined
    negative = sign === '-'
    mantissa = BigInt('0x' + (int + frac || '0'))
    if (mantissa === 0n) return { negative, n: 0n, q: 0n, infinite: false }
    const e = BigInt(exp) - 4n * BigInt(frac.length)
    const magnitude = e + bitLength(mantissa)
    if (magnitude > 20_000n) return undefined // overflow: HUGE_VAL with ERANGE
    if (magnitude < -20_000n) return undefined // underflow to zero with ERANGE
    num = e >= 0n ? mantissa << e : mantissa
    den = e >= 0n ? 1n : 1n << -e
  } else {
    const dec = /^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$/.exec(s)
    if (!dec) return undefined
    const [, sign = '', int = '', frac = '', exp = '0'] = dec
    if (int === '' && frac === '') return undefined
    negative = sign === '-'
    mantissa = BigInt(int + frac || '0')
    if (mantissa === 0n) return { negative, n: 0n, q: 0n, infinite: false }
    const e = BigInt(exp) - BigInt(frac.length)
    const magnitude = e + BigInt(mantissa.toString().length)
    if (magnitude > 6_000n) return undefined
    if (magnitude < -6_000n) return undefined
    num = e >= 0n ? mantissa * 10n ** e : mantissa
    den = e >= 0n ? 1n : 10n ** -e
  }
  const r = roundToLongDouble(num, den)
  if (r.infinite || r.n === 0n) return undefined
  return { negative, n: r.n, q: r.q, infinite: false }
}

/** A timeout Redis accepts (`milliseconds` 0 is "forever"), or the error Redis answers. */
export type TimeoutVerdict = { readonly ok: true; readonly milliseconds: bigint } | { readonly ok: false; readonly error: string }

/**
 * Redis 7.0 refuses only negative timeouts once parsed (no upper bound: later versions answer
 * `ERR timeout is out of range` for values whose deadline overflows, 7.0 accepts them).
 */
function checkSign(tval: bigint): TimeoutVerdict {
  return tval < 0n ? { ok: false, error: 'ERR timeout is negative' } : { ok: true, milliseconds: tval }
}

/**
 * getTimeoutFromObjectOrReply(..., UNIT_SECONDS) of Redis 7.0: what BLPOP, BLMOVE, BZPOPMIN,
 * BLMPOP... do with their timeout: `tval = (long long) ceill(ftval * 1000.0)`, the product
 * rounded to long double; a result outside long long converts to LLONG_MIN on x86-64 (so `inf`,
 * `1e4000` answer "timeout is negative").
 */
export function redisTimeoutSeconds(arg: RedisArg | undefined): TimeoutVerdict {
  const v = redisLongDouble(arg)
  if (v === undefined) return { ok: false, error: 'ERR timeout is not a float or out of range' }
  if (v.infinite) return checkSign(LLONG_MIN)
  if (v.n === 0n) return checkSign(0n)
  const p = roundToLongDouble(v.n * 1000n * (v.q >= 0n ? 1n << v.q : 1n), v.q >= 0n ? 1n : 1n << -v.q)
  if (p.infinite) return checkSign(LLONG_MIN)
  // |product| = p.n × 2^p.q; ceill of a negative value rounds toward zero.
  const pow = 1n << (p.q >= 0n ? p.q : -p.q)
  const floor = p.q >= 0n ? p.n * pow : p.n / pow
  const exact = p.q >= 0n || p.n % pow === 0n
  const tval = v.negative ? -floor : exact ? floor : floor + 1n
  return checkSign(tval > LLONG_MAX || tval < LLONG_MIN ? LLONG_MIN : tval)
}

/** getTimeoutFromObjectOrReply(..., UNIT_MILLISECONDS) of Redis 7.0: XREAD/XREADGROUP's BLOCK argument. */
export function redisTimeoutMilliseconds(arg: RedisArg | undefined): TimeoutVerdict {
  const v = redisLongLong(arg)
  if (v === undefined) return { ok: false, error: 'ERR timeout is not an integer or out of range' }
  return checkSign(v)
}
