import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { startRedisServer } from '../../host/platform/redis-server.js'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { sharedCluster } from '../helpers/redis.js'

const test = suite('platform: throwaway redis processes')

test('startRedisServer answers on loopback and stop() shuts it down', async () => {
  const server = await startRedisServer()
  assert.is(server.host, '127.0.0.1')
  assert.is(await rawCommand(server.port, ['SET', 'k', 'v']), '+OK')
  assert.is(await rawCommand(server.port, ['GET', 'k']), 'v')
  await server.stop()
  await server.stop() // idempotent
  let refused = false
  try {
    await rawCommand(server.port, ['PING'], 500)
  } catch {
    refused = true
  }
  assert.ok(refused, 'the port no longer answers after stop()')
})

test('a missing binary is a coded error', async () => {
  try {
    await startRedisServer({ binary: 'redis-server-that-does-not-exist' })
    assert.unreachable('should have thrown')
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_GEARBOX_REDIS_SERVER_MISSING')
  }
})

test('the shared cluster has three masters covering all slots', async () => {
  const cluster = await sharedCluster()
  assert.is(cluster.nodes.length, 3)
  const info = await rawCommand(cluster.nodes[0]!.port, ['CLUSTER', 'INFO'])
  assert.match(info, 'cluster_state:ok')
  assert.match(info, 'cluster_slots_assigned:16384')
  assert.match(info, 'cluster_size:3')
})

test.run()
