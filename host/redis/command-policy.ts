/**
 * Which commands a gearbox function may send, and in what form.
 *
 * The check mirrors the function user's Redis ACL (function-acl.ts) exactly: the same rule list
 * is evaluated here over Redis 7.0's command table (acl-check.ts), so a command is refused here
 * iff that ACL refuses it, with a text naming the rule and how to widen it. Redis enforces the
 * same rules for the commands and for any Lua a function runs. On top, rules only the host can
 * apply, because every execution shares gearbox's connections:
 * - MULTI/EXEC/DISCARD/WATCH/UNWATCH (the ACL allows them: atomic() runs them on dedicated
 *   connections) are refused on the shared connection;
 * - commands that change or break the connection's state (SELECT, CLIENT, SUBSCRIBE, ...; AUTH,
 *   HELLO, QUIT and RESET, which Redis checks no ACL for) and WAIT are refused whatever the
 *   options say;
 * - blocking commands never block: they are rewritten to their non-blocking form or refused with
 *   Redis's own error (non-blocking.ts). BLPOP and the other @blocking commands are refused by
 *   the ACL, so a blocking form can never reach Redis; their non-blocking twins are checked instead.
 *
 * Unknown commands pass: Redis answers them with its own `ERR unknown command` text.
 */
import { CommandDeniedError, InvalidArgumentError } from '../errors.js'
import { AclEvaluation, aclRuleProblem, commandEntry } from './acl-check.js'
import { COMMAND_TABLE } from './command-table.generated.js'
import { argText, commandKeys } from './command-metadata.js'
import {
  CONNECTION_STATE_COMMANDS,
  functionAclCommandRules,
  NEWER_BLOCKING_COMMANDS,
  UNBOUNDED_WAIT_COMMANDS,
  type FunctionAclOptions,
  type FunctionAclRule,
} from './function-acl.js'
import { nonBlockingForm } from './non-blocking.js'
import { isReserved, RESERVED_PREFIX } from './reserved-keys.js'
import type { PreparedCommand, RedisArg } from './types.js'

/** The default `denyCommands`: server administration and whole-keyspace deletion. */
export const DEFAULT_DENY_COMMANDS: readonly string[] = Object.freeze([
  'SHUTDOWN',
  'DEBUG',
  'MODULE',
  'CONFIG SET',
  'ACL SETUSER',
  'FLUSHALL',
  'FLUSHDB',
  'REPLICAOF',
  'SLAVEOF',
])

export interface CommandPolicyOptions {
  /**
   * Commands refused to functions, on top of the built-in rules. Each entry is a command
   * (`'FLUSHALL'`), a command and its subcommand (`'CONFIG SET'`) or an ACL category
   * (`'@write'`), matched case-insensitively. Replaces the default list; `[]` denies nothing
   * extra. Applied after `allowCommands`. Default: {@link DEFAULT_DENY_COMMANDS}.
   */
  readonly denyCommands?: readonly string[]
  /**
   * Commands the built-in ACL rules refuse that functions may run anyway, in the same forms
   * (`'EVAL'`, `'OBJECT FREQ'`, `'@scripting'`). Cannot re-allow the commands that change the
   * shared connection's state, transactions (use atomic()) or WAIT. Default: none.
   */
  readonly allowCommands?: readonly string[]
}

const TRANSACTION = new Set(['multi', 'exec', 'discard', 'watch', 'unwatch'])
/** Commands Redis never checks against an ACL (`no_auth`): only the host can refuse them. */
const NO_ACL_CHECK = new Set(['auth', 'hello', 'quit', 'reset'])
const CONNECTION_STATE = new Set([...CONNECTION_STATE_COMMANDS, ...NO_ACL_CHECK])
const WAITING = new Set([...UNBOUNDED_WAIT_COMMANDS, ...NEWER_BLOCKING_COMMANDS])

/** Why a denied category is withheld from functions. */
const CATEGORY_REASONS: Readonly<Record<string, string>> = {
  admin: 'server administration',
  dangerous: 'it can harm the server or other clients',
  scripting: 'Lua scripts and Redis functions could run for as long as they like (Redis answers BUSY to everyone meanwhile) and grow the script cache',
  blocking: 'it would block the connection gearbox shares among all executions',
  pubsub: 'subscriptions would change the state of the connection gearbox shares',
}

