/**
 * Registrations (RedisGears `register()`), held in this host's memory: what a session's script
 * registered, their stats (RG.DUMPREGISTRATIONS' fields), and their executions.
 *
 * A registration's execution evaluates its session's script again with the top level's host calls
 * replayed from the session's first run (runtime/replay.ts: no side effect of the top level
 * repeats; the functions, globals and closures it built are back), then calls the prelude's
 * registration entry, which runs the registered steps over the event's records with the gears
 * kernel, in place, on the shard the event belongs to.
 *
 * Events: CommandReader triggers come from `trigger()` / `triggerOnKey()`; KeysReader events from
 * keyspace notifications (gears/keyspace.ts) through {@link RegistrationRegistry.keyEvent};
 * StreamReader entries from consumer groups (gears/streams.ts, one StreamProcessor per registration). Events
 * of one key run one after another, in arrival order; each registration queues at most
 * {@link REGISTRATION_QUEUE_SIZE} events, and drops (and counts, `numDropped`) what comes past that.
 */
import { keySlot } from '../cluster/slots.js'
import { shardOwningSlot } from '../cluster/topology.js'
import { AbortedError, GearboxError, RegistrationError, RegistrationNotFoundError, RegistrationPauseError, TopLevelRecordingLimitError, TriggerNotFoundError } from '../errors.js'
import type { RedisBackend, RedisReply, ShardInfo } from '../redis/types.js'
import { GuestFacingError } from '../runtime/guest-facing-error.js'
import { createHostHandler, type HostOp } from '../runtime/handler.js'
import type { GearsLogger } from '../runtime/logger.js'
import { topLevelRecordingLimitMessage, type TopLevelRecording } from '../runtime/replay.js'
import { replyValue, type WireValue } from '../runtime/wire.js'
import type { HostHandler, Limits } from '../sandbox/types.js'
import { DEFAULT_BATCH_SIZE, emitChars, FlowRequests, heldCost, parseEmit, withOps, type RegistrationIdSource } from './batch-run.js'
import { prefixMatches, samePlanOf, type CompiledRegistration } from './flow.js'
import type { ExecutionRegistry } from './executions.js'
import type { RunDescription } from './plan.js'
import { KeyLanes, type QueuedEvent, type RecordRead } from './key-lanes.js'
import { registrationJob, SavedRealmJobs, sourceHash, sourceLanguage } from './jobs.js'
import { readCommand, recordType } from './readers.js'
import type { ExecutionStarter } from './session.js'
import { StreamProcessor } from './streams.js'

/** Events one registration holds at most (queued or running); more are dropped and counted (`numDropped`). */
export const REGISTRATION_QUEUE_SIZE = 10_000

/** RG.DUMPREGISTRATIONS' RegistrationData, plus gearbox's own counters. */
export interface RegistrationData {
  readonly mode: string
  readonly numTriggered: number
  readonly numSuccess: number
  readonly numFailures: number
  readonly numAborted: number
  readonly lastRunDurationMS: number
  readonly totalRunDurationMS: number
  readonly avgRunDurationMS: number
  /** The last failure's text (a coded host error as `CODE: message`), or null. */
  readonly lastError: string | null
  /** The reader's arguments as RG.DUMPREGISTRATIONS lists them (a flat [name, value, ...] list). */
  readonly args: readonly WireValue[]
  /**
   * 'OK' when events reach it; 'INACTIVE' when it needs what gearbox does not have yet (see
   * `inactiveReason`); a StreamReader registration: 'PAUSED' (pause(), or a `PAUSE...` error) or
   * 'ABORTED' (onFailedPolicy abort).
   */
  readonly status: 'OK' | 'INACTIVE' | 'PAUSED' | 'ABORTED'
  /** Why it is inactive (e.g. hooks need the RESP front), or null. */
  readonly inactiveReason: string | null
  /** Events dropped because its queue was full ({@link REGISTRATION_QUEUE_SIZE}). */
  readonly numDropped: number
  /** Keyspace events lost while a subscriber connection was down (reconnections counted, not events: pub/sub cannot tell). */
  readonly numSubscriberGaps: number
  /** StreamReader: ms from the last acknowledged batch's last entry id to its acknowledgement (RedisGears' estimate). */
  readonly lastEstimatedLagMS?: number
  /** StreamReader: the average of lastEstimatedLagMS over the batches acknowledged. */
  readonly avgEstimatedLagMS?: number
  /** StreamReader: the streams this host reads for it. */
  readonly streams?: readonly string[]
  /** StreamReader: entries written to its dead-letter stream. */
  readonly numDeadLettered?: number
  /** StreamReader: failed reads (lost connection, moved slot), retried. */
  readonly numReadErrors?: number
}

