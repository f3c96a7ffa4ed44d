/**
 * The engine seam: what every guest engine implements on the worker side (QuickJS today in
 * engines/quickjs/; MicroPython and compiled WebAssembly guests next), and the data the layers
 * above hand it. Everything outside engines/<engine>/ is engine-agnostic: the worker's run
 * (worker-run.ts), limits and their coded errors (limits.ts, guest-errors.ts), the pool.
 *
 * The shape follows what the engines need, not QuickJS's handles:
 * - a run calls an entry by name with data arguments ({@link GuestEntry}), never source text:
 *   each engine maps it to its language (QuickJS calls the global the prelude defined with
 *   G.defineEntry; a Python engine would call a function of its prelude module);
 * - host functions take a string and give back a string or {@link HOST_STOP}, and never throw
 *   into the guest: MicroPython skips `finally`/`__exit__` when a host function throws, so each
 *   engine turns a stop into something its prelude raises as an ordinary guest error;
 * - limits are observed by the engine ({@link EngineObservations}) and classified elsewhere.
 */
import type { GuestFailure } from './guest-errors.js'
import type { GuestScript, Limits } from './types.js'

/** The engines this build has; a job names one. */
export type EngineName = 'quickjs' | 'micropython'

/** A value an entry takes as an argument: plain data every language has. */
export type EntryArg = string | number | boolean | null

/**
 * What a run calls after its scripts: a function the prelude defined, by name, with data
 * arguments. Its result (or what it resolves with) must be a string: the run's result.
 */
export interface GuestEntry {
  readonly entry: string
  readonly args: readonly EntryArg[]
}

/** A host call's answer when the run must not go on (stopped, or a limit was reached). */
export const HOST_STOP: unique symbol = Symbol('gearbox.hostStop')
export type HostAnswer = string | typeof HOST_STOP

/** What an engine calls back into during a run (the worker's run implements it). */
export interface EngineHost {
  /** A blocking host call: the reply string, or {@link HOST_STOP}. */
  call(op: string, payload: string): HostAnswer
  /** An async host call: its call number (the reply comes through {@link GuestRealm.answer}), or {@link HOST_STOP}. */
  callAsync(op: string, payload: string): number | typeof HOST_STOP
  /** Polled by the engine while guest code runs: `true` stops it (deadline, stop request, a limit). */
  shouldInterrupt(): boolean
}

/** Where a run stands after a step the worker asked the engine for. */
export type RunState =
  | { readonly kind: 'value'; readonly value: string }
  | { readonly kind: 'thrown'; readonly failure: GuestFailure }
  /** The entry returned something that is not a string (described for the error text). */
  | { readonly kind: 'not-a-string'; readonly got: string }
  /** The entry's result waits for async host replies. */
  | { readonly kind: 'pending' }

/** What the engine saw during a run: the only source of limit codes (see guest-errors.ts). */
export interface EngineObservations {
  /** An allocation failed at the memory cap. */
  readonly memoryCapHit: boolean
  /** The guest's stack reached the engine's stack limit (its own check tripped). */
  readonly stackLimitHit: boolean
}

/** Counters of an engine, for the pool's stats. */
export interface EngineCounters {
  /** Realms built from scratch (runtime, context, prelude evaluation). */
  readonly realmBuilds: number
  /** Runs that ended by restoring their realm's snapshot (the realm then serves the next run). */
  readonly snapshotRestores: number
  /** Interpreter states saved under a key ({@link GuestEngine.save}: a session's realm after its top level). Absent: 0. */
  readonly realmSaves?: number
  /** Runs that started from a saved state instead of evaluating its scripts again. Absent: 0. */
  readonly savedRealmStarts?: number
  /** Times a waiting run was set aside ({@link GuestEngine.park}). Absent: 0. */
  readonly parks?: number
  /** Memory the parked runs hold now (bytes). Absent: 0. */
  readonly parkedBytes?: number
}

/** A realm handed to one run: a fresh interpreter with its prelude evaluated. */
export interface GuestRealm {
  /** Leading job scripts already evaluated in it (the job skips them). */
  readonly preloaded: number
  /** Arms the run's limits (stack size, stack guard). */
  beginRun(limits: Limits): void
  /** Evaluates a script at global scope; what it threw, if anything. */
  evaluate(script: GuestScript): GuestFailure | undefined
  /** Calls the entry. `pending` when it returned a promise (see {@link entryState}). */
  callEntry(entry: GuestEntry): RunState
  /** Runs queued guest continuations while `goOn()`; what escaped them (an engine condition), if anything. */
  runContinuations(goOn: () => boolean): GuestFailure | undefined
  /** The state of an entry that returned `pending`. */
  entryState(): RunState
  /** Settles async host call `call` with `reply`. */
  answer(call: number, reply: string): void
  /** What the engine observed since {@link beginRun}. */
  observations(limits: Limits): EngineObservations
  /** Linear memory the interpreter uses now, in bytes. */
  memoryBytes(): number
  /** The host side of the engine failed: the realm and its instance are not reused. */
  markBroken(): void
  /** Drops what the run still holds (pending promises, the entry's result). */
  endRun(): void
}

