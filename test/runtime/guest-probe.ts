/**
 * Test helper: a Gearbox whose log lines are captured, and `probe(body)` that runs `body` as a
 * function body in a guest and returns what it returned (or what it threw), read back from a log
 * line. Top-level-only scripts reply `OK`, so the log is how values leave the guest until
 * GearsBuilder's run() exists.
 */
import { Gearbox, type GearboxOptions } from '../../host/gearbox.js'
import type { LogLevel } from '../../host/runtime/logger.js'

export interface LogLine {
  readonly level: LogLevel
  readonly message: string
}

/** What a guest threw, as seen from inside the guest. */
export interface GuestThrown {
  readonly name: unknown
  readonly message: unknown
  readonly code: unknown
  readonly isGearsError: boolean
}

export type ProbeResult = { readonly ok: unknown } | { readonly error: GuestThrown }

const MARK = '__probe__:'

// Serialises guest values with their types kept: bigint, bytes and undefined get tagged objects.
const GUEST_SHOW = `
const __show = (value) => JSON.stringify(value, function (key, x) {
  if (typeof x === 'bigint') return { $bigint: String(x) }
  if (x instanceof Uint8Array) return { $bytes: Array.from(x) }
  if (x === undefined) return { $undefined: true }
  return x
})`

function revive(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const v = value as Record<string, unknown>
    if (typeof v['$bigint'] === 'string') return BigInt(v['$bigint'])
    if (Array.isArray(v['$bytes'])) return new Uint8Array(v['$bytes'] as number[])
    if (v['$undefined'] === true) return undefined
  }
  return value
}

export class TestBox {
  readonly lines: LogLine[] = []
  private constructor(readonly gearbox: Gearbox) {}

  /** `onLog` sees every line as it is logged, while the guest waits. */
  static async create(options: Omit<GearboxOptions, 'logger'>, onLog?: (line: LogLine) => void): Promise<TestBox> {
    let box: TestBox | undefined
    const gearbox = await Gearbox.create({
      ...options,
      logger: {
        log: (level, message) => {
          box?.lines.push({ level, message })
          onLog?.({ level, message })
        },
      },
    })
    box = new TestBox(gearbox)
    return box
  }

  /** Log messages that are not probe results. */
  get messages(): string[] {
    return this.lines.filter((l) => !l.message.startsWith(MARK)).map((l) => l.message)
  }

  /** Runs a whole script with a fresh log; resolves with the reply. */
  run(script: string): Promise<unknown> {
    this.lines.length = 0
    return this.gearbox.execute(script)
  }

  /** Runs `body` (a function body) in a guest; resolves with its return value or what it threw. */
  async probe(body: string): Promise<ProbeResult> {
    this.lines.length = 0
    const script = `${GUEST_SHOW}
try {
  const __value = (() => {
${body}
  })()
  log(${JSON.stringify(MARK)} + __show({ ok: __value }))
} catch (e) {
  log(${JSON.stringify(MARK)} + __show({ error: { name: e && e.name, message: e && e.message, code: e && e.code, isGearsError: e instanceof GearsError } }))
}`
    const reply = await this.gearbox.execute(script)
    if (reply !== 'OK') throw new Error(`probe: unexpected reply ${String(reply)}`)
    const line = this.lines.find((l) => l.message.startsWith(MARK))
    if (line === undefined) throw new Error('probe: the guest logged no result')
    return JSON.parse(line.message.slice(MARK.length), revive) as ProbeResult
  }

  /** `probe` that expects a return value. */
  async value(body: string): Promise<unknown> {
    const result = await this.probe(body)
    // (A returned undefined revives to a missing `ok`.)
    if ('error' in result) throw new Error(`probe: the guest threw ${JSON.stringify(result.error)}`)
    return result.ok
  }

  /** `probe` that expects a throw. */
  async thrown(body: string): Promise<GuestThrown> {
    const result = await this.probe(body)
    if (!('error' in result)) throw new Error(`probe: the guest returned ${String(result.ok)} instead of throwing`)
    // Every field present (a code of undefined revives to a missing property).
    const { name, message, code, isGearsError } = result.error
    return { name, message, code, isGearsError }
  }

  close(): Promise<void> {
    return this.gearbox.close()
  }
}

/** Awaits `fn()` and returns what it rejected with; fails the test when it resolves. */
export async function rejection(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn()
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection, the promise resolved')
}

/** What {@link TestBox.thrown} reports for a plain (uncoded) GearsError with `message`. */
export function gearsError(message: string): GuestThrown {
  return { name: 'GearsError', message, code: undefined, isGearsError: true }
}
