/**
 * The sandbox worker: what runs inside each worker thread. A platform's worker entry (e.g.
 * host/platform/node-worker.ts) calls {@link runSandboxWorker} with its message port and the
 * compiled WebAssembly module of the engine. Engine-agnostic: the engine comes from
 * engines/factory.ts, each job runs as a {@link WorkerRun}.
 */
import { HOST_STOP, type EngineHost, type EngineName, type GuestEngine } from './engine.js'
import { engineFactory } from './engines/factory.js'
import { DEFAULT_ENGINE } from './engines/index.js'
import { DEFAULT_LIMITS } from './limits.js'
import type { WorkerPort } from './platform.js'
import type { ToWorkerMessage } from './protocol.js'
import { ReplyReader } from './reply-channel.js'
import { RequestWriter } from './request-channel.js'
import { InterpreterClock, PREPARED, REALM_BUILDS, SNAPSHOT_RESTORES, stateWords } from './shared-state.js'
import type { GuestScript } from './types.js'
import { WorkerRun, type WorkerRunEnv } from './worker-run.js'

type RunMessage = Extract<ToWorkerMessage, { t: 'run' }>

class SandboxWorker {
  private env: WorkerRunEnv | undefined
  /** The engine of the last job (the next realm is prepared in it). */
  private engine: GuestEngine
  /** Engines by name, made on a worker's first job of that engine. */
  private readonly engines = new Map<EngineName, GuestEngine>()
  private readonly engineHost: EngineHost
  private readonly wasmModule: WebAssembly.Module
  private current: WorkerRun | undefined
  /** Serialises engine preparation (module creation is async) with job starts. */
  private preparing: Promise<void> = Promise.resolve()
  /** Memory budget of the last job: the next realm is prepared for it. */
  private memoryBytes = DEFAULT_LIMITS.memoryBytes
  /** Preloadable scripts of the last job: the next realm is prepared with them evaluated. */
  private preload: readonly GuestScript[] = []
  /** Large scripts cached by slot number (the pool decides the slots). */
  private readonly scriptSlots = new Map<number, string>()

  /** The port, counting what it posts once the request channel exists (see request-channel.ts). */
  private readonly port: WorkerPort

  constructor(port: WorkerPort, wasmModule: WebAssembly.Module) {
    this.port = {
      postMessage: (message) => {
        this.env?.requests?.countPosted()
        port.postMessage(message)
      },
      onMessage: (listener) => port.onMessage(listener),
    }
    this.wasmModule = wasmModule
    this.engineHost = {
      call: (op, payload) => this.current?.call(op, payload) ?? HOST_STOP,
      callAsync: (op, payload) => this.current?.callAsync(op, payload) ?? HOST_STOP,
      shouldInterrupt: () => this.current?.shouldInterrupt() ?? false,
    }
    this.engine = this.engineNamed(DEFAULT_ENGINE)
    this.port.onMessage((message) => this.onMessage(message))
  }

  private onMessage(message: ToWorkerMessage): void {
    switch (message.t) {
      case 'init':
        this.init(message.state, message.replyData, message.requestData, message.memoryBytes)
        break
      case 'run':
        this.run(message)
        break
      case 'reply':
        if (this.current?.id === message.id) this.current.onReply(message.call, message.value)
        break
      case 'stop':
        if (this.current?.id === message.id) this.current.onStop()
        break
    }
  }

  private init(state: SharedArrayBuffer, replyData: SharedArrayBuffer, requestData: SharedArrayBuffer | undefined, memoryBytes: number): void {
    const words = stateWords(state)
    this.env = {
      port: this.port,
      words,
      clock: new InterpreterClock(state),
      reply: new ReplyReader(words, replyData),
      requests: requestData === undefined ? undefined : new RequestWriter(words, requestData),
    }
    this.memoryBytes = memoryBytes
    // A worker that cannot create its first interpreter is useless: let the rejection crash it
    // so the pool sees a failed start.
    void this.prepareNext().then(() => this.port.postMessage({ t: 'ready' }))
  }

