/**
 * The GearsBuilder's semantics, once, for every guest language: the argument checks with
 * RedisGears 1.2's error texts, the desugaring of the builder's operations into a few primitive
 * steps, and the cutting of those steps into stages.
 *
 * A guest's builder is thin: each call describes its arguments ({@link ArgDesc}: a type, the
 * literal for primitives, an index into the guest's table of held values for anything else) and
 * asks the host to check them (`gears.op`, answered by {@link checkOp}); run() sends the whole
 * flow (`gears.run`, {@link compileFlow}). The host answers with a plan whose stages are data:
 * {@link KernelStep}s naming the guest's held callbacks by index, or a built-in reducer by name.
 * The guest's kernel runs them with its language's semantics.
 *
 * Everything here comes from guest code: it is validated, and a failed check is a GuestFacingError
 * (a GearsError in the guest, thrown where the script called the builder).
 */
import { GuestFacingError } from '../runtime/guest-facing-error.js'
import type { WireValue } from '../runtime/wire.js'
import { COMMAND_TABLE } from '../redis/command-table.generated.js'
import type { PlanStep, RunDescription, StageRoute } from './plan.js'

/** One argument as a guest describes it. `i` indexes the guest's held values (absent for a missing argument). */
export interface ArgDesc {
  /** missing (not given / undefined), null, string, number, boolean, function, object, other (bigint, symbol, ...). */
  readonly t: 'missing' | 'null' | 'string' | 'number' | 'boolean' | 'function' | 'object' | 'other'
  readonly i?: number
  /** The literal of a string or boolean; of a number, the number or 'NaN' / 'Infinity' / '-Infinity'. */
  readonly v?: string | number | boolean
  /** The value is falsy in the guest's language. */
  readonly f?: boolean
  /** A function's name ('' when anonymous). */
  readonly name?: string
  /** The run() / register() options an object carries (only for those options arguments). */
  readonly fields?: { readonly [name: string]: ArgDesc }
  /** The elements of an iterable (register()'s eventTypes, keyTypes, commands); absent: not iterable. */
  readonly items?: readonly ArgDesc[]
}

/** A step's callback: a held guest function, or a built-in of the kernel (count, avg, distinct, sort, ...). */
export type KernelFn = { readonly i: number } | { readonly b: string; readonly reverse?: boolean }

/** An aggregate's zero value: held by the guest, a literal, or `{}` for the guest's "undefined". */
export type KernelZero = { readonly i: number } | { readonly v: WireValue } | Record<string, never>

/** The primitive steps a guest kernel runs. `d` is the step's index in the displayed steps (-1: not shown). */
export type KernelStep =
  | { readonly k: 'map' | 'flatmap' | 'filter' | 'foreach'; readonly f: KernelFn; readonly d: number }
  | { readonly k: 'tostr'; readonly d: number }
  /** record -> [key as text, record] (before a route by key). */
  | { readonly k: 'extract'; readonly ex: KernelFn; readonly d: number }
  /** [key, record] -> record. */
  | { readonly k: 'unkey'; readonly d: number }
  /** The end of a stage: records leave (by key, or to the initiator). */
  | { readonly k: 'route'; readonly to: StageRoute; readonly d: number }
  /** Records [start, end); `end` null: no end. */
  | { readonly k: 'limit'; readonly start: number; readonly end: number | null; readonly d: number }
  | { readonly k: 'accumulate'; readonly f: KernelFn; readonly zero?: KernelZero; readonly d: number }
  | { readonly k: 'localgroupby'; readonly ex: KernelFn; readonly red: KernelFn; readonly zero?: KernelZero; readonly d: number }
  /** On [key, record] pairs; `value`: the reducer gets the record's value (a {key, value} record's). */
  | { readonly k: 'reducebykey'; readonly red: KernelFn; readonly zero?: KernelZero; readonly value?: boolean; readonly d: number }
  | { readonly k: 'groupbykey'; readonly red: KernelFn; readonly d: number }

/** The reader a run opens, as the guest needs it: what to send in `gears.read`'s open, and its guest functions. */
export interface KernelReader {
  /** The `open` of the first `gears.read` (host readers), or null (a generator reader runs in the guest). */
  readonly open: { readonly [key: string]: WireValue } | null
  /** KeysOnlyReader's patternGenerator: its result replaces open.pattern/noScan. */
  readonly patternGenerator: number | null
  /** PythonReader / GeneratorReader: the held generator function. */
  readonly generator: number | null
}

