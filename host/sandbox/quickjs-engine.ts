/**
 * Worker side: QuickJS WebAssembly instances with capped linear memory, and the fresh
 * runtime+context ("realm") each execution gets.
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
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSSyncVariant,
  type QuickJSWASMModule,
} from 'quickjs-emscripten-core'
import { DESCRIBE_THROWN_SOURCE } from './guest-errors.js'
import { INTERPRETER_BASE_BYTES, MAX_STACK_BYTES, memoryCapPages } from './limits.js'
import { MemorySnapshot } from './memory-snapshot.js'
import type { GuestScript } from './types.js'

/**
 * Executions per module before it is replaced. Snapshot restores leave no fragmentation or leaks
 * behind, so this only bounds how long one instance lives (a new one costs ~1 ms + the preload).
 */
export const MAX_RUNS_PER_MODULE = 1000

/** A module whose linear memory grew beyond this is replaced after the execution. */
export const RECYCLE_ABOVE_BYTES = INTERPRETER_BASE_BYTES + 16 * 1024 * 1024

const PAGE_BYTES = 64 * 1024

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

/** What the guest-facing host functions and the interrupt poll call into. */
export interface GuestHooks {
  /** Arguments are undefined when the guest passed fewer than two. */
  hostCall(ctx: QuickJSContext, op: QuickJSHandle | undefined, payload: QuickJSHandle | undefined): QuickJSHandle
  hostStart(ctx: QuickJSContext, op: QuickJSHandle | undefined, payload: QuickJSHandle | undefined): QuickJSHandle
  shouldInterrupt(): boolean
}

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
  ) {}

  static async create(wasmModule: WebAssembly.Module, capPages: number): Promise<CappedModule> {
    const memory = new WebAssembly.Memory({ initial: INTERPRETER_BASE_BYTES / PAGE_BYTES, maximum: capPages })
    const mod = await newQuickJSWASMModuleFromVariant(
      newVariant(RELEASE_SYNC, { wasmModule, wasmMemory: memory, emscriptenModule: quietEmscripten }),
    )
    // The first allocation in a fresh module lands at the start of the heap.
    const allocator = emscriptenAllocator(mod)
    const probe = allocator?.malloc(16)
    if (allocator !== undefined && probe !== undefined) allocator.free(probe)
    const capped = new CappedModule(mod, memory, capPages, probe !== undefined && probe > 0 ? probe : undefined)
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

/** A fresh runtime+context with the host functions installed. */
export interface Realm {
  readonly rt: QuickJSRuntime
  readonly ctx: QuickJSContext
  readonly module: CappedModule
  /** Reads thrown values without the guest's prototypes (guest-errors.ts DESCRIBE_THROWN_SOURCE). */
  readonly describer: QuickJSHandle
  /** Scripts already evaluated in it, ahead of the job (see ExecutionJob.preload). */
  readonly preloaded: readonly GuestScript[]
  /** Memory right after setup and preload: restored after each execution instead of a new realm. */
  readonly snapshot?: MemorySnapshot
  /** {@link lazyHandlesPresent} when the snapshot was taken. */
  readonly lazyHandles?: string
  /** The runtime's host-function registry as it was at the snapshot (JS-side state). */
  readonly hostRefs?: HostRefsState
}

function sameScripts(a: readonly GuestScript[], b: readonly GuestScript[], count: number): boolean {
  for (let i = 0; i < count; i++) {
    const x = a[i]
    const y = b[i]
    if (x === undefined || y === undefined || x.code !== y.code || x.name !== y.name) return false
  }
  return true
}

/**
 * Keeps one capped module and one prepared realm per worker. A finished execution's realm is
 * retired first and disposed later ({@link disposeRetired}), so the worker can build the next
 * realm (and take the next job) before paying for the dispose (~0.06 ms).
 */
export class QuickJSEngine {
  private module: CappedModule | undefined
  private prepared: Realm | undefined
  private readonly retired: Realm[] = []

  constructor(
    private readonly wasmModule: WebAssembly.Module,
    private readonly hooks: GuestHooks,
  ) {}

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
    const capPages = memoryCapPages(memoryBytes)
    const prepared = this.prepared
    if (prepared !== undefined) {
      const same = prepared.module.capPages === capPages && prepared.preloaded.length === preload.length
      if (same && sameScripts(prepared.preloaded, preload, preload.length)) return
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
   * Hands over the prepared realm (call {@link fits} or {@link prepare} first). Retired
   * realms are disposed first: they share the module's capped memory with the new execution.
   */
  take(): Realm {
    this.disposeRetired()
    const realm = this.prepared
    if (realm === undefined) throw new Error('no prepared QuickJS realm')
    this.prepared = undefined
    realm.module.capHit = false
    const seed = `typeof __gearbox_seed_random === 'function' && __gearbox_seed_random(${randomInt32()}, ${randomInt32()})`
    realm.ctx.evalCode(seed, 'gearbox-seed.js', { type: 'global' }).dispose()
    return realm
  }

  /**
   * After an execution: a snapshotted realm is restored and becomes the prepared realm again
   * (no dispose, no re-evaluation); any other realm is retired, and its module replaced when
   * worn or broken. A realm whose context cached a handle after the snapshot cannot be restored
   * (the handle would point into reverted memory), nor one whose module failed.
   */
  release(realm: Realm): void {
    realm.module.runs++
    const snapshot = realm.snapshot
    if (
      snapshot !== undefined &&
      !realm.module.worn &&
      this.prepared === undefined &&
      this.module === realm.module &&
      lazyHandlesPresent(realm.ctx) === realm.lazyHandles
    ) {
      snapshot.restore(realm.module.memory)
      realm.hostRefs?.restore()
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

  /** Evaluates `preload` in `realm`; undefined when a script threw. */
  private withPreload(realm: Realm, preload: readonly GuestScript[]): Realm | undefined {
    for (const script of preload) {
      const result = realm.ctx.evalCode(script.code, script.name, { type: 'global' })
      if (result.error) {
        result.error.dispose()
        return undefined
      }
      result.value.dispose()
    }
    return preload.length === 0 ? realm : { ...realm, preloaded: preload }
  }

  /** Retires a realm whose preload failed and returns a bare one in its place. */
  private discardFor(realm: Realm): Realm {
    this.retired.push(realm)
    return this.newRealm(realm.module)
  }

  private newRealm(module: CappedModule): Realm {
    const rt = module.mod.newRuntime()
    const hooks = this.hooks
    // Preloaded scripts run before the job sets its own limits.
    rt.setMaxStackSize(MAX_STACK_BYTES)
    // No byte limit of QuickJS's own: every allocation then meets the capped memory, whose
    // refusal the module observes (an allocation QuickJS refused itself would look, to the host,
    // just like an error the guest threw).
    rt.setMemoryLimit(-1)
    rt.setInterruptHandler(() => hooks.shouldInterrupt())
    const ctx = rt.newContext()
    ctx
      .newFunction('__gearbox_host_call', (op?: QuickJSHandle, payload?: QuickJSHandle) => hooks.hostCall(ctx, op, payload))
      .consume((fn) => ctx.setProp(ctx.global, '__gearbox_host_call', fn))
    ctx
      .newFunction('__gearbox_host_start', (op?: QuickJSHandle, payload?: QuickJSHandle) => hooks.hostStart(ctx, op, payload))
      .consume((fn) => ctx.setProp(ctx.global, '__gearbox_host_start', fn))
    ctx.unwrapResult(ctx.evalCode(REALM_SETUP, 'gearbox-realm.js', { type: 'global' })).dispose()
    const describer = ctx.unwrapResult(ctx.evalCode(DESCRIBE_THROWN_SOURCE, 'gearbox-describe.js', { type: 'global' }))
    return { rt, ctx, module, describer, preloaded: [] }
  }
}

/**
 * Snapshots a freshly prepared realm, when its module's layout allows it. The context's lazily
 * created constant handles are created first so that they live inside the snapshot.
 */
function withSnapshot(realm: Realm): Realm {
  const heapStart = realm.module.heapStart
  if (heapStart === undefined) return realm
  const { ctx } = realm
  for (const handle of [ctx.undefined, ctx.null, ctx.true, ctx.false, ctx.global]) void handle.alive
  const hostRefs = HostRefsState.save(realm.rt)
  if (hostRefs === undefined) return realm
  const snapshot = MemorySnapshot.take(realm.module.memory, heapStart)
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
