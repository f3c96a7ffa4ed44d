/**
 * The QuickJS engine (worker side, implements engine.ts): WebAssembly instances with capped
 * linear memory, the fresh runtime+context ("realm") each run gets, and how a run's entry, host
 * calls, promises and thrown values map onto quickjs-emscripten.
 *
 * Isolation unit = module, instance per execution = runtime (notes/sandboxes.md §5.3). A worker
 * runs one execution at a time, so it keeps one capped module and reuses it sequentially: every
 * execution gets a brand-new runtime+context in it, created ahead of time (right after the
 * previous execution) so that building it is off the critical path.
 *
 * Measured (scripts/bench-sandbox.ts, Node 20, 2 vCPU shared): a fresh capped module from the
 * precompiled WebAssembly.Module plus runtime+context+eval costs ~1.06–1.38 ms median (p90 up to
 * 5–11 ms under load); a fresh runtime+context+eval+dispose in a reused module ~0.16–0.21 ms
 * (newContext ~0.09–0.14 ms of it, dispose ~0.05–0.08 ms). So modules are reused: recycled after
 * {@link MAX_RUNS_PER_MODULE} executions, when their memory grew past {@link RECYCLE_ABOVE_BYTES}
 * (linear memory never shrinks), when the cap was hit, or after any engine failure (dispose
 * aborts with `list_empty(&rt->gc_obj_list)` after leaks or OOM inside jobs; the heap is then
 * suspect).
 */
import releaseSyncImport from '@jitl/quickjs-wasmfile-release-sync'
import {
  newQuickJSWASMModuleFromVariant,
  newVariant,
  type CustomizeVariantOptions,
  type QuickJSContext,
  type QuickJSDeferredPromise,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSSyncVariant,
  type QuickJSWASMModule,
} from 'quickjs-emscripten-core'
import {
  HOST_STOP,
  type EngineCounters,
  type EngineHost,
  type EngineObservations,
  type GuestEngine,
  type GuestEntry,
  type GuestRealm,
  type RunState,
} from '../../engine.js'
import type { GuestFailure } from '../../guest-errors.js'
import type { GuestScript, Limits } from '../../types.js'
import { describeThrown, DESCRIBE_THROWN_SOURCE } from './describe.js'
import { MemoryDiff, MemorySnapshot, probeBreakAddress } from './memory-snapshot.js'
import { QUICKJS_TRAITS } from './traits.js'
import { replyCodedError } from './wire-codec.js'

/**
 * Executions per module before it is replaced. Snapshot restores leave no fragmentation or leaks
 * behind, so this only bounds how long one instance lives (a new one costs ~1 ms + the preload).
 */
export const MAX_RUNS_PER_MODULE = 1000

const PAGE_BYTES = 64 * 1024
const INTERPRETER_BASE_BYTES = QUICKJS_TRAITS.baseMemoryBytes
const MAX_STACK_BYTES = QUICKJS_TRAITS.maxStackBytes

/** A module whose linear memory grew beyond this is replaced after the run. */
export const RECYCLE_ABOVE_BYTES = INTERPRETER_BASE_BYTES + 16 * 1024 * 1024

/** WebAssembly pages (64 KiB) of the capped memory for `memoryBytes`: base + budget, rounded up. */
export function memoryCapPages(memoryBytes: number): number {
  return Math.ceil((INTERPRETER_BASE_BYTES + memoryBytes) / PAGE_BYTES)
}

/**
 * What a host function returns to the guest instead of throwing when the run must stop: a coded
 * error reply the prelude raises like any host error (the interrupt then ends the run). Throwing
 * from a host function would be fine for QuickJS, but the seam says never (see engine.ts).
 */
const STOPPED_REPLY = replyCodedError('ERR_GEARBOX_STOPPED', 'execution stopped')
const GLOBAL_EVAL = { type: 'global' } as const

/**
 * Emscripten's heap resize tries three sizes (1.2×, 1.1×, 1.05× overgrowth, each at least the
 * requested size) before malloc fails; three refused grows in a row mean an allocation failed.
 */
const REFUSED_GROWS_FOR_OOM = 3

/**
 * Realm setup, before the preload. SharedArrayBuffer goes (no threads here). Math.random is
 * replaced by a generator the engine reseeds per execution: executions start from a memory
 * snapshot, so QuickJS's own generator state would repeat the same sequence every time.
 */
const REALM_SETUP = `delete globalThis.SharedArrayBuffer;
(() => {
  let a = 0x9e3779b9 | 0, b = 0x243f6a88 | 0
  const next = () => { a ^= a << 13; a ^= a >>> 17; a ^= a << 5; b ^= b << 17; b ^= b >>> 7; b ^= b << 9; return (a + b) >>> 0 }
  const random = function random() { return ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992 }
  Object.defineProperty(Math, 'random', { value: random, writable: true, configurable: true })
  Object.defineProperty(globalThis, '__gearbox_seed_random', {
    value: (x, y) => { a = (x | 0) || 1; b = (y | 0) || 2 }, writable: true, configurable: true,
  })
})();`

