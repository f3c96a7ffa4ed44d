/**
 * Sessions: one submitted script. `executeScript` runs a script's top level in a fresh
 * interpreter (the guest prelude first, then the script) and maps what happened to the
 * RG.PYEXECUTE reply (spec §4): `OK` for a script that only ran top-level code.
 *
 * The guest's entry function (`__gearbox_main`, defined by the prelude, not writable by user code)
 * waits for the runCoroutine work the top level started, marks the end of the top level, and
 * returns what the script did as wire JSON (gears/jobs.ts GuestOutcome): `{"kind": "ok"}`, or
 * `{"kind": "run", "id"}` once its run() ran (in place) or started (distributed).
 *
 * A script whose top level called run() starts a batch execution (gears/batch-run.ts): the reply
 * is `[results, errors]` once it finished, or with `unblocking` its execution id as soon as it
 * started.
 */
import { AbortedError, SandboxError } from '../errors.js'
import { parseGuestOutcome, scriptJob } from './jobs.js'
import { createHostHandler, type HostOp } from '../runtime/handler.js'
import type { GearsLogger } from '../runtime/logger.js'
import type { RedisBackend } from '../redis/types.js'
import type { ExecutionHandle, ExecutionJob, HostHandler, Limits } from '../sandbox/types.js'
import { GearsRun } from './batch-run.js'
import type { CompiledRegistration } from './flow.js'
import type { TopLevelMode } from '../runtime/replay.js'
import type { Execution, ExecutionRegistry } from './executions.js'
import { resultsReply } from './result-reply.js'
import type { RegisteringSession, RegistrationRegistry } from './registrations.js'
import { TopLevelRecording } from '../runtime/replay.js'
import { GuestFacingError } from '../runtime/guest-facing-error.js'

/** A reply of `Gearbox.execute`: RESP-shaped plain values (bulk strings as strings). */
export type ExecuteReply = string | number | bigint | null | Uint8Array | readonly ExecuteReply[]

/** What a script execution produced. */
export type ScriptOutcome =
  | {
      /** The script ran top-level code only: the reply is the status `OK`. */
      readonly kind: 'ok'
    }
  | {
      /** The script's run() started `execution`: the reply is `[results, errors]`, or its id when `unblocking`. */
      readonly kind: 'run'
      readonly execution: Execution
      readonly unblocking: boolean
    }

/** Starts executions: the sandbox pool (`SandboxPool`) satisfies it. */
export interface ExecutionStarter {
  start(job: ExecutionJob, handler: HostHandler): ExecutionHandle
}

/** What sessions run against; one per Gearbox. */
export interface SessionDeps {
  readonly pool: ExecutionStarter
  readonly backend: RedisBackend
  readonly logger: GearsLogger
  /** The extra-config dictionary configGet() reads. */
  readonly config: Readonly<Record<string, string>>
  readonly atomicRetries: number
  /** Where run() executions are kept (list/get/results/abort). */
  readonly executions: ExecutionRegistry
  /** Records per reader batch of a run(). Default 1000. */
  readonly batchSize?: number
  /** KeysReader pages read by a script inside Redis when EVAL is allowed. Default true. */
  readonly serverSideReads?: boolean
  /** Where register() calls go; without it register() is refused. */
  readonly registrations?: RegistrationRegistry
}

export interface ExecuteScriptOptions {
  readonly limits: Limits
  /** Aborts the execution (its result rejects with AbortedError). */
  readonly signal?: AbortSignal
  /** Record the top level's host calls for later re-evaluations, or replay them (runtime/replay.ts). */
  readonly topLevel?: TopLevelMode
  /** Host ops added to the runtime's (the gears layer's). */
  readonly ops?: Readonly<Record<string, HostOp>>
  /** A run() replies with its execution id as soon as it started instead of its results (RG.PYEXECUTE UNBLOCKING). Default false. */
  readonly unblocking?: boolean
  /** Measure a run()'s per-step durations. Default: the `ProfileExecutions` config value is `1`. */
  readonly profile?: boolean
  /** How the script's registrations become a session (gears/sessions.ts); default: applied as a new session. */
  readonly session?: SessionHooks
}

/** What gears/sessions.ts decides for a registering script: its id, what it replaces, where it goes. */
export interface SessionHooks {
  readonly id: string
  /** Registrations the session replaces (an upgrade): their trigger names are free for it. */
  readonly replacing?: ReadonlySet<string>
  /** The id of the index-th register() call (a restored session's stored ids); default a new one. */
  readonly registrationId?: (index: number, compiled: CompiledRegistration) => string
  /** Applies the registrations (and stores them); default RegistrationRegistry.apply. */
  readonly apply: (session: RegisteringSession) => Promise<void>
}

export { scriptEntry, scriptJob } from './jobs.js'

const REGISTER_WORD = /register/