/** A checked, compiled run(). */
export interface CompiledFlow {
  readonly description: RunDescription
  readonly stages: readonly (readonly KernelStep[])[]
  readonly reader: KernelReader
}

/** Where the languages differ in what the desugaring produces (the rest is the kernel's semantics object). */
export interface FlowDialect {
  /** sort() without an argument: descending (RedisGears' Python) or ascending (JS). */
  readonly sortDefaultReverse: boolean
  /** The displayed names of avg()'s and countby()'s default extractors. */
  readonly avgDefaultName: string
  readonly countbyDefaultName: string
}

export const DIALECTS: Readonly<Record<string, FlowDialect>> = {
  js: { sortDefaultReverse: false, avgDefaultName: 'toNumber', countbyDefaultName: 'identity' },
  // RedisGears 1.2's Python: sort(reverse=True) by default; the default extractors are lambdas.
  python: { sortDefaultReverse: true, avgDefaultName: '<lambda>', countbyDefaultName: '<lambda>' },
}

const RUN_READERS = ['KeysReader', 'KeysOnlyReader', 'StreamReader', 'PythonReader', 'GeneratorReader', 'ShardsIDReader']
const ALL_READERS = [...RUN_READERS, 'CommandReader']
const OPS_WITH_ONE_FUNCTION = new Set(['map', 'flatmap', 'foreach', 'filter', 'accumulate', 'repartition'])
const OPS_WITH_EXTRACTOR_AND_REDUCER = new Set(['localgroupby', 'groupby', 'batchgroupby'])
const MAX_OPS = 10_000
/** Most elements an iterable option (eventTypes, keyTypes, commands) may have. */
export const MAX_ITEMS = 1000

function fail(message: string): never {
  throw new GuestFacingError(message)
}

// ---- reading descriptors (untrusted) -----------------------------------------------------------------

const KINDS = new Set(['missing', 'null', 'string', 'number', 'boolean', 'function', 'object', 'other'])

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
}

/** Checks one descriptor's shape (not the argument's type: that is the op's check). */
export function parseArg(value: unknown): ArgDesc {
  if (value === undefined) return { t: 'missing' }
  if (!isRecord(value) || typeof value['t'] !== 'string' || !KINDS.has(value['t'])) fail('gears: malformed argument')
  const t = value['t'] as ArgDesc['t']
  const i = value['i']
  if (i !== undefined && (typeof i !== 'number' || !Number.isInteger(i) || i < 0)) fail('gears: malformed argument')
  const v = value['v']
  if (t === 'string' && typeof v !== 'string') fail('gears: malformed argument')
  if (t === 'boolean' && typeof v !== 'boolean') fail('gears: malformed argument')
  if (t === 'number' && typeof v !== 'number' && v !== 'NaN' && v !== 'Infinity' && v !== '-Infinity') fail('gears: malformed argument')
  if (t === 'function' && typeof i !== 'number') fail('gears: malformed argument')
  const name = value['name']
  let fields: Record<string, ArgDesc> | undefined
  if (isRecord(value['fields'])) {
    fields = {}
    for (const [key, field] of Object.entries(value['fields'])) fields[key] = parseArg(field)
  }
  let items: ArgDesc[] | undefined
  if (Array.isArray(value['items'])) {
    if (value['items'].length > MAX_ITEMS) fail('gears: malformed argument')
    items = (value['items'] as unknown[]).map(parseArg)
  }
  return {
    t,
    ...(items === undefined ? {} : { items }),
    ...(typeof i === 'number' ? { i } : {}),
    ...(typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? { v } : {}),
    f: value['f'] === true || t === 'missing' || t === 'null',
    ...(typeof name === 'string' ? { name } : {}),
    ...(fields === undefined ? {} : { fields }),
  }
}

function parseArgs(value: unknown): ArgDesc[] {
  if (value === undefined) return []
  if (!Array.isArray(value) || value.length > 16) fail('gears: malformed arguments')
  return value.map(parseArg)
}

const arg = (args: readonly ArgDesc[], n: number): ArgDesc => args[n] ?? { t: 'missing', f: true }
const absent = (a: ArgDesc): boolean => a.t === 'missing' || a.t === 'null'

function numberOf(a: ArgDesc): number {
  return typeof a.v === 'number' ? a.v : Number(a.v)
}

