/**
 * The several-hosts scenario, run by hosts.test.ts (standalone) and hosts-cluster.test.ts: two
 * gearbox host processes (fixtures/host-process.ts) on one Redis. A registration made on one
 * reaches the other; keyspace events are processed by the lease holder only (each event once);
 * an unregistration reaches the other host; the holder killed with SIGKILL, the survivor takes
 * over every lease and processes the later events, each once.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import * as assert from 'uvu/assert'
import { RESERVED_PREFIX } from '../../host/redis/reserved-keys.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/host-process.js', import.meta.url))
const LEASE_MS = 800
const WAIT_MS = 20_000

export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (let i = 0; i < 20_000; i++) {
    if (await check()) return
    if (Date.now() > deadline) break
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  assert.unreachable(`timed out waiting for ${what}`)
}

/** One host process and its JSON-lines request channel. */
export class HostProcess {
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  #n = 0
  readonly exited: Promise<void>

  private constructor(
    readonly name: string,
    readonly hostId: string,
    private readonly child: ChildProcess,
    lines: ReturnType<typeof createInterface>,
  ) {
    lines.on('line', (line) => {
      const answer = JSON.parse(line) as { n: number; ok: boolean; value?: unknown; error?: string }
      const waiting = this.#pending.get(answer.n)
      this.#pending.delete(answer.n)
      if (answer.ok) waiting?.resolve(answer.value)
      else waiting?.reject(new Error(answer.error))
    })
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()))
  }

  static async start(name: string, target: { redis: string } | { cluster: readonly string[] }): Promise<HostProcess> {
    const child = spawn(process.execPath, [FIXTURE, JSON.stringify({ ...target, name, leaseMs: LEASE_MS })], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000)
    })
    const lines = createInterface({ input: child.stdout! })
    const hostId = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`host ${name} not ready: ${stderr}`)), WAIT_MS)
      lines.once('line', (line) => {
        clearTimeout(timer)
        resolve((JSON.parse(line) as { ready: string }).ready)
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`host ${name} exited (${String(code)}): ${stderr}`))
      })
    })
    return new HostProcess(name, hostId, child, lines)
  }

  request(op: string, extra: Record<string, string> = {}): Promise<unknown> {
    const n = ++this.#n
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`host ${this.name}: ${op} had no answer`)), WAIT_MS)
      this.#pending.set(n, {
        resolve: (v) => {
          clearTimeout(timer)
          resolve(v)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      })
      this.child.stdin!.write(`${JSON.stringify({ n, op, ...extra })}\n`)
    })
  }

  async list(): Promise<string[]> {
    return (await this.request('list')) as string[]
  }

  /** SIGKILL: no cleanup, its leases stay until they expire. */
  async kill(): Promise<void> {
    this.child.kill('SIGKILL')
    await this.exited
  }

  /** Closes its stdin (it closes its Gearbox and exits); SIGKILL after a bound. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.stdin!.end()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    await this.exited
    clearTimeout(timer)
  }
}

/** What the scenario needs of the Redis under test. */
export interface HostsRedis {
  readonly target: { redis: string } | { cluster: readonly string[] }
  /** How many masters (= leases). */
  readonly shards: number
  get(key: string): Promise<string | null>
  set(key: string, value: string): Promise<void>
  /** Every lease key with its holder's id. */
  leases(): Promise<Map<string, string>>
}

/** The keyspace handler: counts each event per key and says which host ran it (keys on the event key's slot). */
const HANDLER = `
  GB().foreach((r) => {
    execute('INCR', 'seen:{' + r.key + '}')
    execute('SET', 'by:{' + r.key + '}', configGet('HOST'))
  }).register('ev:*', { eventTypes: ['set'] })`

