/**
 * The command path of gearbox serve: where functions sit between a server client and Redis.
 *
 * - Command hooks (CommandReader `hook=`, optional `keyprefix`): a hooked command runs the newest
 *   matching hook's execution over `[command as typed, ...args]`; its `call_next(...args)` runs the
 *   next matching hook or, at the end of the chain, the command itself (as the client would: its
 *   credentials, its pinned connection); the hook's one result, by spec §3, is the client's reply.
 * - Linked commands (KeysReader `commands=[...]`, and mode 'sync'): the client's command runs, then
 *   the keyspace events it caused are claimed for it (a fence published on the shard's keyspace
 *   channel marks the end of its events on the subscriber), the executions they trigger run, the
 *   client waits for them, and `override_reply(value)` replaces its reply.
 * - Sync registrations (hooks and KeysReader) hold their shard: other server clients' commands on
 *   that shard wait until the execution finished (ShardLocks), so a sync execution is atomic with
 *   respect to every client of the server (not to clients that talk to Redis directly).
 */
import { keySlot } from '../cluster/slots.js'
import { shardOwningSlot } from '../cluster/topology.js'
import { RedisBlobReplyError, RedisReplyError } from '../errors.js'
import { prefixMatches } from '../gears/flow.js'
import type { CommandPathEntry, CommandPathLinker, LinkedCommand } from '../gears/registrations.js'
import { commandKeyIndexes } from '../redis/command-metadata.js'
import type { RedisArg, RedisBackend, RedisReply, ShardInfo } from '../redis/types.js'
import { NestedReplyError, RespNullArray, type RespValue } from '../resp/types.js'
import { GuestFacingError } from '../runtime/guest-facing-error.js'
import type { HostOp } from '../runtime/handler.js'
import { redisReplyToWire } from '../runtime/reply.js'
import type { WireValue } from '../runtime/wire.js'
import { gearsReply } from './rg-commands.js'

/** What the command path needs of the registrations (a RegistrationRegistry). */
export interface CommandPathRegistry {
  readonly version: number
  commandPathEntries(): CommandPathEntry[]
  runCommandExecution(
    id: string,
    record: WireValue,
    shard: ShardInfo | undefined,
    ops: Readonly<Record<string, HostOp>>,
  ): Promise<{ readonly results: readonly WireValue[]; readonly errors: readonly string[] }>
  attachCommandPath(linker: CommandPathLinker | undefined): Promise<void>
  triggerMode(name: string): string | undefined
}

/** How the command path sends a command for a client (its credentials, its pinned connection). */
export interface PathClient {
  readonly inMulti: boolean
  /** Sends `args` as the client's own command; `resp2`: ask for RESP2 replies (call_next converts them). */
  send(args: readonly RedisArg[], resp2: boolean): Promise<RespValue>
}

/** RedisGears' text for a non-sync execution inside MULTI. */
export const NON_SYNC_IN_MULTI_TEXT = 'ERR can not run a non-sync execution inside a MULTI/LUA (blocking is not allowed) or on loading.'
/** gearbox's text for a sync hook inside MULTI (a function cannot run inside Redis' EXEC). */
export const SYNC_HOOK_IN_MULTI_TEXT = "ERR gearbox serve cannot run a sync command hook inside MULTI (a function cannot run inside Redis' EXEC)"
export const HOOK_RESULT_COUNT_TEXT = 'Command hook must return exactly one result'

/** The key the fences are published under (`__keyspace@0__:<FENCE_KEY>`); never a user key event. */
export const FENCE_KEY = '__gearbox_fence__'
/** How long a linked command waits for its fence on the subscriber before it stops collecting events. */
const FENCE_TIMEOUT_MS = 2000

const decoder = new TextDecoder()
const argString = (arg: RedisArg): string => (typeof arg === 'string' ? arg : decoder.decode(arg))

interface HookEntry {
  readonly id: string
  readonly sync: boolean
  readonly keyprefix: string | null
}

interface LinkEntry {
  readonly sync: boolean
  readonly prefix: string
  /** Upper-cased command names, or null (sync without `commands=`: any command). */
  readonly commands: ReadonlySet<string> | null
}

interface Tables {
  readonly version: number
  /** Hooks by upper-cased command, newest first. */
  readonly hooks: ReadonlyMap<string, readonly HookEntry[]>
  readonly links: readonly LinkEntry[]
  /** Names a linked registration names (`commands=`), upper-cased; null when one applies to any command. */
  readonly linkedNames: ReadonlySet<string> | null
}

