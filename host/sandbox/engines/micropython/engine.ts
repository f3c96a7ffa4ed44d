/**
 * The MicroPython engine (worker side, implements engine.ts): one MicroPython-in-WASM instance per
 * worker, its memory snapshotted after the Python prelude and restored after every run, so each
 * run starts in a fresh interpreter for the price of a memory copy (notes/python-wasm.md).
 *
 * How the seam maps onto MicroPython:
 * - the prelude (guest/py/) defines one dispatcher, `__gearbox_call(kind, a, b, seed)`, that the
 *   engine calls for everything after the prelude: evaluate a script, call an entry, settle an
 *   async host call, run ready coroutines, read the entry's state. It never lets a Python
 *   exception escape: it answers a tagged string (see {@link readAnswer});
 * - host functions (`_gearbox_host.call/start`) never throw into Python (MicroPython would skip
 *   `finally` and `__exit__`): a stop or a glue failure becomes a coded error reply the prelude
 *   raises;
 * - CPU: MicroPython's VM hook is compiled out, so the deadline is checked at every host call and
 *   `mp_sched_keyboard_interrupt` is (re-)armed there (Python can catch KeyboardInterrupt); a
 *   guest that never calls the host is stopped by the pool's watchdog (worker terminated);
 * - memory: linear memory may grow to base + `limits.memoryBytes` (emscripten_resize_heap refuses
 *   more, and the refusal is what the memory limit's code comes from); the capped engine can spin
 *   on a failed allocation, which the same watchdog ends;
 * - stack: the C stack is fixed (32 KiB, depth ~155); the bytes just above where the
 *   "maximum recursion depth exceeded" path writes are watched (calibrated per instance).
 */
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
import { guestFailure, type GuestFailure } from '../../guest-errors.js'
import type { GuestScript, Limits } from '../../types.js'
import { replyCodedError } from '../quickjs/wire-codec.js'
import { isPythonError, loadMicroPython, type LoadedMicroPython } from './glue.js'
import { MemorySnapshot } from './memory-snapshot.js'
import { MICROPYTHON_TRAITS } from './traits.js'

const BASE_BYTES = MICROPYTHON_TRAITS.baseMemoryBytes
/** An instance whose linear memory grew past this is replaced after the run (memory never shrinks). */
export const RECYCLE_ABOVE_BYTES = BASE_BYTES + 32 * 1024 * 1024
/** Runs per instance before it is replaced (bounds how long one instance lives). */
export const MAX_RUNS_PER_INSTANCE = 5000
/** MicroPython's initial GC heap (it grows in further malloc'd areas up to the memory cap). */
const HEAP_BYTES = 1024 * 1024
const PYSTACK_WORDS = 2048

const STOPPED_REPLY = replyCodedError('ERR_GEARBOX_STOPPED', 'execution stopped')
/**
 * Watched bytes from the lowest the depth error writes. Measured: the deepest legitimate recursion
 * stays ~260 bytes above it; other paths to the same error (repr of nested lists) stop a little higher.
 */
const STACK_GUARD_BYTES = 192
const STACK_GUARD_BYTE = 0xa5
/** Recursion the stack-guard calibration runs (deeper than the interpreter allows). */
const CALIBRATION_SCRIPT =
  'def __gearbox_deep(n):\n    return 0 if n == 0 else 1 + __gearbox_deep(n - 1)\n' +
  'try:\n    __gearbox_deep(100000)\nexcept RuntimeError:\n    pass\ndel __gearbox_deep\n'

type Dispatcher = (kind: string, a: string, b: string, seed: number) => unknown

/** One MicroPython instance and what the engine knows of it. */
class Instance {
  runs = 0
  broken = false
  capBytes = Number.MAX_SAFE_INTEGER
  capHit = false
  dispatcher: Dispatcher | undefined
  preloaded: readonly GuestScript[] = []
  snapshot: MemorySnapshot | undefined
  /** Lowest stack address the recursion-depth error path writes (the guard sits right there). */
  stackGuardFrom: number | undefined

