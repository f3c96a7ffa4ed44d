/**
 * The sandbox jobs of the gears layer and the protocol of their entries: the one place that says
 * which guest entry a job calls, and how an entry's result reads (what the script did).
 */
import { GUEST_JS } from '../generated/guest-js.js'
import { GUEST_PY } from '../generated/guest-py.js'
import { SandboxError } from '../errors.js'
import { decodeWire } from '../runtime/wire.js'
import type { GuestEntry } from '../sandbox/engine.js'
import type { ExecutionJob, GuestScript, HostHandler, Limits, SavedRealmSpec } from '../sandbox/types.js'

/**
 * What the sandbox calls after the scripts: the prelude's entry function (defined with
 * G.defineEntry), as data. With `boundary` false it does not report the end of the top level to
 * the host (a host call saved): only a handler recording the top level for replays needs it.
 */
export function scriptEntry(boundary = true): GuestEntry {
  return { entry: '__gearbox_main', args: [boundary] }
}

/** The entry of distributed stage `stage` (guest/js/20_gears.js defines it). */
export function stageEntry(stage: number): GuestEntry {
  return { entry: '__gearbox_gears_stage', args: [Math.trunc(stage)] }
}

/** The entry of one execution of the script's `index`-th registration: an event's steps, or its onRegistered. */
export function registrationEntry(index: number, kind: 'event' | 'registered'): GuestEntry {
  return { entry: '__gearbox_gears_registration', args: [Math.trunc(index), kind] }
}

/**
 * Python sources carry their language as a first line (a Python comment), so that every path that
 * keeps a source (sessions, registrations persisted in Redis, distributed stages) keeps the language
 * with it. {@link pythonSource} adds it; jobs strip it before the interpreter sees the script.
 */
export const PYTHON_SOURCE_MARKER = '#!gearbox:python\n'

/** Tags `source` as a Python script (idempotent). */
export function pythonSource(source: string): string {
  return source.startsWith(PYTHON_SOURCE_MARKER) ? source : PYTHON_SOURCE_MARKER + source
}

/** The guest language of a source: Python when tagged by {@link pythonSource}, else JavaScript. */
export function sourceLanguage(source: string): 'js' | 'python' {
  return source.startsWith(PYTHON_SOURCE_MARKER) ? 'python' : 'js'
}

function jobOf(source: string, limits: Limits, entry: GuestEntry): ExecutionJob {
  if (sourceLanguage(source) === 'python') {
    return {
      engine: 'micropython',
      // `<string>`: RedisGears' tracebacks name the script so.
      scripts: [...GUEST_PY, { name: '<string>', code: source.slice(PYTHON_SOURCE_MARKER.length) }],
      preload: GUEST_PY.length,
      entry,
      limits,
    }
  }
  return {
    engine: 'quickjs',
    scripts: [...GUEST_JS, { name: 'script.js', code: source }],
    // The prelude is trusted and deterministic: workers evaluate it once and snapshot it.
    preload: GUEST_JS.length,
    entry,
    limits,
  }
}

/** The sandbox job for `source`: the JS prelude, then the script as `script.js`. */
export function scriptJob(source: string, limits: Limits, boundary = true): ExecutionJob {
  return jobOf(source, limits, scriptEntry(boundary))
}

/** The job of one distributed stage: the script evaluated again, then the prelude's stage entry runs stage `stage`. */
export function stageJob(source: string, limits: Limits, stage: number): ExecutionJob {
  return jobOf(source, limits, stageEntry(stage))
}

/** The job of one registration execution: the script evaluated again (its top level replayed), then the registration entry. */
export function registrationJob(source: string, limits: Limits, index: number, kind: 'event' | 'registered'): ExecutionJob {
  return jobOf(source, limits, registrationEntry(index, kind))
}

/**
 * The jobs of one session's registration executions, starting from the interpreter its top level
 * left (DESIGN.md §3): a worker that does not hold that state yet evaluates the prelude and the
 * script, ends the top level with `__gearbox_gears_toplevel` (its host calls answered by
 * `setupHost`, i.e. from the session's recording), saves the interpreter under `key`, and every
 * later execution on that worker restores it and calls the registration entry directly.
 */
export class SavedRealmJobs {
  readonly #scripts: readonly GuestScript[]
  readonly #realm: SavedRealmSpec
  readonly #jobs = new Map<string, ExecutionJob>()

  constructor(
    source: string,
    private readonly limits: Limits,
    key: string,
    setupHost: () => HostHandler,
  ) {
    this.#scripts = [...GUEST_JS, { name: 'script.js', code: source }]
    this.#realm = { key, scripts: this.#scripts.length, entry: { entry: '__gearbox_gears_toplevel', args: [] }, setupHost }
  }

  /**
   * The job of one execution of the session's `index`-th registration. `event` is what the
   * guest's gears.event call would answer (the reply text), handed over as the entry's argument.
   */
  job(index: number, kind: 'event' | 'registered', event: string, limits: Limits = this.limits): ExecutionJob {
    const name = `${kind}:${index}`
    let base = this.#jobs.get(name)
    if (base === undefined) {
      base = {
        engine: 'quickjs',
        scripts: this.#scripts,
        preload: GUEST_JS.length,
        entry: { entry: '__gearbox_gears_registration', args: [] },
        limits: this.limits,
        realm: this.#realm,
      }
      this.#jobs.set(name, base)
    }
    return { ...base, entry: { entry: '__gearbox_gears_registration', args: [Math.trunc(index), kind, false, event] }, limits }
  }
}

/** A short hash of a script's source (FNV-1a, 32 bits, hex), for saved-realm keys. */
export function sourceHash(source: string): string {
  let hash = 0x811c9dc5
  for (let i = 0; i < source.length; i++) {
    hash ^= source.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0).toString(16).padStart(8, '0')
}

/** What a script execution's entry says the script did: top-level code only, or a run() (its execution id). */
export type GuestOutcome = { readonly kind: 'ok' } | { readonly kind: 'run'; readonly id: string }

/** Reads the entry function's wire JSON. */
export function parseGuestOutcome(json: string): GuestOutcome {
  let value: unknown
  try {
    value = decodeWire(json)
  } catch {
    throw new SandboxError(`the guest entry returned malformed JSON: ${json.slice(0, 200)}`)
  }
  const o = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as { kind?: unknown; id?: unknown }) : {}
  if (o.kind === 'ok') return { kind: 'ok' }
  if (o.kind === 'run' && typeof o.id === 'string') return { kind: 'run', id: o.id }
  throw new SandboxError(`the guest entry returned an unknown outcome: ${json.slice(0, 200)}`)
}
