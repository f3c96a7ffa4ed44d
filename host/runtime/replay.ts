/**
 * Top-level replay: how a session's top level has its side effects exactly once even though
 * later interpreters of the same session (per-shard stage interpreters, executions of its
 * registrations) evaluate the script again to get its functions back.
 *
 * The rule:
 * - The session's first run records every host call its top level makes (op, payload, reply),
 *   up to the prelude's `toplevel.done` call (made after the top level and the runCoroutine work
 *   it started finished).
 * - A re-evaluation runs with the recording in replay mode: until `toplevel.done`, each host call
 *   is answered with the reply recorded for the same (op, payload) — the first not yet used one,
 *   so identical calls get their replies in recorded order and concurrent coroutines may
 *   interleave differently — without touching Redis, the logger or timers. A call that the first
 *   run did not make, or a `toplevel.done` while recorded calls are left over, means the top level
 *   is not deterministic (Math.random, Date, ...): the guest gets a GearsError saying so.
 * - After `toplevel.done` every host call is live again.
 *
 * A recording is held in host memory for as long as the run needs it, so it is bounded: a top
 * level that makes more than {@link TOP_LEVEL_RECORDING_MAX_CALLS} calls, or moves more than
 * {@link TOP_LEVEL_RECORDING_MAX_CHARS} of payload and reply text through them, overflows its
 * recording. The recording then drops what it held and keeps nothing more; the first run goes on
 * normally (a standalone or in-place run never replays), but the recording cannot be replayed:
 * a re-evaluation fails with TopLevelRecordingLimitError.
 */
import { TopLevelRecordingLimitError } from '../errors.js'

/** Most host calls a top-level recording keeps (calls); one more and it overflows. */
export const TOP_LEVEL_RECORDING_MAX_CALLS = 10_000

/**
 * Most payload + reply text a top-level recording keeps, in UTF-16 code units (JS string
 * length; 16 Mi units take 16 to 32 MiB of host memory); more and it overflows.
 */
export const TOP_LEVEL_RECORDING_MAX_CHARS = 16 * 1024 * 1024

/** One host call made by a session's top level in its first run. */
export interface RecordedHostCall {
  readonly op: string
  readonly payload: string
  /** The wire reply string the guest got. */
  readonly reply: string
}

/** Which cap a recording went over. */
export type TopLevelRecordingOverflow = 'calls' | 'chars'

/** The host calls of a session's top level, filled by the first run and read by re-evaluations. */
export class TopLevelRecording {
  #calls: RecordedHostCall[] = []
  #chars = 0
  #overflow: TopLevelRecordingOverflow | undefined
  #complete = false

  /** The recorded calls, in the order their replies were produced (none once overflowed). */
  get calls(): readonly RecordedHostCall[] {
    return this.#calls
  }

  /** True once the recorded run reached `toplevel.done`. */
  get complete(): boolean {
    return this.#complete
  }

  /**
   * The cap the top level went over ('calls': {@link TOP_LEVEL_RECORDING_MAX_CALLS}, 'chars':
   * {@link TOP_LEVEL_RECORDING_MAX_CHARS}), or undefined. An overflowed recording holds no calls
   * and cannot be replayed.
   */
  get overflow(): TopLevelRecordingOverflow | undefined {
    return this.#overflow
  }

  /** @internal used by the host handler in record mode. */
  add(call: RecordedHostCall): void {
    if (this.#complete) throw new Error('TopLevelRecording: the recording is already complete')
    if (this.#overflow !== undefined) return
    const chars = this.#chars + call.payload.length + call.reply.length
    if (this.#calls.length >= TOP_LEVEL_RECORDING_MAX_CALLS) this.#overflowed('calls')
    else if (chars > TOP_LEVEL_RECORDING_MAX_CHARS) this.#overflowed('chars')
    else {
      this.#chars = chars
      this.#calls.push(call)
    }
  }

  /** @internal used by the host handler in record mode. */
  finish(): void {
    this.#complete = true
  }

  #overflowed(cap: TopLevelRecordingOverflow): void {
    this.#overflow = cap
    // Release the replies now: the run may go on for long with the recording still referenced.
    this.#calls = []
    this.#chars = 0
  }
}

/** What a host handler does with a session's top level. */
export interface TopLevelMode {
  /** 'record': the session's first run; 'replay': a re-evaluation of the same script. */
  readonly mode: 'record' | 'replay'
  readonly recording: TopLevelRecording
}

/** One re-evaluation's cursor over a recording. */
export class ReplayCursor {
  readonly #calls: readonly RecordedHostCall[]
  readonly #used: boolean[]
  #firstUnused = 0

  /** @throws TopLevelRecordingLimitError when the recording overflowed (see {@link topLevelRecordingLimitMessage}). */
  constructor(recording: TopLevelRecording) {
    if (recording.overflow !== undefined) throw new TopLevelRecordingLimitError(topLevelRecordingLimitMessage(recording.overflow))
    if (!recording.complete) {
      throw new Error('TopLevelRecording: cannot replay a recording whose first run did not finish its top level')
    }
    this.#calls = recording.calls
    this.#used = new Array<boolean>(this.#calls.length).fill(false)
  }

  /** The recorded reply for (op, payload), or undefined when the first run made no such call. */
  next(op: string, payload: string): string | undefined {
    for (let i = this.#firstUnused; i < this.#calls.length; i++) {
      const call = this.#calls[i]
      if (call === undefined || this.#used[i] || call.op !== op || call.payload !== payload) continue
      this.#used[i] = true
      while (this.#firstUnused < this.#calls.length && this.#used[this.#firstUnused]) this.#firstUnused++
      return call.reply
    }
    return undefined
  }

  /** How many recorded calls the re-evaluation has not made. */
  get unused(): number {
    return this.#used.filter((used) => !used).length
  }
}

/** The GearsError text for a re-evaluation that made a call its first run did not make. */
export function divergedCallMessage(op: string, payload: string): string {
  const shown = payload.length > 200 ? `${payload.slice(0, 200)}...` : payload
  return (
    `the top level made a host call its first run did not make (${op} ${shown}): ` +
    'a session top level must make the same calls every time it is evaluated (no Math.random() or Date in them)'
  )
}

/** The GearsError text for a re-evaluation that made fewer calls than its first run. */
export function missingCallsMessage(count: number): string {
  return (
    `the top level finished without making ${count} host call(s) its first run made: ` +
    'a session top level must make the same calls every time it is evaluated (no Math.random() or Date in them)'
  )
}

/** The TopLevelRecordingLimitError text for a recording that went over `cap`. */
export function topLevelRecordingLimitMessage(cap: TopLevelRecordingOverflow): string {
  const over =
    cap === 'calls'
      ? `more than ${TOP_LEVEL_RECORDING_MAX_CALLS} host calls (TOP_LEVEL_RECORDING_MAX_CALLS)`
      : `host calls carrying more than ${TOP_LEVEL_RECORDING_MAX_CHARS} characters of payload and reply text (TOP_LEVEL_RECORDING_MAX_CHARS)`
  return (
    `the script's top level made ${over}, too many to replay: a distributed run() evaluates the script again on every ` +
    "shard with the top level's host calls replayed from a recording of them. Make fewer host calls at the top level: " +
    'move them into the steps of the flow (map, foreach, ...)'
  )
}