/**
 * The stack guard (see CappedModule.armStackGuard). Measured in this build, with the stack top
 * taken {@link STACK_TOP_OFFSET} below the first malloc: the deepest frame of legitimate
 * recursion ends 8 bytes short of `stackBytes`; raising the overflow error writes down to ~800
 * bytes past it. The guard starts {@link STACK_GUARD_SLACK} bytes past `stackBytes` (room for
 * where QuickJS recorded its top) and is long enough for any throw path.
 */
const STACK_TOP_OFFSET = 64
const STACK_GUARD_SLACK = 256
const STACK_GUARD_BYTES = 4096
const STACK_GUARD_BYTE = 0xa5

/** Handles quickjs-emscripten caches lazily on the context (they must predate a snapshot). */
const LAZY_CONTEXT_HANDLES = ['_undefined', '_null', '_false', '_true', '_global', '_BigInt', '_Symbol', '_SymbolIterator', '_SymbolAsyncIterator'] as const

/** The emscripten module's allocator, when the variant exposes it (it does in 0.32.0). */
function emscriptenAllocator(mod: QuickJSWASMModule): { malloc(n: number): number; free(p: number): void } | undefined {
  const em = (mod as unknown as { module?: { _malloc?: unknown; _free?: unknown } }).module
  const malloc = em?._malloc
  const free = em?._free
  if (typeof malloc !== 'function' || typeof free !== 'function') return undefined
  return {
    malloc: (n) => Number(malloc.call(em, n)),
    free: (p) => void free.call(em, p),
  }
}

/** Which lazily cached context handles exist (see {@link LAZY_CONTEXT_HANDLES}). */
function lazyHandlesPresent(ctx: QuickJSContext): string {
  const fields = ctx as unknown as Record<string, unknown>
  return LAZY_CONTEXT_HANDLES.map((name) => (fields[name] === undefined ? '0' : '1')).join('')
}

/**
 * The release-sync variant. Its typings are CommonJS-flavoured (default import = module.exports)
 * while its ESM build exports the variant itself as default: accept both shapes.
 */
const RELEASE_SYNC = ((): QuickJSSyncVariant => {
  const imported = releaseSyncImport as unknown as { type?: unknown; default?: unknown }
  return (imported.type === 'sync' ? imported : imported.default) as QuickJSSyncVariant
})()

/** Emscripten prints aborts itself; they reach us as exceptions, so keep the console quiet. */
const quietEmscripten: NonNullable<CustomizeVariantOptions['emscriptenModule']> & {
  print(text: string): void
  printErr(text: string): void
} = {
  print() {},
  printErr() {},
}

/** One QuickJS instance with its own capped WebAssembly.Memory. */
export class CappedModule {
  runs = 0
  /** Set when an allocation failed because the memory cap was reached; reset per execution. */
  capHit = false
  /** Set after an engine failure: the module is dropped after the execution. */
  broken = false
  private refusedGrowsInRow = 0

  private constructor(
    readonly mod: QuickJSWASMModule,
    readonly memory: WebAssembly.Memory,
    readonly capPages: number,
    /** Where the malloc heap begins (see MemorySnapshot); undefined when it cannot be probed. */
    readonly heapStart: number | undefined,
    /** Where emscripten keeps the heap's end (memory-snapshot.ts probeBreakAddress), if found. */
    private readonly breakAddress: number | undefined,
  ) {}

  /** The malloc heap's end now, if known. */
  heapEnd(): number | undefined {
    if (this.breakAddress === undefined) return undefined
    return new Uint32Array(this.memory.buffer, this.breakAddress, 1)[0]
  }

  static async create(wasmModule: WebAssembly.Module, capPages: number): Promise<CappedModule> {
    const memory = new WebAssembly.Memory({ initial: INTERPRETER_BASE_BYTES / PAGE_BYTES, maximum: capPages })
    const mod = await newQuickJSWASMModuleFromVariant(
      newVariant(RELEASE_SYNC, { wasmModule, wasmMemory: memory, emscriptenModule: quietEmscripten }),
    )
    // The first allocation in a fresh module lands at the start of the heap.
    const allocator = emscriptenAllocator(mod)
    const probe = allocator?.malloc(16)
    if (allocator !== undefined && probe !== undefined) allocator.free(probe)
    const heapStart = probe !== undefined && probe > 0 ? probe : undefined
    const breakAddress = allocator === undefined || heapStart === undefined ? undefined : probeBreakAddress(memory, allocator, heapStart)
    const capped = new CappedModule(mod, memory, capPages, heapStart, breakAddress)
    capped.watchGrowth()
    return capped
  }

  get capBytes(): number {
    return this.capPages * PAGE_BYTES
  }

  /** Spots "malloc failed at the cap" even when the guest catches the resulting OOM. */
  private watchGrowth(): void {
    const memory = this.memory
    const grow = memory.grow.bind(memory)
    Object.defineProperty(memory, 'grow', {
      value: (deltaPages: number): number => {
        try {
          const previous = grow(deltaPages)
          this.refusedGrowsInRow = 0
          return previous
        } catch (error) {
          if (++this.refusedGrowsInRow >= REFUSED_GROWS_FOR_OOM) this.capHit = true
          throw error
        }
      },
    })
  }