async function writeAndCheck(redis: HostsRedis, prefix: string, count: number, holders: ReadonlySet<string>): Promise<void> {
  for (let i = 0; i < count; i++) await redis.set(`ev:${prefix}${i}`, '1')
  await until(`${count} '${prefix}' events processed`, async () => {
    for (let i = count - 1; i >= 0; i--) if ((await redis.get(`seen:{ev:${prefix}${i}}`)) === null) return false
    return true
  })
  // A barrier: one more event through the same path, then every count must be exactly 1.
  await redis.set(`ev:${prefix}barrier`, '1')
  await until('the barrier event processed', async () => (await redis.get(`seen:{ev:${prefix}barrier}`)) !== null)
  for (let i = 0; i < count; i++) {
    assert.is(await redis.get(`seen:{ev:${prefix}${i}}`), '1', `ev:${prefix}${i} processed once`)
    const by = await redis.get(`by:{ev:${prefix}${i}}`)
    assert.ok(by !== null && holders.has(by), `ev:${prefix}${i} processed by a lease holder (${String(by)} of ${[...holders].join(',')})`)
  }
}

export async function severalHosts(redis: HostsRedis): Promise<void> {
  const hosts: HostProcess[] = []
  try {
    const a = await HostProcess.start('A', redis.target)
    hosts.push(a)
    const b = await HostProcess.start('B', redis.target)
    hosts.push(b)
    const byId = new Map(hosts.map((h) => [h.hostId, h]))

    // A registration made on A reaches B (pub/sub on the store's channel).
    assert.is(await a.request('execute', { source: HANDLER }), 'OK')
    const ids = await a.list()
    assert.is(ids.length, 1)
    await until('B has the registration', async () => JSON.stringify(await b.list()) === JSON.stringify(ids))
    await until('every shard has a lease', async () => (await redis.leases()).size === redis.shards)
    for (const key of (await redis.leases()).keys()) assert.ok(key.startsWith(`${RESERVED_PREFIX}lease:`), key)

    // Both hosts hear every event; each is processed once, by the holder of its shard's lease.
    const holders = new Set([...(await redis.leases()).values()].map((id) => byId.get(id)!.name))
    await writeAndCheck(redis, 'first', 60, holders)

    // An unregistration on one host reaches the other.
    assert.is(await b.request('execute', { source: `GB('CommandReader').register({ trigger: 'probe' })` }), 'OK')
    const probe = (await b.list()).find((id) => !ids.includes(id))!
    await until('A has the probe registration', async () => (await a.list()).includes(probe))
    await a.request('unregister', { id: probe })
    await until('B dropped the probe registration', async () => !(await b.list()).includes(probe))

    // An upgrade on one host replaces the session on the other; so does a partial unregistration.
    const pair = (v: string): string => `GB('CommandReader').map(() => '${v}').register({ trigger: 'ver' }); GB('CommandReader').map(() => '${v}').register({ trigger: 'other' })`
    assert.is(await a.request('execute', { source: pair('v1'), options: JSON.stringify({ id: 'versioned' }) }), 'OK')
    await until('B runs v1', async () => JSON.stringify(await b.request('trigger', { name: 'ver' }).catch(() => null)) === '["v1"]')
    assert.is(await b.request('execute', { source: pair('v2'), options: JSON.stringify({ id: 'versioned', upgrade: true }) }), 'OK')
    await until('A runs v2', async () => JSON.stringify(await a.request('trigger', { name: 'ver' }).catch(() => null)) === '["v2"]')
    const other = (await a.list()).filter((id) => !ids.includes(id))
    assert.is(other.length, 2)
    await a.request('unregister', { id: other[1]! })
    await until('B dropped the unregistered one of the pair', async () => {
      const listed = await b.list()
      return listed.includes(other[0]!) && !listed.includes(other[1]!)
    })
    assert.equal(await b.request('trigger', { name: 'ver' }), ['v2'])

    // SIGKILL a lease holder: the survivor takes over every lease once they expire.
    const victim = byId.get([...(await redis.leases()).values()][0]!)!
    const survivor = victim === a ? b : a
    await victim.kill()
    await until('the survivor holds every lease', async () => {
      const leases = await redis.leases()
      return leases.size === redis.shards && [...leases.values()].every((id) => id === survivor.hostId)
    })
    await writeAndCheck(redis, 'second', 60, new Set([survivor.name]))
  } finally {
    await Promise.all(hosts.map((h) => h.stop()))
  }
}
