/**
 * Time for a restarted host to restore its registrations (issue 8 §9): `Gearbox.create` on a Redis
 * whose store holds N registrations, until it resolved (every session's top level run again under
 * replay, every registration applied, onRegistered called), against `Gearbox.create` on the same
 * Redis with an empty store (the worker pool and connections alone). Two shapes: N sessions of one
 * trigger registration each (one top level re-run per registration: the expensive case), and one
 * session registering N triggers.
 */
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { startRedisServer } from '../../host/platform/redis-server.js'
import { fmt, summarize, type BenchRow } from './stats.js'
import type { BenchSection } from './batch.js'

export interface RestoreBenchOptions {
  /** Registrations to restore. Default 100. */
  readonly registrations?: number
  /** Restarts measured per shape. Default 5. */
  readonly rounds?: number
}

const quiet = { log: () => {} }

async function timedCreate(url: string, expected: number): Promise<number> {
  const started = performance.now()
  const box = await Gearbox.create({ redis: url, workers: 2, logger: quiet })
  const ms = performance.now() - started
  try {
    const restored = box.registrations.list().length
    if (restored !== expected) throw new Error(`restored ${restored} registrations, expected ${expected}`)
  } finally {
    await box.close()
  }
  return ms
}

export async function benchRestore(options: RestoreBenchOptions = {}): Promise<BenchSection[]> {
  const n = options.registrations ?? 100
  const rounds = options.rounds ?? 5
  const server = await startRedisServer()
  const client = new Redis(server.port, '127.0.0.1')
  try {
    const empty: number[] = []
    const sessions: number[] = []
    const oneSession: number[] = []
    // Store N one-registration sessions.
    const writer = await Gearbox.create({ redis: server.url, workers: 2, logger: quiet })
    for (let i = 0; i < n; i++) {
      const reply = await writer.execute(`GB('CommandReader').map((r) => r.length).register({ trigger: 't${i}' })`, { id: `s${i}` })
      if (reply !== 'OK') throw new Error(`registration ${i}: ${String(reply)}`)
    }
    await writer.close()
    const storedSessions = await client.hgetall('{gearbox}:sessions')
    for (let r = 0; r < rounds; r++) sessions.push(await timedCreate(server.url, n))
    // One session registering N triggers.
    await client.flushall()
    const single = await Gearbox.create({ redis: server.url, workers: 2, logger: quiet })
    const body = Array.from({ length: n }, (_, i) => `GB('CommandReader').map((r) => r.length).register({ trigger: 'u${i}' })`).join('\n')
    if ((await single.execute(body, { id: 'many' })) !== 'OK') throw new Error('the one-session script did not register')
    await single.close()
    for (let r = 0; r < rounds; r++) oneSession.push(await timedCreate(server.url, n))
    // The baseline: an empty store.
    await client.flushall()
    for (let r = 0; r < rounds; r++) empty.push(await timedCreate(server.url, 0))
    const e = summarize(empty)
    const s = summarize(sessions)
    const o = summarize(oneSession)
    const rows: BenchRow[] = [
      { name: `Gearbox.create restoring ${n} sessions of 1 trigger registration each`, value: s.median, unit: 'ms', note: `p10 ${fmt(s.p10)} p90 ${fmt(s.p90)}, ${Object.keys(storedSessions).length} stored sessions` },
      { name: `Gearbox.create restoring 1 session of ${n} trigger registrations`, value: o.median, unit: 'ms', note: `p10 ${fmt(o.p10)} p90 ${fmt(o.p90)}` },
      { name: 'Gearbox.create on an empty store (pool and connections only)', value: e.median, unit: 'ms', note: `p10 ${fmt(e.p10)} p90 ${fmt(e.p90)}` },
      { name: `restore time of ${n} sessions (median difference)`, value: s.median - e.median, unit: 'ms', note: `${fmt((s.median - e.median) / n)} ms per session` },
    ]
    return [{ title: `Restoring ${n} registrations on a restarted host`, rows, ratios: [] }]
  } finally {
    client.disconnect()
    await server.stop()
  }
}
