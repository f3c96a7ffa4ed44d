/** Redis going away: the guest sees coded GearsErrors; the host keeps serving. */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { ConnectionError } from '../../host/errors.js'
import { Gearbox } from '../../host/gearbox.js'
import { freePort, startRedisServer } from '../../host/platform/redis-server.js'
import { createRedisBackend } from '../../host/redis/index.js'
import type { RedisBackend } from '../../host/redis/types.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection, TestBox } from './guest-probe.js'

const ctx: { redis?: TestRedis; box?: TestBox; backend?: RedisBackend } = {}

const t = suite('connection loss')

t.before(async () => {
  ctx.redis = await startRedis()
  // A backend built by the caller: short connect timeout so the test does not wait 5 s per call.
  ctx.backend = createRedisBackend(ctx.redis.url, { connectTimeoutMs: 300 })
  ctx.box = await TestBox.create({ redis: ctx.backend, workers: 1 })
})

t.after(async () => {
  await ctx.box?.close()
  await ctx.backend?.close()
  await ctx.redis?.stop()
})

t('with Redis gone, execute() and atomic() raise GearsError ERR_GEARBOX_CONNECTION; the host goes on', async () => {
  const box = ctx.box!
  assert.is(await box.value(`return execute('PING')`), 'PONG')
  await ctx.redis!.stop()
  const e = await box.thrown(`return execute('SET', 'k', 'v')`)
  assert.is(e.code, 'ERR_GEARBOX_CONNECTION')
  assert.ok(e.isGearsError)
  assert.match(String(e.message), 'not reachable')
  const a = await box.thrown(`return atomic(() => execute('GET', 'k'))`)
  assert.is(a.code, 'ERR_GEARBOX_CONNECTION')
  // Scripts that do not touch Redis still run.
  assert.is(await box.value(`return 6 * 7`), 42)
})

t('after a redis-server restart on the same port the bridge reconnects and executions work again', async () => {
  const server = await startRedisServer()
  const backend = createRedisBackend(server.url, { connectTimeoutMs: 300 })
  const box = await TestBox.create({ redis: backend, workers: 1 })
  let restarted: TestRedis | undefined
  try {
    assert.is(await box.value(`execute('SET', 'before', '1'); return execute('GET', 'before')`), '1')
    await server.stop()
    const down = await box.thrown(`return execute('GET', 'before')`)
    assert.is(down.code, 'ERR_GEARBOX_CONNECTION')
    restarted = await startRedisServer({ port: server.port })
    // The new server is empty: the value proves the call really reached it.
    let value: unknown
    for (let attempt = 0; attempt < 50; attempt++) {
      const probe = await box.probe(`execute('SET', 'after', 'ok'); return execute('GET', 'after')`)
      if ('ok' in probe) {
        value = probe.ok
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    assert.is(value, 'ok')
    assert.is(await box.value(`return execute('EXISTS', 'before')`), 0)
  } finally {
    await box.close()
    await backend.close()
    await restarted?.stop()
  }
})

t('Gearbox.create with an unreachable Redis fails with ConnectionError', async () => {
  const port = await freePort()
  const error = await rejection(() => Gearbox.create({ redis: `redis://127.0.0.1:${port}`, workers: 1 }))
  assert.instance(error, ConnectionError)
  assert.is((error as ConnectionError).code, 'ERR_GEARBOX_CONNECTION')
  assert.match((error as Error).message, String(port))
})

t.run()