/** One registration as `registrations.list()` gives it (RG.DUMPREGISTRATIONS' entry). */
export interface RegistrationInfo {
  readonly id: string
  readonly reader: string
  readonly desc: string | null
  readonly RegistrationData: RegistrationData
  /** The session (script execution) that registered it. */
  readonly session: string
}

/** What registrations run against (a Gearbox's). */
export interface RegistrationHost {
  readonly pool: ExecutionStarter
  readonly backend: RedisBackend
  readonly logger: GearsLogger
  readonly config: Readonly<Record<string, string>>
  readonly atomicRetries: number
  readonly batchSize?: number
  /** Events one registration holds at most. Default {@link REGISTRATION_QUEUE_SIZE}. */
  readonly queueSize?: number
  /** Where executions of events are listed (registered, capped per registration); none when absent. */
  readonly executions?: ExecutionRegistry
  /** How often StreamReader registrations scan for new streams. Default streams.ts STREAM_SCAN_INTERVAL_MS. */
  readonly streamScanIntervalMs?: number
  /** This host's id (stream consumer names; a restored registration keeps its id on every host). */
  readonly hostId?: string
  /** false: executions evaluate the script again under replay instead of restoring its saved realm. Default true. */
  readonly savedRealms?: boolean
}

/** A session: one script that registered, what its first run recorded, and the limits its executions get. */
export interface RegisteringSession {
  readonly id: string
  readonly source: string
  readonly recording: TopLevelRecording
  readonly limits: Limits
  readonly registrations: readonly { readonly id: string; readonly compiled: CompiledRegistration }[]
  /** Registrations of the script not to apply (unregistered since its first run; a restored session). */
  readonly skip?: ReadonlySet<string>
}

/** Starts and stops the keyspace-notification feed (gears/keyspace.ts); the registry calls it. */
export interface KeyEventFeed {
  /** Makes sure every master's notifications arrive; rejects with a coded error (e.g. KeyspaceNotificationsError). */
  start(): Promise<void>
  close(): Promise<void>
}

interface Outcome {
  readonly results: WireValue[]
  readonly errors: string[]
}

class Registration {
  numTriggered = 0
  numSuccess = 0
  numFailures = 0
  numAborted = 0
  numDropped = 0
  numSubscriberGaps = 0
  lastRunMs = 0
  totalRunMs = 0
  lastError: string | null = null
  /** KeysReader events queued or running, in per-key order, run in batches (key-lanes.ts). */
  lanes: KeyLanes | undefined
  active = true
  /** A StreamReader registration's reader (gears/streams.ts). */
  stream: StreamProcessor | undefined

  constructor(
    readonly id: string,
    readonly index: number,
    readonly compiled: CompiledRegistration,
    readonly session: RegisteringSession,
    /** Why it cannot run here; null once a RESP server gives it the command path it needs. */
    public inactiveReason: string | null,
  ) {}

  get trigger(): string | null {
    return this.inactiveReason === null ? (this.compiled.command?.trigger ?? null) : null
  }

  clearStats(): void {
    this.numTriggered = this.numSuccess = this.numFailures = this.numAborted = this.numDropped = this.numSubscriberGaps = 0
    this.lastRunMs = this.totalRunMs = 0
    this.lastError = null
    this.stream?.clearStats()
  }

  info(): RegistrationInfo {
    const c = this.compiled
    let args: WireValue[] = []
    if (c.keys !== undefined) {
      args = ['regex', c.keys.prefix, 'eventTypes', c.keys.eventTypes === null ? null : [...c.keys.eventTypes], 'keyTypes', c.keys.keyTypes === null ? null : [...c.keys.keyTypes], 'hookCommands', c.keys.commands === null ? null : [...c.keys.commands]]
    } else if (c.command !== undefined) {
      args =
        c.command.trigger !== null
          ? ['trigger', c.command.trigger, 'inorder', c.command.inorder ? 1 : 0]
          : ['hook', c.command.hook, 'keyprefix', c.command.keyprefix, 'inorder', c.command.inorder ? 1 : 0]
    } else if (this.stream !== undefined) {
      args = this.stream.args()
    }
    const stream = this.stream
    const runs = this.numSuccess + this.numFailures
    return {
      id: this.id,
      reader: c.reader,
      desc: c.desc,
      session: this.session.id,
      RegistrationData: {
        mode: c.mode,
        numTriggered: this.numTriggered,
        numSuccess: this.numSuccess,
        numFailures: this.numFailures,
        numAborted: this.numAborted,
        lastRunDurationMS: Math.round(this.lastRunMs),
        totalRunDurationMS: Math.round(this.totalRunMs),
        avgRunDurationMS: runs === 0 ? 0 : this.totalRunMs / runs,
        lastError: this.lastError,
        args,
        status: this.inactiveReason !== null ? 'INACTIVE' : (stream?.status ?? 'OK'),
        inactiveReason: this.inactiveReason,
        numDropped: this.numDropped,
        numSubscriberGaps: this.numSubscriberGaps,
        ...(stream === undefined
          ? {}
          : { ...stream.lag, streams: stream.streams, numDeadLettered: stream.numDeadLettered, numReadErrors: stream.numReadErrors }),
      },
    }
  }
}