function fnArg(op: string, a: ArgDesc): number {
  if (a.t !== 'function' || a.i === undefined) fail(`${op} argument must be a function`)
  return a.i
}

// ---- GearsBuilder(reader, defaultArg, desc) and its operations ------------------------------------------

interface BuilderStart {
  readonly reader: string
  readonly defaultArg: ArgDesc
  readonly desc: string | null
}

/** GearsBuilder(reader = 'KeysReader', defaultArg = '*', desc = null). */
export function checkBuilder(args: readonly ArgDesc[]): BuilderStart {
  const readerArg = arg(args, 0)
  const reader = readerArg.t === 'missing' ? 'KeysReader' : readerArg.t === 'string' ? String(readerArg.v) : fail('reader argument must be a string')
  if (!ALL_READERS.includes(reader)) fail('The given reader does not exists')
  const descArg = arg(args, 2)
  const desc = absent(descArg) ? null : descArg.t === 'string' ? String(descArg.v) : fail('desc argument must be a string')
  const given = arg(args, 1)
  return { reader, defaultArg: given.t === 'missing' ? { t: 'string', v: '*', f: false } : given, desc }
}

/** Checks one operation's arguments (RedisGears' texts); unknown operations are refused. */
export function checkOp(op: string, args: readonly ArgDesc[]): void {
  if (OPS_WITH_ONE_FUNCTION.has(op)) {
    fnArg(op, arg(args, 0))
  } else if (OPS_WITH_EXTRACTOR_AND_REDUCER.has(op)) {
    fnArg(op, arg(args, 0))
    fnArg(op, arg(args, 1))
  } else if (op === 'aggregate') {
    fnArg(op, arg(args, 1))
    fnArg(op, arg(args, 2))
  } else if (op === 'aggregateby') {
    fnArg(op, arg(args, 0))
    fnArg(op, arg(args, 2))
    fnArg(op, arg(args, 3))
  } else if (op === 'countby' || op === 'avg') {
    if (arg(args, 0).t !== 'missing') fnArg(op, arg(args, 0))
  } else if (op === 'limit') {
    const length = arg(args, 0)
    const start = arg(args, 1)
    const ok = (a: ArgDesc): boolean => a.t === 'number' && numberOf(a) >= 0
    if (!ok(length) || !(start.t === 'missing' || ok(start))) fail('limit argument must be a number')
  } else if (op !== 'collect' && op !== 'count' && op !== 'distinct' && op !== 'sort') {
    fail(`unknown GearsBuilder operation ${op}`)
  }
}

// ---- run(arg, options) ------------------------------------------------------------------------------

interface RunRequest {
  readonly mode: 'async' | 'async_local'
  readonly reader: KernelReader
  /** The reader's argument as RG.GETEXECUTION shows it. */
  readonly readerArg: string
  readonly convertToStr: boolean
  readonly collect: boolean
}

function option(options: ArgDesc, name: string): ArgDesc {
  return options.fields?.[name] ?? { t: 'missing', f: true }
}

function boolOption(options: ArgDesc, name: string, fallback: boolean, message: string): boolean {
  const value = option(options, name)
  if (absent(value)) return fallback
  if (value.t !== 'boolean') fail(message)
  return value.v === true
}

function regex(a: ArgDesc): string {
  if (a.t !== 'string') fail('regex argument must be a string')
  return String(a.v)
}

