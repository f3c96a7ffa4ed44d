/**
 * The sync host-call request channel: the worker writes `op` and `payload` as UTF-8 into a
 * growable SharedArrayBuffer, bumps REQUEST_SEQ and notifies; the main thread takes the call
 * either while it spins right after answering the previous one or from `Atomics.waitAsync`.
 *
 * Why not postMessage: tracing one sync call of an execution doing GETs (2 vCPU) showed the
 * worker's postMessage at ~10 µs and the main thread's wake-up from its event loop at ~20 µs,
 * more than the Redis round trip itself (~30 µs). A guest issues its next call a few µs after the
 * previous reply, so a main thread that spins briefly after answering catches it at once, and a
 * notify nobody waits for costs the worker nothing.
 *
 * A call that does not fit even the largest buffer goes by postMessage as before. Messages the
 * worker posted before a call (async calls) are handled first: the worker counts them in POSTED.
 */
import { newGrowableSharedArrayBuffer, POSTED, REQUEST_BYTES, REQUEST_OP_BYTES, REQUEST_SEQ, type GrowableSharedArrayBuffer } from './shared-state.js'

/** Initial size of a worker's request buffer. */
export const INITIAL_REQUEST_BYTES = 64 * 1024

/** Largest request the channel carries; larger ones are posted. */
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024

const GROW_STEP_BYTES = 64 * 1024

/** `Atomics.waitAsync` (ES2024; the project compiles against the ES2023 library). */
type WaitAsync = (words: Int32Array, index: number, value: number) => { async: boolean; value: Promise<string> | string }
const waitAsync = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * Whether this runtime can wait for a request without blocking its event loop. Without
 * `Atomics.waitAsync` the pool does not create the channel and every call is posted.
 */
export function requestChannelSupported(): boolean {
  return typeof waitAsync === 'function'
}

/** A growable SharedArrayBuffer for requests. */
export function newRequestBuffer(): SharedArrayBuffer {
  return newGrowableSharedArrayBuffer(INITIAL_REQUEST_BYTES, MAX_REQUEST_BYTES)
}

/** Worker side. */
export class RequestWriter {
  private readonly data: GrowableSharedArrayBuffer
  private bytes: Uint8Array
  private seq = 0

  constructor(
    private readonly words: Int32Array,
    data: SharedArrayBuffer,
  ) {
    this.data = data as GrowableSharedArrayBuffer
    this.bytes = new Uint8Array(data)
  }

  /**
   * Writes the call and signals it.
   * @returns false (nothing signalled) when it does not fit {@link MAX_REQUEST_BYTES}.
   */
  write(op: string, payload: string): boolean {
    const opBytes = this.encodeAt(op, 0)
    if (opBytes < 0) return false
    const payloadBytes = this.encodeAt(payload, opBytes)
    if (payloadBytes < 0) return false
    const words = this.words
    Atomics.store(words, REQUEST_OP_BYTES, opBytes)
    Atomics.store(words, REQUEST_BYTES, opBytes + payloadBytes)
    this.seq = (this.seq + 1) | 0
    Atomics.store(words, REQUEST_SEQ, this.seq)
    Atomics.notify(words, REQUEST_SEQ)
    return true
  }

  /** Counts a message the worker is about to post (see {@link RequestReader.take}). */
  countPosted(): void {
    Atomics.add(this.words, POSTED, 1)
  }

  /** Encodes `text` at byte `offset`, growing the buffer as needed. @returns bytes written, or -1. */
  private encodeAt(text: string, offset: number): number {
    let { read, written } = encoder.encodeInto(text, this.bytes.subarray(offset))
    while (read < text.length) {
      // Every UTF-16 unit takes at most 3 bytes: grow to room for the rest in one step.
      const wanted = offset + written + 3 * (text.length - read)
      const target = Math.min(Math.ceil(Math.max(wanted, 2 * this.data.byteLength) / GROW_STEP_BYTES) * GROW_STEP_BYTES, this.data.maxByteLength)
      if (target <= this.data.byteLength) return -1
      this.data.grow(target)
      this.bytes = new Uint8Array(this.data)
      const rest = encoder.encodeInto(text.substring(read), this.bytes.subarray(offset + written))
      read += rest.read
      written += rest.written
    }
    return written
  }
}

/** A call taken from the channel. */
export interface TakenRequest {
  readonly op: string
  readonly payload: string
}

/** Main side. */
export class RequestReader {
  private readonly bytes: Uint8Array
  private taken = 0

  constructor(
    private readonly words: Int32Array,
    data: SharedArrayBuffer,
  ) {
    // Tracks the buffer's length as the worker grows it.
    this.bytes = new Uint8Array(data)
  }

  /** Whether a call is waiting (cheap: one atomic load; spin on it). */
  get pending(): boolean {
    return Atomics.load(this.words, REQUEST_SEQ) !== this.taken
  }

  /** Messages the worker has posted so far. */
  get posted(): number {
    return Atomics.load(this.words, POSTED)
  }

  /** Takes the waiting call, or undefined when there is none. */
  take(): TakenRequest | undefined {
    const seq = Atomics.load(this.words, REQUEST_SEQ)
    if (seq === this.taken) return undefined
    this.taken = seq
    const opBytes = Atomics.load(this.words, REQUEST_OP_BYTES)
    const total = Atomics.load(this.words, REQUEST_BYTES)
    // Copy out first: TextDecoder refuses views of shared memory on the web platform.
    const copy = this.bytes.slice(0, total)
    return { op: decoder.decode(copy.subarray(0, opBytes)), payload: decoder.decode(copy.subarray(opBytes)) }
  }

  /**
   * Resolves when a call may be waiting (the worker notified, or one already was). Spurious
   * resolutions are possible: check {@link RequestReader.pending}.
   */
  whenPending(): Promise<unknown> {
    if (waitAsync === undefined) throw new Error('RequestReader needs Atomics.waitAsync (see requestChannelSupported)')
    // Called as a method: waitAsync must see Atomics as its receiver on some engines.
    const result = waitAsync.call(Atomics, this.words, REQUEST_SEQ, this.taken)
    return typeof result.value === 'string' ? Promise.resolve(result.value) : result.value
  }

  /** Wakes a pending {@link RequestReader.whenPending} (used when the worker goes away). */
  wake(): void {
    Atomics.notify(this.words, REQUEST_SEQ)
  }
}
