/**
 * The RG.* commands of the RESP server (spec §4): their grammar, reply shapes and error texts.
 * Results are converted by spec §3 (a string starting with '+' is a status, with '-' an error,
 * other strings bulk; floats as "%lf" text; booleans as integers).
 */
import { GearboxError, GuestError } from '../errors.js'
import { coreSetting } from '../gears/batch-run.js'
import type { ExecutionInfo, ExecutionResults, ExecutionSummary } from '../gears/executions.js'
import { dumpExecutionsReply, getExecutionReply, getResultsReply } from '../gears/rg-replies.js'
import type { RegistrationInfo } from '../gears/registrations.js'
import type { ExecuteReply } from '../gears/session.js'
import type { SessionInfo, SessionOptions } from '../gears/sessions.js'
import type { WireValue } from '../runtime/wire.js'
import type { ShardInfo } from '../redis/types.js'
import type { CommandPathRegistry } from './command-path.js'
import { NestedReplyError, type RedisReply } from '../resp/types.js'

/** What the server needs of a Gearbox (Gearbox.serve passes it). */
export interface ServerGears {
  execute(source: string, options: { readonly unblocking: boolean; readonly language?: 'js' | 'python' } & SessionOptions): Promise<ExecuteReply>
  readonly executions: {
    list(): ExecutionSummary[]
    get(id: string): ExecutionInfo
    results(id: string): ExecutionResults
    resultsBlocking(id: string): Promise<ExecutionResults>
    drop(id: string): void
    abort(id: string): Promise<void>
  }
  /** The extra config dictionary (RG.CONFIGSET writes it; guests' configGet reads it). */
  readonly config: Record<string, string>
  /** The masters (RG.INFOCLUSTER). */
  shards(): Promise<readonly ShardInfo[]>
  readonly mode: 'standalone' | 'cluster'
  /** The sandboxes' memory in bytes (RG.PYSTATS, INFO rg): see README for what is counted. */
  sandboxMemory(): { readonly total: number; readonly peak: number; readonly current: number }
  /** RG.TRIGGER / RG.TRIGGERONKEY (Gearbox.trigger / triggerOnKey). */
  trigger(name: string, args: readonly string[], key?: string): Promise<WireValue[]>
  readonly registrations: {
    list(): RegistrationInfo[]
    unregister(id: string, options?: { readonly abortPending?: boolean }): Promise<void>
    pause(id: string): Promise<void>
    unpause(id: string): Promise<void>
    clearStats(): void
  }
  /** RG.PYDUMPSESSIONS (Gearbox.sessions). */
  readonly sessions: { list(): SessionInfo[] }
  /** The registrations the command path acts on (hooks, `commands=`, sync); absent: no command path. */
  readonly commandPath?: CommandPathRegistry
}

/** An RG.* command's answer: a value to encode (a top-level NestedReplyError is an error reply). */
export type RgReply = RedisReply

export const MULTI_TEXT = 'Can not run gears inside a multi exec, lua, or when blocking is not allowed'
const TRIGGER_MULTI_TEXT = 'ERR can not run a non-sync execution inside a MULTI/LUA (blocking is not allowed) or on loading.'
const ID_CHARSET_TEXT = "ID must be compose of: ['A'-'Z' | 'a'-'z' | '0' - '9' | '-' | '_']"

/** RG commands of registration features gearbox does not have yet: they answer a clear error. */
export const REGISTRATION_COMMANDS: ReadonlySet<string> = new Set<string>()

const utf8 = new TextEncoder()
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
const bulk = (value: string): Uint8Array => utf8.encode(value)
const error = (message: string): NestedReplyError => new NestedReplyError(message)

/** RedisGears core settings with their defaults (spec §4.1); RG.CONFIGGET answers them as integers. */
const CORE_SETTINGS: Readonly<Record<string, { readonly value: number; readonly runtime: boolean }>> = {
  MaxExecutions: { value: 1000, runtime: true },
  MaxExecutionsPerRegistration: { value: 100, runtime: true },
  ProfileExecutions: { value: 0, runtime: true },
  ExecutionMaxIdleTime: { value: 5000, runtime: true },
  SendMsgRetries: { value: 3, runtime: true },
  ExecutionThreads: { value: 3, runtime: false },
}