function refuseUnnamedRegister(): never {
  throw new GuestFacingError(
    "register() was reached in a script whose source does not contain the word 'register': gearbox records the top level " +
      'only of scripts that name it (their registrations replay it); call register() by its name',
  )
}

/**
 * Runs `source`'s top level once and returns its outcome.
 *
 * @throws GuestError when the script throws (RG.PYEXECUTE's error reply), a limit error
 *   (MemoryLimitError, CpuLimitError, ...), AbortedError, SandboxError.
 */
export async function executeScript(deps: SessionDeps, source: string, options: ExecuteScriptOptions): Promise<ScriptOutcome> {
  const { signal } = options
  if (signal?.aborted) throw new AbortedError()
  // A script that registers needs its top level recorded: its registrations' executions replay it.
  // Recording costs every execution a host call, so only scripts whose source names `register`
  // are recorded; another script's register() (reached without the word) fails with a clear error.
  const registrations = deps.registrations !== undefined && REGISTER_WORD.test(source) ? deps.registrations : undefined
  const topLevelMode: TopLevelMode | undefined =
    options.topLevel ?? (registrations === undefined ? undefined : { mode: 'record', recording: new TopLevelRecording() })
  const shardId = registrations === undefined ? undefined : (await deps.backend.currentShard()).id
  const run = new GearsRun(
    { ...deps, registry: deps.executions },
    {
      source,
      limits: options.limits,
      ...(options.profile === undefined ? {} : { profile: options.profile }),
      ...(topLevelMode === undefined ? {} : { topLevel: topLevelMode }),
      ...(registrations === undefined || shardId === undefined
        ? deps.registrations === undefined
          ? {}
          : { registrationId: refuseUnnamedRegister }
        : {
            registrationId: (_index: number, compiled: CompiledRegistration) => {
              const trigger = compiled.command?.trigger ?? null
              if (trigger !== null && registrations.hasTrigger(trigger, options.session?.replacing)) throw new GuestFacingError('trigger already registered')
              return options.session?.registrationId?.(_index, compiled) ?? registrations.newId(shardId)
            },
          }),
    },
  )
  const topLevel = run.topLevel
  const handler = run.wrap(
    createHostHandler({
      backend: deps.backend,
      logger: deps.logger,
      config: deps.config,
      atomicRetries: deps.atomicRetries,
      maxReplyBytes: options.limits.maxReplyBytes,
      ...(topLevel === undefined ? {} : { topLevel }),
      ...(options.ops === undefined ? {} : { ops: options.ops }),
    }),
  )
  const handle = deps.pool.start(scriptJob(source, options.limits, topLevel !== undefined), handler)
  // An unblocking run() outlives this call: the handler is released when the sandbox execution ends.
  const disposed = handle.result.then(
    () => handler.dispose(),
    () => handler.dispose(),
  )
  const onAbort = (): void => {
    run.execution?.abort()
    handle.abort('aborted by the caller')
  }
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    let settled
    try {
      settled = await run.settle(handle, options.unblocking === true)
    } catch (error) {
      await disposed
      throw error
    }
    if (settled.kind === 'no-run') await disposed
    if (run.registrations.length > 0 && registrations !== undefined && topLevelMode !== undefined) {
      // The top level finished: the registrations apply now, all or nothing (RG.PYEXECUTE replies OK).
      if (settled.kind === 'run') {
        await settled.execution.whenDone()
        deps.executions.forget(settled.execution)
      }
      const registering: RegisteringSession = {
        id: options.session?.id ?? registrations.newSessionId(),
        source,
        recording: topLevelMode.recording,
        limits: options.limits,
        registrations: [...run.registrations],
      }
      await (options.session === undefined ? registrations.apply(registering) : options.session.apply(registering))
      return { kind: 'ok' }
    }
    if (settled.kind === 'no-run') return { kind: 'ok' }
    const execution = settled.execution
    if (options.unblocking === true) return { kind: 'run', execution, unblocking: true }
    await execution.whenDone()
    // A blocking run's execution is dropped once it replied (RedisGears: not in RG.DUMPEXECUTIONS).
    deps.executions.forget(execution)
    return { kind: 'run', execution, unblocking: false }
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

/** Reads the entry function's wire JSON (of a script that did not call run()). */
export function parseOutcome(json: string): ScriptOutcome {
  const outcome = parseGuestOutcome(json)
  if (outcome.kind !== 'ok') throw new SandboxError(`the guest entry reported a run this call did not start: ${json.slice(0, 200)}`)
  return outcome
}

/** The RG.PYEXECUTE reply for an outcome. */
export function outcomeReply(outcome: ScriptOutcome): ExecuteReply {
  switch (outcome.kind) {
    case 'ok':
      return 'OK'
    case 'run':
      return outcome.unblocking ? outcome.execution.id : resultsReply(outcome.execution.results, outcome.execution.errors)
  }
}
