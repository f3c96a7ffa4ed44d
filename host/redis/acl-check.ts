/**
 * Evaluates ACL command rules the way Redis 7.0 applies them (acl.c: ACLSetSelector and
 * ACLSelectorCheckCmd), over the command table generated from Redis 7.0's `COMMAND` output.
 *
 * Why a generated table rather than `COMMAND` at startup: the policy answers synchronously, before
 * any connection exists, in a layer that must stay free of Node built-ins, and the same for every
 * server; the categories are fixed per Redis version. A server with commands the table does not
 * know still decides for them through its own ACL (unknown commands pass the host check).
 * test/redis/acl-check.test.ts compares every answer with `ACL DRYRUN` on a real server.
 *
 * Semantics mirrored: `+@all` sets every command; `±@cat` sets or clears every command of the
 * category, a container command with all its subcommands, then each subcommand of the category;
 * `±cmd` sets or clears the command and all its subcommands; `±cmd|sub` the subcommand only.
 * Commands flagged `no_auth` (AUTH, HELLO, QUIT, RESET) are never checked by Redis.
 */
import { COMMAND_TABLE, type CommandTableEntry } from './command-table.generated.js'

/** Every category of the table. */
export const ACL_CATEGORIES: ReadonlySet<string> = new Set(
  Object.values(COMMAND_TABLE).flatMap((e) => [...e.categories, ...Object.values(e.subcommands ?? {}).flatMap((s) => s.categories)]),
)

/** The table entry of `name` (lowercase), or of `name|sub` when `sub` is given and known. */
export function commandEntry(name: string, sub?: string): CommandTableEntry | undefined {
  const entry = Object.hasOwn(COMMAND_TABLE, name) ? COMMAND_TABLE[name] : undefined
  if (sub === undefined || entry === undefined) return entry
  return entry.subcommands && Object.hasOwn(entry.subcommands, sub) ? entry.subcommands[sub] : undefined
}

/** Why an ACL rule cannot be applied (Redis would answer ACL SETUSER with an error). */
export function aclRuleProblem(rule: string): string | undefined {
  const body = rule.slice(1)
  if ((rule[0] !== '+' && rule[0] !== '-') || body === '') return 'a rule starts with + or -'
  if (body.startsWith('@')) return body === '@all' || ACL_CATEGORIES.has(body.slice(1)) ? undefined : `unknown category ${body}`
  const [name, sub, extra] = body.split('|')
  if (extra !== undefined) return 'at most one subcommand'
  if (sub === undefined) return undefined
  const entry = commandEntry(name ?? '')
  if (!entry?.subcommands) return `${name ?? ''} has no subcommands`
  return commandEntry(name ?? '', sub) ? undefined : `unknown subcommand ${body}`
}

/** The rules' verdict for every command and subcommand, and which rule last refused each. */
export class AclEvaluation<R extends { readonly rule: string }> {
  readonly #allowed = new Set<string>()
  /** Command id (`name` or `name|sub`) → the rule that last cleared it. */
  readonly #clearedBy = new Map<string, R>()

  constructor(rules: readonly R[]) {
    for (const rule of rules) this.#apply(rule)
  }

  #set(id: string, allow: boolean, rule: R): void {
    if (allow) {
      this.#allowed.add(id)
      this.#clearedBy.delete(id)
    } else {
      this.#allowed.delete(id)
      this.#clearedBy.set(id, rule)
    }
  }

  /** ACLChangeSelectorPerm: the command, and all its subcommands. */
  #change(name: string, entry: CommandTableEntry, allow: boolean, rule: R): void {
    this.#set(name, allow, rule)
    for (const sub of Object.keys(entry.subcommands ?? {})) this.#set(`${name}|${sub}`, allow, rule)
  }

  #apply(rule: R): void {
    const allow = rule.rule[0] === '+'
    const body = rule.rule.slice(1)
    if (body.startsWith('@')) {
      const category = body.slice(1)
      for (const [name, entry] of Object.entries(COMMAND_TABLE)) {
        if (category === 'all' || entry.categories.includes(category)) this.#change(name, entry, allow, rule)
        for (const [sub, subEntry] of Object.entries(entry.subcommands ?? {})) {
          if (category === 'all' || subEntry.categories.includes(category)) this.#set(`${name}|${sub}`, allow, rule)
        }
      }
      return
    }
    const [name = '', sub] = body.split('|')
    const entry = commandEntry(name)
    // Unknown names: Redis refuses the rule; they are checked by the server that knows them.
    if (!entry) return
    if (sub === undefined) this.#change(name, entry, allow, rule)
    else if (commandEntry(name, sub)) this.#set(`${name}|${sub}`, allow, rule)
  }

  /** The rule that last refused `name` (or `name|sub`); undefined when none did. */
  refusedBy(name: string, sub?: string): R | undefined {
    return this.#clearedBy.get(sub === undefined ? name : `${name}|${sub}`)
  }

  /** True when the rules allow `name` (or `name|sub`); unknown commands are allowed (Redis answers them). */
  allows(name: string, sub?: string): boolean {
    const entry = commandEntry(name, sub)
    if (!entry || entry.flags.includes('no_auth')) return true
    return this.#allowed.has(sub === undefined ? name : `${name}|${sub}`)
  }
}