/** Spec §3: one result (or a whole reply) as RESP. */
export function gearsReply(value: ExecuteReply): RedisReply {
  if (value === null || typeof value === 'bigint' || value instanceof Uint8Array) return value
  if (typeof value === 'number') return Number.isInteger(value) ? value : bulk(value.toFixed(6))
  if (typeof value === 'string') {
    if (value.length > 1 && value.startsWith('+')) return value.slice(1)
    if (value.length > 1 && value.startsWith('-')) return error(value.slice(1))
    return bulk(value)
  }
  return value.map(gearsReply)
}

/** An RG reply built by rg-replies.ts: labels and texts are bulk strings. */
function shapeReply(value: ExecuteReply): RedisReply {
  if (typeof value === 'string') return bulk(value)
  if (Array.isArray(value)) return (value as readonly ExecuteReply[]).map(shapeReply)
  return value as RedisReply
}

/** The error reply for a failure: Redis-style text (no CR/LF: the encoder flattens them). */
function failure(err: unknown): NestedReplyError {
  if (err instanceof GuestError) return error(`${err.guestName}: ${err.message}`)
  if (err instanceof GearboxError) return error(err.message)
  return error(err instanceof Error ? err.message : String(err))
}

interface JsExecuteOptions extends SessionOptions {
  readonly source: string
  readonly unblocking: boolean
}

/** Parses RG.PYEXECUTE / RG.JSEXECUTE's arguments (spec §4 grammar); a string is the error text. */
export function parseExecuteArgs(args: readonly Uint8Array[]): JsExecuteOptions | string {
  const script = args[1]
  if (script === undefined) return "ERR wrong number of arguments for 'RG.JSEXECUTE' command"
  let unblocking = false
  let upgrade = false
  let id: string | undefined
  let description: string | undefined
  let replaceWith: string | undefined
  for (let i = 2; i < args.length; i++) {
    const token = text(args[i]!)
    const upper = token.toUpperCase()
    if (upper === 'UNBLOCKING') unblocking = true
    else if (upper === 'UPGRADE') upgrade = true
    else if (upper === 'FORCE_REINSTALL_REQUIREMENTS') continue
    else if (upper === 'ID') {
      const given = args[++i]
      if (given === undefined) return 'ID is missing'
      id = text(given)
      if (!/^[A-Za-z0-9_-]+$/.test(id)) return ID_CHARSET_TEXT
    } else if (upper === 'DESCRIPTION') {
      const given = args[++i]
      if (given === undefined) return 'DESCRIPTION is missing'
      description = text(given)
    } else if (upper === 'REPLACE_WITH') {
      const old = args[++i]
      if (old === undefined) return 'REPLACE_WITH is missing'
      replaceWith = text(old)
    } else if (upper === 'REQUIREMENTS') {
      if (i + 1 < args.length) {
        return 'REQUIREMENTS are not supported by gearbox: JavaScript functions cannot install packages (give REQUIREMENTS with no names, or leave it out)'
      }
      break
    } else return `Unknown arguments were given: ${token}`
  }
  // The session rules (an existing ID, REPLACE_WITH's target) are checked by Gearbox.execute.
  return {
    source: text(script),
    unblocking,
    ...(upgrade ? { upgrade } : {}),
    ...(id === undefined ? {} : { id }),
    ...(description === undefined ? {} : { description }),
    ...(replaceWith === undefined ? {} : { replaceWith }),
  }
}

export interface RgContext {
  /** The client is inside MULTI. */
  readonly inMulti: boolean
}

