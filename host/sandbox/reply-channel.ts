/**
 * The sync host-call reply channel. The worker posts `{t:'call'}` and blocks; the main thread
 * writes the UTF-8 reply into a growable SharedArrayBuffer, then flips REPLY_SEQ and notifies.
 *
 * Waiting: the worker first spins on `Atomics.load` for up to {@link SPIN_BEFORE_WAIT_MS}, and
 * only then parks in `Atomics.wait`. A parked thread costs a futex wake-up plus rescheduling (on
 * a VM a halted vCPU must also be kicked by an IPI): the lead measured ~150 µs per sync call with
 * a pure `Atomics.wait` vs ~45 µs spinning first. scripts/bench-sandbox.ts (2 vCPU, shared) shows
 * the bare mechanism, main thread answering at once, at 12–49 µs parked vs 2–17 µs spinning; a
 * whole sync call through the pool costs 22–56 µs. The spin is bounded so a slow reply (a Redis
 * round trip under load) burns at most 0.3 ms of CPU.
 */
import {
  nowMs,
  REPLY_LENGTH,
  REPLY_OK,
  REPLY_SEQ,
  REPLY_STATUS,
  REPLY_STOPPED,
} from './shared-state.js'
import { utf8ByteLength } from './utf8.js'

/** How long the worker spins before it parks on `Atomics.wait`. */
export const SPIN_BEFORE_WAIT_MS = 0.3

/** Initial size of a worker's reply buffer; it grows on demand up to its maximum. */
export const INITIAL_REPLY_BYTES = 64 * 1024

/**
 * A growable SharedArrayBuffer (ES2024; Node ≥ 20, Deno, current browsers). Typed here because
 * the project compiles against the ES2023 library.
 */
export interface GrowableSharedArrayBuffer extends SharedArrayBuffer {
  readonly maxByteLength: number
  grow(newByteLength: number): void
}

const GrowableSharedArrayBuffer = SharedArrayBuffer as unknown as new (
  byteLength: number,
  options: { maxByteLength: number },
) => GrowableSharedArrayBuffer

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A growable SharedArrayBuffer for replies up to `maxBytes`. */
export function newReplyBuffer(maxBytes: number): GrowableSharedArrayBuffer {
  return new GrowableSharedArrayBuffer(Math.min(INITIAL_REPLY_BYTES, maxBytes), { maxByteLength: maxBytes })
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
   * Writes `text` and wakes the worker.
   * @returns false (and writes nothing) when the text takes more than `maxBytes` UTF-8 bytes.
   */
  write(text: string, maxBytes: number): boolean {
    if (text.length * 3 > this.bytes.length) {
      if (text.length > maxBytes) return false
      const needed = utf8ByteLength(text)
      if (needed > maxBytes) return false
      if (needed > this.bytes.length) this.grow(needed)
    }
    const { written } = encoder.encodeInto(text, this.bytes)
    if (written > maxBytes) return false
    this.publish(REPLY_OK, written)
    return true
  }

  /** Wakes the worker with "the execution was stopped". */
  writeStopped(): void {
    this.publish(REPLY_STOPPED, 0)
  }

  private grow(needed: number): void {
    const page = 64 * 1024
    const target = Math.min(this.data.maxByteLength, Math.max(needed, 2 * this.data.byteLength))
    this.data.grow(Math.min(this.data.maxByteLength, Math.ceil(target / page) * page))
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
    if (Atomics.load(words, REPLY_SEQ) === 0) {
      const spinUntil = nowMs() + SPIN_BEFORE_WAIT_MS
      while (Atomics.load(words, REPLY_SEQ) === 0) {
        if (nowMs() > spinUntil) {
          while (Atomics.load(words, REPLY_SEQ) === 0) Atomics.wait(words, REPLY_SEQ, 0)
          break
        }
      }
    }
    if (Atomics.load(words, REPLY_STATUS) === REPLY_STOPPED) return undefined
    const length = Atomics.load(words, REPLY_LENGTH)
    // Copy out first: TextDecoder refuses views of shared memory on the web platform.
    return length === 0 ? '' : decoder.decode(this.bytes.slice(0, length))
  }
}