/** What to do with one client command. */
export type CommandPlan =
  | { readonly kind: 'hook'; readonly chain: readonly HookEntry[]; readonly index: number }
  | { readonly kind: 'link'; readonly command: string; readonly sync: boolean; readonly keys: readonly string[] }

/** Per-shard mutual exclusion of sync executions; other clients' commands wait on it. */
class ShardLocks {
  readonly #tails = new Map<string, Promise<void>>()

  get any(): boolean {
    return this.#tails.size > 0
  }

  /** Resolves with the release function once `shardId` is this caller's. */
  acquire(shardId: string): Promise<() => void> {
    const previous = this.#tails.get(shardId) ?? Promise.resolve()
    let release!: () => void
    const mine = new Promise<void>((resolve) => (release = resolve))
    const tail = previous.then(() => mine)
    this.#tails.set(shardId, tail)
    return previous.then(() => () => {
      release()
      if (this.#tails.get(shardId) === tail) this.#tails.delete(shardId)
    })
  }

  /** Settles when every holder and waiter of `shardId` so far is done; undefined when none. */
  wait(shardId: string): Promise<void> | undefined {
    return this.#tails.get(shardId)
  }
}

/** One client command whose keyspace events are being collected. */
class Link implements LinkedCommand {
  readonly executions: Promise<unknown>[] = []
  override: { readonly value: RespValue } | undefined
  #overrides = 0

  constructor(
    readonly command: string,
    readonly shardId: string,
    readonly keys: ReadonlySet<string>,
  ) {}

  ops(): Readonly<Record<string, HostOp>> {
    return {
      'command.overrideReply': (args) => {
        // The first call wins; RedisGears refuses a second one.
        if (this.#overrides++ > 0) throw new GuestFacingError('Can only override reply once')
        const value = Array.isArray(args) ? (args as readonly WireValue[])[0] : undefined
        this.override = { value: commandReply(value ?? null) }
        return null
      },
    }
  }

  track(execution: Promise<unknown>): void {
    this.executions.push(execution)
  }
}

/**
 * A function's value as a client reply (spec §3): strings with '+'/'-' are statuses/errors, other
 * strings bulk, integers integers, other numbers "%lf" text, booleans 1/0, lists arrays, bytes
 * bulk, null nil; an object (JavaScript's dict) as its JSON text.
 */
export function commandReply(value: WireValue): RespValue {
  if (typeof value === 'boolean') return value ? 1 : 0
  if (Array.isArray(value)) return (value as readonly WireValue[]).map(commandReply)
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) return new TextEncoder().encode(JSON.stringify(value))
  return gearsReply(value as string | number | bigint | null | Uint8Array)
}

/** A reply as the guest sees a command's reply (call_next returns it; an error raises). */
function replyToWire(reply: RespValue): WireValue {
  if (reply instanceof NestedReplyError) throw new RedisReplyError(reply.message)
  if (reply instanceof RespNullArray) return null
  return redisReplyToWire(reply as RedisReply)
}

export class CommandPath implements CommandPathLinker {
  readonly #registry: CommandPathRegistry
  readonly #backend: RedisBackend
  readonly #locks = new ShardLocks()
  #tables: Tables = { version: -1, hooks: new Map(), links: [], linkedNames: new Set() }
  readonly #links: Link[] = []
  readonly #fences = new Map<string, () => void>()
  #fenceCounter = 0

  constructor(registry: CommandPathRegistry, backend: RedisBackend) {
    this.#registry = registry
    this.#backend = backend
  }

  /** Attaches to the registry: hooks, `commands=` and sync registrations become active. */
  attach(): Promise<void> {
    return this.#registry.attachCommandPath(this)
  }

  detach(): Promise<void> {
    return this.#registry.attachCommandPath(undefined)
  }

  #current(): Tables {
    const version = this.#registry.version
    if (this.#tables.version === version) return this.#tables
    const hooks = new Map<string, HookEntry[]>()
    const links: LinkEntry[] = []
    for (const e of this.#registry.commandPathEntries()) {
      if (e.hook !== null) {
        const name = e.hook.toUpperCase()
        const chain = hooks.get(name) ?? []
        // Newest first, as RedisGears' hook list.
        chain.unshift({ id: e.id, sync: e.mode === 'sync', keyprefix: e.keyprefix })
        hooks.set(name, chain)
      } else if (e.keysPrefix !== null) {
        links.push({
          sync: e.mode === 'sync',
          prefix: e.keysPrefix,
          commands: e.commands === null ? null : new Set(e.commands.map((c) => c.toUpperCase())),
        })
      }
    }
    let linkedNames: Set<string> | null = new Set()
    for (const l of links) {
      if (l.commands === null) linkedNames = null
      else if (linkedNames !== null) for (const c of l.commands) linkedNames.add(c)
    }
    this.#tables = { version, hooks, links, linkedNames }
    return this.#tables
  }

