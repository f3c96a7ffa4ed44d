/**
 * The harness of the Redis-level hostile corpus: while an attack runs, a guard checks that the
 * attack hurts nobody else —
 * - every master answers PING within 100 ms (a raw connection per master, one PING every 10 ms);
 * - bystander executions started every 25 ms on the same Gearbox all finish normally;
 * - the host's RSS stays within the attack's stated bound above what it was before.
 * Every loop is bounded in count and time.
 */
import { connect, type Socket } from 'node:net'
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

/** Pings one master every 10 ms on a connection of its own; reports the slowest answer. */
class PingWatch {
  private readonly socket: Socket
  private sentAt = 0
  private waiting = false
  private timer: ReturnType<typeof setInterval> | undefined
  private count = 0
  slowestMs = 0
  /** A PING still unanswered when the watch stopped counts with its age. */
  private buffered = ''

  constructor(readonly endpoint: Endpoint) {
    this.socket = connect(endpoint)
    this.socket.setNoDelay(true)
    this.socket.on('error', () => {})
    this.socket.on('data', (chunk) => {
      this.buffered += chunk.toString('latin1')
      while (this.buffered.includes('\r\n')) {
        this.buffered = this.buffered.slice(this.buffered.indexOf('\r\n') + 2)
        this.slowestMs = Math.max(this.slowestMs, performance.now() - this.sentAt)
        this.waiting = false
      }
    })
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.waiting) {
        this.slowestMs = Math.max(this.slowestMs, performance.now() - this.sentAt)
        return
      }
      if (++this.count > MAX_PINGS) return this.halt()
      this.waiting = true
      this.sentAt = performance.now()
      this.socket.write('PING\r\n')
    }, PING_EVERY_MS)
  }

  halt(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  stop(): number {
    this.halt()
    if (this.waiting) this.slowestMs = Math.max(this.slowestMs, performance.now() - this.sentAt)
    this.socket.destroy()
    return this.slowestMs
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
  private readonly watches: PingWatch[]
  private readonly bystanders: Promise<string | undefined>[] = []
  private bystanderTimer: ReturnType<typeof setInterval> | undefined
  private rssTimer: ReturnType<typeof setInterval> | undefined
  private readonly rssBefore: number
  private rssPeak: number
  private readonly deadline: ReturnType<typeof setTimeout>

  constructor(private readonly gearbox: Gearbox, masters: readonly Endpoint[]) {
    this.watches = masters.map((m) => new PingWatch(m))
    this.rssBefore = process.memoryUsage.rss()
    this.rssPeak = this.rssBefore
    for (const w of this.watches) w.start()
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
    for (const w of this.watches) w.halt()
  }

  async stop(): Promise<GuardReport> {
    clearTimeout(this.deadline)
    this.rssPeak = Math.max(this.rssPeak, process.memoryUsage.rss())
    this.halt()
    const slowestPingMs = Math.max(0, ...this.watches.map((w) => w.stop()))
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