  constructor(readonly loaded: LoadedMicroPython) {}

  get exports(): LoadedMicroPython['exports'] {
    return this.loaded.exports
  }

  get worn(): boolean {
    return this.broken || this.runs >= MAX_RUNS_PER_INSTANCE || this.exports.memory.buffer.byteLength > RECYCLE_ABOVE_BYTES
  }

  /** Grows at most to the run's cap; a refusal is the memory limit. */
  gate(requestedBytes: number): boolean {
    if (requestedBytes <= this.capBytes) return true
    this.capHit = true
    // The failed allocation raises MemoryError, which the guest may catch and go on allocating
    // (or the allocator may spin): the interrupt ends the run at the next bytecode.
    this.exports.mp_sched_keyboard_interrupt()
    return false
  }

  armStackGuard(): void {
    const from = this.stackGuardFrom
    if (from !== undefined) new Uint8Array(this.exports.memory.buffer, from, STACK_GUARD_BYTES).fill(STACK_GUARD_BYTE)
  }

  stackGuardTouched(): boolean {
    const from = this.stackGuardFrom
    if (from === undefined) return false
    const bytes = new Uint8Array(this.exports.memory.buffer, from, STACK_GUARD_BYTES)
    for (let i = 0; i < bytes.length; i++) if (bytes[i] !== STACK_GUARD_BYTE) return true
    return false
  }

  /**
   * Finds where the recursion-depth error writes: fills the free stack with a pattern, recurses
   * past the limit, and takes the lowest byte written.
   */
  calibrateStackGuard(): void {
    const dispatcher = this.dispatcher
    if (dispatcher === undefined) return
    const exports = this.exports
    const top = exports.emscripten_stack_get_current() - 1024
    const stack = new Uint8Array(exports.memory.buffer, 0, top)
    stack.fill(STACK_GUARD_BYTE)
    dispatcher('eval', 'gearbox-calibrate.py', CALIBRATION_SCRIPT, 0)
    let lowest = 0
    while (lowest < top && stack[lowest] === STACK_GUARD_BYTE) lowest++
    stack.fill(0)
    this.stackGuardFrom = lowest > 0 && lowest < top ? lowest : undefined
  }
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
 * Reads the dispatcher's answer: 'v' + the entry's string result, 'o' done (no value), 'p'
 * pending, 'n' + a type name (the entry returned something else), 'f' + JSON
 * [name, message, traceback, code] of what the guest raised.
 */
function readAnswer(answer: unknown): RunState | { readonly kind: 'ok' } {
  if (typeof answer !== 'string' || answer.length === 0) {
    return { kind: 'thrown', failure: { name: 'SystemError', message: 'the Python prelude answered malformed data' } }
  }
  const body = answer.slice(1)
  switch (answer[0]) {
    case 'v':
      return { kind: 'value', value: body }
    case 'o':
      return { kind: 'ok' }
    case 'p':
      return { kind: 'pending' }
    case 'n':
      return { kind: 'not-a-string', got: body }
    case 'f':
      return { kind: 'thrown', failure: parseFailure(body) }
    default:
      return { kind: 'thrown', failure: { name: 'SystemError', message: 'the Python prelude answered malformed data' } }
  }
}

function parseFailure(json: string): GuestFailure {
  let fields: unknown
  try {
    fields = JSON.parse(json)
  } catch {
    return { name: 'SystemError', message: 'the guest raised an exception that could not be read' }
  }
  if (!Array.isArray(fields)) return { name: 'SystemError', message: 'the guest raised an exception that could not be read' }
  const [name, message, traceback, code] = fields as unknown[]
  return guestFailure(
    typeof name === 'string' ? name : undefined,
    typeof message === 'string' ? message : '',
    typeof traceback === 'string' ? traceback : undefined,
    typeof code === 'string' ? code : undefined,
  )
}

/** A Python exception that escaped the dispatcher (out of memory while reporting, an interrupt). */
function escapedFailure(error: unknown): GuestFailure | undefined {
  if (!isPythonError(error)) return undefined
  const lines = error.message.trimEnd().split('\n')
  const last = lines[lines.length - 1] ?? error.type
  const colon = last.indexOf(': ')
  return guestFailure(error.type, colon >= 0 ? last.slice(colon + 2) : '', error.message, undefined)
}

class MicroPythonRealm implements GuestRealm {
  constructor(
    readonly instance: Instance,
    private seed: number,
  ) {}

