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
 * keyspace notifications (gears/keyspace.ts) through {@link RegistrationRegistry.keyEvent}. Events
 * of one key run one after another, in arrival order; each registration queues at most
 * {@link REGISTRATION_QUEUE_SIZE} events, and drops (and counts, `numDropped`) what comes past that.
 */
import { keySlot } from '../cluster/slots.js'
import { shardOwningSlot } from '../cluster/topology.js'
import { AbortedError, GearboxError, RegistrationError, RegistrationNotFoundError, TopLevelRecordingLimitError, TriggerNotFoundError } from '../errors.js'
import type { RedisBackend, RedisReply, ShardInfo } from '../redis/types.js'
import { createHostHandler } from '../runtime/handler.js'
import type { GearsLogger } from '../runtime/logger.js'
import { topLevelRecordingLimitMessage, type TopLevelRecording } from '../runtime/replay.js'
import { replyValue, type WireValue } from '../runtime/wire.js'
import type { HostHandler, Limits } from '../sandbox/types.js'
import { DEFAULT_BATCH_SIZE, emitChars, FlowRequests, heldCost, parseEmit, withOps, type RegistrationIdSource } from './batch-run.js'
import { prefixMatches, samePlanOf, type CompiledRegistration } from './flow.js'
import { KeyLanes, type QueuedEvent, type RecordRead } from './key-lanes.js'
import { registrationJob, SavedRealmJobs, sourceHash } from './jobs.js'
import { readCommand, recordType } from './readers.js'
import type { ExecutionStarter } from './session.js'

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
  /** 'OK' when events reach it; 'INACTIVE' when it needs what gearbox does not have yet (see `inactiveReason`). */
  readonly status: 'OK' | 'INACTIVE'
  /** Why it is inactive (e.g. hooks need the RESP front), or null. */
  readonly inactiveReason: string | null
  /** Events dropped because its queue was full ({@link REGISTRATION_QUEUE_SIZE}). */
  readonly numDropped: number
  /** Keyspace events lost while a subscriber connection was down (reconnections counted, not events: pub/sub cannot tell). */
  readonly numSubscriberGaps: number
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

  constructor(
    readonly id: string,
    readonly index: number,
    readonly compiled: CompiledRegistration,
    readonly session: RegisteringSession,
    readonly inactiveReason: string | null,
  ) {}

  get trigger(): string | null {
    return this.inactiveReason === null ? (this.compiled.command?.trigger ?? null) : null
  }

  clearStats(): void {
    this.numTriggered = this.numSuccess = this.numFailures = this.numAborted = this.numDropped = this.numSubscriberGaps = 0
    this.lastRunMs = this.totalRunMs = 0
    this.lastError = null
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
    }
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
        status: this.inactiveReason === null ? 'OK' : 'INACTIVE',
        inactiveReason: this.inactiveReason,
        numDropped: this.numDropped,
        numSubscriberGaps: this.numSubscriberGaps,
      },
    }
  }
}