/** Runs one RG.* command (`name` upper-cased). */
export async function runRgCommand(gears: ServerGears, name: string, args: readonly Uint8Array[], ctx: RgContext): Promise<RgReply> {
  const arity = (n: number): NestedReplyError | undefined =>
    args.length === n ? undefined : error(`ERR wrong number of arguments for '${text(args[0]!)}' command`)
  try {
    switch (name) {
      case 'RG.PYEXECUTE':
      case 'RG.JSEXECUTE': {
        if (ctx.inMulti) return error(MULTI_TEXT)
        const parsed = parseExecuteArgs(args)
        if (typeof parsed === 'string') return error(parsed)
        const { source, ...executeOptions } = parsed
        const language = name === 'RG.PYEXECUTE' ? 'python' : 'js'
        let reply: ExecuteReply
        try {
          reply = await gears.execute(source, { ...executeOptions, language })
        } catch (err) {
          // A Python script's error reply is its traceback, as RedisGears replies.
          if (language === 'python' && err instanceof GuestError && err.guestStack?.startsWith('Traceback') === true) return error(err.guestStack)
          throw err
        }
        // 'OK' (no run) is a status; an unblocking run's id is a bulk string; [results, errors] by §3.
        if (reply === 'OK') return 'OK'
        if (typeof reply === 'string') return bulk(reply)
        if (Array.isArray(reply) && reply.length === 2) {
          const [results, errors] = reply as unknown as readonly [readonly ExecuteReply[], readonly string[]]
          return [results.map(gearsReply), errors.map((e) => bulk(e))]
        }
        return gearsReply(reply)
      }
      case 'RG.DUMPEXECUTIONS':
        return arity(1) ?? shapeReply(dumpExecutionsReply(gears.executions.list()))
      case 'RG.GETEXECUTION': {
        if (args.length < 2 || args.length > 3) return error("ERR wrong number of arguments for 'RG.GETEXECUTION' command")
        const where = args[2] === undefined ? undefined : text(args[2]).toUpperCase()
        if (where !== undefined && where !== 'SHARD' && where !== 'CLUSTER') return error('unknown subcommand')
        if (where === 'CLUSTER' && gears.mode === 'standalone') return error('no cluster detected - use `RG.GETEXECUTION <id> [SHARD]` instead')
        return shapeReply(getExecutionReply(gears.executions.get(text(args[1]!))))
      }
      case 'RG.GETRESULTS': {
        const bad = arity(2)
        if (bad) return bad
        return resultsShape(getResultsReply(gears.executions.results(text(args[1]!))))
      }
      case 'RG.GETRESULTSBLOCKING': {
        const bad = arity(2)
        if (bad) return bad
        if (ctx.inMulti) return error(MULTI_TEXT)
        return resultsShape(getResultsReply(await gears.executions.resultsBlocking(text(args[1]!))))
      }
      case 'RG.DROPEXECUTION': {
        const bad = arity(2)
        if (bad) return bad
        gears.executions.drop(text(args[1]!))
        return 'OK'
      }
      case 'RG.ABORTEXECUTION': {
        const bad = arity(2)
        if (bad) return bad
        await gears.executions.abort(text(args[1]!))
        return 'OK'
      }
      case 'RG.CONFIGGET':
        if (args.length < 2) return error("ERR wrong number of arguments for 'RG.CONFIGGET' command")
        return args.slice(1).map((key) => configGet(gears.config, text(key)))
      case 'RG.CONFIGSET': {
        if (args.length < 2) return error("ERR wrong number of arguments for 'RG.CONFIGSET' command")
        const out: RedisReply[] = []
        for (let i = 1; i < args.length; i += 2) out.push(configSet(gears.config, text(args[i]!), args[i + 1]))
        return out
      }
      case 'RG.INFOCLUSTER': {
        if (gears.mode === 'standalone') return bulk('no cluster mode')
        const shards = await gears.shards()
        const first = shards[0]
        return [
          bulk('MyId'),
          bulk(first?.id ?? ''),
          shards.map((s) => [
            bulk('id'), bulk(s.id), bulk('ip'), bulk(s.host), bulk('port'), s.port,
            bulk('unixSocket'), bulk('None'), bulk('runid'), bulk(''),
            bulk('minHslot'), s.slots[0]?.[0] ?? 0, bulk('maxHslot'), s.slots[s.slots.length - 1]?.[1] ?? 0,
          ]),
        ]
      }
      case 'RG.REFRESHCLUSTER':
        await gears.shards()
        return 'OK'
      case 'RG.PYSTATS': {
        const bad = arity(1)
        if (bad) return bad
        const memory = gears.sandboxMemory()
        return [bulk('TotalAllocated'), memory.total, bulk('PeakAllocated'), memory.peak, bulk('CurrAllocated'), memory.current]
      }
      case 'RG.TRIGGER':
      case 'RG.TRIGGERONKEY': {
        if (ctx.inMulti) return error(TRIGGER_MULTI_TEXT)
        const onKey = name === 'RG.TRIGGERONKEY'
        if (args.length < (onKey ? 3 : 2)) return error(`ERR wrong number of arguments for '${text(args[0]!)}' command`)
        const trigger = text(args[1]!)
        const key = onKey ? text(args[2]!) : undefined
        const rest = args.slice(onKey ? 3 : 2).map(text)
        // The results by §3, or (Gearbox.trigger rejects) the first error as the whole reply.
        return (await gears.trigger(trigger, rest, key)).map((v) => gearsReply(v as ExecuteReply))
      }
      case 'RG.DUMPREGISTRATIONS': {
        const bad = arity(1)
        if (bad) return bad
        return gears.registrations.list().map(dumpRegistration)
      }
      case 'RG.UNREGISTER': {
        if (args.length < 2 || args.length > 3) return error("ERR wrong number of arguments for 'RG.UNREGISTER' command")
        const abortPending = args.length === 3 && text(args[2]!).toLowerCase() === 'abortpending'
        await gears.registrations.unregister(text(args[1]!), { abortPending })
        return 'OK'
      }
      case 'RG.PAUSEREGISTRATIONS':
      case 'RG.UNPAUSEREGISTRATIONS': {
        const pause = name === 'RG.PAUSEREGISTRATIONS'
        // RedisGears checks argc == 2: one id.
        if (args.length < 2) return error(`ERR no registration to ${pause ? 'pause' : 'unpause'}`)
        if (args.length > 2) return error(`ERR wrong number of arguments for '${text(args[0]!)}' command`)
        const id = text(args[1]!)
        await (pause ? gears.registrations.pause(id) : gears.registrations.unpause(id))
        return 'OK'
      }
      case 'RG.CLEARREGISTRATIONSSTATS': {
        const bad = arity(1)
        if (bad) return bad
        gears.registrations.clearStats()
        return 'OK'
      }
      case 'RG.PYDUMPSESSIONS':
        return dumpSessions(gears.sessions.list(), gears.registrations.list(), args.slice(1).map(text))
      case 'RG.PYEXECUTEREMOTE':
        return error('Execute remote is not longer supported')
      case 'RG.PYFREEINTERPRETER':
        return error('Free interpreter is not longer supported')
      default:
        if (REGISTRATION_COMMANDS.has(name)) {
          if (ctx.inMulti && (name === 'RG.TRIGGER' || name === 'RG.TRIGGERONKEY')) return error(TRIGGER_MULTI_TEXT)
          return error(`ERR ${name} is not built yet in gearbox serve (sessions come with persisted registrations)`)
        }
        return error(`ERR unknown command '${text(args[0]!)}', gearbox serve does not implement it`)
    }
  } catch (err) {
    return failure(err)
  }
}

