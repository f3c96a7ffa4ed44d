/** The levels of `log(message, level)`, as in RedisGears (and the Redis log). */
export type LogLevel = 'debug' | 'verbose' | 'notice' | 'warning'

/** Where guest `log()` lines go. */
export interface GearsLogger {
  log(level: LogLevel, message: string): void
}

/** The default logger: `GEARS: <message>` on the console's error stream (stderr in Node), every level. */
export const consoleLogger: GearsLogger = {
  log(_level, message) {
    console.error(`GEARS: ${message}`)
  },
}

export function isLogLevel(value: unknown): value is LogLevel {
  return value === 'debug' || value === 'verbose' || value === 'notice' || value === 'warning'
}
