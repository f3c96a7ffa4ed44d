/**
 * The Redis ACL rules that functions' commands run under.
 *
 * Functions' connections authenticate as a Redis user whose rules are the command policy, so
 * the guarantee comes from Redis itself (Lua a function runs can do no more than the function);
 * the host-side check in command-policy.ts gives the same answers earlier, with clearer texts.
 * gearbox's own connections (page reads, topology, registration state) use the connection's
 * configured user instead.
 *
 * Default: every command, less the categories a function has no business with (@admin,
 * @dangerous, @scripting, @blocking, @pubsub), then a few commands of those categories that
 * functions legitimately use and that cannot hurt the shared connection or the server, then the
 * commands that would change the state of a connection all executions share.
 */

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
 * Commands outside the denied categories that change the state of the connection every
 * execution shares (or break its reply stream): refused. MULTI/EXEC/WATCH stay allowed in the
 * ACL because atomic() runs them on dedicated connections; the host refuses them on shared ones.
 */
export const CONNECTION_STATE_COMMANDS: readonly string[] = Object.freeze([
  'select',
  'client',
  'hello',
  'reset',
  'quit',
  'readonly',
  'readwrite',
  'asking',
  // WAIT blocks until replicas acknowledge (it is @connection, not @blocking, in Redis 7.0).
  'wait',
])

/** Commands denied like CONNECTION_STATE_COMMANDS where the server knows them (ACL SETUSER refuses unknown names). */
export const NEWER_BLOCKING_COMMANDS: readonly string[] = Object.freeze(['waitaof'])

export interface FunctionAclOptions {
  /** Commands (or `command|subcommand`) denied on top of the default rules, lowercase. */
  readonly deny?: readonly string[]
  /** Commands (or `command|subcommand`) allowed on top of the default rules, lowercase. */
  readonly allow?: readonly string[]
}

/**
 * The rules for `ACL SETUSER <name> ...` after the password part: key and channel patterns, then
 * the command rules, in the order Redis applies them.
 */
export function functionAclRules(options: FunctionAclOptions = {}): string[] {
  return [
    'on',
    'resetkeys',
    '~*',
    'resetchannels',
    '&*',
    '+@all',
    ...DENIED_CATEGORIES.map((c) => `-@${c}`),
    ...KEPT_COMMANDS.map((c) => `+${c}`),
    ...CONNECTION_STATE_COMMANDS.map((c) => `-${c}`),
    ...(options.deny ?? []).map((c) => `-${c}`),
    ...(options.allow ?? []).map((c) => `+${c}`),
  ]
}
