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
 */

/** One host call made by a session's top level in its first run. */
export interface RecordedHostCall {
  readonly op: string
  readonly payload: string
  /** The wire reply string the guest got. */
  readonly reply: string
}

/** The host calls of a session's top level, filled by the first run and read by re-evaluations. */
export class TopLevelRecording {
  readonly #calls: RecordedHostCall[] = []
  #complete = false

  /** The recorded calls, in the order their replies were produced. */
  get calls(): readonly RecordedHostCall[] {
    return this.#calls
  }

  /** True once the recorded run reached `toplevel.done` (the recording can be replayed). */
  get complete(): boolean {
    return this.#complete
  }

  /** @internal used by the host handler in record mode. */
  add(call: RecordedHostCall): void {
    if (this.#complete) throw new Error('TopLevelRecording: the recording is already complete')
    this.#calls.push(call)
  }

  /** @internal used by the host handler in record mode. */
  finish(): void {
    this.#complete = true
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

  constructor(recording: TopLevelRecording) {
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