  /**
   * Arms the stack guard for an execution with `stackBytes` of stack: fills the bytes just past
   * the engine's stack limit with a pattern. QuickJS checks its stack on every call and parse
   * level, so legitimate code stays above the limit; raising its stack-overflow error runs below
   * it and overwrites the pattern. Nothing is live there between calls into the module.
   */
  armStackGuard(stackBytes: number): void {
    const guard = this.stackGuardRange(stackBytes)
    if (guard !== undefined) new Uint8Array(this.memory.buffer, guard.from, guard.to - guard.from).fill(STACK_GUARD_BYTE)
  }

  /** Whether the guest's stack went past the engine's limit since {@link armStackGuard}. */
  stackGuardTouched(stackBytes: number): boolean {
    const guard = this.stackGuardRange(stackBytes)
    if (guard === undefined) return false
    const bytes = new Uint8Array(this.memory.buffer, guard.from, guard.to - guard.from)
    for (let i = 0; i < bytes.length; i++) if (bytes[i] !== STACK_GUARD_BYTE) return true
    return false
  }

  private stackGuardRange(stackBytes: number): { from: number; to: number } | undefined {
    if (this.heapStart === undefined) return undefined
    // The shadow stack grows down from just below the heap; QuickJS's limit sits `stackBytes`
    // below the stack top it recorded when the runtime was created (a few frames in).
    const to = this.heapStart - STACK_TOP_OFFSET - stackBytes - STACK_GUARD_SLACK
    const from = to - STACK_GUARD_BYTES
    return from > 0 ? { from, to } : undefined
  }

  /** Whether the module should be replaced before the next execution. */
  get worn(): boolean {
    return (
      this.broken || this.capHit || this.runs >= MAX_RUNS_PER_MODULE || this.memory.buffer.byteLength > RECYCLE_ABOVE_BYTES
    )
  }
}

/** A fresh runtime+context with the host functions installed (what a snapshot restores). */
interface RealmState {
  readonly rt: QuickJSRuntime
  readonly ctx: QuickJSContext
  readonly module: CappedModule
  /** Reads thrown values without the guest's prototypes (describe.ts DESCRIBE_THROWN_SOURCE). */
  readonly describer: QuickJSHandle
  /** Scripts already evaluated in it, ahead of the job (see SandboxJob.preload). */
  readonly preloaded: readonly GuestScript[]
  /** Memory right after setup and preload: restored after each run instead of a new realm. */
  readonly snapshot?: MemorySnapshot
  /** {@link lazyHandlesPresent} when the snapshot was taken. */
  readonly lazyHandles?: string
  /** The runtime's host-function registry as it was at the snapshot (JS-side state). */
  readonly hostRefs?: HostRefsState
  /** States saved under keys (GuestEngine.save), shared by the copies of this state. */
  readonly saved: SavedStates
}

/** One state saved under a key: the memory and host-function registry after its scripts. */
interface SavedState {
  readonly snapshot: MemorySnapshot
  readonly hostRefs: HostRefsState
  /** Scripts the state includes (the run skips them). */
  readonly scripts: number
  /** Parked runs that started from it (it is not evicted while they wait). */
  pins: number
}

/**
 * What one realm keeps besides its post-prelude snapshot: states saved under keys (least recently
 * used first), bounded by {@link SAVED_STATES_MAX_BYTES} and {@link SAVED_STATES_MAX_COUNT}, and
 * which state its memory holds between runs. They live and die with the realm: its runtime and
 * context are the same objects, at the same addresses, in every one of them.
 */
class SavedStates {
  private readonly states = new Map<string, SavedState>()
  private bytes = 0
  /** The saved state the memory holds now (between runs), or undefined: the post-prelude snapshot. */
  at: string | undefined
  /** Runs of this realm parked (their memory set aside): the realm and its module are kept for them. */
  parked = 0

  get(key: string): SavedState | undefined {
    const state = this.states.get(key)
    if (state !== undefined) {
      this.states.delete(key)
      this.states.set(key, state)
    }
    return state
  }

  has(key: string): boolean {
    return this.states.has(key)
  }

  set(key: string, state: SavedState): void {
    this.delete(key)
    this.states.set(key, state)
    this.bytes += state.snapshot.bytes
    for (const [oldest, old] of this.states) {
      if (this.states.size <= 1 || (this.bytes <= SAVED_STATES_MAX_BYTES && this.states.size <= SAVED_STATES_MAX_COUNT)) break
      if (old.pins > 0 || oldest === key) continue
      this.states.delete(oldest)
      this.bytes -= old.snapshot.bytes
      if (this.at === oldest) this.at = SAVED_STATE_EVICTED
    }
  }

  private delete(key: string): void {
    const old = this.states.get(key)
    if (old === undefined) return
    this.states.delete(key)
    this.bytes -= old.snapshot.bytes
  }