/**
 * One RG.DUMPREGISTRATIONS entry (spec §4): `['id', id, 'reader', r, 'desc', d|nil,
 * 'RegistrationData', [...], 'PD', session, 'ExecutionThreadPool', 'DefaultPool']`, labels and
 * texts as bulk strings, counters as integers, avgRunDurationMS as a double's text.
 */
function dumpRegistration(info: RegistrationInfo): RedisReply {
  const d = info.RegistrationData
  const data: RedisReply[] = [
    bulk('mode'), bulk(d.mode),
    bulk('numTriggered'), d.numTriggered,
    bulk('numSuccess'), d.numSuccess,
    bulk('numFailures'), d.numFailures,
    bulk('numAborted'), d.numAborted,
    bulk('lastRunDurationMS'), Math.round(d.lastRunDurationMS),
    bulk('totalRunDurationMS'), Math.round(d.totalRunDurationMS),
    bulk('avgRunDurationMS'), bulk(String(d.avgRunDurationMS)),
    // StreamReader registrations add their lag estimates before lastError.
    ...(d.lastEstimatedLagMS === undefined ? [] : [bulk('lastEstimatedLagMS'), Math.round(d.lastEstimatedLagMS), bulk('avgEstimatedLagMS'), bulk(String(d.avgEstimatedLagMS ?? 0))]),
    bulk('lastError'), d.lastError === null ? null : bulk(d.lastError),
    bulk('args'), d.args.map((a) => argReply(a)),
    bulk('status'), bulk(d.status),
  ]
  return [
    bulk('id'), bulk(info.id),
    bulk('reader'), bulk(info.reader),
    bulk('desc'), info.desc === null ? null : bulk(info.desc),
    bulk('RegistrationData'), data,
    bulk('PD'), bulk(`{'sessionId':'${info.session}', 'depsList':[]}`),
    bulk('ExecutionThreadPool'), bulk('DefaultPool'),
  ]
}

