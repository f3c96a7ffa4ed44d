/**
 * The harness of the Redis-level hostile corpus: while an attack runs, a guard checks that the
 * attack hurts nobody else —
 * - every master answers PING within 100 ms (a raw connection per master, one PING every 10 ms);
 * - bystander executions started every 25 ms on the same Gearbox all finish normally;
 * - the host's RSS stays within the attack's stated bound above what it was before.
 * Every loop is bounded in count and time.
 */
import { Worker } from 'node:worker_threads'
import * as assert from 'uvu/assert'
import type { Gearbox } from '../../host/gearbox.js'

export interface Endpoint {
  readonly host: string
  readonly port: number
}

const PING_EVERY_MS = 10
const PING_BOUND_MS = 100
const MAX_PINGS = 6000
const BYSTANDER_EVERY_MS = 25
const MAX_BYSTANDERS = 400
const RSS_EVERY_MS = 10
const GUARD_MAX_MS = 60_000

/**
 * Pings every master every 10 ms from a worker thread of its own, so that what it measures is
 * Redis's answer time, not this process's event loop (which the host under test shares).
 * Reports the slowest answer; a PING still unanswered at the end counts with its age.
 */
const PING_WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const { connect } = require('node:net')
const { masters, everyMs, maxPings } = workerData
let slowest = 0
const watches = masters.map((m) => {
  const w = { socket: connect(m), sentAt: 0, waiting: false, buffered: '', count: 0 }
  w.socket.setNoDelay(true)
  w.socket.on('error', () => {})
  w.socket.on('data', (chunk) => {
    w.buffered += chunk.toString('latin1')
    while (w.buffered.includes('\\r\\n')) {
      w.buffered = w.buffered.slice(w.buffered.indexOf('\\r\\n') + 2)
      slowest = Math.max(slowest, performance.now() - w.sentAt)
      w.waiting = false
    }
  })
  return w
})
const timer = setInterval(() => {
  for (const w of watches) {
    if (w.waiting) { slowest = Math.max(slowest, performance.now() - w.sentAt); continue }
    if (++w.count > maxPings) continue
    w.waiting = true
    w.sentAt = performance.now()
    w.socket.write('PING\\r\\n')
  }
}, everyMs)
parentPort.on('message', () => {
  clearInterval(timer)
  for (const w of watches) {
    if (w.waiting) slowest = Math.max(slowest, performance.now() - w.sentAt)
    w.socket.destroy()
  }
  parentPort.postMessage(slowest)
})
`

class PingWatch {
  private readonly worker: Worker

  constructor(masters: readonly Endpoint[]) {
    this.worker = new Worker(PING_WORKER, {
      eval: true,
      workerData: { masters: masters.map((m) => ({ host: m.host, port: m.port })), everyMs: PING_EVERY_MS, maxPings: MAX_PINGS },
    })
    // A guard that is never stopped does not keep the test process alive.
    this.worker.unref()
  }

  /** Stops the pings; resolves with the slowest answer in ms. */
  async stop(): Promise<number> {
    const slowest = new Promise<number>((resolve) => this.worker.once('message', (ms: number) => resolve(ms)))
    this.worker.postMessage('stop')
    const ms = await slowest
    await this.worker.terminate()
    return ms
  }
}

export interface GuardReport {
  readonly slowestPingMs: number
  readonly bystanders: number
  readonly bystanderFailures: readonly string[]
  readonly rssGrowthBytes: number
}

/** Bystander: a normal execution with a round trip to Redis (its shard, in a cluster). */
const BYSTANDER = `execute('INCR', '{bystander}:n'); if (execute('PING') !== 'PONG') throw new Error('no PONG')`

export class Guard {
  private readonly pings: PingWatch
  private readonly bystanders: Promise<string | undefined>[] = []
  private bystanderTimer: ReturnType<typeof setInterval> | undefined
  private rssTimer: ReturnType<typeof setInterval> | undefined
  private readonly rssBefore: number
  private rssPeak: number
  private readonly deadline: ReturnType<typeof setTimeout>

  constructor(private readonly gearbox: Gearbox, masters: readonly Endpoint[]) {
    this.pings = new PingWatch(masters)
    this.rssBefore = process.memoryUsage.rss()
    this.rssPeak = this.rssBefore
    this.rssTimer = setInterval(() => (this.rssPeak = Math.max(this.rssPeak, process.memoryUsage.rss())), RSS_EVERY_MS)
    const bystander = (): void => {
      if (this.bystanders.length >= MAX_BYSTANDERS) return
      this.bystanders.push(
        this.gearbox.execute(BYSTANDER).then(
          (reply) => (reply === 'OK' ? undefined : `unexpected reply ${JSON.stringify(reply)}`),
          (err: unknown) => `${(err as { code?: string }).code ?? 'uncoded'}: ${(err as Error).message}`,
        ),
      )
    }
    // One starts with the attack, then one every 25 ms while it runs.
    bystander()
    this.bystanderTimer = setInterval(bystander, BYSTANDER_EVERY_MS)
    // A guard never outlives its bound, even when a test forgets to stop it.
    this.deadline = setTimeout(() => this.halt(), GUARD_MAX_MS)
    this.deadline.unref()
  }

  private halt(): void {
    if (this.bystanderTimer) clearInterval(this.bystanderTimer)
    if (this.rssTimer) clearInterval(this.rssTimer)
    this.bystanderTimer = this.rssTimer = undefined
  }

  async stop(): Promise<GuardReport> {
    clearTimeout(this.deadline)
    this.rssPeak = Math.max(this.rssPeak, process.memoryUsage.rss())
    this.halt()
    const slowestPingMs = await this.pings.stop()
    const outcomes = await Promise.all(this.bystanders)
    return {
      slowestPingMs,
      bystanders: outcomes.length,
      bystanderFailures: outcomes.filter((o): o is string => o !== undefined),
      rssGrowthBytes: this.rssPeak - this.rssBefore,
    }
  }
}

/**
 * Asserts a guard's report: Redis answered in time, bystanders ran and all succeeded, RSS bounded.
 * `excusedMs`: what Redis itself spent on the attack's command (see Attack.redisOwnCost).
 */
export function assertUnharmed(name: string, report: GuardReport, rssBoundBytes: number, excusedMs = 0): void {
  assert.ok(
    report.slowestPingMs < PING_BOUND_MS + excusedMs,
    `${name}: a master took ${report.slowestPingMs.toFixed(1)} ms to answer PING (bound ${PING_BOUND_MS} ms` +
      `${excusedMs > 0 ? ` + ${excusedMs.toFixed(1)} ms Redis spent on the attack's own command` : ''})`,
  )
  assert.ok(report.bystanders > 0, `${name}: no bystander execution ran during the attack`)
  assert.equal(report.bystanderFailures, [], `${name}: bystander executions failed`)
  assert.ok(
    report.rssGrowthBytes < rssBoundBytes,
    `${name}: host RSS grew by ${(report.rssGrowthBytes / 2 ** 20).toFixed(1)} MiB (bound ${(rssBoundBytes / 2 ** 20).toFixed(0)} MiB)`,
  )
}

/** The code of a rejected execution: a limit's own code, or the host code the guest let escape. */
export async function failureCode(pending: Promise<unknown>): Promise<{ code: string; guestCode?: string; message: string }> {
  try {
    const value = await pending
    assert.unreachable(`expected the execution to fail, it returned ${JSON.stringify(value)}`)
  } catch (err) {
    const e = err as { code?: unknown; guestCode?: unknown; message?: unknown }
    if (typeof e.code !== 'string') throw err
    return {
      code: e.code,
      ...(typeof e.guestCode === 'string' ? { guestCode: e.guestCode } : {}),
      message: String(e.message),
    }
  }
  throw new Error('unreachable')
}
