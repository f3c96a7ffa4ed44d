/**
 * Sessions (RG.PYEXECUTE's, spec §4): every script is one, alive while it runs and while it has
 * registrations. `execute()`'s `id`, `description`, `upgrade` and `replaceWith` follow
 * RG.PYEXECUTE's rules and error texts; an upgrade swaps the session's registrations in one step
 * once the new script's top level finished (events already queued or running finish on the old
 * version, new events go to the new one); a script that throws changes nothing.
 *
 * With a store (gears/store.ts) a session with registrations is written to Redis before
 * execute() resolves, and rewritten or removed when they change. A host restores the stored
 * sessions at start and whenever another host announces a change: a session's top level runs
 * again under replay of its first run's recorded host calls (so none of its side effects repeat),
 * its registrations get their stored ids, and their onRegistered functions run again.
 */
import { GearboxError, RegistrationError, SessionError, StoreError } from '../errors.js'
import type { GearsLogger } from '../runtime/logger.js'
import { TopLevelRecording } from '../runtime/replay.js'
import { samePlanOf } from './flow.js'
import type { RegisteringSession, RegistrationRegistry } from './registrations.js'
import { executeScript, type ExecuteScriptOptions, type ScriptOutcome, type SessionDeps } from './session.js'
import { STORED_SESSION_FORMAT, type SessionStore, type StoredSession } from './store.js'

/** RG.PYEXECUTE's text for an ID with other characters than `[A-Za-z0-9_-]`. */
export const SESSION_ID_CHARSET_TEXT = "ID must be compose of: ['A'-'Z' | 'a'-'z' | '0' - '9' | '-' | '_']"

/** RG.PYEXECUTE's session options. */
export interface SessionOptions {
  /** The session id (`[A-Za-z0-9_-]+`). Default: 40 random hex characters. */
  readonly id?: string
  readonly description?: string
  /** Replace the session `id` if it exists (created otherwise). */
  readonly upgrade?: boolean
  /** Replace session `replaceWith` (which must exist) with this new one. */
  readonly replaceWith?: string
}

/** One session as `sessions.list()` gives it: RG.PYDUMPSESSIONS' fields. */
export interface SessionInfo {
  readonly ID: string
  readonly sessionDescription: string | null
  /** Its registrations, plus 1 while its script runs. */
  readonly refCount: number
  readonly linked: 'primary'
  /** Always false: a session without registrations and not running is gone. */
  readonly dead: boolean
  readonly requirementInstallationNeeded: 0
  /** Always empty: JavaScript sessions install nothing. */
  readonly requirements: readonly string[]
  /** Ids of its registrations. */
  readonly registrations: readonly string[]
}

interface LiveSession {
  readonly id: string
  description: string | null
  /** Executions of its script running now. */
  running: number
  /** What its registrations were applied from, or undefined (none). */
  registering: RegisteringSession | undefined
  /** Its registrations unregistered since they were applied. */
  unregistered: Set<string>
  /** The stored version this host holds, or undefined when not stored. */
  rev: string | undefined
  createdAt: number
}

function randomHex(chars: number): string {
  const bytes = new Uint8Array(Math.ceil(chars / 2))
  globalThis.crypto.getRandomValues(bytes)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('').slice(0, chars)
}

function messageOf(error: unknown): string {
  if (error instanceof GearboxError) return `${error.code}: ${error.message}`
  return error instanceof Error ? error.message : String(error)
}

export class SessionManager {
  readonly #sessions = new Map<string, LiveSession>()
  /** Store writes and restores run one at a time (and never interleave with each other). */
  #lock: Promise<void> = Promise.resolve()
  #reconcileWanted = false
  #closed = false

  constructor(
    private readonly deps: SessionDeps & { readonly registrations: RegistrationRegistry },
    private readonly store: SessionStore | undefined,
    private readonly logger: GearsLogger,
  ) {}