/** run()'s checks, in RedisGears' order (the one-run-per-script check is the caller's, after these). */
function checkRun(start: BuilderStart, args: readonly ArgDesc[], started: boolean): RunRequest {
  if (start.reader === 'CommandReader') fail('Given reader do not support run or not exists')
  if (started) fail('run() can only be called at the top level of a script, not inside a step')
  let options = arg(args, 1)
  if (absent(options)) options = { t: 'object', f: false, fields: {} }
  if (options.t !== 'object') fail('run options must be an object')
  const modeArg = option(options, 'mode')
  const mode = modeArg.t === 'missing' ? 'async' : modeArg.t === 'string' ? String(modeArg.v) : fail('execution mode must be a string')
  if (mode !== 'async' && mode !== 'async_local') fail('unknown execution mode')
  let runArg = arg(args, 0)
  if (runArg.f === true) runArg = start.defaultArg
  let open: Record<string, WireValue> | null = { reader: start.reader }
  let patternGenerator: number | null = null
  let generator: number | null = null
  switch (start.reader) {
    case 'KeysReader':
      open = {
        reader: 'KeysReader',
        pattern: regex(runArg),
        noScan: boolOption(options, 'noScan', false, 'exactMatch value is not boolean'),
        readValue: boolOption(options, 'readValue', true, 'readValue value is not boolean'),
      }
      break
    case 'KeysOnlyReader': {
      const pattern = regex(runArg)
      const noScan = boolOption(options, 'noScan', false, 'exactMatch value is not boolean')
      const countArg = option(options, 'count')
      const count = absent(countArg) ? 1000 : countArg.t === 'number' ? numberOf(countArg) : NaN
      if (!(count >= 1)) fail('count argument must be a positive number')
      const generatorArg = option(options, 'patternGenerator')
      if (!absent(generatorArg)) patternGenerator = fnArg('patternGenerator', generatorArg)
      open = { reader: 'KeysOnlyReader', pattern, noScan, count: Math.floor(count) }
      break
    }
    case 'StreamReader': {
      const stream = regex(runArg)
      const fromIdArg = option(options, 'fromId')
      const fromId = absent(fromIdArg) ? '0-0' : fromIdArg.t === 'string' ? String(fromIdArg.v) : fail('fromId argument must be a string')
      open = { reader: 'StreamReader', stream, fromId }
      break
    }
    case 'PythonReader':
    case 'GeneratorReader':
      if (runArg.t !== 'function' || runArg.i === undefined) fail('pyreader argument must be a function')
      generator = runArg.i
      open = null
      break
    default:
      break // ShardsIDReader: the argument is ignored
  }
  const flag = (name: string): boolean => {
    const value = option(options, name)
    return value.t === 'missing' ? true : value.f !== true
  }
  return {
    mode,
    reader: { open, patternGenerator, generator },
    readerArg: runArg.t === 'string' ? String(runArg.v) : '',
    convertToStr: flag('convertToStr'),
    collect: flag('collect'),
  }
}

// ---- desugaring -------------------------------------------------------------------------------------

interface FlowOp {
  readonly op: string
  readonly args: readonly ArgDesc[]
}

/** A guest's `gears.run` payload: the builder's constructor arguments, its operations, run()'s arguments. */
export interface FlowRequest {
  readonly lang: string
  readonly builder: readonly ArgDesc[]
  readonly ops: readonly FlowOp[]
  readonly args: readonly ArgDesc[]
}

export function parseFlowRequest(value: unknown): FlowRequest {
  if (!isRecord(value) || typeof value['lang'] !== 'string' || !Array.isArray(value['ops']) || value['ops'].length > MAX_OPS) {
    fail('gears.run: malformed payload')
  }
  const ops = (value['ops'] as unknown[]).map((o): FlowOp => {
    if (!isRecord(o) || typeof o['op'] !== 'string') fail('gears.run: malformed payload')
    return { op: o['op'], args: parseArgs(o['args']) }
  })
  return { lang: value['lang'], builder: parseArgs(value['builder']), ops, args: parseArgs(value['args']) }
}

/** Builds the primitive steps and the displayed steps (RG.GETEXECUTION's list) side by side. */
class Desugar {
  readonly display: PlanStep[] = []
  readonly steps: KernelStep[] = []

  constructor(readonly dialect: FlowDialect) {}

  show(type: string, name: string, arg = ''): number {
    this.display.push({ type, name, arg })
    return this.display.length - 1
  }

  push(step: KernelStep): void {
    this.steps.push(step)
  }

  map(k: 'map' | 'flatmap' | 'filter' | 'foreach', f: KernelFn, name: string): void {
    this.push({ k, f, d: this.show(k, name) })
  }

  accumulate(f: KernelFn, name: string, zero?: KernelZero): void {
    this.push({ k: 'accumulate', f, ...(zero === undefined ? {} : { zero }), d: this.show('accumulate', name) })
  }

  collect(): void {
    this.push({ k: 'route', to: 'initiator', d: this.show('collect', '') })
  }

  extractAndRoute(ex: KernelFn, name: string): void {
    this.push({ k: 'extract', ex, d: this.show('extractkey', name) })
    this.push({ k: 'route', to: 'key', d: this.show('repartition', '') })
  }

  aggregate(zero: KernelZero, seq: KernelFn, seqName: string, comb: KernelFn, combName: string): void {
    this.accumulate(seq, seqName, zero)
    this.collect()
    this.accumulate(comb, combName, zero)
  }

