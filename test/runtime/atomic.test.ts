/** atomic(): optimistic transactions against a real redis-server. */
import { Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { gearsError, TestBox } from './guest-probe.js'

const ctx: { redis?: TestRedis; box?: TestBox; client?: Redis } = {}
const box = (): TestBox => ctx.box!
const client = (): Redis => ctx.client!

const t = suite('atomic')

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.box = await TestBox.create({ redis: ctx.redis.url, workers: 1 })
  ctx.client = new Redis(ctx.redis.url, { protocol: 2 })
})

t.after(async () => {
  await ctx.box?.close()
  ctx.client?.disconnect()
  await ctx.redis?.stop()
})


t("returns fn's value; writes return 'QUEUED' and are applied at the end; reads return real replies", async () => {
  await client().set('acct', '10')
  const out = await box().value(`
    const seen = []
    const result = atomic(() => {
      const v = Number(execute('GET', 'acct'))
      seen.push(execute('SET', 'acct', v + 5))
      seen.push(execute('HSET', 'h', 'f', 'x'))
      seen.push(execute('TIME').length)
      return v
    })
    return [result, seen, execute('GET', 'acct'), execute('HGET', 'h', 'f')]
  `)
  assert.equal(out, [10, ['QUEUED', 'QUEUED', 2], '15', 'x'])
})

t('reading a key the block already wrote is refused, and nothing is applied', async () => {
  const e = await box().thrown(`atomic(() => { execute('SET', 'raw', '1'); return execute('GET', 'raw') })`)
  assert.equal(
    e,
    gearsError("atomic block reads key 'raw' after writing it: writes inside atomic() are applied when the block ends, so read keys before writing them"),
  )
  assert.is(await client().exists('raw'), 0)
})

t('an exception inside aborts the block: nothing applied, the same error propagates', async () => {
  const out = await box().value(`
    const boom = new Error('boom')
    try {
      atomic(() => { execute('SET', 'ex1', 'x'); execute('GET', 'ex2'); throw boom })
    } catch (e) { return [e === boom, execute('EXISTS', 'ex1')] }
  `)
  assert.equal(out, [true, 0])
})

t("nested atomic: 'Already inside an atomic block' and the outer block is aborted", async () => {
  const e = await box().thrown(`atomic(() => { execute('SET', 'outer', '1'); atomic(() => 1) })`)
  assert.equal(e, gearsError('Already inside an atomic block'))
  assert.is(await client().exists('outer'), 0)
  // The runtime is usable afterwards.
  assert.is(await box().value(`return atomic(() => 'fine')`), 'fine')
})

t("an async block: 'await is not allow inside atomic block', its writes discarded", async () => {
  const e = await box().thrown(`atomic(async () => { execute('SET', 'aw', '1'); await null })`)
  assert.equal(e, gearsError('await is not allow inside atomic block'))
  assert.is(await client().exists('aw'), 0)
  const e2 = await box().thrown(`atomic(() => Promise.resolve(1))`)
  assert.equal(e2, gearsError('await is not allow inside atomic block'))
})

t('a coroutine started inside a block runs after it, outside the transaction', async () => {
  await box().run(`
    atomic(() => {
      execute('GET', 'co:k')
      runCoroutine(async () => log('coroutine got ' + execute('SET', 'co:k', 'from coroutine')))
      execute('SET', 'co:other', '1')
    })
    log('block done')
  `)
  assert.equal(box().messages, ['block done', 'coroutine got OK'])
  assert.equal(await client().mget('co:k', 'co:other'), ['from coroutine', '1'])
})

t('transaction commands are refused inside a block', async () => {
  for (const command of ['MULTI', 'EXEC', 'WATCH', 'UNWATCH', 'DISCARD']) {
    const e = await box().thrown(`atomic(() => execute('${command}', 'k'))`)
    assert.is(e.message, `${command} is not allowed inside an atomic block: atomic() runs WATCH/MULTI/EXEC itself`)
  }
})

t('a write refused when queued aborts the whole block with Redis\'s text', async () => {
  const e = await box().thrown(`atomic(() => { execute('SET', 'q1', 'x'); execute('SET', 'only-key') })`)
  assert.equal(e, gearsError("ERR wrong number of arguments for 'set' command"))
  assert.is(await client().exists('q1'), 0)
})