/** How an event's execution of `c` shows in the executions (RG.GETEXECUTION). */
function executionPlan(c: CompiledRegistration): RunDescription {
  return { reader: c.reader, desc: c.desc, mode: c.mode === 'async_local' ? 'async_local' : 'async', steps: c.display, routes: [] }
}

/** Why a registration cannot be active in the library yet, or null. */
function inactiveReasonOf(c: CompiledRegistration): string | null {
  // Mode sync alone needs no command path: in the library its events run at once, in order per key.
  if (c.command?.hook !== undefined && c.command.hook !== null) return 'command hooks act on the commands of gearbox serve clients: start a server (gearbox serve, Gearbox.serve())'
  if (c.keys?.commands !== undefined && c.keys.commands !== null) {
    return "the 'commands' filter acts on the commands of gearbox serve clients: start a server (gearbox serve, Gearbox.serve())"
  }
  return null
}

/**
 * What a RESP server's command path (host/server/command-path.ts) gives the registry: the link
 * between keyspace events and the client commands that caused them.
 */
export interface CommandPathLinker {
  /**
   * An event arrived: 'fence' when it is the command path's own marker (nothing else sees it),
   * the linked client command that caused it, or undefined.
   */
  claim(shard: ShardInfo, key: string, event: string): LinkedCommand | 'fence' | undefined
}

/** A client command that waits for the executions its keyspace events trigger. */
export interface LinkedCommand {
  /** The command's name, lower-cased (what `commands=` lists). */
  readonly command: string
  /** The ops of an execution linked to the command (override_reply). */
  ops(): Readonly<Record<string, HostOp>>
  /** An execution the client waits for before it gets its reply. */
  track(execution: Promise<unknown>): void
}

/** A registration the command path acts on: a hook, or a KeysReader one with `commands=` or mode sync. */
export interface CommandPathEntry {
  readonly id: string
  readonly mode: string
  /** Hook: the command (lower-cased) and the key prefix. */
  readonly hook: string | null
  readonly keyprefix: string | null
  /** KeysReader: the prefix rule, the `commands=` filter (lower-cased) or null. */
  readonly keysPrefix: string | null
  readonly commands: readonly string[] | null
}
/** The registration ids a re-evaluated top level's register() calls get: its first run's, for the same flows. */
function sameFlowAs(session: RegisteringSession): RegistrationIdSource {
  return (index, compiled) => {
    const first = session.registrations[index]
    if (first === undefined || !samePlanOf(first.compiled, compiled)) {
      throw new RegistrationError('the script registered a different flow when evaluated again: its top level must build the same flows every time')
    }
    return first.id
  }
}

/** `limits` for one execution of `events` events: each event's CPU, wall and host-call budget. */
function scaledLimits(limits: Limits, events: number): Limits {
  if (events <= 1) return limits
  let byCount = scaledLimitsCache.get(limits)
  if (byCount === undefined) scaledLimitsCache.set(limits, (byCount = new Map()))
  let scaled = byCount.get(events)
  if (scaled === undefined) {
    scaled = { ...limits, cpuMs: limits.cpuMs * events, wallMs: limits.wallMs * events, maxHostCalls: limits.maxHostCalls * events }
    byCount.set(events, scaled)
  }
  return scaled
}
const scaledLimitsCache = new WeakMap<Limits, Map<number, Limits>>()

/** The text a failed execution leaves in lastError / errors: a coded host error keeps its code. */
function failureText(error: unknown): string {
  if (error instanceof GearboxError) return `${error.code}: ${error.message}`
  return error instanceof Error ? error.message : String(error)
}

/** RG.TRIGGER executions: call_next has a command context but no chain (RedisGears: a NULL reply). */
const TRIGGER_OPS: Readonly<Record<string, HostOp>> = {
  'command.callNext': () => {
    throw new GuestFacingError('Failed executing command')
  },
}

const textDecoder = new TextDecoder('utf-8', { fatal: true })

/** A bulk reply as text (UTF-8), or the bytes when they are not UTF-8. */
function bulk(reply: RedisReply): WireValue {
  if (reply instanceof Uint8Array) {
    try {
      return textDecoder.decode(reply)
    } catch {
      return reply
    }
  }
  if (typeof reply === 'string' || typeof reply === 'number' || reply === null) return reply
  return null
}

