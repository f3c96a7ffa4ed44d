/**
 * The MicroPython glue (micropython.mjs of @micropython/micropython-webassembly-pyscript 1.27.0),
 * loaded with the shims notes/python-wasm.md §2 and §7 call for:
 *
 * - the glue keeps its state in globals (`Module`, `proxy_js_ref`, ...): one instance per worker
 *   realm, loads never overlap (the engine serialises them);
 * - its FinalizationRegistry frees C-side references with whatever `Module` is current, which
 *   corrupts another (or a restored) interpreter: instances here get a registry that drops
 *   registrations (a memory snapshot restore reclaims everything a run left anyway);
 * - its `WebAssembly.instantiate` call is intercepted to compile the .wasm once per worker, to
 *   take the instance's exports (memory, stack, `mp_sched_keyboard_interrupt`: the ASSERTIONS
 *   build aborts on reading unexported Module fields), and to cap `emscripten_resize_heap`;
 * - JavaScript's function constructors are made unreachable (a Python guest holding any JS
 *   function could otherwise write `f.constructor('return process')()`).
 */

/** What the glue's loadMicroPython returns (the parts used here). */
export interface MicroPythonApi {
  runPython(code: string): unknown
  registerJsModule(name: string, module: object): void
  readonly globals: { get(key: string): unknown; set(key: string, value: unknown): void }
}

/** The instance's exports the engine uses. */
export interface MicroPythonExports {
  readonly memory: WebAssembly.Memory
  mp_sched_keyboard_interrupt(): void
  emscripten_stack_get_current(): number
  emscripten_stack_get_base(): number
  _emscripten_stack_restore(sp: number): void
}

/** The glue's exception for a Python exception that reached JavaScript. */
export interface PythonErrorLike {
  readonly name: 'PythonError'
  readonly type: string
  readonly message: string
}

export function isPythonError(error: unknown): error is PythonErrorLike {
  return error instanceof Error && error.name === 'PythonError' && typeof (error as { type?: unknown }).type === 'string'
}

/** Decides, at each heap growth, whether linear memory may grow to `requestedBytes`. */
export type GrowthGate = (requestedBytes: number) => boolean

export interface LoadedMicroPython {
  readonly api: MicroPythonApi
  readonly exports: MicroPythonExports
}

type LoadFn = (options: Record<string, unknown>) => Promise<unknown>

const GLUE_SPECIFIER = '@micropython/micropython-webassembly-pyscript'
/** The glue's JS-side globals (see {@link GlueGlobals}). */
const GLUE_GLOBAL_NAMES = ['proxy_js_ref', 'proxy_js_ref_next', 'proxy_js_ref_map', 'proxy_js_map', 'proxy_js_existing'] as const

let loadFn: Promise<LoadFn> | undefined
let compiled: WebAssembly.Module | undefined
let hardened = false

function isMicroPythonImports(imports: unknown): imports is { env: Record<string, unknown> } {
  const env = (imports as { env?: Record<string, unknown> } | undefined)?.env
  return typeof env === 'object' && env !== null && typeof env['emscripten_resize_heap'] === 'function' && typeof env['js_get_proxy_js_ref_info'] === 'function'
}

/** Makes `Function`'s and its siblings' `constructor` unreachable from objects a guest can hold. */
function hardenFunctionConstructors(): void {
  if (hardened) return
  hardened = true
  const prototypes = [
    Function.prototype,
    Object.getPrototypeOf(async function () {}) as object,
    Object.getPrototypeOf(function* () {}) as object,
    Object.getPrototypeOf(async function* () {}) as object,
  ]
  for (const proto of prototypes) {
    Object.defineProperty(proto, 'constructor', { get: () => undefined, set: () => {}, configurable: false })
  }
}

async function glueLoader(): Promise<LoadFn> {
  loadFn ??= (async () => {
    const mod = (await import(GLUE_SPECIFIER)) as { loadMicroPython?: unknown }
    if (typeof mod.loadMicroPython !== 'function') throw new Error('the MicroPython glue has no loadMicroPython')
    return mod.loadMicroPython as LoadFn
  })()
  return loadFn
}

/**
 * Loads one MicroPython instance. `gate` is asked before every heap growth (false refuses it);
 * `stdout` receives printed lines. Not reentrant: the caller serialises loads.
 */
export async function loadMicroPython(options: {
  readonly gate: GrowthGate
  readonly stdout: (line: string) => void
  readonly pystackWords: number
  readonly heapBytes: number
}): Promise<LoadedMicroPython> {
  const load = await glueLoader()
  const NativeRegistry = globalThis.FinalizationRegistry
  const nativeInstantiate = WebAssembly.instantiate
  let exports: MicroPythonExports | undefined
  const instantiate = async (source: unknown, imports?: WebAssembly.Imports): Promise<unknown> => {
    if (!isMicroPythonImports(imports)) return Reflect.apply(nativeInstantiate, WebAssembly, [source, imports])
    const env = imports.env
    const resize = env['emscripten_resize_heap'] as (requested: number) => number
    env['emscripten_resize_heap'] = (requested: number): number => (options.gate(requested >>> 0) ? resize(requested) : 0)
    if (compiled === undefined) {
      compiled = source instanceof WebAssembly.Module ? source : await WebAssembly.compile(source as BufferSource)
    }
    const instance = (await Reflect.apply(nativeInstantiate, WebAssembly, [compiled, imports])) as WebAssembly.Instance
    exports = instance.exports as unknown as MicroPythonExports
    return { instance, module: compiled }
  }
  // Registrations made by this instance's glue are dropped (see the file comment).
  const InertRegistry = class {
    register(): void {}
    unregister(): boolean {
      return false
    }
  }
  ;(globalThis as { FinalizationRegistry: unknown }).FinalizationRegistry = InertRegistry
  ;(WebAssembly as { instantiate: unknown }).instantiate = instantiate
  let api: unknown
  try {
    api = await load({
      pystack: options.pystackWords,
      heapsize: options.heapBytes,
      stdout: options.stdout,
      stderr: options.stdout,
      linebuffer: true,
    })
  } finally {
    ;(globalThis as { FinalizationRegistry: unknown }).FinalizationRegistry = NativeRegistry
    ;(WebAssembly as { instantiate: unknown }).instantiate = nativeInstantiate
  }
  if (exports === undefined) throw new Error('the MicroPython glue did not instantiate its WebAssembly module')
  hardenFunctionConstructors()
  return { api: api as MicroPythonApi, exports }
}

/** The glue's JS-side reference tables, saved with a memory snapshot and put back with it. */
export class GlueGlobals {
  private constructor(private readonly saved: readonly unknown[]) {}

  static save(): GlueGlobals {
    const g = globalThis as unknown as Record<string, unknown>
    return new GlueGlobals(GLUE_GLOBAL_NAMES.map((name) => GlueGlobals.copy(g[name])))
  }

  restore(): void {
    const g = globalThis as unknown as Record<string, unknown>
    GLUE_GLOBAL_NAMES.forEach((name, i) => {
      g[name] = GlueGlobals.copy(this.saved[i])
    })
  }

  private static copy(value: unknown): unknown {
    if (Array.isArray(value)) return [...(value as unknown[])]
    if (value instanceof Map) return new Map(value as Map<unknown, unknown>)
    return value
  }
}