t('a write failing when applied raises after the block; the other writes were applied (no rollback)', async () => {
  await client().set('str', 'x')
  const e = await box().thrown(`atomic(() => { execute('SET', 'applied', 'yes'); execute('LPUSH', 'str', 'y') })`)
  assert.equal(e, gearsError('WRONGTYPE Operation against a key holding the wrong kind of value'))
  assert.is(await client().get('applied'), 'yes')
})

t('denied commands are refused inside a block too', async () => {
  const e = await box().thrown(`atomic(() => execute('FLUSHALL'))`)
  assert.is(e.code, 'ERR_GEARBOX_COMMAND_DENIED')
})

// Conflicts made on demand: after its read the block logs 'watching' and polls DBSIZE (a keyless
// read, outside the transaction). The test's logger then adds a key from another client — in the
// first `conflicts` attempts together with a change to the key the block read.
async function conflictingBox(atomicRetries: number, conflicts: number): Promise<{ box: TestBox; attempts: () => number }> {
  const external = new Redis(ctx.redis!.url, { protocol: 2 })
  const marker = `go:${Math.random().toString(36).slice(2)}` // a new key per attempt grows DBSIZE
  let attempts = 0
  const box = await TestBox.create({ redis: ctx.redis!.url, workers: 1, atomicRetries }, (line) => {
    if (line.message !== 'watching') return
    attempts++
    if (attempts <= conflicts) void external.multi().incr('contended').set(`${marker}:${attempts}`, '1').exec()
    else void external.set(`${marker}:${attempts}`, '1')
  })
  const close = box.close.bind(box)
  box.close = async () => {
    external.disconnect()
    await close()
  }
  return { box, attempts: () => attempts }
}

const CONFLICTING_BLOCK = `
  return atomic(() => {
    const v = Number(execute('GET', 'contended'))
    const keys = execute('DBSIZE')
    log('watching')
    for (let i = 0; i < 100000 && execute('DBSIZE') === keys; i++) {}
    execute('SET', 'contended', v + 100)
    return v
  })
`

t('a conflict re-runs the block with fresh reads', async () => {
  await client().set('contended', '0')
  const { box: b, attempts } = await conflictingBox(16, 2)
  try {
    const v = await b.value(CONFLICTING_BLOCK)
    assert.is(attempts(), 3)
    assert.is(v, 2)
    assert.is(await client().get('contended'), '102')
  } finally {
    await b.close()
  }
})

t('after atomicRetries re-runs: ERR_GEARBOX_ATOMIC_CONFLICT, nothing applied by the block', async () => {
  await client().set('contended', '0')
  const { box: b, attempts } = await conflictingBox(1, 100)
  try {
    const e = await b.thrown(CONFLICTING_BLOCK)
    assert.is(e.code, 'ERR_GEARBOX_ATOMIC_CONFLICT')
    assert.ok(e.isGearsError)
    assert.match(String(e.message), 'raise the atomicRetries option (now 1)')
    assert.is(attempts(), 2)
    assert.is(await client().get('contended'), '2')
  } finally {
    await b.close()
  }
})

t('no lost update: concurrent executions and an external client increment one key by read-modify-write', async () => {
  const EXECUTIONS = 4
  const PER_EXECUTION = 25
  const EXTERNAL = 50
  await client().set('counter', '0')
  const contender = await TestBox.create({ redis: ctx.redis!.url, workers: 3, atomicRetries: 10_000 })
  const external = new Redis(ctx.redis!.url, { protocol: 2 })
  try {
    const script = `
      for (let i = 0; i < ${PER_EXECUTION}; i++) {
        atomic(() => {
          const v = Number(execute('GET', 'counter'))
          execute('SET', 'counter', v + 1)
        })
      }`
    // The external client does the same with WATCH/MULTI/EXEC, retrying on conflict (bounded).
    const externalIncrements = (async () => {
      let done = 0
      for (let tries = 0; done < EXTERNAL && tries < 100_000; tries++) {
        await external.watch('counter')
        const v = Number(await external.get('counter'))
        const result = await external.multi().set('counter', String(v + 1)).exec()
        if (result !== null) done++
      }
      return done
    })()
    const replies = await Promise.all(Array.from({ length: EXECUTIONS }, () => contender.gearbox.execute(script)))
    assert.equal(replies, Array(EXECUTIONS).fill('OK'))
    assert.is(await externalIncrements, EXTERNAL)
    assert.is(await client().get('counter'), String(EXECUTIONS * PER_EXECUTION + EXTERNAL))
  } finally {
    external.disconnect()
    await contender.close()
  }
})

t.run()