  get size(): number {
    return this.states.size
  }

  get savedBytes(): number {
    return this.bytes
  }
}

/**
 * Memory one realm's saved states may take (each is a copy of the interpreter's stateful memory,
 * ~0.7 MiB plus what the session's top level allocated).
 */
export const SAVED_STATES_MAX_BYTES = 64 * 1024 * 1024
/** Saved states one realm keeps at most. */
export const SAVED_STATES_MAX_COUNT = 64
/** `SavedStates.at` when the memory holds no saved state (it was evicted, or a parked run is back): restore before any use. */
const SAVED_STATE_EVICTED = '\u0000evicted'

/** Memory the parked runs of one engine may set aside (their changed pages); past it, runs wait in place. */
export const PARKED_MAX_BYTES = 512 * 1024 * 1024

function sameScripts(a: readonly GuestScript[], b: readonly GuestScript[], count: number): boolean {
  for (let i = 0; i < count; i++) {
    const x = a[i]
    const y = b[i]
    if (x === undefined || y === undefined || x.code !== y.code || x.name !== y.name) return false
  }
  return true
}

/** A parked run's memory: the pages it changed over the state it started from, and its host-function registry. */
interface ParkedMemory {
  readonly diff: MemoryDiff
  readonly hostRefs: HostRefsState
  /** The saved state it started from; undefined: the post-prelude snapshot. */
  readonly base: SavedState | undefined
}

/** A realm during one run: the GuestRealm the worker's run drives. */
class QuickJSRealm implements GuestRealm {
  private readonly deferreds = new Map<number, QuickJSDeferredPromise>()
  private entryPromise: QuickJSHandle | undefined

  constructor(
    readonly state: RealmState,
    /** The saved state it started from or was saved as: release() returns to it. */
    public key: string | undefined,
    readonly preloaded: number,
  ) {}

  /** Set while the run is parked: its memory set aside (see QuickJSEngine.park). */
  parked: ParkedMemory | undefined

  /** Whether the run holds no promise of the host's (a saved state must not wait for a reply). */
  get idle(): boolean {
    return this.deferreds.size === 0
  }

  /** Drops the entry's result (the setup entry's, before a save). */
  dropEntryResult(): void {
    if (this.entryPromise?.alive) this.entryPromise.dispose()
    this.entryPromise = undefined
  }

  beginRun(limits: Limits): void {
    this.state.rt.setMaxStackSize(limits.stackBytes)
    this.state.module.armStackGuard(limits.stackBytes)
  }

  evaluate(script: GuestScript): GuestFailure | undefined {
    const result = this.state.ctx.evalCode(script.code, script.name, GLOBAL_EVAL)
    if (result.error) return this.describe(result.error)
    result.value.dispose()
    return undefined
  }

  /** Calls the global function `entry.entry` (defined by the prelude with G.defineEntry). */
  callEntry(entry: GuestEntry): RunState {
    const { ctx } = this.state
    const fnResult = ctx.getProp(ctx.global, entry.entry)
    if (ctx.typeof(fnResult) !== 'function') {
      fnResult.dispose()
      return { kind: 'thrown', failure: { name: 'TypeError', message: `the entry ${entry.entry} is not a function in this realm` } }
    }
    const args = entry.args.map((arg) => this.toHandle(arg))
    try {
      const result = ctx.callFunction(fnResult, ctx.undefined, ...args)
      if (result.error) return { kind: 'thrown', failure: this.describe(result.error) }
      return this.settleWith(result.value)
    } finally {
      for (const handle of args) if (handle.alive) handle.dispose()
      fnResult.dispose()
    }
  }

  runContinuations(goOn: () => boolean): GuestFailure | undefined {
    const { rt } = this.state
    while (goOn() && rt.hasPendingJob()) {
      const result = rt.executePendingJobs()
      // Promise jobs turn guest exceptions into rejections; what escapes a job is an engine
      // condition (interrupt, out of memory) that no guest code can observe afterwards.
      if (result.error) return this.describe(result.error)
    }
    return undefined
  }

  entryState(): RunState {
    const promise = this.entryPromise
    if (promise === undefined) return { kind: 'pending' }
    const ctx = this.state.ctx
    const state = ctx.getPromiseState(promise)
    if (state.type === 'pending') return { kind: 'pending' }
    if (state.type === 'rejected') return { kind: 'thrown', failure: this.describe(state.error) }
    const type = ctx.typeof(state.value)
    if (type !== 'string') {
      state.value.dispose()
      return { kind: 'not-a-string', got: `a promise of ${type}` }
    }
    const text = ctx.getString(state.value)
    state.value.dispose()
    return { kind: 'value', value: text }
  }

  answer(call: number, reply: string): void {
    const deferred = this.deferreds.get(call)
    if (deferred === undefined) return
    this.deferreds.delete(call)
    this.state.ctx.newString(reply).consume((handle) => deferred.resolve(handle))
    deferred.dispose()
  }