  aggregateby(ex: KernelFn, exName: string, zero: KernelZero, seq: KernelFn, seqName: string, comb: KernelFn, combName: string): void {
    this.show('extractkey', exName)
    this.push({ k: 'localgroupby', ex, red: seq, zero, d: this.show('accumulatebykey', seqName) })
    this.extractAndRoute({ b: 'recordKey' }, 'key')
    this.push({ k: 'reducebykey', red: comb, zero, value: true, d: this.show('accumulatebykey', combName) })
  }
}

const held = (a: ArgDesc): KernelFn => ({ i: a.i ?? fail('gears: malformed argument') })
const nameOf = (a: ArgDesc): string => (a.name === undefined || a.name === '' ? '<anonymous>' : a.name)
const zeroOf = (a: ArgDesc): KernelZero => (a.i === undefined ? {} : { i: a.i })

function desugar(d: Desugar, op: FlowOp): void {
  const a = (n: number): ArgDesc => arg(op.args, n)
  switch (op.op) {
    case 'map':
    case 'flatmap':
    case 'foreach':
    case 'filter':
      d.map(op.op, held(a(0)), nameOf(a(0)))
      return
    case 'accumulate':
      d.accumulate(held(a(0)), nameOf(a(0)))
      return
    case 'localgroupby': {
      d.show('extractkey', nameOf(a(0)))
      d.push({ k: 'localgroupby', ex: held(a(0)), red: held(a(1)), d: d.show('accumulatebykey', nameOf(a(1))) })
      return
    }
    case 'groupby':
      d.extractAndRoute(held(a(0)), nameOf(a(0)))
      d.push({ k: 'reducebykey', red: held(a(1)), d: d.show('accumulatebykey', nameOf(a(1))) })
      return
    case 'batchgroupby': {
      d.extractAndRoute(held(a(0)), nameOf(a(0)))
      d.show('group', '')
      d.push({ k: 'groupbykey', red: held(a(1)), d: d.show('reduce', nameOf(a(1))) })
      return
    }
    case 'collect':
      d.collect()
      return
    case 'repartition':
      d.extractAndRoute(held(a(0)), nameOf(a(0)))
      d.push({ k: 'unkey', d: -1 })
      return
    case 'limit': {
      const length = Math.floor(numberOf(a(0)))
      const start = a(1).t === 'missing' ? 0 : Math.floor(numberOf(a(1)))
      const end = start + length
      d.push({ k: 'limit', start, end: Number.isFinite(end) ? end : null, d: d.show('limit', '', `${String(length)},${String(start)}`) })
      return
    }
    case 'aggregate':
      d.aggregate(zeroOf(a(0)), held(a(1)), nameOf(a(1)), held(a(2)), nameOf(a(2)))
      return
    case 'aggregateby':
      d.aggregateby(held(a(0)), nameOf(a(0)), zeroOf(a(1)), held(a(2)), nameOf(a(2)), held(a(3)), nameOf(a(3)))
      return
    case 'count':
      d.accumulate({ b: 'count' }, 'count')
      d.collect()
      d.accumulate({ b: 'countSum' }, 'count')
      return
    case 'countby': {
      const given = a(0).t !== 'missing'
      d.aggregateby(
        given ? held(a(0)) : { b: 'identity' },
        given ? nameOf(a(0)) : d.dialect.countbyDefaultName,
        { v: 0 },
        { b: 'countbySeq' },
        'countby',
        { b: 'countbyComb' },
        'countby',
      )
      return
    }
    case 'avg': {
      const given = a(0).t !== 'missing'
      d.map('map', given ? held(a(0)) : { b: 'toNumber' }, given ? nameOf(a(0)) : d.dialect.avgDefaultName)
      d.aggregate({ v: [0, 0] }, { b: 'avgSeq' }, 'avg', { b: 'avgComb' }, 'avg')
      d.map('map', { b: 'avgFinal' }, 'avg')
      return
    }
    case 'distinct':
      // The accumulator is a plain object keyed by the kernel's distinct key: it crosses shards as JSON.
      d.aggregate({ v: {} }, { b: 'distinctAdd' }, 'distinct', { b: 'distinctMerge' }, 'distinct')
      d.map('flatmap', { b: 'distinctValues' }, 'distinct')
      return
    case 'sort': {
      const reverse = a(0).t === 'missing' ? d.dialect.sortDefaultReverse : a(0).f !== true
      d.aggregate({ v: [] }, { b: 'sortAdd' }, 'sort', { b: 'sortMerge' }, 'sort')
      d.map('map', { b: 'sortList', reverse }, 'sort')
      d.map('flatmap', { b: 'identity' }, 'sort')
      return
    }
    default:
      fail(`unknown GearsBuilder operation ${op.op}`)
  }
}

