/**
 * Real Redis for tests: a throwaway standalone server per caller, and one 3-master cluster shared
 * by the whole run (the runner starts it once and passes GEARBOX_TEST_CLUSTER_NODES; a test file
 * run on its own starts its own and stops it at exit).
 */
import { startRedisServer, type RedisServerProcess } from '../../host/platform/redis-server.js'
import { rawCommand, startRedisCluster } from '../../host/platform/redis-cluster.js'

export type TestRedis = RedisServerProcess

/** A fresh redis-server on a free loopback port; call `stop()` in the suite's `after`. */
export function startRedis(): Promise<TestRedis> {
  return startRedisServer()
}

export interface TestCluster {
  readonly nodes: readonly { readonly host: string; readonly port: number }[]
  readonly urls: readonly string[]
  /** FLUSHALL on every master: call it at the start of a file that needs an empty cluster. */
  flushAll(): Promise<void>
  /** Stops the cluster if this process started it; a no-op for the runner's shared cluster. */
  stop(): Promise<void>
}

let shared: Promise<TestCluster> | undefined

/** The run's shared 3-master cluster. */
export function sharedCluster(): Promise<TestCluster> {
  shared ??= (async () => {
    const fromEnv = process.env['GEARBOX_TEST_CLUSTER_NODES']
    let nodes: { host: string; port: number }[]
    let stopOwn: () => Promise<void> = async () => {}
    if (fromEnv) {
      nodes = fromEnv.split(',').map((hp) => {
        const [host, port] = hp.split(':')
        return { host: host ?? '127.0.0.1', port: Number(port) }
      })
    } else {
      const c = await startRedisCluster()
      nodes = [...c.nodes]
      // Its processes do not keep this process alive; they are killed when it exits.
      stopOwn = () => c.stop()
    }
    return {
      nodes,
      urls: nodes.map((n) => `redis://${n.host}:${n.port}`),
      flushAll: async () => {
        for (const n of nodes) {
          const r = await rawCommand(n.port, ['FLUSHALL'])
          if (!r.startsWith('+OK')) throw new Error(`FLUSHALL on ${n.port}: ${r}`)
        }
      },
      stop: () => stopOwn(),
    }
  })()
  return shared
}