  observations(limits: Limits): EngineObservations {
    const module = this.state.module
    // The guard strip is read only when asked (a failed run), not after every successful one.
    return {
      memoryCapHit: module.capHit,
      get stackLimitHit() {
        return module.stackGuardTouched(limits.stackBytes)
      },
    }
  }

  memoryBytes(): number {
    return this.state.module.memory.buffer.byteLength
  }

  markBroken(): void {
    this.state.module.broken = true
  }

  endRun(): void {
    for (const deferred of this.deferreds.values()) deferred.dispose()
    this.deferreds.clear()
    if (this.entryPromise?.alive) this.entryPromise.dispose()
    this.entryPromise = undefined
  }

  /** `__gearbox_host_start`: a promise the host settles through {@link answer}. */
  startCall(call: number): QuickJSHandle {
    const deferred = this.state.ctx.newPromise()
    this.deferreds.set(call, deferred)
    // The host-function wrapper disposes the handle it returns; the deferred keeps its resolvers.
    return deferred.handle
  }

  private toHandle(arg: GuestEntry['args'][number]): QuickJSHandle {
    const { ctx } = this.state
    if (typeof arg === 'string') return ctx.newString(arg)
    if (typeof arg === 'number') return ctx.newNumber(arg)
    if (arg === true) return ctx.true.dup()
    if (arg === false) return ctx.false.dup()
    return ctx.null.dup()
  }

  /** The entry's result: a string, or a promise to wait for. Takes `value`. */
  private settleWith(value: QuickJSHandle): RunState {
    const ctx = this.state.ctx
    const type = ctx.typeof(value)
    if (type === 'string') {
      const text = ctx.getString(value)
      value.dispose()
      return { kind: 'value', value: text }
    }
    if (type === 'object') {
      const state = ctx.getPromiseState(value)
      if (state.type === 'fulfilled' && state.notAPromise === true) {
        value.dispose()
        return { kind: 'not-a-string', got: 'object' }
      }
      if (state.type === 'fulfilled') state.value.dispose()
      else if (state.type === 'rejected') state.error.dispose()
      this.entryPromise = value
      return { kind: 'pending' }
    }
    value.dispose()
    return { kind: 'not-a-string', got: type }
  }

  private describe(thrown: QuickJSHandle): GuestFailure {
    return describeThrown(this.state.ctx, this.state.describer, thrown)
  }
}

/**
 * Keeps one capped module and one prepared realm per worker. A finished run's realm is retired
 * first and disposed later ({@link disposeRetired}), so the worker can build the next realm (and
 * take the next job) before paying for the dispose (~0.06 ms).
 */
export class QuickJSEngine implements GuestEngine {
  readonly name = 'quickjs' as const
  private module: CappedModule | undefined
  private prepared: RealmState | undefined
  private readonly retired: RealmState[] = []
  /** The realm of the run in progress (host functions and the interrupt poll serve it). */
  private active: QuickJSRealm | undefined
  private realmBuilds = 0
  private snapshotRestores = 0
  private realmSaves = 0
  private savedRealmStarts = 0
  private parks = 0
  private parkedBytes = 0

  constructor(
    private readonly wasmModule: WebAssembly.Module,
    private readonly host: EngineHost,
  ) {}

  counters(): EngineCounters {
    return {
      realmBuilds: this.realmBuilds,
      snapshotRestores: this.snapshotRestores,
      realmSaves: this.realmSaves,
      savedRealmStarts: this.savedRealmStarts,
      parks: this.parks,
      parkedBytes: this.parkedBytes,
    }
  }

  /**
   * Whether the prepared realm can run a job: same memory cap, and what it preloaded is a
   * prefix of the job's scripts that the job allows to be preloaded.
   */
  fits(memoryBytes: number, scripts: readonly GuestScript[], preload: number): boolean {
    const realm = this.prepared
    if (realm === undefined || realm.module.capPages !== memoryCapPages(memoryBytes)) return false
    const count = realm.preloaded.length
    return count <= preload && sameScripts(realm.preloaded, scripts, count)
  }

  /**
   * Makes a fresh realm for `memoryBytes` ready, with `preload` evaluated in it, creating a
   * module when none fits. A preload that throws is dropped: the job evaluates those scripts
   * itself and reports the error.
   */
  async prepare(memoryBytes: number, preload: readonly GuestScript[]): Promise<void> {
    // A run holds the realm: it comes back (restored) when the run ends. A spare realm built now
    // would make that one unrestorable (a restore rewrites the whole module's memory) and lose
    // the states saved in it.
    if (this.active !== undefined && this.prepared === undefined) return
    const capPages = memoryCapPages(memoryBytes)
    const prepared = this.prepared
    if (prepared !== undefined) {
      const same = prepared.module.capPages === capPages && prepared.preloaded.length === preload.length
      if (same && sameScripts(prepared.preloaded, preload, preload.length)) return
      // Parked runs live in this realm: it stays while they wait (jobs it fits still take it).
      if (prepared.saved.parked > 0 && !prepared.module.broken) return
      this.retired.push(prepared)
      this.prepared = undefined
    }
    if (this.module === undefined || this.module.capPages !== capPages || this.module.worn) {
      this.module = await CappedModule.create(this.wasmModule, capPages)
    }
    try {
      const realm = this.newRealm(this.module)
      const preloaded = this.withPreload(realm, preload)
      this.prepared = preloaded === undefined ? this.discardFor(realm) : withSnapshot(preloaded)
    } catch (error) {
      // A runtime that cannot even be created means the instance is damaged (quickjs-emscripten #233).
      this.module = undefined
      throw error
    }
  }