/** Stages end at routes; a trailing route only sends records to the results. */
function cutStages(steps: readonly KernelStep[]): { stages: KernelStep[][]; routes: StageRoute[] } {
  const stages: KernelStep[][] = []
  const routes: StageRoute[] = []
  let current: KernelStep[] = []
  for (const step of steps) {
    current.push(step)
    if (step.k === 'route') {
      stages.push(current)
      routes.push(step.to)
      current = []
    }
  }
  if (current.length > 0 || stages.length === 0) stages.push(current)
  else routes.pop()
  return { stages, routes }
}

/**
 * Checks and compiles a run(): every builder check again (the host trusts nothing the guest kept),
 * run()'s checks, then the plan. `started`: a run of this script is already running (run() inside a step).
 */
export function compileFlow(request: FlowRequest, started: boolean): CompiledFlow {
  const dialect = DIALECTS[request.lang] ?? fail('gears.run: unknown guest language')
  const start = checkBuilder(request.builder)
  for (const op of request.ops) checkOp(op.op, op.args)
  const run = checkRun(start, request.args, started)
  const d = new Desugar(dialect)
  d.show('reader', start.reader, run.readerArg)
  for (const op of request.ops) desugar(d, op)
  if (run.convertToStr) d.push({ k: 'tostr', d: d.show('map', 'convertToStr') })
  if (run.collect) d.collect()
  const { stages, routes } = cutStages(d.steps)
  return {
    description: { reader: start.reader, desc: start.desc, mode: run.mode, steps: d.display, routes },
    stages,
    reader: run.reader,
  }
}

// ---- register(prefix, options) --------------------------------------------------------------------

/** The readers register() takes. */
export type RegistrationReader = 'KeysReader' | 'StreamReader' | 'CommandReader'
export type RegistrationMode = 'async' | 'async_local' | 'sync'

/** The key types a KeysReader registration may filter on (RedisGears' names). */
export const KEY_TYPES: readonly string[] = ['empty', 'string', 'list', 'hash', 'set', 'zset', 'module', 'stream']

export interface KeysRegistrationArgs {
  /** Trailing `*`: keys starting with the rest; otherwise exactly this key. */
  readonly prefix: string
  /** Lowercased event names, or null for every event. */
  readonly eventTypes: readonly string[] | null
  readonly keyTypes: readonly string[] | null
  readonly readValue: boolean
  /** Lowercased command names (the `commands=` filter), or null. Needs the RESP front. */
  readonly commands: readonly string[] | null
}

export interface StreamRegistrationArgs {
  readonly prefix: string
  readonly batch: number
  readonly durationMs: number
  readonly onFailedPolicy: 'continue' | 'abort' | 'retry'
  readonly onFailedRetryIntervalSec: number
  readonly trimStream: boolean
  /** The id the consumer group starts after when gearbox creates it (exclusive). Default `'0-0'`: the entries already there. */
  readonly fromId: string
  /** gearbox's own: the stream that receives entries the policy gave up on, with the error; null for none. */
  readonly deadLetter: string | null
  /** gearbox's own: milliseconds an entry stays pending on a consumer before another takes it over (XAUTOCLAIM). */
  readonly claimIdleMs: number
}

/** How long a stream entry stays pending on a silent consumer before another host takes it over, by default. */
export const DEFAULT_CLAIM_IDLE_MS = 30_000

export interface CommandRegistrationArgs {
  readonly trigger: string | null
  readonly hook: string | null
  readonly keyprefix: string | null
  readonly inorder: boolean
}

/** A checked, compiled register(): what a registration runs per event, and its reader's arguments. */
export interface CompiledRegistration {
  readonly reader: RegistrationReader
  readonly desc: string | null
  readonly mode: RegistrationMode
  /** Every step, in place: a registration's execution runs on one shard (routes only pass records on). */
  readonly steps: readonly KernelStep[]
  /** The steps as RG.GETEXECUTION would list them. */
  readonly display: readonly PlanStep[]
  /** The held onRegistered function, or null. */
  readonly onRegistered: number | null
  readonly keys?: KeysRegistrationArgs
  readonly stream?: StreamRegistrationArgs
  readonly command?: CommandRegistrationArgs
}