  /**
   * True when the command path has nothing to do with a command named `name` (upper-cased) now: no
   * hook on it, no linked registration that could name it, no sync execution holding a shard. The
   * server's fast path forwards only such commands; a registration made later is seen by the next
   * command (the tables follow the registry's version).
   */
  passes(name: string): boolean {
    if (this.#locks.any) return false
    const tables = this.#current()
    if (tables.hooks.has(name)) return false
    const linked = tables.linkedNames
    return linked !== null && !linked.has(name)
  }

  /**
   * What the command path does with a client's command (`name` upper-cased): undefined when
   * nothing (the fast path: no hook, no linked registration applies).
   */
  plan(name: string, args: readonly Uint8Array[], inMulti: boolean): CommandPlan | undefined {
    const tables = this.#current()
    if (tables.hooks.size === 0 && tables.links.length === 0) return undefined
    const chain = tables.hooks.get(name)
    if (chain !== undefined) {
      const index = nextHook(chain, 0, args)
      if (index !== undefined) return { kind: 'hook', chain, index }
    }
    // Inside MULTI a command is not linked (RedisGears: the original reply; override_reply has no ctx).
    if (tables.links.length === 0 || inMulti) return undefined
    let keys: string[] | undefined
    let sync = false
    let linked = false
    for (const l of tables.links) {
      if (l.commands !== null && !l.commands.has(name)) continue
      keys ??= commandKeyIndexes(args).map((i) => argString(args[i]!))
      if (!keys.some((k) => prefixMatches(l.prefix, k))) continue
      linked = true
      if (l.sync) sync = true
    }
    if (!linked || keys === undefined) return undefined
    return { kind: 'link', command: name.toLowerCase(), sync, keys }
  }

  /** Runs a planned command for `client`; resolves with the client's reply. */
  run(plan: CommandPlan, args: readonly Uint8Array[], client: PathClient): Promise<RespValue> {
    if (plan.kind === 'hook') return this.#runHook(plan.chain, plan.index, args, client)
    return this.#runLinked(plan, args, client)
  }

  /**
   * Where another client's forwarded command must wait (a sync execution holds its shard), or
   * undefined (the common case: no sync execution running).
   */
  gate(args: readonly Uint8Array[]): Promise<void> | undefined {
    if (!this.#locks.any) return undefined
    return this.#shardOf(args).then((shard) => this.#locks.wait(shard.id))
  }

  /** RG.TRIGGER / RG.TRIGGERONKEY of a sync trigger hold the shard (of the key, or the first) while they run. */
  async withTrigger<T>(name: string, key: string | undefined, work: () => Promise<T>): Promise<T> {
    if (this.#registry.triggerMode(name) !== 'sync') {
      return work()
    }
    const shard = await this.#shardOfKeys(key === undefined ? [] : [key])
    const release = await this.#locks.acquire(shard.id)
    try {
      return await work()
    } finally {
      release()
    }
  }

  // ---- hooks -------------------------------------------------------------------------------

  async #runHook(chain: readonly HookEntry[], index: number, args: readonly RedisArg[], client: PathClient, holding = false): Promise<RespValue> {
    const entry = chain[index]!
    if (client.inMulti) {
      // Redis queues the command; at EXEC its place in the reply holds the error, as in RedisGears.
      const text = entry.sync ? SYNC_HOOK_IN_MULTI_TEXT : NON_SYNC_IN_MULTI_TEXT
      return client.send(['EVAL', 'return redis.error_reply(ARGV[1])', '0', text], false)
    }
    const shard = await this.#shardOfKeys(commandKeyIndexes(args).map((i) => argString(args[i]!)))
    let release: (() => void) | undefined
    if (entry.sync && !holding) release = await this.#locks.acquire(shard.id)
    else if (!holding) await this.#locks.wait(shard.id)
    try {
      const ops: Record<string, HostOp> = {
        'command.callNext': async (callArgs) => {
          const next: RedisArg[] = [args[0]!, ...commandArgs(callArgs)]
          const nextIndex = nextHook(chain, index + 1, next)
          if (nextIndex !== undefined) return replyToWire(await this.#runHook(chain, nextIndex, next, client, holding || release !== undefined))
          return replyToWire(await client.send(next, true))
        },
      }
      const record: WireValue = args.map(argString)
      const outcome = await this.#registry.runCommandExecution(entry.id, record, shard, ops)
      const first = outcome.errors[0]
      if (first !== undefined) return new NestedReplyError(first)
      if (outcome.results.length !== 1) return new NestedReplyError(HOOK_RESULT_COUNT_TEXT)
      return commandReply(outcome.results[0]!)
    } finally {
      release?.()
    }
  }

  // ---- linked commands ---------------------------------------------------------------------

  async #runLinked(plan: Extract<CommandPlan, { kind: 'link' }>, args: readonly RedisArg[], client: PathClient): Promise<RespValue> {
    const shard = await this.#shardOfKeys(plan.keys)
    let release: (() => void) | undefined
    if (plan.sync) release = await this.#locks.acquire(shard.id)
    else await this.#locks.wait(shard.id)
    try {
      const link = new Link(plan.command, shard.id, new Set(plan.keys))
      this.#links.push(link)
      let reply: RespValue
      try {
        reply = await client.send(args, false).catch((error: unknown) => {
          if (error instanceof RedisReplyError) return new NestedReplyError(error.message, error instanceof RedisBlobReplyError)
          throw error
        })
        // Every event the command caused reached the subscriber before the fence does.
        await this.#fence(shard)
      } finally {
        this.#links.splice(this.#links.indexOf(link), 1)
      }
      await Promise.allSettled(link.executions)
      return link.override?.value ?? reply
    } finally {
      release?.()
    }
  }

  /** Publishes a marker on the shard's keyspace channel and waits until its subscriber saw it. */
  async #fence(shard: ShardInfo): Promise<void> {
    const token = String(++this.#fenceCounter)
    const id = `${shard.id}\u0000${token}`
    let timer: ReturnType<typeof setTimeout> | undefined
    const seen = new Promise<void>((resolve) => {
      this.#fences.set(id, resolve)
      timer = setTimeout(resolve, FENCE_TIMEOUT_MS)
    })
    try {
      const receivers = await this.#backend.call(['PUBLISH', `__keyspace@0__:${FENCE_KEY}`, token], { internal: true, shard: shard.id })
      // Nobody subscribed (no keyspace feed): no event can come.
      if (receivers !== 0) await seen
    } finally {
      clearTimeout(timer)
      this.#fences.delete(id)
    }
  }

  claim(shard: ShardInfo, key: string, event: string): LinkedCommand | 'fence' | undefined {
    if (key === FENCE_KEY) {
      this.#fences.get(`${shard.id}\u0000${event}`)?.()
      return 'fence'
    }
    for (const link of this.#links) if (link.shardId === shard.id && link.keys.has(key)) return link
    return undefined
  }

  // ---- shards ------------------------------------------------------------------------------

  #shardOf(args: readonly Uint8Array[]): Promise<ShardInfo> {
    if (this.#backend.mode === 'standalone') return this.#backend.currentShard()
    const indexes = commandKeyIndexes(args)
    return this.#shardOfKeys(indexes.length === 0 ? [] : [argString(args[indexes[0]!]!)])
  }

  async #shardOfKeys(keys: readonly string[]): Promise<ShardInfo> {
    if (this.#backend.mode === 'standalone') return this.#backend.currentShard()
    const slot = keys[0] === undefined ? 0 : keySlot(keys[0])
    return shardOwningSlot(await this.#backend.shards(), slot) ?? (await this.#backend.currentShard())
  }
}

/** The first hook of `chain` from `from` on that applies to `args` (its keyprefix matches a key), or undefined. */
function nextHook(chain: readonly HookEntry[], from: number, args: readonly RedisArg[]): number | undefined {
  let keys: string[] | undefined
  for (let i = from; i < chain.length; i++) {
    const prefix = chain[i]!.keyprefix
    if (prefix === null) return i
    keys ??= commandKeyIndexes(args).map((k) => argString(args[k]!))
    // RedisGears compares the prefix's bytes (strncmp), not the KeysReader prefix rule.
    if (keys.some((k) => k.startsWith(prefix))) return i
  }
  return undefined
}

/** call_next's arguments: strings and bytes as they are (the guest converted the rest with String()). */
function commandArgs(args: WireValue): RedisArg[] {
  if (!Array.isArray(args)) return []
  const out: RedisArg[] = []
  for (const a of args as readonly WireValue[]) {
    if (typeof a === 'string' || a instanceof Uint8Array) out.push(a)
    else out.push(String(a))
  }
  return out
}