/** A value read with readers.ts readCommand, in the KeysReader record's shape. */
function recordValue(type: string, reply: RedisReply): WireValue {
  const flat = Array.isArray(reply) ? reply : []
  switch (type) {
    case 'string':
      return bulk(reply)
    case 'list':
    case 'set':
      return flat.map(bulk)
    case 'hash': {
      const out: Record<string, WireValue> = {}
      for (let i = 0; i + 1 < flat.length; i += 2) out[String(bulk(flat[i] ?? null))] = bulk(flat[i + 1] ?? null)
      return out
    }
    case 'zset': {
      const out: WireValue[] = []
      for (let i = 0; i + 1 < flat.length; i += 2) out.push([bulk(flat[i] ?? null), Number(bulk(flat[i + 1] ?? null))])
      return out
    }
    default:
      return null
  }
}

export class RegistrationRegistry {
  readonly #host: RegistrationHost
  readonly #registrations = new Map<string, Registration>()
  readonly #feed: KeyEventFeed | undefined
  #feedStarted: Promise<void> | undefined
  readonly #savedJobs = new WeakMap<RegisteringSession, SavedRealmJobs>()
  #counter = 0
  #sessions = 0
  #closed = false
  /** The RESP server's command path, while one is attached. */
  #linker: CommandPathLinker | undefined
  /** Bumped when registrations come or go (the command path rebuilds its tables). */
  #version = 0

  constructor(host: RegistrationHost, feed?: KeyEventFeed) {
    this.#host = host
    this.#feed = feed
  }

  /** A new id for a register() call, `<shard id>-<n>` as RedisGears' (never reused, even when the script then fails). */
  newId(shardId: string): string {
    return `${shardId}-${++this.#counter}`
  }