/** A guest's `gears.register` payload: as `gears.run`'s (the arguments are register()'s). */
export type RegisterRequest = FlowRequest

/** Strings of an iterable option, with RedisGears' texts for what is not. */
function stringItems(a: ArgDesc, notIterable: string, notString: string): string[] | null {
  if (absent(a)) return null
  if (a.items === undefined) fail(notIterable)
  return a.items.map((item) => (item.t === 'string' ? String(item.v) : fail(notString)))
}

function numberOption(options: ArgDesc, name: string, fallback: number, message: string): number {
  const value = option(options, name)
  if (absent(value)) return fallback
  if (value.t !== 'number') fail(message)
  const n = numberOf(value)
  if (!Number.isFinite(n)) fail(message)
  return n
}

function stringOption(options: ArgDesc, name: string, message: string): string | null {
  const value = option(options, name)
  if (absent(value)) return null
  if (value.t !== 'string') fail(message)
  return String(value.v)
}

/** True when the command table has `name` (a command, not a subcommand). */
function commandEntry(name: string): (typeof COMMAND_TABLE)[string] | undefined {
  return Object.prototype.hasOwnProperty.call(COMMAND_TABLE, name) ? COMMAND_TABLE[name] : undefined
}

/**
 * register()'s checks (spec §2.5, RedisGears' texts, in its order) and the compiled steps.
 * `register(options)` (an object first) is the same as `register('*', options)`.
 */