  get #registry(): RegistrationRegistry {
    return this.deps.registrations
  }

  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(task)
    this.#lock = run.then(
      () => {},
      () => {},
    )
    return run
  }

  /** Ids of `live`'s registrations that are registered now. */
  #liveIds(live: LiveSession): string[] {
    const registering = live.registering
    if (registering === undefined) return []
    return registering.registrations.map((r) => r.id).filter((id) => !live.unregistered.has(id))
  }

  #dropIfUnused(live: LiveSession): void {
    if (live.running === 0 && this.#liveIds(live).length === 0 && this.#sessions.get(live.id) === live) this.#sessions.delete(live.id)
  }

  /**
   * Runs a script as a session.
   * @throws SessionError with RG.PYEXECUTE's texts; StoreError when its registrations could not
   *   be stored (then none is kept); what executeScript throws.
   */
  async execute(source: string, options: Omit<ExecuteScriptOptions, 'session'>, session: SessionOptions = {}): Promise<ScriptOutcome> {
    const { id, upgrade, replaceWith } = session
    if (id !== undefined && !/^[A-Za-z0-9_-]+$/.test(id)) throw new SessionError(SESSION_ID_CHARSET_TEXT)
    const existing = id === undefined ? undefined : this.#sessions.get(id)
    if (existing !== undefined && upgrade !== true) throw new SessionError(`Session ${id!} already exists`)
    let replaced = existing
    if (replaceWith !== undefined) {
      if (existing !== undefined) throw new SessionError(`Can not replace an existing session ${id!} with ${replaceWith}`)
      replaced = this.#sessions.get(replaceWith)
      if (replaced === undefined) throw new SessionError(`Can not replace with ${replaceWith}, session does not exists.`)
    }
    let live = existing
    if (live === undefined) {
      // Listed (and its id taken) from now on, before anything awaits.
      live = { id: id ?? randomHex(40), description: session.description ?? null, running: 0, registering: undefined, unregistered: new Set(), rev: undefined, createdAt: Date.now() }
      this.#sessions.set(live.id, live)
    }
    const target = live
    target.running++
    let committed = false
    try {
      const outcome = await executeScript(this.deps, source, {
        ...options,
        session: {
          id: target.id,
          replacing: new Set(replaced === undefined ? [] : this.#liveIds(replaced)),
          apply: (registering) =>
            this.#exclusive(async () => {
              await this.#commit(target, registering, replaced, session.description)
              committed = true
            }),
        },
      })
      // An upgrade by a script that registers nothing still replaces the old version.
      if (!committed && replaced !== undefined) await this.#exclusive(() => this.#commit(target, undefined, replaced, session.description))
      return outcome
    } finally {
      target.running--
      this.#dropIfUnused(target)
    }
  }

  /** Swaps `replaced`'s registrations for `registering`'s in `live`, then stores it; rolls back when the store fails. */
  async #commit(live: LiveSession, registering: RegisteringSession | undefined, replaced: LiveSession | undefined, description: string | undefined): Promise<void> {
    const removed = replaced === undefined ? [] : this.#liveIds(replaced)
    const before = { registering: live.registering, unregistered: live.unregistered, description: live.description }
    const replacedBefore = replaced === undefined ? undefined : { registering: replaced.registering, unregistered: new Set(replaced.unregistered) }
    await this.#registry.replace(removed, registering)
    if (replaced !== undefined && replaced !== live) {
      replaced.registering = undefined
      replaced.unregistered = new Set()
    }
    live.registering = registering
    live.unregistered = new Set()
    if (description !== undefined) live.description = description
    const store = this.store
    try {
      if (store !== undefined) {
        if (registering !== undefined) {
          const rev = randomHex(16)
          await store.put(this.#stored(live, rev))
          live.rev = rev
        } else if (live.rev !== undefined) {
          await store.remove(live.id)
          live.rev = undefined
        }
        if (replaced !== undefined && replaced !== live && replaced.rev !== undefined) {
          await store.remove(replaced.id)
          replaced.rev = undefined
        }
      }
    } catch (error) {
      // A registration that would not survive a restart is not kept: back to what was.
      const added = registering === undefined ? [] : registering.registrations.map((r) => r.id)
      Object.assign(live, before)
      const back = replacedBefore?.registering === undefined ? undefined : { ...replacedBefore.registering, skip: replacedBefore.unregistered }
      if (replaced !== undefined && replacedBefore !== undefined) Object.assign(replaced, replacedBefore)
      await this.#registry.replace(added, back).catch((e: unknown) => this.logger.log('warning', `could not put back session ${replaced?.id ?? live.id}: ${messageOf(e)}`))
      throw new StoreError(`the registrations could not be stored in Redis, so none was kept (${messageOf(error)})`)
    }
    if (replaced !== undefined && replaced !== live) this.#dropIfUnused(replaced)
  }

  #stored(live: LiveSession, rev: string): StoredSession {
    const registering = live.registering!
    return {
      format: STORED_SESSION_FORMAT,
      id: live.id,
      description: live.description,
      language: 'js',
      source: registering.source,
      limits: registering.limits,
      recording: registering.recording.calls,
      registrations: registering.registrations,
      unregistered: [...live.unregistered],
      rev,
      createdAt: live.createdAt,
    }
  }

  /**
   * Unregisters registration `id` (at once), then updates the store; the returned promise settles
   * once both the store has it and its stream reader (if any) stopped. `abortPending`: see
   * RegistrationRegistry.unregister. @throws RegistrationNotFoundError `execution is not registered` (synchronously)
   */
  unregister(id: string, options: { readonly abortPending?: boolean } = {}): Promise<void> {
    const sessionId = this.#registry.sessionOf(id)
    const stopped = this.#registry.unregister(id, options)
    return Promise.all([stopped, this.#storeUnregistered(id, sessionId)]).then(() => undefined)
  }

  #storeUnregistered(id: string, sessionId: string | undefined): Promise<void> {
    const live = sessionId === undefined ? undefined : this.#sessions.get(sessionId)
    if (live === undefined) return Promise.resolve()
    live.unregistered.add(id)
    const empty = this.#liveIds(live).length === 0
    if (empty) this.#dropIfUnused(live)
    const store = this.store
    if (store === undefined || live.rev === undefined) return Promise.resolve()
    return this.#exclusive(async () => {
      if (live.rev === undefined) return
      if (this.#liveIds(live).length === 0) {
        await store.remove(live.id)
        live.rev = undefined
      } else {
        const rev = randomHex(16)
        await store.put(this.#stored(live, rev))
        live.rev = rev
      }
    })
  }

  /** Every live session (RG.PYDUMPSESSIONS), oldest first. */
  list(): SessionInfo[] {
    return [...this.#sessions.values()].map((s) => {
      const registrations = this.#liveIds(s)
      return {
        ID: s.id,
        sessionDescription: s.description,
        refCount: registrations.length + s.running,
        linked: 'primary' as const,
        dead: false,
        requirementInstallationNeeded: 0 as const,
        requirements: [],
        registrations,
      }
    })
  }

  /**
   * Brings this host's sessions in line with the store: stored sessions it lacks (or holds in an
   * older version) are restored, sessions no longer stored are removed. Calls coalesce.
   */
  sync(): Promise<void> {
    if (this.store === undefined) return Promise.resolve()
    this.#reconcileWanted = true
    return this.#exclusive(async () => {
      if (!this.#reconcileWanted || this.#closed) return
      this.#reconcileWanted = false
      await this.#reconcile(this.store!)
    })
  }

  async #reconcile(store: SessionStore): Promise<void> {
    const stored = await store.loadAll()
    const seen = new Set<string>()
    for (const s of stored) {
      if (this.#closed) return
      seen.add(s.id)
      const live = this.#sessions.get(s.id)
      if (live !== undefined && live.rev === s.rev) continue
      if (live?.registering !== undefined && live.rev !== undefined && sameScript(live.registering, s)) {
        // Only unregistrations happened elsewhere: follow them without running anything.
        for (const id of s.unregistered) {
          if (live.unregistered.has(id)) continue
          live.unregistered.add(id)
          if (this.#registry.sessionOf(id) === live.id) {
            void this.#registry.unregister(id).catch((e: unknown) => this.logger.log('warning', `registration ${id}'s stream reader did not stop cleanly: ${messageOf(e)}`))
          }
        }
        live.rev = s.rev
        continue
      }
      try {
        await this.#restore(s, live)
      } catch (error) {
        this.logger.log('warning', `stored session ${s.id} could not be restored: ${messageOf(error)}`)
      }
    }
    for (const live of [...this.#sessions.values()]) {
      if (live.rev === undefined || seen.has(live.id)) continue
      await this.#registry.replace(this.#liveIds(live), undefined)
      live.registering = undefined
      live.rev = undefined
      this.#dropIfUnused(live)
    }
  }

  /** Restores `s` (over `live`, an older version of it on this host): its top level under replay, its stored ids. */
  async #restore(s: StoredSession, live: LiveSession | undefined): Promise<void> {
    if (s.language !== 'js') throw new RegistrationError(`its language '${s.language}' is not one this host runs (js)`)
    const recording = new TopLevelRecording()
    for (const call of s.recording) recording.add(call)
    recording.finish()
    const removed = live === undefined ? [] : this.#liveIds(live)
    let applied = false
    await executeScript(this.deps, s.source, {
      limits: s.limits,
      topLevel: { mode: 'replay', recording },
      session: {
        id: s.id,
        replacing: new Set(removed),
        registrationId: (index, compiled) => {
          const first = s.registrations[index]
          if (first === undefined || !samePlanOf(first.compiled, compiled)) {
            throw new RegistrationError(`stored session ${s.id} registered a different flow when restored: its top level must build the same flows every time`)
          }
          return first.id
        },
        apply: async (registering) => {
          const restored: RegisteringSession = { ...registering, skip: new Set(s.unregistered) }
          await this.#registry.replace(removed, restored)
          const target: LiveSession = live ?? { id: s.id, description: s.description, running: 0, registering: undefined, unregistered: new Set(), rev: undefined, createdAt: s.createdAt }
          target.registering = restored
          target.unregistered = new Set(s.unregistered)
          target.description = s.description
          target.rev = s.rev
          this.#sessions.set(s.id, target)
          applied = true
        },
      },
    })
    if (!applied) throw new RegistrationError(`stored session ${s.id} registered nothing when its top level ran again`)
  }

  /** Stops following the store (the registry is closed by its owner). */
  async close(): Promise<void> {
    this.#closed = true
    await this.#lock
  }
}

function sameScript(registering: RegisteringSession, s: StoredSession): boolean {
  return registering.source === s.source && JSON.stringify(registering.registrations.map((r) => r.id)) === JSON.stringify(s.registrations.map((r) => r.id))
}
