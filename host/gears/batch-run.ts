/**
 * One run() from start to end, on the host side.
 *
 * The script's first execution (the initiator) runs the top level. Its builder calls are checked
 * here (`gears.builder`, `gears.op`), and run() hands the flow over (`gears.run`): gears/flow.ts
 * checks and compiles it into a plan of primitive steps cut into stages. After the top level the
 * guest asks to start (`gears.start`) and its kernel runs the plan's steps. Then:
 *
 * - **In place** (standalone Redis, `async_local`, or a one-master cluster): the plan runs right
 *   there, in the initiator's interpreter, over the current shard: `gears.read` hands it reader
 *   batches, `gears.emit` takes back results and error texts. No re-evaluation.
 * - **Distributed** (a cluster, mode `async`): the plan is cut into stages at the steps that move
 *   records between shards (collect, repartition, groupby). Stage k runs as one sandbox execution
 *   per shard, in parallel on the worker pool; each evaluates the script again with its top-level
 *   host calls replayed from the initiator's recording (runtime/replay.ts: no side effect twice),
 *   then runs its stage. Stage 0 reads that shard; a stage's output is routed on the host (by key
 *   slot, or to the initiator shard) into the next stage's input; the last stage's output is the
 *   results.
 *
 * Host memory: the results, and the records one stage hands to the next, are each capped by
 * `limits.maxReplyBytes`: the results counted as what they cost the host (the emitted text plus
 * {@link HELD_VALUE_OVERHEAD_BYTES} per record and error text), the records between stages by their
 * emitted text; the initiator's top-level recording
 * by runtime/replay.ts's caps (a distributed run cannot start when it overflowed).
 */
import { shardOwningSlot } from '../cluster/topology.js'
import { keySlot } from '../cluster/slots.js'
import { AbortedError, GearboxError, RedisReplyError, SandboxError, TopLevelRecordingLimitError } from '../errors.js'
import type { RedisBackend, ShardInfo } from '../redis/types.js'
import { createHostHandler, type RuntimeHostHandler } from '../runtime/handler.js'
import { GuestFacingError } from '../runtime/guest-facing-error.js'
import type { GearsLogger } from '../runtime/logger.js'
import { TopLevelRecording, topLevelRecordingLimitMessage, type TopLevelMode } from '../runtime/replay.js'
import { decodeWire, replyCodedError, replyGearsError, replyValue, type WireValue } from '../runtime/wire.js'
import type { ExecutionHandle, Limits } from '../sandbox/types.js'
import type { ExecutionStarter } from './session.js'
import type { Execution, ExecutionRegistry } from './executions.js'
import { checkBuilder, checkOp, compileFlow, compileRegistration, parseArg, parseFlowRequest, type CompiledFlow, type CompiledRegistration, type KernelStep } from './flow.js'
import { parseGuestOutcome, stageJob } from './jobs.js'
import { samePlan, type RunDescription, type StageRoute } from './plan.js'
import { openReader, parseReaderOpen, prefetching, type BatchSource, type ReaderContext } from './readers.js'

/** Default records per reader batch (SCAN COUNT, XRANGE COUNT, generator batches, emits). */
export const DEFAULT_BATCH_SIZE = 1000

/**
 * What one held record (or error text) costs the host beyond its emitted text, counted against
 * limits.maxReplyBytes. Measured on Node 22 (V8 heap after GC, 2M records parsed from 1000-record
 * emits and kept in the results array): a 1-char string record costs ~12 bytes for its ~4 emitted
 * characters, an ~8-char string ~36 bytes for ~10.5 characters, a small object ~44 bytes for ~10
 * characters; the reply array built from the results adds ~8 more. 32 bytes per record covers it.
 */
export const HELD_VALUE_OVERHEAD_BYTES = 32

