/**
 * Which commands a gearbox function may send, and in what form.
 *
 * Built-in rules (not configurable), because every execution shares gearbox's connections:
 * - commands Redis refuses inside scripts (`noscript` in the command table: SUBSCRIBE and the
 *   other pub/sub commands, MONITOR, MULTI/EXEC/DISCARD/WATCH/UNWATCH, CLIENT, HELLO, AUTH,
 *   RESET, QUIT, SYNC/PSYNC, CONFIG, SCRIPT, FUNCTION, ACL, ...). The script runners EVAL,
 *   EVALSHA, FCALL and their _RO forms are allowed: Redis refuses them in scripts only to
 *   prevent recursion, which cannot happen here, and they leave the connection unchanged.
 * - commands that change the connection's state: SELECT, READONLY, READWRITE, ASKING.
 * - blocking commands run without blocking (see non-blocking.ts), as RedisGears runs them;
 *   blocking commands with no non-blocking form (WAIT, WAITAOF) are refused.
 * Then the configurable deny list (`denyCommands`, default {@link DEFAULT_DENY_COMMANDS}).
 *
 * Unknown commands pass: Redis answers them with its own `ERR unknown command` text.
 */
import { CommandDeniedError, InvalidArgumentError } from '../errors.js'
import { argText, hasCommandFlag, resolveCommand, type ResolvedCommand } from './command-metadata.js'
import { nonBlockingForm } from './non-blocking.js'
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
   * (`'FLUSHALL'`) or a command and its subcommand (`'CONFIG SET'`), matched
   * case-insensitively. Replaces the default list; `[]` denies nothing extra.
   * Default: {@link DEFAULT_DENY_COMMANDS}.
   */
  readonly denyCommands?: readonly string[]
}

const CONNECTION_STATE = new Set(['select', 'readonly', 'readwrite', 'asking'])
const TRANSACTION = new Set(['multi', 'exec', 'discard', 'watch', 'unwatch'])

function refuseBuiltIn(command: ResolvedCommand, why: string): never {
  throw new CommandDeniedError(`${command.display} is not allowed in gearbox functions: ${why} (a built-in rule, not the denyCommands option)`)
}

export class CommandPolicy {
  /** `name` or `name subcommand`, lowercase. */
  private readonly denied: ReadonlySet<string>
  private readonly deniedList: string

  constructor(options: CommandPolicyOptions = {}) {
    const entries = options.denyCommands ?? DEFAULT_DENY_COMMANDS
    const denied = new Set<string>()
    for (const entry of entries) {
      const words = entry.trim().toLowerCase().split(/\s+/)
      if (words.length < 1 || words.length > 2 || words[0] === '') {
        throw new InvalidArgumentError(`denyCommands: ${JSON.stringify(entry)} must be a command or a command and a subcommand, e.g. 'FLUSHALL' or 'CONFIG SET'`)
      }
      denied.add(words.join(' '))
    }
    this.denied = denied
    this.deniedList = [...denied].map((d) => d.toUpperCase()).join(', ') || '(empty)'
  }

  /**
   * Checks a command a function wants to send and returns what to send instead: the same
   * arguments, or the non-blocking form of a blocking command. Throws CommandDeniedError.
   */
  prepare(args: readonly RedisArg[]): PreparedCommand {
    if (args.length === 0) throw new InvalidArgumentError('a command needs at least its name')
    const command = resolveCommand(args)
    const name = command.name
    const sub = command.subcommand ?? argText(args[1]).toLowerCase()
    if (this.denied.has(name) || (args.length > 1 && this.denied.has(`${name} ${sub}`))) {
      const entry = this.denied.has(name) ? name.toUpperCase() : `${name} ${sub}`.toUpperCase()
      throw new CommandDeniedError(
        `${entry} is denied by the denyCommands option (currently: ${this.deniedList}); remove it from denyCommands to allow it`,
      )
    }
    if (command.flags === undefined) return { args }
    if (TRANSACTION.has(name)) {
      refuseBuiltIn(command, 'transactions would interleave with other executions on the shared connection; use atomic() instead')
    }
    if (hasCommandFlag(command, 'noscript') && !hasCommandFlag(command, 'script_runner')) {
      refuseBuiltIn(command, 'Redis refuses it inside scripts (it changes or depends on connection, replication or server state), and gearbox runs functions the way Redis runs scripts')
    }
    if (CONNECTION_STATE.has(name)) {
      refuseBuiltIn(command, 'it changes the state of the connection gearbox shares among all executions')
    }
    if (hasCommandFlag(command, 'blocking')) {
      const form = nonBlockingForm(name, args)
      if (!form) refuseBuiltIn(command, 'it would block the connection gearbox shares among all executions, and it has no non-blocking form')
      return form
    }
    return { args }
  }

  /**
   * The policy's share of the function ACL user's rules (function-acl.ts): the configured
   * `denyCommands` as ACL names (`config|set`), and the entries of the default deny list that
   * this policy no longer denies (removing FLUSHDB from `denyCommands` lets Redis run it too).
   */
  aclOptions(): { deny: string[]; allow: string[] } {
    const aclName = (entry: string): string => entry.toLowerCase().split(/\s+/).join('|')
    const deny = [...this.denied].map(aclName)
    const allow = DEFAULT_DENY_COMMANDS.filter((entry) => !this.denied.has(entry.toLowerCase())).map(aclName)
    return { deny, allow }
  }

  /** Throws CommandDeniedError when `args` would be refused by {@link prepare}. */
  check(args: readonly RedisArg[]): void {
    this.prepare(args)
  }
}