export function compileRegistration(request: RegisterRequest): CompiledRegistration {
  const dialect = DIALECTS[request.lang] ?? fail('gears.register: unknown guest language')
  const start = checkBuilder(request.builder)
  for (const op of request.ops) checkOp(op.op, op.args)
  let prefixArg = arg(request.args, 0)
  let options = arg(request.args, 1)
  if (prefixArg.t === 'object' && absent(options)) {
    options = prefixArg
    prefixArg = { t: 'missing', f: true }
  }
  if (absent(options)) options = { t: 'object', f: false, fields: {} }
  if (options.t !== 'object') fail('register options must be an object')
  // `regex` is RedisGears' deprecated name of prefix.
  if (prefixArg.t === 'missing') prefixArg = option(options, 'prefix')
  if (prefixArg.t === 'missing') prefixArg = option(options, 'regex')
  // RedisGears' register(prefix='*'): the builder's defaultArg is run()'s, not register()'s.
  if (prefixArg.t === 'missing') prefixArg = { t: 'string', v: '*', f: false }
  const prefix = regex(prefixArg)
  const modeArg = option(options, 'mode')
  const mode = absent(modeArg) ? 'async' : modeArg.t === 'string' ? String(modeArg.v) : fail('execution mode must be a string')
  if (mode !== 'async' && mode !== 'async_local' && mode !== 'sync') fail('unknown execution mode')
  const onRegisteredArg = option(options, 'onRegistered')
  let onRegistered: number | null = null
  if (!absent(onRegisteredArg)) {
    if (onRegisteredArg.t !== 'function' || onRegisteredArg.i === undefined) fail('OnRegistered argument must be a function')
    onRegistered = onRegisteredArg.i
  }
  let keys: KeysRegistrationArgs | undefined
  let stream: StreamRegistrationArgs | undefined
  let command: CommandRegistrationArgs | undefined
  switch (start.reader) {
    case 'KeysReader': {
      const eventTypes = stringItems(option(options, 'eventTypes'), 'given eventTypes is not iterable', 'given event type is not string')
      const keyTypes = stringItems(option(options, 'keyTypes'), 'given keyTypes is not iterable', 'given key type is not string')
      for (const type of keyTypes ?? []) if (!KEY_TYPES.includes(type)) fail('unknown key type')
      const readValue = boolOption(options, 'readValue', true, 'readValue is not boolean')
      const commands = stringItems(option(options, 'commands'), 'given commands is not iterable', 'given command type is not string')
      for (const name of commands ?? []) {
        const entry = commandEntry(name.toLowerCase())
        if (entry === undefined) fail(`Failed getting command info for ${name}, bad reply`)
        if (entry.flags.includes('movablekeys') && prefix !== '*') fail('Can not hook a command with moveable keys by key prefix')
        if (entry.flags.includes('noscript')) fail('Can not hook a command which are not allowed inside a script')
      }
      keys = {
        prefix,
        eventTypes: eventTypes === null ? null : eventTypes.map((e) => e.toLowerCase()),
        keyTypes,
        readValue,
        commands: commands === null ? null : commands.map((c) => c.toLowerCase()),
      }
      break
    }
    case 'StreamReader': {
      const batch = numberOption(options, 'batch', 1, 'batch argument must be a number')
      const durationMs = numberOption(options, 'duration', 0, 'duration argument must be a number')
      const policyArg = option(options, 'onFailedPolicy')
      let policy = 'continue'
      if (!absent(policyArg)) {
        if (policyArg.t !== 'string') fail('onFailedPolicy must be a string (Continue/Abort/Retry)')
        policy = String(policyArg.v).toLowerCase()
        if (policy !== 'continue' && policy !== 'abort' && policy !== 'retry') fail('onFailedPolicy must be Continue/Abort/Retry')
      }
      const retry = numberOption(options, 'onFailedRetryInterval', 1, 'retryInterval argument must be a number')
      const trimStream = boolOption(options, 'trimStream', true, 'pyTrimmStream argument must be a boolean')
      if (mode === 'sync' && policy !== 'continue') fail('ExecutionMode sync can only be combined with OnFailedPolicy Continue')
      const fromIdArg = option(options, 'fromId')
      const fromId = absent(fromIdArg) ? '0-0' : fromIdArg.t === 'string' ? String(fromIdArg.v) : fail('fromId argument must be a string')
      const deadLetter = stringOption(options, 'deadLetter', 'deadLetter argument must be a string (a stream name)')
      const claimIdleMs = numberOption(options, 'claimIdleMs', DEFAULT_CLAIM_IDLE_MS, 'claimIdleMs argument must be a number')
      if (claimIdleMs < 1) fail('claimIdleMs argument must be a number of milliseconds ≥ 1')
      stream = {
        prefix,
        batch,
        durationMs,
        onFailedPolicy: policy as StreamRegistrationArgs['onFailedPolicy'],
        onFailedRetryIntervalSec: retry,
        trimStream,
        fromId,
        deadLetter,
        claimIdleMs,
      }
      break
    }
    case 'CommandReader': {
      const trigger = stringOption(options, 'trigger', 'trigger argument is not string')
      const keyprefix = stringOption(options, 'keyprefix', 'keyprefix argument is not string')
      const hook = stringOption(options, 'hook', 'hook argument is not string')
      const inorder = boolOption(options, 'inorder', false, 'inorder argument is be boolean')
      if (trigger !== null && (keyprefix !== null || hook !== null)) fail('trigger argument can not be given with keyprefix or hook')
      if (trigger === null && hook === null) fail('no trigger or hook argument was given')
      if (hook !== null) {
        const entry = commandEntry(hook.toLowerCase())
        if (entry === undefined) fail('Can not override an unexisting command')
        if (entry.flags.includes('noscript')) fail('Can not override a command which are not allowed inside a script')
        if (entry.flags.includes('movablekeys') && keyprefix !== null) fail('Can not override a command with moveable keys by key prefix')
      }
      command = { trigger, hook, keyprefix, inorder }
      break
    }
    default:
      fail('given reader does not exists or does not support register')
  }
  const d = new Desugar(dialect)
  d.show('reader', start.reader, prefix)
  for (const op of request.ops) desugar(d, op)
  const flag = (name: string): boolean => {
    const value = option(options, name)
    return value.t === 'missing' ? true : value.f !== true
  }
  if (flag('convertToStr')) d.push({ k: 'tostr', d: d.show('map', 'convertToStr') })
  if (flag('collect')) d.collect()
  return {
    reader: start.reader,
    desc: start.desc,
    mode,
    steps: d.steps,
    display: d.display,
    onRegistered,
    ...(keys === undefined ? {} : { keys }),
    ...(stream === undefined ? {} : { stream }),
    ...(command === undefined ? {} : { command }),
  }
}

/** The KeysReader prefix rule (not a glob): a trailing `*` matches keys starting with the rest, else the exact key. */
export function prefixMatches(prefix: string, key: string): boolean {
  return prefix.endsWith('*') ? key.startsWith(prefix.slice(0, -1)) : key === prefix
}

/** True when two compiled registrations are the same (a re-evaluation registered what the first run did). */
export function samePlanOf(a: CompiledRegistration, b: CompiledRegistration): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}