  /**
   * Hands over the prepared realm. Retired realms are disposed first: they share the module's
   * capped memory with the new run.
   */
  hasSaved(memoryBytes: number, key: string): boolean {
    const realm = this.prepared
    return realm !== undefined && realm.module.capPages === memoryCapPages(memoryBytes) && realm.saved.has(key)
  }

  take(key?: string): GuestRealm {
    this.disposeRetired()
    const state = this.prepared
    if (state === undefined) throw new Error('no prepared QuickJS realm')
    let preloaded = state.preloaded.length
    if (key !== undefined) {
      const saved = state.saved.get(key)
      if (saved === undefined) throw new Error(`no saved QuickJS realm '${key}'`)
      if (state.saved.at !== key) {
        saved.snapshot.restore(state.module.memory)
        saved.hostRefs.restore()
        state.saved.at = key
      }
      preloaded = saved.scripts
      this.savedRealmStarts++
    } else if (state.saved.at !== undefined && state.snapshot !== undefined) {
      state.snapshot.restore(state.module.memory)
      state.hostRefs?.restore()
      state.saved.at = undefined
    }
    this.prepared = undefined
    state.module.capHit = false
    const seed = `typeof __gearbox_seed_random === 'function' && __gearbox_seed_random(${randomInt32()}, ${randomInt32()})`
    state.ctx.evalCode(seed, 'gearbox-seed.js', GLOBAL_EVAL).dispose()
    this.active = new QuickJSRealm(state, key, preloaded)
    return this.active
  }

  /**
   * Saves the realm's memory as the state of `key`. Refused (false) without a post-prelude
   * snapshot, while a host promise is pending, or when the context cached a handle since the
   * snapshot (it would point into reverted memory).
   */
  save(saving: GuestRealm, key: string, scripts: number): boolean {
    if (!(saving instanceof QuickJSRealm)) throw new Error('QuickJSEngine.save: not a QuickJS realm')
    saving.dropEntryResult()
    const realm = saving.state
    const heapStart = realm.module.heapStart
    if (realm.snapshot === undefined || heapStart === undefined || !saving.idle || realm.module.worn) return false
    if (lazyHandlesPresent(realm.ctx) !== realm.lazyHandles) return false
    const hostRefs = HostRefsState.save(realm.rt)
    const snapshot = MemorySnapshot.take(realm.module.memory, heapStart, realm.module.heapEnd())
    if (hostRefs === undefined || snapshot === undefined) return false
    realm.saved.set(key, { snapshot, hostRefs, scripts, pins: 0 })
    saving.key = key
    this.realmSaves++
    return true
  }

  /**
   * Sets the active run's realm aside while it waits for host replies: the pages it changed over
   * the state it started from are copied out, the realm goes back to that state and serves other
   * runs. Refused (false) without a known heap end or snapshot, when the context cached a handle
   * since the snapshot, or past {@link PARKED_MAX_BYTES}.
   */
  park(parking: GuestRealm): boolean {
    if (!(parking instanceof QuickJSRealm) || parking !== this.active || this.prepared !== undefined) return false
    const state = parking.state
    const module = state.module
    const heapEnd = module.heapEnd()
    const prelude = state.snapshot
    if (heapEnd === undefined || prelude === undefined || state.hostRefs === undefined || module.broken) return false
    if (this.parkedBytes >= PARKED_MAX_BYTES || lazyHandlesPresent(state.ctx) !== state.lazyHandles) return false
    const base = parking.key === undefined ? undefined : state.saved.get(parking.key)
    if (parking.key !== undefined && base === undefined) return false
    const hostRefs = HostRefsState.save(state.rt)
    if (hostRefs === undefined) return false
    const baseSnapshot = base?.snapshot ?? prelude
    const diff = MemoryDiff.take(module.memory, baseSnapshot, heapEnd)
    parking.parked = { diff, hostRefs, base }
    if (base !== undefined) base.pins++
    state.saved.parked++
    this.parkedBytes += diff.bytes
    this.parks++
    baseSnapshot.restore(module.memory)
    ;(base?.hostRefs ?? state.hostRefs).restore()
    state.saved.at = parking.key
    this.active = undefined
    this.prepared = state
    return true
  }

