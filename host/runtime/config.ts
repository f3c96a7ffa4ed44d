/**
 * RedisGears core settings. `configGet()` reads only the "extra config" dictionary, so these names
 * are never visible to guests even when present in the `config` option (spec §1: `configGet`).
 */
const GEARS_BUILTIN_CONFIG: ReadonlySet<string> = new Set([
  'maxexecutions',
  'maxexecutionsperregistration',
  'profileexecutions',
  'executionthreads',
  'executionmaxidletime',
  'sendmsgretries',
  'plugin',
])

/** The value `configGet(key)` returns for `config`: the string, or null when absent or built-in. */
export function extraConfigValue(config: Readonly<Record<string, string>>, key: string): string | null {
  if (GEARS_BUILTIN_CONFIG.has(key.toLowerCase())) return null
  if (!Object.prototype.hasOwnProperty.call(config, key)) return null
  return config[key] ?? null
}