/**
 * One engine inside one worker: keeps a realm prepared off the critical path, hands it to a run,
 * and takes it back (restoring its snapshot, or disposing it). Saved realms (hasSaved/save) and
 * parked runs (park/unpark/discardParked) are optional: without them, a job with a realm evaluates
 * its scripts every time, and a waiting run keeps its worker.
 */
export interface GuestEngine {
  readonly name: EngineName
  /** Whether the prepared realm can take a job with this memory budget and these scripts. */
  fits(memoryBytes: number, scripts: readonly GuestScript[], preload: number): boolean
  /** Makes a realm ready with `preload` evaluated in it (and snapshotted, where the engine can). */
  prepare(memoryBytes: number, preload: readonly GuestScript[]): Promise<void>
  /**
   * Whether the prepared realm has a state saved under `key` ({@link save}) and can take a job
   * with this memory budget: the job then starts from that state.
   */
  hasSaved?(memoryBytes: number, key: string): boolean
  /**
   * Hands over the prepared realm (call {@link fits} or {@link prepare} first); with `key` (call
   * {@link hasSaved} first), in the state saved under it, its `preloaded` counting the scripts
   * that state includes.
   */
  take(key?: string): GuestRealm
  /**
   * Saves `realm`'s interpreter as it is now under `key`, as the state of its first `scripts`
   * scripts: later jobs with that key start from it instead of evaluating them ({@link take}),
   * and this run's realm returns to it when released. Call it between calls into the guest, with
   * no promise of the run pending. False when the engine cannot (the run goes on unsaved).
   * Engines bound what they keep (least recently used states go first).
   */
  save?(realm: GuestRealm, key: string, scripts: number): boolean
  /**
   * Sets the active run's realm aside while the run waits for async host replies (DESIGN.md §3
   * "parked executions"), so that other runs can use the engine; false when it cannot (the run
   * then keeps the engine while it waits). The realm's state is kept as bytes, accounted in
   * `parkedBytes`.
   */
  park?(realm: GuestRealm): boolean
  /** Makes a parked realm the active one again, as it was; false when its state is lost (the run fails). Only with no run active. */
  unpark?(realm: GuestRealm): boolean
  /** Forgets a parked realm without touching the engine's memory (its run was stopped). */
  discardParked?(realm: GuestRealm): void
  /** After a run: restore the realm's snapshot (it serves the next run) or retire it. */
  release(realm: GuestRealm): void
  /** Disposes retired realms (off the critical path). */
  disposeRetired(): void
  counters(): EngineCounters
}

/** Makes an engine in a worker; `compiled` is what the platform compiled for it (a WebAssembly.Module). */
export type EngineFactory = (compiled: WebAssembly.Module, host: EngineHost) => GuestEngine

/** What the main side knows of an engine: its limits' bounds and where its WebAssembly comes from. */
export interface EngineTraits {
  readonly name: EngineName
  /** Linear memory every interpreter starts with; `limits.memoryBytes` is granted on top. */
  readonly baseMemoryBytes: number
  /** Largest linear memory the build can have (base included). */
  readonly maxMemoryBytes: number
  /** Largest `limits.stackBytes` the engine can honour. */
  readonly maxStackBytes: number
  /** Package specifier of the engine's .wasm, for platforms that read it from disk. */
  readonly wasmSpecifier: string
}

/**
 * Deepest nesting of arrays/objects any conversion accepts (guest values, Redis replies, what the
 * CLI prints); deeper values fail with NestingLimitError (ERR_GEARBOX_NESTING_LIMIT). Every
 * engine's prelude uses the same number.
 */
export const MAX_NESTING_DEPTH = 1000

/** Values crossing the boundary (JSON-compatible data plus bytes and bigints). */
export type WireValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly WireValue[]
  | { readonly [key: string]: WireValue }

/**
 * How values and host replies cross into an engine's guests: each engine has its own (QuickJS
 * strings hold bytes as latin1; MicroPython's `str.encode` has no latin-1).
 */
export interface WireCodec {
  /** Encodes a value as the engine's payload text; `special` tells whether the guest must revive parts. */
  encode(value: WireValue): { readonly text: string; readonly special: boolean }
  /** Decodes a payload a guest sent. */
  decode(text: string): WireValue
  /** A successful host reply. */
  replyValue(value: WireValue): string
  /** A host reply the prelude raises as `GearsError(message)`. */
  replyGearsError(message: string): string
  /** A host reply the prelude raises as a coded host error. */
  replyCodedError(code: string, message: string): string
}