  /**
   * Makes a parked run's realm the active one again, exactly as it was parked. False when its
   * realm is gone (retired after an engine failure): the run cannot go on.
   */
  unpark(parked: GuestRealm): boolean {
    if (!(parked instanceof QuickJSRealm) || parked.parked === undefined) return false
    const memory = this.forgetParked(parked)
    const state = parked.state
    if (memory === undefined || this.prepared !== state || this.active !== undefined || state.module.broken) return false
    this.disposeRetired()
    if (this.prepared !== state) return false
    ;(memory.base?.snapshot ?? state.snapshot)?.restore(state.module.memory)
    memory.diff.apply(state.module.memory)
    memory.hostRefs.restore()
    state.saved.at = SAVED_STATE_EVICTED
    this.prepared = undefined
    this.active = parked
    return true
  }

  /** Drops a parked run for good (stopped while it waited); its memory is never touched. */
  discardParked(parked: GuestRealm): void {
    if (parked instanceof QuickJSRealm) this.forgetParked(parked)
  }

  private forgetParked(realm: QuickJSRealm): ParkedMemory | undefined {
    const memory = realm.parked
    if (memory === undefined) return undefined
    realm.parked = undefined
    this.parkedBytes -= memory.diff.bytes
    if (memory.base !== undefined) memory.base.pins--
    realm.state.saved.parked--
    return memory
  }

  /**
   * After a run: a snapshotted realm is restored and becomes the prepared realm again (no
   * dispose, no re-evaluation); any other realm is retired, and its module replaced when worn or
   * broken. A realm whose context cached a handle after the snapshot cannot be restored (the
   * handle would point into reverted memory), nor one whose module failed.
   */
  release(released: GuestRealm): void {
    if (!(released instanceof QuickJSRealm)) throw new Error('QuickJSEngine.release: not a QuickJS realm')
    if (this.active === released) this.active = undefined
    const realm = released.state
    realm.module.runs++
    const snapshot = realm.snapshot
    if (
      snapshot !== undefined &&
      (!realm.module.worn || (realm.saved.parked > 0 && !realm.module.broken)) &&
      this.prepared === undefined &&
      this.module === realm.module &&
      lazyHandlesPresent(realm.ctx) === realm.lazyHandles
    ) {
      // Back to the state the run started from (a session's saved realm, else the prelude's):
      // the next job of the same session finds it ready.
      const saved = released.key === undefined ? undefined : realm.saved.get(released.key)
      if (saved !== undefined && released.key !== undefined) {
        saved.snapshot.restore(realm.module.memory)
        saved.hostRefs.restore()
        realm.saved.at = released.key
      } else {
        snapshot.restore(realm.module.memory)
        realm.hostRefs?.restore()
        realm.saved.at = undefined
      }
      this.snapshotRestores++
      this.prepared = realm
      return
    }
    this.retired.push(realm)
    if (realm.module.worn && this.module === realm.module) this.module = undefined
  }

  /**
   * Disposes retired realms. A dispose that aborts marks its module broken; a prepared realm in
   * that module is dropped with it.
   */
  disposeRetired(): void {
    for (let realm = this.retired.pop(); realm !== undefined; realm = this.retired.pop()) {
      try {
        if (realm.describer.alive) realm.describer.dispose()
        realm.ctx.dispose()
        realm.rt.dispose()
      } catch {
        realm.module.broken = true
      }
    }
    if (this.module?.broken) this.module = undefined
    if (this.prepared?.module.broken) this.prepared = undefined
  }

  // Host functions -------------------------------------------------------------------------

  /** `__gearbox_host_call(op, payload)`: blocks until the host answers. */
  private hostCall(ctx: QuickJSContext, op: QuickJSHandle | undefined, payload: QuickJSHandle | undefined): QuickJSHandle {
    const call = readCall(ctx, op, payload, '__gearbox_host_call')
    const answer = this.host.call(call.op, call.payload)
    return ctx.newString(answer === HOST_STOP ? STOPPED_REPLY : answer)
  }

  /** `__gearbox_host_start(op, payload)`: a promise the host settles later. */
  private hostStart(ctx: QuickJSContext, op: QuickJSHandle | undefined, payload: QuickJSHandle | undefined): QuickJSHandle {
    const call = readCall(ctx, op, payload, '__gearbox_host_start')
    const realm = this.active
    if (realm === undefined) throw new Error('host call outside a run')
    const number = this.host.callAsync(call.op, call.payload)
    if (number === HOST_STOP) return ctx.newString(STOPPED_REPLY)
    return realm.startCall(number)
  }

  // Internals --------------------------------------------------------------------------------

  /** Evaluates `preload` in `realm`; undefined when a script threw. */
  private withPreload(realm: RealmState, preload: readonly GuestScript[]): RealmState | undefined {
    for (const script of preload) {
      const result = realm.ctx.evalCode(script.code, script.name, GLOBAL_EVAL)
      if (result.error) {
        result.error.dispose()
        return undefined
      }
      result.value.dispose()
    }
    return preload.length === 0 ? realm : { ...realm, preloaded: preload }
  }

  /** Retires a realm whose preload failed and returns a bare one in its place. */
  private discardFor(realm: RealmState): RealmState {
    this.retired.push(realm)
    return this.newRealm(realm.module)
  }

