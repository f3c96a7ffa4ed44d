/**
 * The Redis ACL rules that functions' commands run under.
 *
 * Functions' connections authenticate as a Redis user whose rules are the command policy, so
 * the guarantee comes from Redis itself (Lua a function runs can do no more than the function);
 * the host-side check in command-policy.ts evaluates these same rules (acl-check.ts) and gives
 * the same answers earlier, with clearer texts. gearbox's own connections (page reads, topology,
 * registration state) use the connection's configured user instead.
 *
 * Default: every command, less the categories a function has no business with (@admin,
 * @dangerous, @scripting, @blocking, @pubsub), then a few commands of those categories that
 * functions legitimately use and that cannot hurt the shared connection or the server, then the
 * options' allow and deny entries, then (last, so no option re-allows them) the commands that
 * would change or break the state of a connection all executions share.
 */

import { complementPatterns, RESERVED_PREFIX } from './reserved-keys.js'

/** The ACL user gearbox creates (or updates) for functions when none is configured. */
export const DEFAULT_FUNCTION_USERNAME = 'gearbox-functions'

/** Categories removed from functions by default. */
export const DENIED_CATEGORIES: readonly string[] = Object.freeze(['admin', 'dangerous', 'scripting', 'blocking', 'pubsub'])

/**
 * Commands of the denied categories that functions keep: KEYS, SORT and SORT_RO (@dangerous:
 * slow on a big keyspace, which the CPU and reply limits bound), INFO (@dangerous: read-only),
 * XREAD/XREADGROUP (@blocking: the host strips BLOCK, see non-blocking.ts), PUBLISH/SPUBLISH
 * (@pubsub: stateless, unlike SUBSCRIBE).
 */
export const KEPT_COMMANDS: readonly string[] = Object.freeze(['keys', 'sort', 'sort_ro', 'info', 'xread', 'xreadgroup', 'publish', 'spublish'])

/**
 * Commands that change the state of the connection every execution shares, or turn it into
 * something else (a subscriber, a monitor, a replica stream): refused, whatever the options say.
 * MULTI/EXEC/WATCH stay allowed in the ACL because atomic() runs them on dedicated connections;
 * the host refuses them on shared ones. AUTH and HELLO are not listed: Redis checks no ACL for
 * them (nor for QUIT and RESET), so only the host can refuse them.
 */
export const CONNECTION_STATE_COMMANDS: readonly string[] = Object.freeze([
  'select',
  'client',
  'reset',
  'quit',
  'readonly',
  'readwrite',
  'asking',
  'subscribe',
  'psubscribe',
  'ssubscribe',
  'unsubscribe',
  'punsubscribe',
  'sunsubscribe',
  'monitor',
  'sync',
  'psync',
  'replconf',
])

/**
 * Commands that wait with no non-blocking form and that no denied category covers: WAIT blocks
 * until replicas acknowledge (it is @connection, not @blocking, in Redis 7.0). Refused like
 * CONNECTION_STATE_COMMANDS.
 */
export const UNBOUNDED_WAIT_COMMANDS: readonly string[] = Object.freeze(['wait'])

/** Commands denied like UNBOUNDED_WAIT_COMMANDS where the server knows them (ACL SETUSER refuses unknown names). */
export const NEWER_BLOCKING_COMMANDS: readonly string[] = Object.freeze(['waitaof'])

export interface FunctionAclOptions {
  /**
   * ACL entries denied on top of the default rules, lowercase: a command (`flushall`), a
   * command and subcommand (`config|set`) or a category (`@write`). Applied after `allow`.
   */
  readonly deny?: readonly string[]
  /** Entries allowed on top of the default rules (same forms as `deny`), e.g. `eval`, `@scripting`. */
  readonly allow?: readonly string[]
  /**
   * Commands gearbox's own connection protocol sends as the function user (ASKING to follow an
   * ASK redirection, CLIENT ID, SELECT of the URL's db in the handshake): allowed last, after the
   * connection-state rules. The host check refuses them to functions all the same.
   */
  readonly protocol?: readonly string[]
}

/** Which part of the policy an ACL rule comes from (for error texts). */
export type FunctionAclRuleOrigin = 'base' | 'category' | 'kept' | 'allow' | 'deny' | 'connection' | 'wait' | 'protocol'

/** One command rule of the function user, in the order Redis applies them. */
export interface FunctionAclRule {
  /** As given to ACL SETUSER: `+@all`, `-@admin`, `+keys`, `-config|set`. */
  readonly rule: string
  readonly origin: FunctionAclRuleOrigin
}

/** The command rules of {@link functionAclRules}, each with its origin. */
export function functionAclCommandRules(options: FunctionAclOptions = {}): FunctionAclRule[] {
  return [
    { rule: '+@all', origin: 'base' },
    ...DENIED_CATEGORIES.map((c) => ({ rule: `-@${c}`, origin: 'category' as const })),
    ...KEPT_COMMANDS.map((c) => ({ rule: `+${c}`, origin: 'kept' as const })),
    ...(options.allow ?? []).map((c) => ({ rule: `+${c}`, origin: 'allow' as const })),
    ...(options.deny ?? []).map((c) => ({ rule: `-${c}`, origin: 'deny' as const })),
    ...CONNECTION_STATE_COMMANDS.map((c) => ({ rule: `-${c}`, origin: 'connection' as const })),
    ...UNBOUNDED_WAIT_COMMANDS.map((c) => ({ rule: `-${c}`, origin: 'wait' as const })),
    ...(options.protocol ?? []).map((c) => ({ rule: `+${c}`, origin: 'protocol' as const })),
  ]
}

/**
 * The rules for `ACL SETUSER <name> ...` after the password part: key and channel patterns (every
 * name but gearbox's own, under RESERVED_PREFIX: see reserved-keys.ts), then the command rules,
 * in the order Redis applies them.
 */
export function functionAclRules(options: FunctionAclOptions = {}): string[] {
  const names = complementPatterns(RESERVED_PREFIX)
  return ['on', 'resetkeys', ...names.map((p) => `~${p}`), 'resetchannels', ...names.map((p) => `&${p}`), ...functionAclCommandRules(options).map((r) => r.rule)]
}