/** What runs need from their Gearbox. */
export interface GearsHost {
  readonly pool: ExecutionStarter
  readonly backend: RedisBackend
  readonly registry: ExecutionRegistry
  readonly logger: GearsLogger
  readonly config: Readonly<Record<string, string>>
  readonly atomicRetries: number
  /** Records per reader batch. Default {@link DEFAULT_BATCH_SIZE}. */
  readonly batchSize?: number
  /** Let KeysReader/KeysOnlyReader read pages with a script inside Redis (readers.ts PAGE_SCRIPT). Default true. */
  readonly serverSideReads?: boolean
}

export interface GearsRunOptions {
  /** The script (re-evaluated by distributed stages). */
  readonly source: string
  readonly limits: Limits
  /** Measure per-step durations. Default: the `ProfileExecutions` config value is `1`. */
  readonly profile?: boolean
  /** The caller's own top-level recording or replay; default: a recording of its own in cluster mode. */
  readonly topLevel?: TopLevelMode
  /** Gives the script's register() calls their ids; default: register() is refused. */
  readonly registrationId?: RegistrationIdSource
}

/** How a script execution ended, seen from the gears layer. */
export type RunSettlement = { readonly kind: 'no-run' } | { readonly kind: 'run'; readonly execution: Execution }

/** A case-insensitive read of a RedisGears core setting from the `config` option. */
export function coreSetting(config: Readonly<Record<string, string>>, name: string): string | undefined {
  const wanted = name.toLowerCase()
  for (const key of Object.keys(config)) if (key.toLowerCase() === wanted) return config[key]
  return undefined
}

/** The text an execution-level failure leaves in the errors list: the message, which names the option to change. */
function failureText(error: unknown): string {
  if (error instanceof Error) return error.message
  return String(error)
}

/** How long the guest lets one gears.emit payload get (characters; UTF-8 takes up to 3 bytes each). */
export function emitChars(limits: Limits): number {
  return Math.max(1024, Math.floor(limits.maxReplyBytes / 4))
}

export function parsePayload(payload: string): WireValue {
  try {
    return payload.includes('\\u0000') ? decodeWire(payload) : (JSON.parse(payload) as WireValue)
  } catch {
    throw new GuestFacingError('gears: malformed payload')
  }
}

export function field(value: WireValue, name: string): WireValue | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) return undefined
  return (value as { readonly [key: string]: WireValue })[name]
}

/** Encodes a thrown error as a guest reply; errors that are not the guest's business fail the execution. */
function errorReply(error: unknown): string {
  if (error instanceof GuestFacingError || error instanceof RedisReplyError) return replyGearsError(error.message)
  if (error instanceof GearboxError) return replyCodedError(error.code, error.message)
  throw error
}

async function answer(fn: () => Promise<string> | string): Promise<string> {
  try {
    return await fn()
  } catch (error) {
    return errorReply(error)
  }
}

export interface EmitPayload {
  readonly records: readonly WireValue[]
  readonly errors: readonly string[]
  readonly done: boolean
  readonly profile: WireValue | undefined
}

/** What an emit's records and error texts cost the host once held (see {@link HELD_VALUE_OVERHEAD_BYTES}). */
export function heldCost(payload: string, emit: EmitPayload): number {
  return payload.length + (emit.records.length + emit.errors.length) * HELD_VALUE_OVERHEAD_BYTES
}

export function parseEmit(payload: string): EmitPayload {
  const value = parsePayload(payload)
  const records = field(value, 'r')
  const errors = field(value, 'e')
  if (!Array.isArray(records) || !Array.isArray(errors)) throw new GuestFacingError('gears.emit: malformed payload')
  return {
    records: records as readonly WireValue[],
    errors: (errors as readonly WireValue[]).map((e) => (typeof e === 'string' ? e : String(e))),
    done: field(value, 'done') === true,
    profile: field(value, 'profile'),
  }
}

function addProfile(execution: Execution, profile: WireValue | undefined): void {
  const steps = field(profile ?? null, 'steps')
  execution.addProfile(Array.isArray(steps) ? (steps as readonly unknown[]) : [], field(profile ?? null, 'readMs'))
}

