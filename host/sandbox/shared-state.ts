/**
 * The small SharedArrayBuffer each worker shares with the pool: control words (Int32, used with
 * Atomics) and the interpreter clock (Float64) the main-thread watchdog reads.
 */

/** Byte size of the shared state buffer. */
export const STATE_BYTES = 96

/** Int32 slots at the start of the buffer. */
const WORD_COUNT = 20

// Int32 slots.
/** The id of the run the main thread wants stopped, or 0 (polled by the interrupt handler; a run stops only for its own id). */
export const STOP = 0
/** 1 while the worker holds a fresh interpreter ready for the next job. */
export const PREPARED = 1
/** Reply channel: 0 while the worker waits, 1 once the main thread wrote the reply. */
export const REPLY_SEQ = 2
/** Reply channel: {@link REPLY_OK} or {@link REPLY_STOPPED}. */
export const REPLY_STATUS = 3
/** Reply channel: UTF-8 byte length of the reply. */
export const REPLY_LENGTH = 4

/** Request channel: bumped by the worker each time it writes a sync call (see request-channel.ts). */
export const REQUEST_SEQ = 5
/** Request channel: UTF-8 byte length of the call's op (the payload follows it). */
export const REQUEST_OP_BYTES = 6
/** Request channel: UTF-8 byte length of op and payload together. */
export const REQUEST_BYTES = 7
/** Messages the worker has posted so far (the main side counts what it received). */
export const POSTED = 8
/** Realms the worker's engine built from scratch (the pool's stats sum them). */
export const REALM_BUILDS = 9
/** Runs whose realm was restored from its snapshot afterwards (the pool's stats sum them). */
export const SNAPSHOT_RESTORES = 10
/** States the worker's engine saved under a key (a session's realm after its top level). */
export const REALM_SAVES = 11
/** Runs that started from a saved state (the pool's stats sum them). */
export const SAVED_REALM_STARTS = 12
/** Runs the worker's engine parked (set aside while they waited). */
export const PARKS = 13
/** KiB the worker's parked runs hold now. */
export const PARKED_KIB = 14
/**
 * Reply channel: 1 when the worker may spin for its next reply, 0 when it must park at once. The
 * main thread clears it while another worker runs too: on a machine with few cores, a spinning
 * worker takes the core Redis and the main thread need to answer it (see reply-channel.ts).
 */
export const REPLY_SPIN = 15
/** Sync calls the worker sent to Redis itself (platform.ts DirectCalls; the pool's stats sum them). */
export const DIRECT_CALLS = 16

export const REPLY_OK = 0
/** The execution ended on the main side; the worker must unwind instead of reading a reply. */
export const REPLY_STOPPED = 1

// Float64 slots, after the Int32 ones.
const CLOCK_OFFSET = WORD_COUNT * 4
/** Interpreter milliseconds accumulated up to the last pause. */
const CPU_USED = 0
/** Epoch milliseconds when the running stretch started; 0 while paused. */
const SEGMENT_START = 1

/**
 * A growable SharedArrayBuffer (ES2024; Node ≥ 20, Deno, current browsers), as the request and
 * reply channels use. Typed here because the project compiles against the ES2023 library.
 */
export interface GrowableSharedArrayBuffer extends SharedArrayBuffer {
  readonly maxByteLength: number
  grow(newByteLength: number): void
}

const GrowableSharedArrayBufferCtor = SharedArrayBuffer as unknown as new (
  byteLength: number,
  options: { maxByteLength: number },
) => GrowableSharedArrayBuffer

export function newGrowableSharedArrayBuffer(byteLength: number, maxByteLength: number): GrowableSharedArrayBuffer {
  return new GrowableSharedArrayBufferCtor(byteLength, { maxByteLength })
}

// Captured once: Node's global `performance` is a lazy accessor with a brand check, which showed
// up in CPU profiles of the reply spin loop and the interpreter clock (several reads per host call).
const perf = performance
const timeOrigin = perf.timeOrigin

/** Epoch milliseconds with sub-millisecond precision, comparable across threads. */
export function nowMs(): number {
  return timeOrigin + perf.now()
}

export function stateWords(state: SharedArrayBuffer): Int32Array {
  return new Int32Array(state, 0, WORD_COUNT)
}

/** The interpreter clock's words (see {@link InterpreterClock}, {@link readInterpreterMs}). */
export function clockWords(state: SharedArrayBuffer): Float64Array {
  return new Float64Array(state, CLOCK_OFFSET, 2)
}

/**
 * Worker side: measures interpreter time (time inside evalCode / executePendingJobs, minus time
 * blocked waiting for sync host replies) and publishes it for the watchdog.
 *
 * The two words are written without Atomics; `pause` clears the segment start before it adds to
 * the total, so a reader racing a pause can only under-count (the watchdog has a grace anyway).
 */
export class InterpreterClock {
  private readonly words: Float64Array
  private usedMs = 0
  private segmentStart = 0

  constructor(state: SharedArrayBuffer) {
    this.words = clockWords(state)
  }

  reset(): void {
    this.usedMs = 0
    this.segmentStart = 0
    this.words[SEGMENT_START] = 0
    this.words[CPU_USED] = 0
  }

  resume(): void {
    if (this.segmentStart !== 0) return
    this.segmentStart = nowMs()
    this.words[SEGMENT_START] = this.segmentStart
  }

  pause(): void {
    if (this.segmentStart === 0) return
    this.usedMs += nowMs() - this.segmentStart
    this.segmentStart = 0
    this.words[SEGMENT_START] = 0
    this.words[CPU_USED] = this.usedMs
  }

  /** Continues a run's clock from `usedMs` (a parked run resuming), paused. */
  restore(usedMs: number): void {
    this.usedMs = usedMs
    this.segmentStart = 0
    this.words[SEGMENT_START] = 0
    this.words[CPU_USED] = usedMs
  }

  /** Interpreter milliseconds so far, including the running stretch. */
  elapsedMs(): number {
    return this.segmentStart === 0 ? this.usedMs : this.usedMs + (nowMs() - this.segmentStart)
  }
}

/** Main side: the interpreter milliseconds a worker's clock ({@link clockWords}) shows now. */
export function readInterpreterMs(words: Float64Array): number {
  const used = words[CPU_USED] ?? 0
  const segmentStart = words[SEGMENT_START] ?? 0
  return segmentStart === 0 ? used : used + Math.max(0, nowMs() - segmentStart)
}