  get preloaded(): number {
    return this.instance.preloaded.length
  }

  beginRun(limits: Limits): void {
    this.instance.capBytes = BASE_BYTES + limits.memoryBytes
    this.instance.capHit = false
    this.instance.armStackGuard()
  }

  evaluate(script: GuestScript): GuestFailure | undefined {
    const instance = this.instance
    if (instance.dispatcher === undefined) {
      // The prelude itself (a realm prepared without it): plain exec in __main__.
      try {
        instance.loaded.api.runPython(script.code)
      } catch (error) {
        const failure = escapedFailure(error)
        if (failure === undefined) throw error
        return failure
      }
      instance.dispatcher = findDispatcher(instance)
      if (instance.dispatcher !== undefined && instance.stackGuardFrom === undefined) {
        // The prelude is complete in this bare interpreter: the stack guard can be placed now.
        instance.calibrateStackGuard()
        instance.armStackGuard()
      }
      return undefined
    }
    const state = this.dispatch('eval', script.name, script.code)
    if (state.kind === 'thrown') return state.failure
    return undefined
  }

  callEntry(entry: GuestEntry): RunState {
    return this.settled(this.dispatch('entry', entry.entry, JSON.stringify(entry.args)))
  }

  runContinuations(goOn: () => boolean): GuestFailure | undefined {
    if (!goOn()) return undefined
    const state = this.dispatch('step', '', '')
    return state.kind === 'thrown' ? state.failure : undefined
  }

  entryState(): RunState {
    return this.settled(this.dispatch('state', '', ''))
  }

  answer(call: number, reply: string): void {
    this.dispatch('answer', String(call), reply)
  }

  observations(): EngineObservations {
    const instance = this.instance
    return {
      memoryCapHit: instance.capHit,
      get stackLimitHit() {
        return instance.stackGuardTouched()
      },
    }
  }

  memoryBytes(): number {
    return this.instance.exports.memory.buffer.byteLength
  }

  markBroken(): void {
    this.instance.broken = true
  }

  endRun(): void {}

  private settled(state: RunState | { readonly kind: 'ok' }): RunState {
    return state.kind === 'ok' ? { kind: 'not-a-string', got: 'None' } : state
  }

  /** Calls the prelude's dispatcher; a Python exception that escaped it is the run's failure. */
  private dispatch(kind: string, a: string, b: string): RunState | { readonly kind: 'ok' } {
    const dispatcher = this.instance.dispatcher
    if (dispatcher === undefined) {
      return { kind: 'thrown', failure: { name: 'SystemError', message: 'the Python prelude was not evaluated in this interpreter' } }
    }
    const seed = this.seed
    this.seed = 0
    try {
      return readAnswer(dispatcher(kind, a, b, seed))
    } catch (error) {
      const failure = escapedFailure(error)
      if (failure === undefined) throw error
      return { kind: 'thrown', failure }
    }
  }
}

function findDispatcher(instance: Instance): Dispatcher | undefined {
  try {
    const fn = instance.loaded.api.globals.get('__gearbox_call')
    return typeof fn === 'function' ? (fn as Dispatcher) : undefined
  } catch {
    return undefined
  }
}

/** Keeps one MicroPython instance per worker and its post-prelude snapshot. */
export class MicroPythonEngine implements GuestEngine {
  readonly name = 'micropython' as const
  private instance: Instance | undefined
  /** The instance is ready for the next run (restored, or freshly prepared). */
  private prepared = false
  private active: MicroPythonRealm | undefined
  private realmBuilds = 0
  private snapshotRestores = 0

