/**
 * The sandbox contract: what the upper layers hand to the pool and what they get back. A job is
 * one interpreter run (a "sandbox run"; the gears layer's executions are made of such runs).
 * The sandbox knows nothing of Redis or of the runtime API: host calls are (op, payload) strings
 * that the {@link HostHandler} answers on the I/O side.
 */

/** Per-execution limits. Units are in the names; defaults in {@link DEFAULT_LIMITS}. */
export interface Limits {
  /** Linear memory the guest may use on top of the interpreter's ~16 MiB base. Default 64 MiB. */
  readonly memoryBytes: number
  /** Interpreter time (wall time minus time blocked in host calls). Default 5000 ms. */
  readonly cpuMs: number
  /** Total time, including waiting for Redis and timers. Default 30000 ms. */
  readonly wallMs: number
  /** Guest stack. Default and maximum: the engine's ceiling (256 KiB on QuickJS, which shares the worker's native stack). */
  readonly stackBytes: number
  /** Host calls (execute, log, ...) per execution. Default 1 000 000. */
  readonly maxHostCalls: number
  /** Largest single host reply, guest request payload, or execution result. Default 64 MiB. */
  readonly maxReplyBytes: number
}

import type { EngineName, GuestEntry } from './engine.js'

/** A script evaluated at global scope, in order. */
export interface GuestScript {
  readonly name: string
  readonly code: string
}

/** One sandbox run: a fresh interpreter of `engine` evaluates `scripts`, then calls `entry`. */
export interface SandboxJob {
  readonly engine: EngineName
  /** Evaluated in order at global scope (the prelude first, then the user's script). */
  readonly scripts: readonly GuestScript[]
  /**
   * Called last: a function the prelude defined, by name, with data arguments (never source
   * text). Its result, or the value its promise fulfils with, must be a string: that string is
   * the run's result.
   */
  readonly entry: GuestEntry
  readonly limits: Limits
  /**
   * How many leading `scripts` a worker may evaluate ahead of time, into the fresh interpreter it
   * prepares for its next job (default 0). Only for trusted scripts whose top level is
   * deterministic and makes no host calls (the prelude): the job then starts after them, which
   * saves their parse and evaluation (~5 ms for 50 KB) on the job's critical path. Their top level
   * runs outside the job's CPU clock, before the job arrives.
   */
  readonly preload?: number
  /**
   * Keep the interpreter after the first `realm.scripts` scripts and start later jobs with the
   * same `realm.key` from it (DESIGN.md §3: a registration's executions start from the state its
   * session's top level left, without running the top level again).
   */
  readonly realm?: SavedRealmSpec
}

/**
 * A job's saved realm. A worker without the state evaluates the first `scripts` scripts, calls
 * `entry` (which finishes their work, e.g. waits for what the top level started; its string
 * result is dropped), saves the interpreter under `key`, and goes on with the job's own entry.
 * The host calls made until then are answered by `setupHost` instead of the job's handler (a
 * session answers them from the recording of its first run: no side effect repeats).
 */
export interface SavedRealmSpec {
  /** Names the state: jobs with the same key must have the same leading scripts (e.g. session id + source hash). */
  readonly key: string
  /** Leading scripts the state includes (at least the job's `preload`). */
  readonly scripts: number
  readonly entry: GuestEntry
  /** Made when a worker has to build the state; answers that build's host calls. Main side only. */
  readonly setupHost: () => HostHandler
}

/**
 * Answers guest host calls on the I/O side. Inside the guest the sandbox provides
 * `__gearbox_host_call(op, payload): string` (blocks the guest until answered) and
 * `__gearbox_host_start(op, payload): Promise<string>` (the guest may await it).
 * The handler encodes guest-visible errors into the returned string; if it throws or
 * rejects, the whole execution fails with that error.
 */
export interface HostHandler {
  call(op: string, payload: string, mode: 'sync' | 'async'): Promise<string> | string
  /**
   * True when this handler answers a sync `execute` call exactly as the command's reply from the
   * function user's connection to a standalone Redis, converted by the runtime's reply rules: the
   * worker may then send such calls itself (see platform.ts DirectCalls). Absent: never.
   */
  readonly directCalls?: boolean
}

/** A started sandbox run. */
export interface SandboxRunHandle {
  /** The entry's string result; rejects with a `GearboxError` (GuestError, a limit error, AbortedError, SandboxError). */
  readonly result: Promise<string>
  /** Stops the run (terminating its worker when it is busy); `result` rejects with AbortedError. */
  abort(reason?: string): void
}

/** The former names of {@link SandboxJob} and {@link SandboxRunHandle} (the upper layers and tests use them). */
export type ExecutionJob = SandboxJob
export type ExecutionHandle = SandboxRunHandle
