/**
 * How `gearbox run` executes a script: a script that calls run() is started unblocking, so the CLI
 * can show the records read while it runs (on a terminal) and print the steps' durations
 * (--profile) before printing `[results, errors]` as a blocking run would.
 */
import type { Gearbox, GuestLanguage } from '../gearbox.js'
import type { ExecutionInfo } from '../gears/executions.js'
import { resultsReply } from '../gears/result-reply.js'
import type { ExecuteReply } from '../gears/session.js'

export interface ScriptRunOptions {
  readonly language: GuestLanguage
  /** Measure the run()'s steps and print them. */
  readonly profile: boolean
  /** Show "N records read, T s" while a run() takes longer than a second. */
  readonly progress: boolean
}

export interface ScriptRunIo {
  stderr(text: string): void
}

/** Runs `source` and resolves with the reply execute() would give without `unblocking`. */
export async function runScript(gearbox: Gearbox, source: string, options: ScriptRunOptions, io: ScriptRunIo): Promise<ExecuteReply> {
  const reply = await gearbox.execute(source, { language: options.language, unblocking: true, profile: options.profile })
  // Without a run() the reply is the script's own ('OK'); with one it is the execution's id.
  if (typeof reply !== 'string' || !gearbox.executions.list().some((e) => e.id === reply)) return reply
  const id = reply
  const started = Date.now()
  let shown = false
  const timer = options.progress
    ? setInterval(() => {
        const elapsedMs = Date.now() - started
        if (elapsedMs < 1000) return
        io.stderr(`\r${progressLine(gearbox.executions.get(id), elapsedMs)}\x1b[K`)
        shown = true
      }, 250)
    : undefined
  try {
    const { results, errors } = await gearbox.executions.resultsBlocking(id)
    if (shown) io.stderr(`\r${progressLine(gearbox.executions.get(id), Date.now() - started)}\x1b[K\n`)
    if (options.profile) io.stderr(renderProfile(gearbox.executions.get(id)))
    return resultsReply(results, errors)
  } finally {
    if (timer !== undefined) clearInterval(timer)
    gearbox.executions.drop(id)
  }
}

function progressLine(info: ExecutionInfo, elapsedMs: number): string {
  return `${info.recordsRead.toLocaleString('en-US')} records read, ${(elapsedMs / 1000).toFixed(1)} s`
}

/** The execution's steps with their durations, as --profile prints them. */
export function renderProfile(info: ExecutionInfo): string {
  const rows = info.steps.map((s) => [s.type, s.name, s.arg, `${s.durationMs.toFixed(0)} ms`])
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)))
  const lines = [
    `profile of ${info.id}: ${info.totalDurationMs.toFixed(0)} ms in total, ${info.readDurationMs.toFixed(0)} ms waiting for reader batches, ` +
      `${info.recordsRead} records read on ${info.shardsReceived} shard(s)`,
    ...rows.map((r) => `  ${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padEnd(widths[1]!)}  ${r[2]!.padEnd(widths[2]!)}  ${r[3]!.padStart(8)}`),
  ]
  return lines.join('\n') + '\n'
}