  constructor(private readonly host: EngineHost) {}

  counters(): EngineCounters {
    return { realmBuilds: this.realmBuilds, snapshotRestores: this.snapshotRestores }
  }

  fits(memoryBytes: number, scripts: readonly GuestScript[], preload: number): boolean {
    const instance = this.instance
    if (!this.prepared || instance === undefined || instance.worn) return false
    if (instance.exports.memory.buffer.byteLength > BASE_BYTES + memoryBytes) return false
    const count = instance.preloaded.length
    return count <= preload && sameScripts(instance.preloaded, scripts, count)
  }

  async prepare(memoryBytes: number, preload: readonly GuestScript[]): Promise<void> {
    // One instance per worker: while a run uses it (waiting for async replies), a preparation
    // (a worker's prepareNext still in flight) must not replace it; the worker prepares again after.
    if (this.active !== undefined) return
    const current = this.instance
    if (
      this.prepared &&
      current !== undefined &&
      !current.worn &&
      current.exports.memory.buffer.byteLength <= BASE_BYTES + memoryBytes &&
      current.preloaded.length === preload.length &&
      sameScripts(current.preloaded, preload, preload.length)
    ) {
      return
    }
    this.prepared = false
    this.instance = undefined
    const instance = await this.load()
    this.realmBuilds++
    if (preload.length > 0) {
      try {
        for (const script of preload) instance.loaded.api.runPython(script.code)
        instance.dispatcher = findDispatcher(instance)
        instance.preloaded = preload
      } catch (error) {
        if (!isPythonError(error)) throw error
        // A preload that raises is dropped: the job evaluates those scripts itself and reports it.
        this.instance = await this.load()
        this.prepared = true
        return
      }
      if (instance.dispatcher !== undefined) {
        instance.calibrateStackGuard()
        instance.snapshot = MemorySnapshot.take(instance.exports)
      }
    }
    this.instance = instance
    this.prepared = true
  }

  take(): GuestRealm {
    const instance = this.instance
    if (instance === undefined || !this.prepared) throw new Error('no prepared MicroPython interpreter')
    this.prepared = false
    this.active = new MicroPythonRealm(instance, randomSeed())
    return this.active
  }

  /** After a run: restore the snapshot (the instance serves the next run) or drop the instance. */
  release(released: GuestRealm): void {
    if (!(released instanceof MicroPythonRealm)) throw new Error('MicroPythonEngine.release: not a MicroPython realm')
    if (this.active === released) this.active = undefined
    const instance = released.instance
    instance.runs++
    instance.capBytes = Number.MAX_SAFE_INTEGER
    if (instance.snapshot !== undefined && !instance.worn && this.instance === instance) {
      instance.snapshot.restore(instance.exports)
      this.snapshotRestores++
      this.prepared = true
      return
    }
    // No snapshot (a bare interpreter) or worn: the next prepare loads a new instance.
    if (this.instance === instance) this.instance = undefined
  }

  disposeRetired(): void {}

  // Host functions ---------------------------------------------------------------------------

  /** `_gearbox_host.call(op, payload)`: blocks until the host answers; never throws. */
  private hostCall(op: unknown, payload: unknown): string {
    try {
      if (typeof op !== 'string' || typeof payload !== 'string') {
        return replyCodedError('ERR_GEARBOX_SANDBOX', '_gearbox_host.call(op, payload) takes two strings')
      }
      if (this.interruptIfDue()) return STOPPED_REPLY
      const answer = this.host.call(op, payload)
      if (answer === HOST_STOP) {
        this.interrupt()
        return STOPPED_REPLY
      }
      this.interruptIfDue()
      return answer
    } catch (error) {
      return this.glueFailure(error)
    }
  }

