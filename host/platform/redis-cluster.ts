/**
 * A throwaway 3-master Redis Cluster on free loopback ports (no replicas), for tests, the bench
 * and `gearbox run --local-cluster`. Slots are assigned directly (ADDSLOTSRANGE + MEET), which is
 * as fast as `redis-cli --cluster create` and needs no redis-cli.
 */
import { connect } from 'node:net'
import { RedisServerStartError } from '../errors.js'
import { startRedisServer, type RedisServerProcess } from './redis-server.js'

export interface RedisClusterProcess {
  readonly nodes: readonly { readonly host: '127.0.0.1'; readonly port: number }[]
  readonly urls: readonly string[]
  /** Stops every node. Idempotent. */
  stop(): Promise<void>
}

/** Sends one inline command and returns the raw reply text (enough for setup commands). */
export function rawCommand(port: number, args: readonly string[], timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port })
    let buf = ''
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new RedisServerStartError(`no reply from 127.0.0.1:${port} to ${args[0] ?? ''}`))
    }, timeoutMs)
    sock.on('error', (e) => {
      clearTimeout(timer)
      reject(new RedisServerStartError(`127.0.0.1:${port}: ${e.message}`))
    })
    sock.on('connect', () => {
      sock.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''))
    })
    sock.on('data', (d) => {
      buf += d.toString('utf8')
      // Setup replies are single-line (+OK, -ERR, :n) or one bulk string ($n\r\n...\r\n).
      const bulk = /^\$(\d+)\r\n/.exec(buf)
      const complete = bulk ? buf.length >= bulk[0].length + Number(bulk[1]) + 2 : buf.includes('\r\n')
      if (complete) {
        clearTimeout(timer)
        sock.destroy()
        resolve(bulk ? buf.slice(bulk[0].length, bulk[0].length + Number(bulk[1])) : buf.trimEnd())
      }
    })
  })
}

const RANGES: readonly (readonly [number, number])[] = [[0, 5460], [5461, 10922], [10923, 16383]]

/** Starts three cluster-enabled masters, assigns the slots and waits for `cluster_state:ok` everywhere. */
export async function startRedisCluster(options: { readyTimeoutMs?: number } = {}): Promise<RedisClusterProcess> {
  const servers: RedisServerProcess[] = []
  const stop = (): Promise<void> => Promise.all(servers.map((s) => s.stop())).then(() => undefined)
  try {
    for (let i = 0; i < 3; i++) {
      servers.push(await startRedisServer({
        args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000',
          '--cluster-require-full-coverage', 'yes'],
      }))
    }
    for (const [i, s] of servers.entries()) {
      const [from, to] = RANGES[i] ?? [0, 0]
      const r = await rawCommand(s.port, ['CLUSTER', 'ADDSLOTSRANGE', String(from), String(to)])
      if (!r.startsWith('+OK')) throw new RedisServerStartError(`CLUSTER ADDSLOTSRANGE on ${s.port}: ${r}`)
    }
    const first = servers[0]
    if (first === undefined) throw new RedisServerStartError('no cluster node started')
    for (const s of servers.slice(1)) await rawCommand(first.port, ['CLUSTER', 'MEET', '127.0.0.1', String(s.port)])
    // Redis refuses to turn cluster_state:ok for ~2 s after start (CLUSTER_WRITABLE_DELAY).
    const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000)
    for (;;) {
      const infos = await Promise.all(servers.map((s) => rawCommand(s.port, ['CLUSTER', 'INFO'])))
      if (infos.every((i) => i.includes('cluster_state:ok') && i.includes('cluster_known_nodes:3'))) break
      if (Date.now() > deadline) throw new RedisServerStartError('cluster did not reach cluster_state:ok in time')
      await new Promise((r) => setTimeout(r, 100))
    }
    return {
      nodes: servers.map((s) => ({ host: '127.0.0.1' as const, port: s.port })),
      urls: servers.map((s) => s.url),
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}