/** Why a registration cannot be active in the library yet, or null. */
function inactiveReasonOf(c: CompiledRegistration): string | null {
  if (c.mode === 'sync') return "mode 'sync' runs inside the triggering command: it needs the RESP front (gearbox serve), not built yet"
  if (c.command?.hook !== undefined && c.command.hook !== null) return 'command hooks need the RESP front (gearbox serve), not built yet'
  if (c.keys?.commands !== undefined && c.keys.commands !== null) return "the 'commands' filter needs the RESP front (gearbox serve), not built yet"
  return null
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

  constructor(host: RegistrationHost, feed?: KeyEventFeed) {
    this.#host = host
    this.#feed = feed
  }

  /** A new id for a register() call, `<shard id>-<n>` as RedisGears' (never reused, even when the script then fails). */
  newId(shardId: string): string {
    return `${shardId}-${++this.#counter}`
  }

  /** A new session id. */
  newSessionId(): string {
    return `session-${++this.#sessions}`
  }

  /** The registration of trigger `name`, if any (also what register() checks, `trigger already registered`). */
  hasTrigger(name: string): boolean {
    for (const r of this.#registrations.values()) if (r.trigger === name) return true
    return false
  }

  /**
   * Applies a session's registrations, all or nothing: a trigger name taken meanwhile, or a
   * keyspace feed that cannot start, applies none. Then calls their onRegistered functions.
   */
  async apply(session: RegisteringSession): Promise<void> {
    // Every execution replays the top level: a recording that overflowed cannot serve them.
    const overflow = session.recording.overflow
    if (overflow !== undefined) throw new TopLevelRecordingLimitError(topLevelRecordingLimitMessage(overflow))
    const added: Registration[] = []
    for (const [index, { id, compiled }] of session.registrations.entries()) {
      const trigger = compiled.command?.trigger ?? null
      if (trigger !== null && this.hasTrigger(trigger)) throw new RegistrationError('trigger already registered')
      const r = new Registration(id, index, compiled, session, inactiveReasonOf(compiled))
      if (compiled.keys !== undefined) r.lanes = this.#lanesOf(r)
      added.push(r)
    }
    if (added.some((r) => r.inactiveReason === null && r.compiled.keys !== undefined)) await this.#startFeed()
    for (const r of added) this.#registrations.set(r.id, r)
    for (const r of added) {
      if (r.compiled.onRegistered === null) continue
      const outcome = await this.#execute(r, 'registered', [], undefined)
      const first = outcome.errors[0]
      if (first !== undefined) this.#host.logger.log('warning', `onRegistered of registration ${r.id} failed: ${first}`)
    }
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

  /** Stops a registration's new events (running ones finish). @throws RegistrationNotFoundError */
  unregister(id: string): void {
    const r = this.#registrations.get(id)
    if (r === undefined) throw new RegistrationNotFoundError()
    r.active = false
    this.#registrations.delete(id)
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
    const outcome = await this.#execute(found, 'event', [record], shard)
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
    const lowered = event.toLowerCase()
    const queueSize = this.#host.queueSize ?? REGISTRATION_QUEUE_SIZE
    for (const r of this.#registrations.values()) {
      const k = r.compiled.keys
      const lanes = r.lanes
      if (k === undefined || lanes === undefined || !r.active || r.inactiveReason !== null) continue
      if (r.compiled.mode === 'async_local' && !local) continue
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
      lanes.push(key, { shard, record })
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
      run: async (records, shard) => {
        await this.#execute(r, 'event', records, shard)
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
  async #execute(r: Registration, kind: 'event' | 'registered', records: WireValue[], shard: ShardInfo | undefined): Promise<Outcome> {
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
      ...(host.savedRealms === false ? { topLevel: { mode: 'replay' as const, recording: session.recording } } : {}),
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
    try {
      // The saved-realm job hands the event over as the entry's argument and gets the last
      // gears.emit payload back as the result: no host call for either. Its top level is behind it.
      if (host.savedRealms !== false) requests.started = true
      const job =
        host.savedRealms === false
          ? { ...registrationJob(session.source, limits, r.index, kind), limits }
          : this.#jobsOf(session).job(r.index, kind, event, limits)
      const result = await host.pool.start(job, handler).result
      if (result.startsWith('{"r":')) onEmit(result)
    } catch (error) {
      errors.push(failureText(error))
      if (error instanceof GearboxError && error instanceof AbortedError) r.numAborted++
      // The execution failed as a whole: every event of its batch failed.
      failedWhole = true
    } finally {
      await handler.dispose()
    }
    const ms = performance.now() - started
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
    const lanes = [...this.#registrations.values()].flatMap((r) => (r.lanes === undefined ? [] : [r.lanes]))
    this.#registrations.clear()
    await this.#feed?.close()
    await Promise.allSettled(lanes.map((l) => l.idle()))
  }
}