/**
 * RG.PYDUMPSESSIONS `[VERBOSE] [DEAD] [SESSIONS s1 s2 ...]`: one 16-element entry per session
 * (VERBOSE: the registrations as RG.DUMPREGISTRATIONS entries without PD); under SESSIONS, a
 * missing one is the string `Session <s> does not exists`. DEAD lists nothing more: gearbox keeps
 * no dead sessions (a session without registrations ends with its script).
 */
function dumpSessions(sessions: readonly SessionInfo[], registrations: readonly RegistrationInfo[], options: readonly string[]): RedisReply {
  let verbose = false
  let wanted: string[] | undefined
  for (let i = 0; i < options.length; i++) {
    const upper = options[i]!.toUpperCase()
    if (upper === 'VERBOSE') verbose = true
    else if (upper === 'DEAD') continue
    else if (upper === 'SESSIONS') {
      wanted = options.slice(i + 1)
      break
    } else return error(`Unknown option ${options[i]!}`)
  }
  const entry = (s: SessionInfo): RedisReply => [
    bulk('ID'), bulk(s.ID),
    bulk('sessionDescription'), s.sessionDescription === null ? null : bulk(s.sessionDescription),
    bulk('refCount'), s.refCount,
    bulk('linked'), bulk(s.linked),
    bulk('dead'), bulk(s.dead ? 'true' : 'false'),
    bulk('requirementInstallationNeeded'), s.requirementInstallationNeeded,
    bulk('requirements'), s.requirements.map(bulk),
    bulk('registrations'),
    verbose
      ? s.registrations.map((id) => {
          const info = registrations.find((r) => r.id === id)
          return info === undefined ? bulk(id) : (dumpRegistration(info) as RedisReply[]).slice(0, 8)
        })
      : s.registrations.map(bulk),
  ]
  if (wanted === undefined) return sessions.map(entry)
  return wanted.map((id) => {
    const found = sessions.find((s) => s.ID === id)
    return found === undefined ? bulk(`Session ${id} does not exists`) : entry(found)
  })
}

/** A registration argument: lists stay lists, null is nil, numbers integers, the rest bulk text. */
function argReply(value: WireValue): RedisReply {
  if (value === null) return null
  if (Array.isArray(value)) return value.map(argReply)
  if (typeof value === 'number') return Number.isInteger(value) ? value : bulk(String(value))
  if (typeof value === 'boolean') return value ? 1 : 0
  if (typeof value === 'string') return bulk(value)
  if (value instanceof Uint8Array || typeof value === 'bigint') return value
  return bulk(JSON.stringify(value))
}

/** `[[results], [errors]]`: results by §3, errors as bulk strings. */
function resultsShape(reply: ExecuteReply): RedisReply {
  const [results, errors] = reply as unknown as readonly [readonly ExecuteReply[], readonly string[]]
  return [results.map(gearsReply), errors.map((e) => bulk(e))]
}

function configGet(config: Readonly<Record<string, string>>, key: string): RedisReply {
  const core = CORE_SETTINGS[key]
  if (core !== undefined) {
    const set = coreSetting(config, key)
    const n = set === undefined ? NaN : Number(set)
    return Number.isSafeInteger(n) ? n : core.value
  }
  if (Object.prototype.hasOwnProperty.call(config, key)) return bulk(config[key]!)
  return error(`(error) Unsupported config parameter: ${key}`)
}

function configSet(config: Record<string, string>, key: string, value: Uint8Array | undefined): RedisReply {
  if (value === undefined) return error(`(error) Value was not given to ${key}`)
  const coreName = Object.keys(CORE_SETTINGS).find((k) => k.toLowerCase() === key.toLowerCase())
  if (coreName !== undefined) {
    if (!CORE_SETTINGS[coreName]!.runtime) return error(`(error) Config value ${key} not modifiable at runtime`)
    const n = Number(text(value))
    if (!Number.isSafeInteger(n) || n < 0) return error(`(error) Failed setting config value ${key}`)
    // The core settings live in the same dictionary, under their canonical names.
    for (const k of Object.keys(config)) if (k.toLowerCase() === key.toLowerCase()) delete config[k]
    config[coreName] = String(n)
    return 'OK'
  }
  config[key] = text(value)
  return 'OK - value was saved in extra config dictionary'
}