  private run(message: RunMessage): void {
    const env = this.env
    if (env === undefined) throw new Error('sandbox worker received a job before init')
    if (message.replyData !== undefined) env.reply.replaceBuffer(message.replyData)
    Atomics.store(env.words, PREPARED, 0)
    this.engine = this.engineNamed(message.engine ?? DEFAULT_ENGINE)
    this.engine.disposeRetired()
    const scripts = this.resolveScripts(message)
    this.memoryBytes = message.limits.memoryBytes
    this.preload = scripts.slice(0, message.preload)
    if (this.engine.fits(this.memoryBytes, scripts, message.preload)) {
      this.start(message, scripts, env)
      return
    }
    // Wait for any preparation in flight; if its realm does not fit either (other memory cap or
    // other preloaded scripts), build a bare one and let the job evaluate all its scripts.
    const memoryBytes = this.memoryBytes
    this.preparing = this.preparing
      .then(() => (this.engine.fits(memoryBytes, scripts, message.preload) ? undefined : this.engine.prepare(memoryBytes, [])))
      .then(
        () => this.start(message, scripts, env),
        (error: unknown) => this.reportEngineFailure(message.id, error),
      )
  }

  private start(message: RunMessage, scripts: readonly GuestScript[], env: WorkerRunEnv): void {
    const realm = this.engine.take()
    const run = new WorkerRun(message.id, scripts.slice(realm.preloaded), message.entry, message.limits, realm, env, (done) =>
      this.afterRun(done),
    )
    this.current = run
    run.start()
  }

  private engineNamed(name: EngineName): GuestEngine {
    let engine = this.engines.get(name)
    if (engine === undefined) {
      engine = engineFactory(name)(this.wasmModule, this.engineHost)
      this.engines.set(name, engine)
    }
    return engine
  }

  private afterRun(run: WorkerRun): void {
    if (this.current === run) this.current = undefined
    this.engine.release(run.realm)
    this.publishCounters()
    void this.prepareNext()
  }

  /** Engine counters into the shared state, where the pool's stats read them. */
  private publishCounters(): void {
    const env = this.env
    if (env === undefined) return
    let realmBuilds = 0
    let snapshotRestores = 0
    for (const engine of this.engines.values()) {
      const counters = engine.counters()
      realmBuilds += counters.realmBuilds
      snapshotRestores += counters.snapshotRestores
    }
    Atomics.store(env.words, REALM_BUILDS, realmBuilds)
    Atomics.store(env.words, SNAPSHOT_RESTORES, snapshotRestores)
  }

  /**
   * Builds the next realm off the critical path, flags it for the pool's scheduler, then disposes
   * the old realm in a later task (a job arriving first disposes it itself, in take()).
   */
  private prepareNext(): Promise<void> {
    const memoryBytes = this.memoryBytes
    const preload = this.preload
    this.preparing = this.preparing.then(async () => {
      await this.engine.prepare(memoryBytes, preload)
      this.publishCounters()
      if (this.current !== undefined || this.env === undefined) return
      Atomics.store(this.env.words, PREPARED, 1)
      setTimeout(() => this.disposeWhileIdle(), 0)
    })
    return this.preparing
  }

  private disposeWhileIdle(): void {
    if (this.current !== undefined || this.env === undefined) return
    this.engine.disposeRetired()
    if (!this.engine.fits(this.memoryBytes, this.preload, this.preload.length)) {
      // The dispose broke the module the prepared realm lived in: build another one.
      Atomics.store(this.env.words, PREPARED, 0)
      void this.prepareNext()
    }
  }

  private reportEngineFailure(id: number, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error)
    this.port.postMessage({
      t: 'done',
      id,
      outcome: { ok: false, error: { code: 'ERR_GEARBOX_SANDBOX', message: `${this.engine.name} engine failure: ${message}` } },
    })
  }

  private resolveScripts(message: RunMessage): GuestScript[] {
    return message.scripts.map((script) => {
      if (script.code !== undefined) {
        if (script.slot !== undefined) this.scriptSlots.set(script.slot, script.code)
        return { name: script.name, code: script.code }
      }
      const code = script.slot === undefined ? undefined : this.scriptSlots.get(script.slot)
      if (code === undefined) throw new Error(`sandbox worker has no cached script in slot ${String(script.slot)}`)
      return { name: script.name, code }
    })
  }
}

/**
 * Runs the sandbox worker loop on `port`. Call once, from the worker entry of a platform.
 * @param wasmModule - the compiled WebAssembly module of the engine (engineTraits(DEFAULT_ENGINE).wasmSpecifier).
 */
export function runSandboxWorker(port: WorkerPort, wasmModule: WebAssembly.Module): void {
  new SandboxWorker(port, wasmModule)
}
