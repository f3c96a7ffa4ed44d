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
import type { DirectCalls, DirectCallsFactory, WorkerPort } from './platform.js'
import type { ToWorkerMessage } from './protocol.js'
import { ReplyReader } from './reply-channel.js'
import { RequestWriter } from './request-channel.js'
import { InterpreterClock, PARKED_KIB, PARKS, PREPARED, REALM_BUILDS, REALM_SAVES, SAVED_REALM_STARTS, SNAPSHOT_RESTORES, stateWords } from './shared-state.js'
import type { GuestScript } from './types.js'
import { WorkerRun, type RunSetup, type WorkerRunEnv } from './worker-run.js'

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
  /** A job between its message and its start (its realm being prepared). */
  private starting = false
  /** Runs set aside while they wait for async replies, by id. */
  private readonly parked = new Map<number, WorkerRun>()
  /** The engine each parked run belongs to. */
  private readonly parkedEngines = new Map<number, GuestEngine>()
  /** Replies that arrived for parked runs, in order. */
  private readonly parkedReplies = new Map<number, { call: number; value: string }[]>()
  /** Work that arrived while the worker was busy: jobs, and parked runs with replies to resume. */
  private readonly waiting: ({ readonly job: RunMessage } | { readonly resume: number })[] = []
  private nextScheduled = false
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
  /** This worker's own Redis connection for plain commands, once the pool sent where to (platform.ts). */
  private direct: DirectCalls | undefined

  constructor(
    port: WorkerPort,
    wasmModule: WebAssembly.Module,
    private readonly directCalls?: DirectCallsFactory,
  ) {
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
        // The pool may send a job while a parked run resumed here: it waits its turn.
        if (this.busy || this.waiting.length > 0) {
          this.waiting.push({ job: message })
          this.scheduleNext()
        } else this.run(message)
        break
      case 'reply':
        if (this.current?.id === message.id) this.current.onReply(message.call, message.value)
        else if (this.parked.has(message.id)) this.replyToParked(message.id, message.call, message.value)
        break
      case 'stop':
        if (this.current?.id === message.id) this.current.onStop()
        else this.stopWaiting(message.id)
        break
      case 'direct':
        // Between runs (messages arrive on the event loop): no direct call is in flight.
        this.direct?.close()
        this.direct = this.directCalls?.(message.config)
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

  private get busy(): boolean {
    return this.current !== undefined || this.starting
  }

  // Parked runs (DESIGN.md §3) -------------------------------------------------------------------

  /** The active run only waits for async replies: its realm is set aside and the worker takes other work. */
  private onWaiting(run: WorkerRun): void {
    if (this.current !== run || this.env === undefined) return
    const engine = this.engine
    if (engine.park?.(run.realm) !== true) return // It keeps the worker while it waits (engine refused).
    // Jobs of another language may switch this.engine meanwhile: the run resumes on its own.
    this.parkedEngines.set(run.id, engine)
    run.park()
    this.current = undefined
    this.parked.set(run.id, run)
    this.port.postMessage({ t: 'parked', id: run.id })
    this.publishCounters()
    Atomics.store(this.env.words, PREPARED, 1)
    this.scheduleNext()
  }

  private replyToParked(id: number, call: number, value: string): void {
    let replies = this.parkedReplies.get(id)
    if (replies === undefined) {
      this.parkedReplies.set(id, (replies = []))
      this.waiting.push({ resume: id })
    }
    replies.push({ call, value })
    this.scheduleNext()
  }

  /** A stop for a run that is parked or still queued here: it ends without running again. */
  private stopWaiting(id: number): void {
    const run = this.parked.get(id)
    if (run !== undefined) {
      this.parked.delete(id)
      this.parkedReplies.delete(id)
      ;(this.parkedEngines.get(id) ?? this.engine).discardParked?.(run.realm)
      this.parkedEngines.delete(id)
      run.abandon()
      this.publishCounters()
    }
    const index = this.waiting.findIndex((item) => ('resume' in item ? item.resume === id : item.job.id === id))
    if (index >= 0) {
      const [item] = this.waiting.splice(index, 1)
      if (item !== undefined && 'job' in item) this.port.postMessage({ t: 'done', id, outcome: { ok: false, stopped: true } })
    }
  }

  private scheduleNext(): void {
    if (this.nextScheduled) return
    this.nextScheduled = true
    queueMicrotask(() => {
      this.nextScheduled = false
      this.next()
    })
  }

  /** Takes the next waiting work (a parked run with replies, or a job) when the worker is free. */
  private next(): void {
    while (!this.busy) {
      const item = this.waiting.shift()
      if (item === undefined) return
      if ('job' in item) {
        // The pool learns which run the worker's sync calls now belong to.
        this.port.postMessage({ t: 'active', id: item.job.id })
        this.run(item.job)
      } else {
        this.resume(item.resume)
      }
    }
  }

  private resume(id: number): void {
    const run = this.parked.get(id)
    const replies = this.parkedReplies.get(id) ?? []
    this.parkedReplies.delete(id)
    if (run === undefined || this.env === undefined) return
    this.parked.delete(id)
    this.engine = this.parkedEngines.get(id) ?? this.engine
    this.parkedEngines.delete(id)
    Atomics.store(this.env.words, PREPARED, 0)
    if (this.engine.unpark?.(run.realm) !== true) {
      run.abandon({ code: 'ERR_GEARBOX_SANDBOX', message: "the parked execution's interpreter was lost (its engine failed while it waited)" })
      this.publishCounters()
      return
    }
    this.current = run
    this.port.postMessage({ t: 'active', id })
    run.resume()
    this.publishCounters()
    for (let i = 0; i < replies.length; i++) {
      if (this.current !== run) {
        // Parked again (or finished) before the rest of its replies: they wait for the next resume.
        if (this.parked.has(id)) {
          this.parkedReplies.set(id, replies.slice(i))
          this.waiting.push({ resume: id })
          this.scheduleNext()
        }
        return
      }
      const reply = replies[i]!
      run.onReply(reply.call, reply.value)
    }
  }

  // Jobs ---------------------------------------------------------------------------------------

  private run(message: RunMessage): void {
    const env = this.env
    if (env === undefined) throw new Error('sandbox worker received a job before init')
    this.starting = true
    if (message.replyData !== undefined) env.reply.replaceBuffer(message.replyData)
    Atomics.store(env.words, PREPARED, 0)
    this.engine = this.engineNamed(message.engine ?? DEFAULT_ENGINE)
    this.engine.disposeRetired()
    const scripts = this.resolveScripts(message)
    this.memoryBytes = message.limits.memoryBytes
    this.preload = scripts.slice(0, message.preload)
    const saved = message.realm?.key
    if (saved !== undefined && this.engine.hasSaved?.(this.memoryBytes, saved) === true) {
      this.start(message, scripts, env, saved)
      return
    }
    if (message.realm !== undefined) {
      // A realm to build: on a realm with exactly the job's preload (prepare() keeps one that has
      // it), so that later jobs, with or without the realm, find that realm prepared.
      const { memoryBytes, preload } = this
      this.preparing = this.preparing
        .then(() => this.engine.prepare(memoryBytes, preload))
        .then(
          () => this.start(message, scripts, env),
          (error: unknown) => this.reportEngineFailure(message.id, error),
        )
      return
    }
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

  /** Starts a job in the prepared realm, or with `saved`, in the state saved under that key. */
  private start(message: RunMessage, scripts: readonly GuestScript[], env: WorkerRunEnv, saved?: string): void {
    const realm = this.engine.take(saved)
    if (saved !== undefined) this.publishCounters()
    const spec = message.realm
    let setup: RunSetup | undefined
    let rest = scripts.slice(realm.preloaded)
    if (spec !== undefined && saved === undefined) {
      // Build the saved realm first: its scripts, its entry, then engine.save.
      setup = {
        scripts: scripts.slice(Math.min(realm.preloaded, spec.scripts), spec.scripts),
        entry: spec.entry,
        save: () => {
          this.engine.save?.(realm, spec.key, spec.scripts)
          this.publishCounters()
        },
      }
      rest = scripts.slice(Math.max(realm.preloaded, spec.scripts))
    }
    this.starting = false
    const run = new WorkerRun(
      message.id,
      rest,
      message.entry,
      message.limits,
      realm,
      env,
      (done) => this.afterRun(done),
      setup,
      (waiting) => this.onWaiting(waiting),
      message.direct === true ? this.direct : undefined,
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
    this.direct?.afterRun()
    this.engine.release(run.realm)
    this.publishCounters()
    void this.prepareNext()
    this.scheduleNext()
  }

  /** Engine counters into the shared state, where the pool's stats read them. */
  private publishCounters(): void {
    const env = this.env
    if (env === undefined) return
    const sum = { realmBuilds: 0, snapshotRestores: 0, realmSaves: 0, savedRealmStarts: 0, parks: 0, parkedBytes: 0 }
    for (const engine of this.engines.values()) {
      const counters = engine.counters()
      sum.realmBuilds += counters.realmBuilds
      sum.snapshotRestores += counters.snapshotRestores
      sum.realmSaves += counters.realmSaves ?? 0
      sum.savedRealmStarts += counters.savedRealmStarts ?? 0
      sum.parks += counters.parks ?? 0
      sum.parkedBytes += counters.parkedBytes ?? 0
    }
    Atomics.store(env.words, REALM_BUILDS, sum.realmBuilds)
    Atomics.store(env.words, SNAPSHOT_RESTORES, sum.snapshotRestores)
    Atomics.store(env.words, REALM_SAVES, sum.realmSaves)
    Atomics.store(env.words, SAVED_REALM_STARTS, sum.savedRealmStarts)
    Atomics.store(env.words, PARKS, sum.parks)
    Atomics.store(env.words, PARKED_KIB, Math.ceil(sum.parkedBytes / 1024))
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
    this.starting = false
    this.scheduleNext()
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
export function runSandboxWorker(port: WorkerPort, wasmModule: WebAssembly.Module, directCalls?: DirectCallsFactory): void {
  new SandboxWorker(port, wasmModule, directCalls)
}
