/**
 * The sync host-call reply channel. The worker sends the call (request-channel.ts, or a `{t:'call'}`
 * message) and blocks; the main thread writes the UTF-8 reply into a growable SharedArrayBuffer,
 * then flips REPLY_SEQ and notifies.
 *
 * Waiting: the worker first spins on `Atomics.load` for up to {@link SPIN_BEFORE_WAIT_MS}, and
 * only then parks in `Atomics.wait`. A parked thread costs a futex wake-up plus rescheduling (on
 * a VM a halted vCPU must also be kicked by an IPI): the lead measured ~150 µs per sync call with
 * a pure `Atomics.wait` vs ~45 µs spinning first. scripts/bench-sandbox.ts (2 vCPU, shared) shows
 * the bare mechanism, main thread answering at once, at 12–49 µs parked vs 2–17 µs spinning; a
 * whole sync call through the pool (echo handler) costs ~10 µs. The spin is bounded so a slow
 * reply (a Redis round trip under load) burns at most 0.3 ms of CPU.
 *
 * Only a worker that runs alone spins (REPLY_SPIN, set by the main thread with each reply): with
 * two workers busy on 2 cores, their spins took the cores Redis and the main thread needed, and
 * keyspace-triggered executions ran at ~3,500/s spinning against ~7,000/s parking at once.
 */
import {
  newGrowableSharedArrayBuffer,
  nowMs,
  REPLY_LENGTH,
  REPLY_OK,
  REPLY_SEQ,
  REPLY_SPIN,
  REPLY_STATUS,
  REPLY_STOPPED,
  type GrowableSharedArrayBuffer,
} from './shared-state.js'

export type { GrowableSharedArrayBuffer }

/** How long the worker spins before it parks on `Atomics.wait`. */
export const SPIN_BEFORE_WAIT_MS = 0.3

/** Initial size of a worker's reply buffer; it grows on demand up to its maximum. */
export const INITIAL_REPLY_BYTES = 64 * 1024

/** The reply buffer grows in whole steps of this many bytes. */
const GROW_STEP_BYTES = 64 * 1024

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A growable SharedArrayBuffer for replies up to `maxBytes`. */
export function newReplyBuffer(maxBytes: number): GrowableSharedArrayBuffer {
  return newGrowableSharedArrayBuffer(Math.min(INITIAL_REPLY_BYTES, maxBytes), maxBytes)
}

/** Main side of one worker's channel. */
export class ReplyWriter {
  private bytes: Uint8Array

  constructor(
    private readonly words: Int32Array,
    private data: GrowableSharedArrayBuffer,
  ) {
    this.bytes = new Uint8Array(data)
  }

  /** The shared buffer replies are written to. */
  get buffer(): GrowableSharedArrayBuffer {
    return this.data
  }

  /** Largest reply the current buffer can ever hold. */
  get capacity(): number {
    return this.data.maxByteLength
  }

  /** Switches to a larger buffer (sent to the worker with the next job). */
  replaceBuffer(data: GrowableSharedArrayBuffer): void {
    this.data = data
    this.bytes = new Uint8Array(data)
  }

  /**
   * Writes `text` and wakes the worker. The text is encoded straight into the buffer; when it does
   * not all fit, the buffer grows (see {@link ReplyWriter.grow}) and the rest is encoded after
   * what was written, so the text is never measured apart and a later reply of the same size fits
   * at once.
   * `spinNext` tells the worker whether to spin for its next reply (see {@link REPLY_SPIN}).
   * @returns false (and wakes nobody) when the text takes more than `maxBytes` UTF-8 bytes.
   */
  write(text: string, maxBytes: number, spinNext = true): boolean {
    // Every UTF-16 unit takes 1 to 3 UTF-8 bytes.
    if (text.length > maxBytes) return false
    let { read, written } = encoder.encodeInto(text, this.bytes)
    while (read < text.length) {
      // encodeInto stops before the first code point that does not fit: the whole text takes
      // more bytes than the buffer holds, so a buffer of maxBytes already settles it.
      if (this.bytes.length >= maxBytes || !this.grow(text.length, maxBytes)) return false
      const rest = encoder.encodeInto(text.substring(read), this.bytes.subarray(written))
      read += rest.read
      written += rest.written
    }
    if (written > maxBytes) return false
    Atomics.store(this.words, REPLY_SPIN, spinNext ? 1 : 0)
    this.publish(REPLY_OK, written)
    return true
  }

  /** Wakes the worker with "the execution was stopped". */
  writeStopped(): void {
    this.publish(REPLY_STOPPED, 0)
  }

  /**
   * Grows the buffer to at least twice its size, or to 3 bytes per UTF-16 unit of a `units` long
   * text (room for any such text), whichever is more; never past `maxBytes` (a larger reply is
   * refused anyway) nor the buffer's maxByteLength. (`this.bytes` tracks the buffer's length.)
   * @returns false when it cannot grow.
   */
  private grow(units: number, maxBytes: number): boolean {
    const current = this.data.byteLength
    const wanted = Math.ceil(Math.max(2 * current, 3 * units) / GROW_STEP_BYTES) * GROW_STEP_BYTES
    const target = Math.min(wanted, maxBytes, this.data.maxByteLength)
    if (target <= current) return false
    this.data.grow(target)
    return true
  }

  private publish(status: number, length: number): void {
    Atomics.store(this.words, REPLY_STATUS, status)
    Atomics.store(this.words, REPLY_LENGTH, length)
    Atomics.store(this.words, REPLY_SEQ, 1)
    Atomics.notify(this.words, REPLY_SEQ)
  }
}

/** Worker side of the channel. */
export class ReplyReader {
  private bytes: Uint8Array

  constructor(
    private readonly words: Int32Array,
    data: SharedArrayBuffer,
  ) {
    this.bytes = new Uint8Array(data)
  }

  replaceBuffer(data: SharedArrayBuffer): void {
    this.bytes = new Uint8Array(data)
  }

  /** Arms the channel; call before posting the call message. */
  arm(): void {
    Atomics.store(this.words, REPLY_SEQ, 0)
  }

  /** Blocks until the main thread answers. @returns the reply, or undefined when stopped. */
  await(): string | undefined {
    const words = this.words
    if (Atomics.load(words, REPLY_SPIN) === 1) {
      const spinUntil = nowMs() + SPIN_BEFORE_WAIT_MS
      while (Atomics.load(words, REPLY_SEQ) === 0 && nowMs() <= spinUntil) {
        // spin: the reply usually comes within the Redis round trip
      }
    }
    while (Atomics.load(words, REPLY_SEQ) === 0) Atomics.wait(words, REPLY_SEQ, 0)
    if (Atomics.load(words, REPLY_STATUS) === REPLY_STOPPED) return undefined
    const length = Atomics.load(words, REPLY_LENGTH)
    // Copy out first: TextDecoder refuses views of shared memory on the web platform.
    return length === 0 ? '' : decoder.decode(this.bytes.slice(0, length))
  }
}