const BUILT_IN = '(a built-in rule, not the denyCommands option)'

/** `'CONFIG SET'` → `config|set`; `'@Write'` → `@write`. Throws for entries the ACL cannot take. */
function aclEntry(option: 'denyCommands' | 'allowCommands', entry: string): string {
  const words = entry.trim().toLowerCase().split(/\s+/)
  const acl = words.join('|')
  const problem = words.length < 1 || words.length > 2 || words[0] === '' ? 'empty or more than two words' : aclRuleProblem(`+${acl}`)
  if (problem !== undefined || (words[0]!.startsWith('@') && words.length > 1)) {
    throw new InvalidArgumentError(
      `${option}: ${JSON.stringify(entry)} must be a command, a command and its subcommand, or an ACL category, e.g. 'FLUSHALL', 'CONFIG SET' or '@scripting' (${problem ?? 'a category takes no subcommand'})`,
    )
  }
  return acl
}

interface PolicyRule extends FunctionAclRule {
  /** For messages: `FLUSHALL`, `CONFIG SET`, `@admin`. */
  readonly display: string
}

function displayOf(acl: string): string {
  return acl.startsWith('@') ? acl : acl.replace('|', ' ').toUpperCase()
}

/**
 * Keys and channels under RESERVED_PREFIX are gearbox's own state: refused here with a clear text
 * (the function user's ACL refuses them too, as NOPERM). Key positions are looked up only when an
 * argument starts with the prefix, so other commands pay one prefix comparison per argument.
 */
function refuseReservedNames(name: string, args: readonly RedisArg[]): void {
  let suspect = false
  for (let i = 1; i < args.length && !suspect; i++) suspect = isReserved(args[i]!)
  if (!suspect) return
  const names = name === 'publish' || name === 'spublish' ? args.slice(1, 2) : commandKeys(args)
  if (!names.some(isReserved)) return
  throw new CommandDeniedError(
    `keys and channels starting with ${RESERVED_PREFIX} are gearbox's own (stored sessions, registrations, keyspace leases): functions may not use them ${BUILT_IN}`,
  )
}

export class CommandPolicy {
  readonly #acl: FunctionAclOptions
  readonly #rules: AclEvaluation<PolicyRule>
  readonly #deniedList: string

  constructor(options: CommandPolicyOptions = {}) {
    const deny = (options.denyCommands ?? DEFAULT_DENY_COMMANDS).map((e) => aclEntry('denyCommands', e))
    const allow = (options.allowCommands ?? []).map((e) => aclEntry('allowCommands', e))
    this.#acl = Object.freeze({ deny: Object.freeze([...new Set(deny)]), allow: Object.freeze([...new Set(allow)]) })
    this.#rules = new AclEvaluation(functionAclCommandRules(this.#acl).map((r) => ({ ...r, display: displayOf(r.rule.slice(1)) })))
    this.#deniedList = this.#acl.deny!.map(displayOf).join(', ') || '(empty)'
  }

  /**
   * The deny and allow entries as the function user's ACL takes them: pass to
   * `functionAclRules()` to build its `ACL SETUSER` rules from the same policy.
   */
  aclOptions(): FunctionAclOptions {
    return this.#acl
  }