/** Adds gears ops in front of a runtime handler (they are all live calls made after the top level). */
export function withOps(inner: RuntimeHostHandler, ops: Readonly<Record<string, (payload: string) => Promise<string> | string>>): RuntimeHostHandler {
  // `execute` stays the runtime's: its direct calls (HostHandler.directCalls) answer the same.
  const directCalls = inner.directCalls === true && !Object.prototype.hasOwnProperty.call(ops, 'execute')
  return {
    call(op, payload, mode) {
      const own = Object.prototype.hasOwnProperty.call(ops, op) ? ops[op] : undefined
      return own === undefined ? inner.call(op, payload, mode) : answer(() => own(payload))
    },
    dispose: () => inner.dispose(),
    directCalls,
  }
}

export type GearsOp = (payload: string) => Promise<string> | string

/**
 * The builder calls of one interpreter: argument checks, and the flow its run() compiled. Both the
 * initiator and every stage execution (which evaluates the top level again) have one.
 */
export class FlowRequests {
  flow: CompiledFlow | undefined
  /** The flow runs (after gears.start / gears.stage): a run() now is inside a step. */
  started = false
  /** What the script's register() calls compiled, in call order, with the ids they returned. */
  readonly registrations: { readonly id: string; readonly compiled: CompiledRegistration }[] = []

  /**
   * `registrationId(index, compiled)`: the id the index-th register() call returns (a new one in a
   * session's first run; the first run's in a re-evaluation, which checks the flow is the same).
   * Throws (a GuestFacingError or a coded error) to refuse the registration.
   */
  constructor(private readonly registrationId: RegistrationIdSource = refuseRegistrations) {}

  ops(): Record<string, GearsOp> {
    return {
      'gears.builder': (payload) => {
        checkBuilder(argsOf(parsePayload(payload)))
        return 'vnull'
      },
      'gears.op': (payload) => {
        const value = parsePayload(payload)
        const op = field(value, 'op')
        if (typeof op !== 'string') throw new GuestFacingError('gears.op: malformed payload')
        checkOp(op, argsOf(value))
        return 'vnull'
      },
      'gears.run': (payload) => {
        const flow = compileFlow(parseFlowRequest(parsePayload(payload)), this.started)
        if (this.flow !== undefined) throw new GuestFacingError('Can not run more then 1 executions in a single script')
        this.flow = flow
        return 'vnull'
      },
      'gears.register': (payload) => {
        if (this.started) throw new GuestFacingError('register() can only be called at the top level of a script, not inside a step')
        const compiled = compileRegistration(parseFlowRequest(parsePayload(payload)))
        const trigger = compiled.command?.trigger ?? null
        if (trigger !== null && this.registrations.some((r) => r.compiled.command?.trigger === trigger)) {
          throw new GuestFacingError('trigger already registered in this session')
        }
        const id = this.registrationId(this.registrations.length, compiled)
        this.registrations.push({ id, compiled })
        return replyValue(id)
      },
    }
  }

  require(): CompiledFlow {
    if (this.flow === undefined) throw new GuestFacingError('gears: no run() was started')
    return this.flow
  }
}

/** Gives a register() call its registration id (see {@link FlowRequests}). */
export type RegistrationIdSource = (index: number, compiled: CompiledRegistration) => string

function refuseRegistrations(): never {
  throw new GuestFacingError('register() cannot be called here: this evaluation of the script cannot register')
}

function argsOf(value: WireValue): ReturnType<typeof parseArg>[] {
  const args = field(value, 'args')
  if (!Array.isArray(args) || args.length > 16) throw new GuestFacingError('gears: malformed arguments')
  return (args as readonly WireValue[]).map(parseArg)
}

/** What a kernel needs to run `steps` (the reply of gears.start and gears.stage). */
function kernelInfo(flow: CompiledFlow, steps: readonly KernelStep[], reads: boolean, common: Record<string, WireValue>): string {
  return replyValue({
    ...common,
    displayCount: flow.description.steps.length,
    steps: steps as unknown as WireValue,
    reader: reads ? (flow.reader as unknown as WireValue) : null,
  })
}