  private newRealm(module: CappedModule): RealmState {
    this.realmBuilds++
    const rt = module.mod.newRuntime()
    const host = this.host
    // Preloaded scripts run before the job sets its own limits.
    rt.setMaxStackSize(MAX_STACK_BYTES)
    // No byte limit of QuickJS's own: every allocation then meets the capped memory, whose
    // refusal the module observes (an allocation QuickJS refused itself would look, to the host,
    // just like an error the guest threw).
    rt.setMemoryLimit(-1)
    rt.setInterruptHandler(() => host.shouldInterrupt())
    const ctx = rt.newContext()
    ctx
      .newFunction('__gearbox_host_call', (op?: QuickJSHandle, payload?: QuickJSHandle) => this.hostCall(ctx, op, payload))
      .consume((fn) => ctx.setProp(ctx.global, '__gearbox_host_call', fn))
    ctx
      .newFunction('__gearbox_host_start', (op?: QuickJSHandle, payload?: QuickJSHandle) => this.hostStart(ctx, op, payload))
      .consume((fn) => ctx.setProp(ctx.global, '__gearbox_host_start', fn))
    ctx.unwrapResult(ctx.evalCode(REALM_SETUP, 'gearbox-realm.js', GLOBAL_EVAL)).dispose()
    const describer = ctx.unwrapResult(ctx.evalCode(DESCRIBE_THROWN_SOURCE, 'gearbox-describe.js', GLOBAL_EVAL))
    return { rt, ctx, module, describer, preloaded: [], saved: new SavedStates() }
  }
}

/** An engine for a worker (engine.ts EngineFactory). */
export function newQuickJSEngine(compiled: WebAssembly.Module, host: EngineHost): GuestEngine {
  return new QuickJSEngine(compiled, host)
}

/**
 * The calling convention of the raw host functions: two strings. Misuse is a TypeError, as a
 * builtin called wrongly throws one (the prelude always calls them right).
 */
function readCall(
  ctx: QuickJSContext,
  opHandle: QuickJSHandle | undefined,
  payloadHandle: QuickJSHandle | undefined,
  fn: string,
): { op: string; payload: string } {
  if (opHandle === undefined || payloadHandle === undefined || ctx.typeof(opHandle) !== 'string' || ctx.typeof(payloadHandle) !== 'string') {
    throw new TypeError(`${fn}(op, payload) takes two strings`)
  }
  return { op: ctx.getString(opHandle), payload: ctx.getString(payloadHandle) }
}

/**
 * Snapshots a freshly prepared realm, when its module's layout allows it. The context's lazily
 * created constant handles are created first so that they live inside the snapshot.
 */
function withSnapshot(realm: RealmState): RealmState {
  const heapStart = realm.module.heapStart
  if (heapStart === undefined) return realm
  const { ctx } = realm
  for (const handle of [ctx.undefined, ctx.null, ctx.true, ctx.false, ctx.global]) void handle.alive
  const hostRefs = HostRefsState.save(realm.rt)
  if (hostRefs === undefined) return realm
  const snapshot = MemorySnapshot.take(realm.module.memory, heapStart, realm.module.heapEnd())
  return snapshot === undefined ? realm : { ...realm, snapshot, lazyHandles: lazyHandlesPresent(ctx), hostRefs }
}

/** quickjs-emscripten 0.32.0's HostRefMap fields (JS-side registry of host functions). */
interface HostRefMapFields {
  nextId: number
  freelist: number[]
  groups: Map<number, Map<number, unknown>>
}

/**
 * The runtime's host-function registry. QuickJS frees a host function's entry when the guest
 * function object is collected; a restore brings the object back, so the entry must come back
 * too (and ids handed out after the snapshot must be handed out again).
 */
class HostRefsState {
  private constructor(
    private readonly map: HostRefMapFields,
    private readonly saved: HostRefMapFields,
  ) {}

  static save(rt: QuickJSRuntime): HostRefsState | undefined {
    const map = (rt as unknown as { hostRefs?: Partial<HostRefMapFields> }).hostRefs
    if (map === undefined || typeof map.nextId !== 'number' || !Array.isArray(map.freelist) || !(map.groups instanceof Map)) {
      return undefined
    }
    const fields = map as HostRefMapFields
    return new HostRefsState(fields, HostRefsState.copy(fields))
  }

  restore(): void {
    const fresh = HostRefsState.copy(this.saved)
    this.map.nextId = fresh.nextId
    this.map.freelist = fresh.freelist
    this.map.groups = fresh.groups
  }

  private static copy(from: HostRefMapFields): HostRefMapFields {
    return {
      nextId: from.nextId,
      freelist: [...from.freelist],
      groups: new Map([...from.groups].map(([id, group]) => [id, new Map(group)])),
    }
  }
}

/**
 * A seed for the guest's Math.random, from the worker's own Math.random (seeded by the platform
 * from OS entropy). Not crypto-grade, like Math.random itself; crypto.getRandomValues cost ~15 µs
 * per execution here, a tenth of a cold execution.
 */
function randomInt32(): number {
  return (Math.random() * 0x100000000) | 0
}