  /** Later ids count on from `floor` (a store gives each host process its own range, so hosts never hand out one id twice). */
  idsFrom(floor: number): void {
    if (floor > this.#counter) this.#counter = floor
  }

  /** A new session id. */
  newSessionId(): string {
    return `session-${++this.#sessions}`
  }

  /**
   * The registration of trigger `name`, if any (also what register() checks, `trigger already
   * registered`); registrations in `ignore` (an upgrade replaces them) do not count.
   */
  hasTrigger(name: string, ignore?: ReadonlySet<string>): boolean {
    for (const r of this.#registrations.values()) if (r.trigger === name && ignore?.has(r.id) !== true) return true
    return false
  }

  /** The session that registered registration `id`, or undefined. */
  sessionOf(id: string): string | undefined {
    return this.#registrations.get(id)?.session.id
  }

  /**
   * Replaces registrations `remove` with `session`'s in one step (an upgrade; `session`
   * undefined: only removes): new events go to the new ones; events already queued or running on
   * the removed ones finish there. A recording that overflowed, or a trigger name taken, applies
   * nothing. The one place registrations are applied (apply() is replace([], session)): what a reader
   * needs started when one of its registrations is added (the keyspace feed, ...) starts here.
   */
  async replace(remove: readonly string[], session: RegisteringSession | undefined): Promise<void> {
    const removed = new Set(remove)
    const added: Registration[] = []
    if (session !== undefined) {
      // Every execution replays the top level: a recording that overflowed cannot serve them.
      const overflow = session.recording.overflow
      if (overflow !== undefined) throw new TopLevelRecordingLimitError(topLevelRecordingLimitMessage(overflow))
      for (const [index, { id, compiled }] of session.registrations.entries()) {
        if (session.skip?.has(id) === true) continue
        const trigger = compiled.command?.trigger ?? null
        if (trigger !== null && this.hasTrigger(trigger, removed)) throw new RegistrationError('trigger already registered')
        const hook = compiled.command?.hook ?? null
        if (hook !== null) this.#checkHookOverride(hook, added, removed)
        const r = new Registration(id, index, compiled, session, this.#linker === undefined ? inactiveReasonOf(compiled) : null)
        if (compiled.keys !== undefined) r.lanes = this.#lanesOf(r)
        added.push(r)
      }
      if (added.some((r) => r.inactiveReason === null && r.compiled.keys !== undefined)) await this.#startFeed()
    }
    const streams = added.filter((r) => r.inactiveReason === null && r.compiled.stream !== undefined)
    if (streams.length > 0) {
      if (this.#host.backend.blockingConnection === undefined) {
        throw new RegistrationError('StreamReader registrations need a Redis backend with blockingConnection(); this one has none')
      }
      // Keyspace events find new streams at once; without them (CONFIG SET refused) the periodic scan does.
      await this.#startFeed().catch((error: unknown) => {
        this.#host.logger.log('warning', `StreamReader registrations find new streams by periodic SCAN only: ${failureText(error)}`)
      })
      for (const r of streams) {
        r.stream = new StreamProcessor(r.id, r.compiled.stream!, r.compiled.mode, {
          backend: this.#host.backend,
          logger: this.#host.logger,
          execute: (records, shard, signal) => this.#execute(r, 'event', records, shard, signal),
          ...(this.#host.streamScanIntervalMs === undefined ? {} : { scanIntervalMs: this.#host.streamScanIntervalMs }),
          ...(this.#host.hostId === undefined ? {} : { consumerHost: this.#host.hostId }),
        })
      }
      try {
        for (const r of streams) await r.stream!.start()
      } catch (error) {
        // All or nothing: none of the session's registrations is applied.
        await Promise.allSettled(streams.map((r) => r.stream!.stop(false)))
        throw error
      }
    }
    // Removed without `active = false`: their queued events still run (in-flight executions finish);
    // a removed stream reader stops reading (its running batch finishes, the rest stays pending for the new version).
    const stopping: Promise<void>[] = []
    for (const id of removed) {
      const r = this.#registrations.get(id)
      if (r === undefined) continue
      this.#registrations.delete(id)
      this.#host.executions?.forgetRegistration(id)
      if (r.stream !== undefined) stopping.push(r.stream.stop(false))
    }
    for (const r of added) this.#registrations.set(r.id, r)
    this.#version++
    await Promise.all(stopping)
    await this.#onRegistered(added)
  }

  /**
   * Applies a session's registrations, all or nothing: a trigger name taken meanwhile, or a
   * keyspace feed that cannot start, applies none. Then calls their onRegistered functions.
   */
  async apply(session: RegisteringSession): Promise<void> {
    // One path for new, upgraded and restored sessions (gears/sessions.ts): see replace().
    await this.replace([], session)
  }

  async #onRegistered(added: readonly Registration[]): Promise<void> {
    for (const r of added) {
      if (r.compiled.onRegistered === null) continue
      const outcome = await this.#execute(r, 'registered', [], undefined)
      const first = outcome.errors[0]
      if (first !== undefined) this.#host.logger.log('warning', `onRegistered of registration ${r.id} failed: ${first}`)
    }
  }

  /** Spec §2.5: a command hooked by a non-sync registration cannot be hooked again (newest hook first). */
  #checkHookOverride(hook: string, sameSession: readonly Registration[], ignore: ReadonlySet<string>): void {
    const lower = hook.toLowerCase()
    let newest: Registration | undefined
    for (const r of this.#registrations.values()) if (r.compiled.command?.hook?.toLowerCase() === lower && !ignore.has(r.id)) newest = r
    if (newest !== undefined && newest.compiled.mode !== 'sync') throw new RegistrationError('Can not override a none sync registration')
    for (const r of sameSession) {
      if (r.compiled.command?.hook === hook && r.compiled.mode !== 'sync') {
        throw new RegistrationError('Can not override a none sync registration which already created on this session')
      }
    }
  }

  /**
   * A RESP server attaches its command path: hooks, `commands=` filters and sync registrations
   * become active (and the keyspace feed starts if they need it). Detach with `undefined`.
   */
  async attachCommandPath(linker: CommandPathLinker | undefined): Promise<void> {
    this.#linker = linker
    for (const r of this.#registrations.values()) r.inactiveReason = linker === undefined ? inactiveReasonOf(r.compiled) : null
    this.#version++
    if (linker !== undefined && [...this.#registrations.values()].some((r) => r.compiled.keys !== undefined)) await this.#startFeed()
  }

  /** Changes whenever registrations come or go. */
  get version(): number {
    return this.#version
  }

  /** The active registrations the command path acts on, oldest first. */
  commandPathEntries(): CommandPathEntry[] {
    const out: CommandPathEntry[] = []
    for (const r of this.#registrations.values()) {
      if (!r.active || r.inactiveReason !== null) continue
      const c = r.compiled
      const hook = c.command?.hook ?? null
      if (hook !== null) {
        out.push({ id: r.id, mode: c.mode, hook: hook.toLowerCase(), keyprefix: c.command?.keyprefix ?? null, keysPrefix: null, commands: null })
      } else if (c.keys !== undefined && (c.keys.commands !== null || c.mode === 'sync')) {
        out.push({ id: r.id, mode: c.mode, hook: null, keyprefix: null, keysPrefix: c.keys.prefix, commands: c.keys.commands })
      }
    }
    return out
  }

  /** The mode of trigger `name`'s registration (RG.TRIGGER of a sync one holds its shard), or undefined. */
  triggerMode(name: string): string | undefined {
    for (const r of this.#registrations.values()) if (r.trigger === name) return r.compiled.mode
    return undefined
  }

  /**
   * Runs registration `id` (a command hook) over `record` on `shard` with the command path's
   * `ops` (call_next). Resolves with its results and errors; rejects when it is gone.
   */
  async runCommandExecution(id: string, record: WireValue, shard: ShardInfo | undefined, ops: Readonly<Record<string, HostOp>>): Promise<Outcome> {
    const r = this.#registrations.get(id)
    if (r === undefined || !r.active) throw new RegistrationNotFoundError()
    return this.#execute(r, 'event', [record], shard, undefined, ops)
  }

  #startFeed(): Promise<void> {
    const feed = this.#feed
    if (feed === undefined) return Promise.reject(new RegistrationError('KeysReader registrations need a keyspace feed; this registry has none'))
    this.#feedStarted ??= feed.start().catch((error: unknown) => {
      this.#feedStarted = undefined
      throw error
    })
    return this.#feedStarted
  }

  list(): RegistrationInfo[] {
    return [...this.#registrations.values()].map((r) => r.info())
  }

  /**
   * Stops a registration's new events (running ones finish; with `abortPending` a StreamReader
   * registration's running executions are aborted, their entries left pending). The returned
   * promise settles once its stream reader stopped. @throws RegistrationNotFoundError
   */
  unregister(id: string, options: { readonly abortPending?: boolean } = {}): Promise<void> {
    const r = this.#registrations.get(id)
    if (r === undefined) throw new RegistrationNotFoundError()
    r.active = false
    this.#registrations.delete(id)
    this.#host.executions?.forgetRegistration(id)
    this.#version++
    return r.stream?.stop(options.abortPending === true) ?? Promise.resolve()
  }

  /**
   * RG.PAUSEREGISTRATIONS: a StreamReader registration stops reading (a running batch finishes).
   * @throws RegistrationNotFoundError `Execution <id> does not exists on shard <shard>`;
   * RegistrationPauseError `Reader <reader> does not support pause`
   */
  async pause(id: string): Promise<void> {
    ;(await this.#pausable(id, 'pause')).pause()
  }

  /** RG.UNPAUSEREGISTRATIONS: reads again (also after onFailedPolicy abort). Errors as pause(). */
  async unpause(id: string): Promise<void> {
    ;(await this.#pausable(id, 'unpause')).unpause()
  }

  async #pausable(id: string, verb: 'pause' | 'unpause'): Promise<StreamProcessor> {
    const r = this.#registrations.get(id)
    if (r === undefined) throw new RegistrationNotFoundError(`Execution ${id} does not exists on shard ${(await this.#host.backend.currentShard()).id}`)
    if (r.stream === undefined) throw new RegistrationPauseError(`Reader ${r.compiled.reader} does not support ${verb}`)
    return r.stream
  }

  clearStats(): void {
    for (const r of this.#registrations.values()) r.clearStats()
  }

  /**
   * RG.TRIGGER / RG.TRIGGERONKEY: runs trigger `name`'s steps over `[name, ...args]` (with `key`,
   * `[name, key, ...args]` on the key's shard). Resolves with the results; rejects with the first
   * error (RegistrationError) when the execution had any.
   * @throws TriggerNotFoundError `ERR subcommand not found`
   */
  async trigger(name: string, args: readonly string[], key?: string): Promise<WireValue[]> {
    let found: Registration | undefined
    for (const r of this.#registrations.values()) if (r.trigger === name) found = r
    if (found === undefined) throw new TriggerNotFoundError()
    const record: WireValue = key === undefined ? [name, ...args] : [name, key, ...args]
    const shard = key === undefined ? undefined : await this.#shardOfKey(key)
    const outcome = await this.#execute(found, 'event', [record], shard, undefined, TRIGGER_OPS)
    const first = outcome.errors[0]
    if (first !== undefined) throw new RegistrationError(first)
    return outcome.results
  }

  async #shardOfKey(key: string): Promise<ShardInfo> {
    const backend = this.#host.backend
    if (backend.mode === 'standalone') return backend.currentShard()
    return shardOwningSlot(await backend.shards(), keySlot(key)) ?? (await backend.currentShard())
  }

  /** The feed lost events of `shard` (a subscriber reconnected): counted on every keyspace registration. */
  subscriberGap(shardId: string): void {
    for (const r of this.#registrations.values()) {
      if (r.compiled.keys === undefined || r.inactiveReason !== null) continue
      r.numSubscriberGaps++
    }
    this.#host.logger.log('warning', `keyspace notifications of shard ${shardId} were lost while its subscriber was disconnected (resubscribed)`)
  }

  /** A keyspace notification: `event` happened to `key` on `shard` (`local`: the shard this host's async_local registrations serve). */
  keyEvent(shard: ShardInfo, local: boolean, key: string, event: string): void {
    if (this.#closed) return
    // A client command of the RESP server that caused this event waits for what it triggers.
    const link = this.#linker?.claim(shard, key, event)
    if (link === 'fence') return
    const lowered = event.toLowerCase()
    const queueSize = this.#host.queueSize ?? REGISTRATION_QUEUE_SIZE
    for (const r of this.#registrations.values()) {
      r.stream?.keyEvent(key, lowered)
      const k = r.compiled.keys
      const lanes = r.lanes
      if (k === undefined || lanes === undefined || !r.active || r.inactiveReason !== null) continue
      // commands=: only events of those commands (of server clients) fire, linked to the command.
      const linked = link !== undefined && (k.commands !== null ? k.commands.includes(link.command) : r.compiled.mode === 'sync')
      if (k.commands !== null && !linked) continue
      if (r.compiled.mode === 'async_local' && !local && !linked) continue
      if (!prefixMatches(k.prefix, key)) continue
      if (k.eventTypes !== null && !k.eventTypes.includes(lowered)) continue
      if (lanes.pending >= queueSize) {
        r.numDropped++
        continue
      }
      // Without readValue and keyTypes the record is the event itself: nothing to read. Else it is
      // read now (reads leave in arrival order on the shard's internal connection), so it is as
      // close to the event as pub/sub allows; a write right after may still show.
      const record: QueuedEvent['record'] =
        !k.readValue && k.keyTypes === null
          ? { key, event }
          : this.#keyRecord(shard, key, event, k.readValue, k.keyTypes).then(
              (value): RecordRead => ({ ok: true, value }),
              (error: unknown): RecordRead => ({ ok: false, error }),
            )
      if (linked) {
        // The client waits for this event's execution (its reply may be overridden): it runs alone.
        let done!: () => void
        link.track(new Promise<void>((resolve) => (done = resolve)))
        lanes.push(key, { shard, record, linked: { ops: k.commands !== null ? link.ops() : undefined, done } })
      } else lanes.push(key, { shard, record })
    }
  }

  #lanesOf(r: Registration): KeyLanes {
    return new KeyLanes({
      active: () => r.active && !this.#closed,
      readFailed: (error) => {
        r.numTriggered++
        r.numFailures++
        r.lastError = failureText(error)
      },
      run: async (records, shard, ops) => {
        await this.#execute(r, 'event', records, shard, undefined, ops)
      },
    })
  }

  /** The record RedisGears gives a KeysReader registration: {key, event} or {key, event, type, value}; null when keyTypes filters it out. */
  async #keyRecord(shard: ShardInfo, key: string, event: string, readValue: boolean, keyTypes: readonly string[] | null): Promise<WireValue> {
    const backend = this.#host.backend
    if (!readValue && keyTypes === null) return { key, event }
    const typeReply = await backend.call(['TYPE', key], { internal: true, shard: shard.id })
    const type = recordType(typeof typeReply === 'string' ? typeReply : String(bulk(typeReply)))
    if (keyTypes !== null && !keyTypes.includes(type)) return null
    if (!readValue) return { key, event }
    const command = type === 'stream' ? undefined : readCommand(type, new TextEncoder().encode(key))
    const value = command === undefined ? null : recordValue(type, await backend.call(command, { internal: true, shard: shard.id }))
    return { key, event, type, value }
  }

  /**
   * The jobs of `session`'s executions, which start from the interpreter its top level left: a
   * worker builds that state once (the top level's host calls answered from the recording, so
   * nothing repeats) and restores it for every execution (jobs.ts SavedRealmJobs).
   */
  #jobsOf(session: RegisteringSession): SavedRealmJobs {
    let jobs = this.#savedJobs.get(session)
    if (jobs !== undefined) return jobs
    const host = this.#host
    // Replayed calls touch neither Redis nor timers, so the setup handler holds nothing to dispose.
    const setupHost = (): HostHandler =>
      withOps(
        createHostHandler({
          backend: host.backend,
          logger: host.logger,
          config: host.config,
          atomicRetries: host.atomicRetries,
          maxReplyBytes: session.limits.maxReplyBytes,
          topLevel: { mode: 'replay', recording: session.recording },
        }),
        new FlowRequests(sameFlowAs(session)).ops(),
      )
    jobs = new SavedRealmJobs(session.source, session.limits, `${session.id}:${sourceHash(session.source)}`, setupHost)
    this.#savedJobs.set(session, jobs)
    return jobs
  }

  /** One execution of registration `r`: its session's saved realm restored (or built), then its entry. */
  async #execute(
    r: Registration,
    kind: 'event' | 'registered',
    records: WireValue[],
    shard: ShardInfo | undefined,
    signal?: AbortSignal,
    commandOps?: Readonly<Record<string, HostOp>>,
  ): Promise<Outcome> {
    const host = this.#host
    const session = r.session
    // A batch of events (key-lanes.ts) gets each event's CPU, wall and host-call budget.
    const events = kind === 'event' ? records.length : 1
    const limits = scaledLimits(session.limits, events)
    if (kind === 'event') r.numTriggered += events
    const started = performance.now()
    const results: WireValue[] = []
    const errors: string[] = []
    let resultBytes = 0
    let failedWhole = false
    // A KeysReader event's results are not kept (only its errors count).
    const dropRecords = kind === 'event' && r.compiled.keys !== undefined
    const event = replyValue({
      steps: r.compiled.steps as unknown as WireValue,
      displayCount: r.compiled.display.length,
      profile: false,
      batchSize: host.batchSize ?? DEFAULT_BATCH_SIZE,
      emitChars: emitChars(limits),
      records,
      onRegistered: r.compiled.onRegistered,
      keepFinal: true,
      dropRecords,
    })
    // An event's execution is listed in the executions (registered, capped per registration).
    const listed =
      kind === 'event' && host.executions !== undefined
        ? host.executions.createRegistered(shard?.id ?? (await host.backend.currentShard()).id, executionPlan(r.compiled), r.id)
        : undefined
    const onEmit = (payload: string): void => {
      const emit = parseEmit(payload)
      for (const e of emit.errors) errors.push(e)
      if (dropRecords) return
      resultBytes += heldCost(payload, emit)
      if (resultBytes > limits.maxReplyBytes) {
        errors.push(`the registration's results exceeded limits.maxReplyBytes (${limits.maxReplyBytes} bytes)`)
        return
      }
      for (const rec of emit.records) results.push(rec)
    }
    const requests = new FlowRequests(sameFlowAs(session))
    const inner = createHostHandler({
      backend: host.backend,
      logger: host.logger,
      config: host.config,
      atomicRetries: host.atomicRetries,
      maxReplyBytes: limits.maxReplyBytes,
      ...(shard === undefined ? {} : { shard }),
      ...(host.savedRealms === false || sourceLanguage(session.source) !== 'js' ? { topLevel: { mode: 'replay' as const, recording: session.recording } } : {}),
      ...(commandOps === undefined ? {} : { ops: commandOps }),
    })
    const handler = withOps(inner, {
      ...requests.ops(),
      'gears.event': () => {
        requests.started = true
        return event
      },
      'gears.emit': (payload) => {
        onEmit(payload)
        return 'vnull'
      },
    })
    // The saved-realm job hands the event over as the entry's argument and gets the last
    // gears.emit payload back as the result: no host call for either. Its top level is behind it.
    // Saved realms are a QuickJS engine operation: Python sessions re-run their top level under replay.
    const saved = host.savedRealms !== false && sourceLanguage(session.source) === 'js'
    if (saved) requests.started = true
    const job = saved ? this.#jobsOf(session).job(r.index, kind, event, limits) : { ...registrationJob(session.source, limits, r.index, kind), limits }
    const onAbort = (): void => handle.abort('the registration was unregistered with abortPending')
    const handle = host.pool.start(job, handler)
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      listed?.track(handle)
      const result = await handle.result
      if (result.startsWith('{"r":')) onEmit(result)
    } catch (error) {
      errors.push(failureText(error))
      if (error instanceof GearboxError && error instanceof AbortedError) r.numAborted++
      // The execution failed as a whole: every event of its batch failed.
      failedWhole = true
    } finally {
      signal?.removeEventListener('abort', onAbort)
      await handler.dispose()
    }
    const ms = performance.now() - started
    if (listed !== undefined) {
      listed.results.push(...results)
      listed.errors.push(...errors)
      listed.finish()
    }
    if (kind === 'event') {
      r.lastRunMs = ms / events
      r.totalRunMs += ms
      // Each record fails at most once (a failing step skips the later ones): failures are events.
      const failures = failedWhole ? events : Math.min(events, errors.length)
      r.numSuccess += events - failures
      r.numFailures += failures
      const first = errors[0]
      if (first !== undefined) r.lastError = first
    }
    return { results, errors }
  }

  /** Stops every registration and the keyspace feed. */
  async close(): Promise<void> {
    this.#closed = true
    for (const r of this.#registrations.values()) r.active = false
    const streams = [...this.#registrations.values()].flatMap((r) => (r.stream === undefined ? [] : [r.stream.stop()]))
    const lanes = [...this.#registrations.values()].flatMap((r) => (r.lanes === undefined ? [] : [r.lanes]))
    this.#registrations.clear()
    await Promise.allSettled(streams)
    await this.#feed?.close()
    await Promise.allSettled(lanes.map((l) => l.idle()))
  }
}