/** The host side of one script execution that may call run(). */
export class GearsRun {
  readonly #host: GearsHost
  readonly #options: GearsRunOptions
  readonly #batchSize: number
  readonly #recording: TopLevelRecording | undefined
  readonly #requests: FlowRequests
  #initiator: ExecutionHandle | undefined
  #execution: Execution | undefined
  #source: BatchSource | undefined
  #shard: ShardInfo | undefined
  #resolveStarted!: (execution: Execution) => void
  readonly #started: Promise<Execution>

  constructor(host: GearsHost, options: GearsRunOptions) {
    this.#host = host
    this.#options = options
    this.#batchSize = host.batchSize ?? DEFAULT_BATCH_SIZE
    this.#requests = new FlowRequests(options.registrationId)
    // Distributed stages re-evaluate the script: record its top level (only a cluster needs it).
    const given = options.topLevel
    if (given !== undefined) this.#recording = given.mode === 'record' ? given.recording : undefined
    else this.#recording = host.backend.mode === 'cluster' ? new TopLevelRecording() : undefined
    this.#started = new Promise((resolve) => (this.#resolveStarted = resolve))
  }

  /** Pass to the initiator's host handler: records the top level when a cluster may need to replay it. */
  get topLevel(): TopLevelMode | undefined {
    if (this.#options.topLevel !== undefined) return this.#options.topLevel
    return this.#recording === undefined ? undefined : { mode: 'record', recording: this.#recording }
  }

  /** What the script's register() calls compiled (applied by the caller once the top level succeeded). */
  get registrations(): FlowRequests['registrations'] {
    return this.#requests.registrations
  }

  /** The execution, once the script's run() started one. */
  get execution(): Execution | undefined {
    return this.#execution
  }

  /** The initiator's handler: the runtime's, plus the builder's checks and gears.start / gears.read / gears.emit. */
  wrap(inner: RuntimeHostHandler): RuntimeHostHandler {
    return withOps(inner, {
      ...this.#requests.ops(),
      'gears.start': () => this.#start(),
      'gears.read': (payload) => this.#readInPlace(payload),
      'gears.emit': (payload) => this.#emitInPlace(payload),
    })
  }

  /**
   * Follows the initiator's sandbox execution. What the script did comes from its entry's result
   * (gears/jobs.ts GuestOutcome): no run, or the run it started (the execution may still run; its
   * end is `execution.whenDone()`). With `untilStarted` it resolves as soon as the execution
   * started (an unblocking run() replies with its id). Rejects when the script failed before run()
   * started.
   */
  settle(handle: ExecutionHandle, untilStarted = false): Promise<RunSettlement> {
    this.#initiator = handle
    const ended = handle.result.then(
      (result) => ({ ok: true as const, result }),
      (error: unknown) => ({ ok: false as const, error }),
    )
    // An in-place execution ends with the initiator.
    void ended.then((end) => {
      const execution = this.#execution
      this.#source?.close()
      if (execution === undefined || execution.finished) return
      if (!this.#inPlace) return
      execution.untrack(handle)
      if (!end.ok && !execution.stopped) execution.errors.push(failureText(end.error))
      execution.shardsCompleted = 1
      execution.finish()
    })
    const byOutcome = ended.then((end): RunSettlement => {
      const execution = this.#execution
      if (!end.ok) {
        // A run that failed after it started (a limit in an in-place run) is still the run: its errors say why.
        if (execution !== undefined) return { kind: 'run', execution }
        throw end.error
      }
      const outcome = parseGuestOutcome(end.result)
      if (outcome.kind === 'ok' && execution === undefined) return { kind: 'no-run' }
      if (outcome.kind === 'run' && execution !== undefined && outcome.id === execution.id) return { kind: 'run', execution }
      throw new SandboxError(`the guest entry's outcome does not match the host's run: ${end.result.slice(0, 200)}`)
    })
    if (!untilStarted) return byOutcome
    return Promise.race([this.#started.then((execution): RunSettlement => ({ kind: 'run', execution })), byOutcome])
  }

  get #inPlace(): boolean {
    return this.#shard !== undefined
  }

  async #start(): Promise<string> {
    if (this.#execution !== undefined) throw new GuestFacingError('Can not run more then 1 executions in a single script')
    const flow = this.#requests.require()
    this.#requests.started = true
    const plan = flow.description
    const { backend, registry, config } = this.#host
    const shards = await backend.shards()
    const current = await backend.currentShard()
    const inPlace = backend.mode === 'standalone' || plan.mode === 'async_local' || shards.length <= 1
    // The stages would replay the top level: fail now rather than on every shard.
    const overflow = this.#recording?.overflow
    if (!inPlace && overflow !== undefined) throw new TopLevelRecordingLimitError(topLevelRecordingLimitMessage(overflow))
    const profile = this.#options.profile ?? coreSetting(config, 'ProfileExecutions') === '1'
    const execution = registry.create(current.id, plan, profile)
    this.#execution = execution
    if (inPlace) {
      this.#shard = current
      if (this.#initiator !== undefined) execution.track(this.#initiator)
    } else {
      execution.shardsReceived = shards.length
      void this.#distribute(execution, plan, shards, current)
    }
    this.#resolveStarted(execution)
    const common = { id: execution.id, inPlace, profile, batchSize: this.#batchSize, emitChars: emitChars(this.#options.limits) }
    // In place, the whole plan runs here: routes only pass records on.
    return inPlace ? kernelInfo(flow, flow.stages.flat(), true, common) : replyValue(common)
  }

  async #readInPlace(payload: string): Promise<string> {
    const execution = this.#requireExecution()
    const shard = this.#shard
    if (shard === undefined) throw new GuestFacingError('gears.read: this execution does not read (its stages do)')
    const open = field(parsePayload(payload), 'open')
    if (open !== undefined) {
      if (this.#source !== undefined) throw new GuestFacingError('gears.read: the reader is already open')
      this.#source = prefetching(
        openReader(parseReaderOpen(open), this.#readerContext(shard), this.#host.backend.mode === 'standalone'),
      )
    }
    return readBatch(this.#source, execution)
  }

  #emitInPlace(payload: string): string {
    const execution = this.#requireExecution()
    if (execution.stopped) return 'vnull'
    const emit = parseEmit(payload)
    if (!execution.addResultBytes(heldCost(payload, emit), this.#options.limits.maxReplyBytes)) return 'vnull'
    for (const r of emit.records) execution.results.push(r)
    for (const e of emit.errors) execution.errors.push(e)
    if (emit.done) addProfile(execution, emit.profile)
    return 'vnull'
  }

  #readerContext(shard: ShardInfo): ReaderContext {
    return {
      backend: this.#host.backend,
      shard,
      batchSize: this.#batchSize,
      maxReplyBytes: this.#options.limits.maxReplyBytes,
      ...(this.#host.serverSideReads === undefined ? {} : { serverSideReads: this.#host.serverSideReads }),
    }
  }

  #requireExecution(): Execution {
    if (this.#execution === undefined) throw new GuestFacingError('gears: no run() was started')
    return this.#execution
  }

  async #distribute(execution: Execution, plan: RunDescription, shards: readonly ShardInfo[], initiator: ShardInfo): Promise<void> {
    try {
      const stageCount = plan.routes.length + 1
      let inputs = new Map<string, WireValue[]>()
      for (let stage = 0; stage < stageCount && !execution.stopped; stage++) {
        const outputs = new StageOutputs(execution, this.#options.limits.maxReplyBytes)
        const targets = stage === 0 ? shards : shards.filter((s) => (inputs.get(s.id)?.length ?? 0) > 0)
        const route = plan.routes[stage]
        await Promise.all(
          targets.map((shard) =>
            this.#runStage({
              execution,
              plan,
              stage,
              shard,
              shards,
              initiator,
              route,
              input: stage === 0 ? undefined : (inputs.get(shard.id) ?? []),
              outputs,
            }),
          ),
        )
        inputs = outputs.byShard
      }
      execution.shardsCompleted = shards.length
    } catch (error) {
      if (!execution.stopped) execution.errors.push(failureText(error))
    } finally {
      execution.finish()
    }
  }

  async #runStage(s: StageSpec): Promise<void> {
    const { host, recording } = { host: this.#host, recording: this.#recording }
    if (recording === undefined) throw new GuestFacingError('gears: this execution replays a top level, it cannot start a distributed run')
    const inner = createHostHandler({
      backend: host.backend,
      logger: host.logger,
      config: host.config,
      atomicRetries: host.atomicRetries,
      shard: s.shard,
      maxReplyBytes: this.#options.limits.maxReplyBytes,
      topLevel: { mode: 'replay', recording },
    })
    const firstRun = this.#requests.registrations
    const stage = new StageIO(s, this.#readerContext(s.shard), this.#options.limits, (index) => {
      const id = firstRun[index]?.id
      if (id === undefined) throw new GuestFacingError('the script registered differently when evaluated again for a stage')
      return id
    })
    const handler = withOps(inner, {
      ...stage.requests.ops(),
      'gears.stage': (payload) => stage.describe(payload),
      'gears.read': (payload) => stage.read(payload),
      'gears.emit': (payload) => stage.emit(payload),
    })
    const job = stageJob(this.#options.source, this.#options.limits, s.stage)
    let handle: ExecutionHandle | undefined
    try {
      handle = host.pool.start(job, handler)
      s.execution.track(handle)
      await handle.result
    } catch (error) {
      if (!(error instanceof AbortedError && s.execution.stopped)) {
        s.execution.errors.push(`shard ${s.shard.id} stage ${s.stage}: ${failureText(error)}`)
      }
    } finally {
      if (handle !== undefined) s.execution.untrack(handle)
      stage.close()
      await handler.dispose()
    }
  }
}

async function readBatch(source: BatchSource | undefined, execution: Execution): Promise<string> {
  if (source === undefined) throw new GuestFacingError('gears.read: the reader was not opened')
  // A reader's Redis error reaches the guest as a GearsError: the engine records it as an error
  // and stops reading (RedisGears' error entry, e.g. a bad stream id).
  const batch = await source.next()
  if (batch === null) return 'vnull'
  execution.recordsRead += batch.count
  return batch.reply
}

interface StageSpec {
  readonly execution: Execution
  readonly plan: RunDescription
  readonly stage: number
  readonly shard: ShardInfo
  readonly shards: readonly ShardInfo[]
  readonly initiator: ShardInfo
  /** Where this stage's output goes; undefined for the last stage (the results). */
  readonly route: StageRoute | undefined
  /** The records routed to this shard by the previous stage; undefined for stage 0 (it reads). */
  readonly input: WireValue[] | undefined
  readonly outputs: StageOutputs
}

/**
 * The records one stage hands to the next, by target shard. They wait in host memory until the
 * next stage reads them, so their emitted text is capped by `limits.maxReplyBytes`, as the results are.
 */
class StageOutputs {
  readonly byShard = new Map<string, WireValue[]>()
  #chars = 0

  constructor(
    private readonly execution: Execution,
    private readonly maxBytes: number,
  ) {}

  /**
   * Counts an emit of `chars` characters of record text (records between stages wait only until
   * the next stage reads them; the per-record overhead is counted for the results, held until read).
   * @returns false when the run is stopped: already, or now because the stage's output went over
   *   the cap (what was buffered is dropped).
   */
  admit(chars: number): boolean {
    if (this.execution.stopped) return false
    this.#chars += chars
    if (this.#chars <= this.maxBytes) return true
    this.byShard.clear()
    this.execution.stop(
      `the records moving between stages exceeded limits.maxReplyBytes (${this.maxBytes} bytes): raise it, or reduce ` +
        'the records before collect/repartition/groupby (filter, smaller records, localgroupby, aggregate)',
    )
    return false
  }

  push(shardId: string, records: readonly WireValue[]): void {
    let list = this.byShard.get(shardId)
    if (list === undefined) {
      list = []
      this.byShard.set(shardId, list)
    }
    for (const r of records) list.push(r)
  }
}

/** The gears ops of one stage execution on one shard. */
class StageIO {
  readonly requests: FlowRequests
  #source: BatchSource | undefined
  #inputAt = 0

  constructor(
    private readonly s: StageSpec,
    private readonly readers: ReaderContext,
    private readonly limits: Limits,
    registrationId: RegistrationIdSource,
  ) {
    this.requests = new FlowRequests(registrationId)
  }

  describe(payload: string): string {
    const stage = field(parsePayload(payload), 'stage')
    if (stage !== this.s.stage) throw new GuestFacingError('gears.stage: malformed payload')
    const flow = this.requests.flow
    if (flow === undefined) {
      throw new GuestFacingError(
        'the script did not call run() when evaluated again for a stage: its top level must build the same flow every time',
      )
    }
    this.requests.started = true
    const steps = flow.stages[this.s.stage]
    if (steps === undefined || !samePlan(flow.description, this.s.plan)) {
      throw new GuestFacingError(
        'the script built a different flow when evaluated again for a stage: its top level must build the same flow every time (no Math.random() or Date in it)',
      )
    }
    const common = { profile: this.s.execution.profiled, batchSize: this.readers.batchSize, emitChars: emitChars(this.limits) }
    return kernelInfo(flow, steps, this.s.stage === 0, common)
  }

  async read(payload: string): Promise<string> {
    if (this.s.input === undefined) {
      const open = field(parsePayload(payload), 'open')
      if (open !== undefined) {
        if (this.#source !== undefined) throw new GuestFacingError('gears.read: the reader is already open')
        this.#source = prefetching(openReader(parseReaderOpen(open), this.readers, false))
      }
      return readBatch(this.#source, this.s.execution)
    }
    const input = this.s.input
    if (this.#inputAt >= input.length) return 'vnull'
    // A batch of big records goes in smaller batches, to stay under limits.maxReplyBytes.
    let count = Math.min(this.readers.batchSize, input.length - this.#inputAt)
    let reply = replyValue(input.slice(this.#inputAt, this.#inputAt + count))
    while (reply.length > emitChars(this.limits) && count > 1) {
      count = Math.max(1, count >> 1)
      reply = replyValue(input.slice(this.#inputAt, this.#inputAt + count))
    }
    // Release what the guest has taken: a stage's input can be large.
    for (let i = this.#inputAt; i < this.#inputAt + count; i++) input[i] = null
    this.#inputAt += count
    return reply
  }

  emit(payload: string): string {
    const { execution, route, outputs } = this.s
    const emit = parseEmit(payload)
    for (const e of emit.errors) execution.errors.push(e)
    if (emit.done) addProfile(execution, emit.profile)
    if (route === undefined) {
      if (!execution.addResultBytes(heldCost(payload, emit), this.limits.maxReplyBytes)) return 'vnull'
      for (const r of emit.records) execution.results.push(r)
    } else if (!outputs.admit(payload.length)) {
      return 'vnull'
    } else if (route === 'initiator') {
      outputs.push(this.s.initiator.id, emit.records)
    } else {
      for (const pair of emit.records) {
        const key = Array.isArray(pair) && pair.length === 2 ? (pair as readonly WireValue[])[0] : undefined
        if (typeof key !== 'string') throw new GuestFacingError('gears.emit: a repartitioned record must be [key, record]')
        const owner = shardOwningSlot(this.s.shards, keySlot(key)) ?? this.s.initiator
        outputs.push(owner.id, [pair])
      }
    }
    return 'vnull'
  }

  close(): void {
    this.#source?.close()
  }
}