  /** `_gearbox_host.start(op, payload)`: the call's number (its reply comes through answer()), or a stop reply. */
  private hostStart(op: unknown, payload: unknown): number | string {
    try {
      if (typeof op !== 'string' || typeof payload !== 'string') {
        return replyCodedError('ERR_GEARBOX_SANDBOX', '_gearbox_host.start(op, payload) takes two strings')
      }
      if (this.interruptIfDue()) return STOPPED_REPLY
      const call = this.host.callAsync(op, payload)
      if (call === HOST_STOP) {
        this.interrupt()
        return STOPPED_REPLY
      }
      return call
    } catch (error) {
      return this.glueFailure(error)
    }
  }

  private glueFailure(error: unknown): string {
    if (this.active !== undefined) this.active.markBroken()
    const message = error instanceof Error ? error.message : String(error)
    return replyCodedError('ERR_GEARBOX_SANDBOX', `host call failed: ${message}`)
  }

  private interruptIfDue(): boolean {
    if (!this.host.shouldInterrupt()) return false
    this.interrupt()
    return true
  }

  private interrupt(): void {
    this.instance?.exports.mp_sched_keyboard_interrupt()
  }

  // Internals --------------------------------------------------------------------------------

  private async load(): Promise<Instance> {
    let instance: Instance | undefined
    const loaded = await loadMicroPython({
      gate: (requested) => instance?.gate(requested) ?? true,
      // Guests print nothing anywhere: RedisGears' print went to the server's stdout; log() is the API.
      stdout: () => {},
      pystackWords: PYSTACK_WORDS,
      heapBytes: HEAP_BYTES,
    })
    instance = new Instance(loaded)
    // Plain objects without a prototype: a guest holding the module reaches no JS constructor.
    const host = Object.create(null) as Record<string, unknown>
    host['call'] = sealFunction((op: unknown, payload: unknown) => this.hostCall(op, payload))
    host['start'] = sealFunction((op: unknown, payload: unknown) => this.hostStart(op, payload))
    loaded.api.registerJsModule('_gearbox_host', host)
    // `import js` would be the worker's globalThis; `jsffi` makes JS objects: both shadowed.
    loaded.api.registerJsModule('js', Object.create(null) as object)
    loaded.api.registerJsModule('jsffi', Object.create(null) as object)
    return instance
  }
}

/**
 * A host function as the guest sees it: callable, and nothing else (every property reads as
 * undefined, so no `constructor`, `bind` or prototype is reachable from Python). The glue calls
 * functions through `.call`, which is answered with a sealed forwarder.
 */
function sealFunction(fn: (a: unknown, b: unknown) => unknown): object {
  const sealed = (target: (...args: unknown[]) => unknown): object =>
    new Proxy(target, {
      get: () => undefined,
      has: () => false,
      getPrototypeOf: () => null,
      ownKeys: () => [],
      getOwnPropertyDescriptor: () => undefined,
    })
  const forwardCall = sealed((_this: unknown, a: unknown, b: unknown) => fn(a, b))
  const forwardApply = sealed((_this: unknown, args: unknown) => (Array.isArray(args) ? fn(args[0], args[1]) : fn(undefined, undefined)))
  return new Proxy((a: unknown, b: unknown) => fn(a, b), {
    get: (_target, key) => (key === 'call' ? forwardCall : key === 'apply' ? forwardApply : undefined),
    has: () => false,
    getPrototypeOf: () => null,
    ownKeys: () => [],
    getOwnPropertyDescriptor: () => undefined,
  })
}

/** A seed for the guest's `random` (executions start from one snapshot: its generator state repeats). */
function randomSeed(): number {
  return 1 + Math.floor(Math.random() * 0x7ffffffe)
}

/** An engine for a worker (engine.ts EngineFactory); MicroPython loads its own .wasm. */
export function newMicroPythonEngine(_compiled: WebAssembly.Module, host: EngineHost): GuestEngine {
  return new MicroPythonEngine(host)
}
