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
import { INTERPRETER_BASE_BYTES, MAX_STACK_BYTES, memoryCapPages } from './limits.js'
import type { GuestScript } from './types.js'

/** Executions per module before it is replaced (bounds heap fragmentation and leaks). */
export const MAX_RUNS_PER_MODULE = 200

/** A module whose linear memory grew beyond this is replaced after the execution. */
export const RECYCLE_ABOVE_BYTES = INTERPRETER_BASE_BYTES + 16 * 1024 * 1024

const PAGE_BYTES = 64 * 1024

/**
 * Emscripten's heap resize tries three sizes (1.2×, 1.1×, 1.05× overgrowth, each at least the
 * requested size) before malloc fails; three refused grows in a row mean an allocation failed.
 */
const REFUSED_GROWS_FOR_OOM = 3

/** Globals QuickJS provides that guests have no use for (no threads here). */
const REALM_SETUP = 'delete globalThis.SharedArrayBuffer;'

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
  ) {}

  static async create(wasmModule: WebAssembly.Module, capPages: number): Promise<CappedModule> {
    const memory = new WebAssembly.Memory({ initial: INTERPRETER_BASE_BYTES / PAGE_BYTES, maximum: capPages })
    const mod = await newQuickJSWASMModuleFromVariant(
      newVariant(RELEASE_SYNC, { wasmModule, wasmMemory: memory, emscriptenModule: quietEmscripten }),
    )
    const capped = new CappedModule(mod, memory, capPages)
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
  /** Scripts already evaluated in it, ahead of the job (see ExecutionJob.preload). */
  readonly preloaded: readonly GuestScript[]
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
      this.prepared = this.withPreload(realm, preload) ?? this.discardFor(realm)
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
    return realm
  }

  /** Retires an execution's realm; its module is replaced when worn or broken. */
  release(realm: Realm): void {
    realm.module.runs++
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
    rt.setMemoryLimit(module.capBytes)
    rt.setInterruptHandler(() => hooks.shouldInterrupt())
    const ctx = rt.newContext()
    ctx
      .newFunction('__gearbox_host_call', (op?: QuickJSHandle, payload?: QuickJSHandle) => hooks.hostCall(ctx, op, payload))
      .consume((fn) => ctx.setProp(ctx.global, '__gearbox_host_call', fn))
    ctx
      .newFunction('__gearbox_host_start', (op?: QuickJSHandle, payload?: QuickJSHandle) => hooks.hostStart(ctx, op, payload))
      .consume((fn) => ctx.setProp(ctx.global, '__gearbox_host_start', fn))
    ctx.unwrapResult(ctx.evalCode(REALM_SETUP, 'gearbox-realm.js', { type: 'global' })).dispose()
    return { rt, ctx, module, preloaded: [] }
  }
}