  /**
   * Checks a command a function wants to send and returns what to send instead: the same
   * arguments, or the non-blocking form of a blocking command. Throws CommandDeniedError, or a
   * RedisReplyError with Redis's own text for a blocking command Redis would refuse.
   */
  prepare(args: readonly RedisArg[]): PreparedCommand {
    if (args.length === 0) throw new InvalidArgumentError('a command needs at least its name')
    const given = argText(args[0])
    const name = given.toLowerCase()
    refuseReservedNames(name, args)
    if (WAITING.has(name)) {
      throw new CommandDeniedError(`${name.toUpperCase()} is not allowed in gearbox functions: it waits for replicas and would block the connection gearbox shares among all executions, and it has no non-blocking form ${BUILT_IN}`)
    }
    const entry = commandEntry(name)
    if (entry === undefined) return { args }
    const subName = entry.subcommands && args.length > 1 ? argText(args[1]).toLowerCase() : undefined
    // An unknown subcommand (or a container without one) gets Redis's own error.
    if (entry.subcommands && (subName === undefined || commandEntry(name, subName) === undefined)) return { args }
    const display = subName === undefined ? name.toUpperCase() : `${name} ${subName}`.toUpperCase()

    if (CONNECTION_STATE.has(name)) {
      throw new CommandDeniedError(`${display} is not allowed in gearbox functions: it changes the state of the connection gearbox shares among all executions ${BUILT_IN}; allowCommands cannot widen this`)
    }
    const refused = this.#rules.allows(name, subName) ? undefined : this.#rules.refusedBy(name, subName)
    if (entry.flags.includes('blocking')) {
      // Refused for being @blocking only: what is sent is the non-blocking twin; check that.
      if (refused !== undefined && refused.rule !== '-@blocking') this.#refuse(display, refused)
      const form = nonBlockingForm(name, args)
      if (form === undefined) this.#refuse(display, refused ?? { rule: '-@blocking', origin: 'category', display: '@blocking' })
      const twin = argText(form.args[0]).toLowerCase()
      if (twin !== name && !this.#rules.allows(twin)) {
        const twinRule = this.#rules.refusedBy(twin)
        if (twinRule) this.#refuse(display, twinRule, `${display} runs as ${twin.toUpperCase()} in gearbox (without blocking), and `)
      }
      return form
    }
    if (refused !== undefined) this.#refuse(display, refused)
    if (TRANSACTION.has(name)) {
      throw new CommandDeniedError(`${display} is not allowed in gearbox functions: transactions would interleave with other executions on the shared connection; use atomic() instead ${BUILT_IN}`)
    }
    return { args }
  }

  #refuse(display: string, rule: PolicyRule, prefix = ''): never {
    const subject = prefix === '' ? `${display} is` : `${prefix}${rule.display} is`
    switch (rule.origin) {
      case 'deny':
        throw new CommandDeniedError(`${prefix === '' ? rule.display : prefix + rule.display} is denied by the denyCommands option (currently: ${this.#deniedList}); remove it from denyCommands to allow it`)
      case 'category': {
        const category = rule.rule.slice(2)
        const why = CATEGORY_REASONS[category] ?? 'the category is withheld from functions'
        throw new CommandDeniedError(
          `${subject} not allowed in gearbox functions: it is in the @${category} ACL category (${why}) ${BUILT_IN}; add '${prefix === '' ? display : rule.display}' or '@${category}' to allowCommands to allow it`,
        )
      }
      case 'connection':
        throw new CommandDeniedError(`${subject} not allowed in gearbox functions: it changes the state of the connection gearbox shares among all executions ${BUILT_IN}; allowCommands cannot widen this`)
      case 'wait':
        throw new CommandDeniedError(`${subject} not allowed in gearbox functions: it waits for replicas and would block the connection gearbox shares among all executions, and it has no non-blocking form ${BUILT_IN}`)
      default:
        throw new CommandDeniedError(`${subject} not allowed in gearbox functions by the rule ${rule.rule} of the function ACL`)
    }
  }

  /**
   * Lower-case names of the commands {@link prepare} passes unchanged whatever their arguments,
   * apart from reserved key and channel names: known to Redis's command table, no subcommands, not
   * blocking, allowed by the rules, and none of the built-in refusals (connection state,
   * transactions, waits). A worker may send these itself (RedisBackend.directAccess).
   */
  directCommands(): string[] {
    const names: string[] = []
    for (const name of Object.keys(COMMAND_TABLE)) {
      const entry = commandEntry(name)
      if (entry === undefined || entry.subcommands || entry.flags.includes('blocking')) continue
      if (WAITING.has(name) || CONNECTION_STATE.has(name) || TRANSACTION.has(name)) continue
      if (this.#rules.allows(name)) names.push(name)
    }
    return names
  }

  /** Throws CommandDeniedError when `args` would be refused by {@link prepare}. */
  check(args: readonly RedisArg[]): void {
    this.prepare(args)
  }
}
