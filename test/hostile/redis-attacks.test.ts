/**
 * The Redis-level hostile corpus: functions that attack Redis, the host and the other executions
 * through the connection gearbox gives them (the interpreter-level corpus is
 * test/sandbox/hostile.test.ts). Each attack runs on a real redis-server and on the real 3-master
 * cluster, under a guard (support.ts) that asserts, besides the attack's own coded outcome, that
 * every master answers PING within 100 ms throughout, that bystander executions running at the
 * same time all finish normally, and that the host's RSS stays within the attack's bound.
 */
import { suite, type Test } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, Redis } from 'ioredis'
import { Gearbox, type GearboxOptions } from '../../host/gearbox.js'
import { sharedCluster, startRedis, type TestRedis } from '../helpers/redis.js'
import { assertUnharmed, failureCode, Guard, type Endpoint } from './support.js'

const MiB = 2 ** 20
/** RSS bound of an attack that moves no big data through the host. */
const SMALL_RSS = 64 * MiB
/** RSS bound of an attack whose reply is hundreds of MB at Redis: a fraction of what it is. */
const BIG_RSS = 128 * MiB

type Admin = Redis | Cluster

interface Target {
  readonly name: string
  gearbox(options?: Omit<GearboxOptions, 'redis'>): Promise<Gearbox>
  readonly admin: Admin
  readonly masters: readonly Endpoint[]
  /** Runs a command on every master (setup and checks). */
  eachMaster(args: readonly string[]): Promise<unknown[]>
  close(): Promise<void>
}

async function standaloneTarget(): Promise<Target> {
  const server: TestRedis = await startRedis()
  const admin = new Redis(server.url)
  await admin.config('SET', 'slowlog-log-slower-than', '1000')
  return {
    name: 'standalone',
    gearbox: (options = {}) => Gearbox.create({ workers: 2, ...options, redis: server.url }),
    admin,
    masters: [{ host: '127.0.0.1', port: server.port }],
    eachMaster: async (args) => [await admin.call(args[0]!, ...args.slice(1))],
    close: async () => {
      admin.disconnect()
      await server.stop()
    },
  }
}

async function clusterTarget(): Promise<Target> {
  const cluster = await sharedCluster()
  await cluster.flushAll()
  const admin = new Cluster(cluster.nodes.map((n) => ({ host: n.host, port: n.port })))
  const perMaster = cluster.nodes.map((n) => new Redis({ host: n.host, port: n.port }))
  for (const r of perMaster) await r.config('SET', 'slowlog-log-slower-than', '1000')
  return {
    name: 'cluster',
    gearbox: (options = {}) => Gearbox.create({ workers: 2, ...options, redis: { cluster: cluster.urls } }),
    admin,
    masters: cluster.nodes,
    eachMaster: (args) => Promise.all(perMaster.map((r) => r.call(args[0]!, ...args.slice(1)))),
    close: async () => {
      admin.disconnect()
      for (const r of perMaster) r.disconnect()
      await cluster.flushAll()
    },
  }
}

interface Attack {
  readonly name: string
  /**
   * The function's source. With `body: true` it is a function body: the outcome is what it returned
   * (written to a key by the script and read back), or the failure of the execution.
   */
  readonly script: string
  readonly body?: boolean
  /** Checks the execution's outcome; gets the settled promise. */
  readonly expect: (outcome: Promise<unknown>, target: Target) => Promise<void>
  readonly limits?: GearboxOptions['limits']
  readonly setup?: (target: Target) => Promise<void>
  /** Checks that Redis kept its state (runs after the guard stopped). */
  readonly after?: (target: Target) => Promise<void>
  readonly rssBoundBytes?: number
  /**
   * Commands (lowercase names) whose own execution time inside Redis, as SLOWLOG records it, is
   * Redis's cost for any client (copying a 300 MB value into a reply): PING may wait that long
   * on top of the 100 ms bound. gearbox's own commands are never excused.
   */
  readonly redisOwnCost?: readonly string[]
  /** Gearbox options of this attack (a fresh Gearbox is made for it when given). */
  readonly options?: Omit<GearboxOptions, 'redis'>
}

const value = (expected: unknown) => async (outcome: Promise<unknown>) => assert.equal(await outcome, expected)
const limit = (code: string) => async (outcome: Promise<unknown>) => assert.is((await failureCode(outcome)).code, code)

const attacks: Attack[] = []
const attack = (a: Attack): void => void attacks.push(a)

/** A function that tries `command` and returns the code of what stopped it (or the reply). */
const tryCommand = (args: string): string => `try { return execute(${args}) } catch (e) { return e.code || e.message }`

const RESULT_KEY = '{r}result'
/** Runs a function body in the guest; its return value comes back through RESULT_KEY as JSON. */
const asBody = (body: string): string => `execute('SET', '${RESULT_KEY}', JSON.stringify((function () { ${body} })() ?? null))`

// 1. The shared connection: blocking forms answer at once, never block it -----------------------

for (const args of [
  `'BLPOP', '{q}nolist', '0x1p30'`,
  `'BLPOP', '{q}nolist', '1e9'`,
  `'BRPOP', '{q}a', '{q}b', '0'`,
  `'BZPOPMIN', '{q}z', '0x1P+30'`,
  `'BLMOVE', '{q}a', '{q}b', 'LEFT', 'RIGHT', '0'`,
  `'BRPOPLPUSH', '{q}a', '{q}b', '0'`,
  `'BLMPOP', '0', '1', '{q}a', 'LEFT'`,
  `'XREAD', 'BLOCK', '10', 'BLOCK', '0', 'STREAMS', '{q}s', '$'`,
  `'XREAD', 'COUNT', '1', 'BLOCK', '0', 'STREAMS', '{q}s', '$'`,
  `'XREADGROUP', 'BLOCK', '0', 'GROUP', 'g', 'c', 'STREAMS', '{q}s', '>'`,
  `'XREADGROUP', 'GROUP', 'g', 'c', 'NOACK', 'BLOCK', '0', 'COUNT', '2', 'BLOCK', '0', 'STREAMS', '{q}s', '>'`,
]) {
  attack({
    name: `blocking form answers at once: ${args}`,
    script: `return execute(${args})`,
    body: true,
    limits: { wallMs: 10_000 },
    setup: async (t) => {
      await t.admin.del('{q}s')
      await t.admin.call('XGROUP', 'CREATE', '{q}s', 'g', '$', 'MKSTREAM')
    },
    expect: value(null),
  })
}

attack({
  name: 'WAIT is refused',
  body: true,
  script: tryCommand(`'WAIT', '1', '0'`),
  expect: value('ERR_GEARBOX_COMMAND_DENIED'),
})

attack({
  name: 'an atomic() block with a blocking form leaves its connection idle for the next one',
  body: true,
  script: `
    atomic(() => { execute('GET', '{q}k'); execute('BLPOP', '{q}nolist', '0x1p30') })
    atomic(() => { execute('GET', '{q}k'); execute('SET', '{q}k', 'after') })
    return execute('GET', '{q}k')`,
  limits: { wallMs: 10_000 },
  expect: value('after'),
})

// 2. Lua -------------------------------------------------------------------------------------------

attack({
  name: 'EVAL of an endless loop is refused',
  body: true,
  script: tryCommand(`'EVAL', 'while true do end', '0'`),
  expect: value('ERR_GEARBOX_COMMAND_DENIED'),
})

attack({
  name: 'EVAL around the deny list is refused',
  body: true,
  script: tryCommand(`'EVAL', "return redis.call('FLUSHALL')", '0'`),
  setup: async (t) => void (await t.admin.set('{c}canary', 'alive')),
  expect: value('ERR_GEARBOX_COMMAND_DENIED'),
  after: async (t) => assert.is(await t.admin.get('{c}canary'), 'alive'),
})

attack({
  name: "Lua the policy was widened to allow still can do no more than the function (Redis's ACL)",
  options: { allowCommands: ['EVAL'] },
  body: true,
  script: `try { execute('EVAL', "return redis.call('FLUSHALL')", '0'); return 'flushed' } catch (e) { return e.message }`,
  setup: async (t) => void (await t.admin.set('{c}canary', 'alive')),
  // Redis 7.0 words a NOPERM inside Lua as "The user executing the script can't run this command".
  expect: async (outcome) => assert.match(String(await outcome), /can't run this command|NOPERM/),
  after: async (t) => assert.is(await t.admin.get('{c}canary'), 'alive'),
})

let scriptsBefore: number[] = []
const cachedScripts = async (t: Target): Promise<number[]> =>
  (await t.eachMaster(['INFO', 'memory'])).map((info) => Number(/number_of_cached_scripts:(\d+)/.exec(String(info))?.[1] ?? NaN))
attack({
  name: "a thousand distinct EVAL scripts do not grow Redis's script cache",
  body: true,
  script: `let refused = 0
    for (let i = 0; i < 1000; i++) { try { execute('EVAL', 'return ' + i, '0') } catch (e) { if (e.code === 'ERR_GEARBOX_COMMAND_DENIED') refused++ } }
    return refused`,
  setup: async (t) => void (scriptsBefore = await cachedScripts(t)),
  expect: value(1000),
  after: async (t) => assert.equal(await cachedScripts(t), scriptsBefore),
})

const HUGE_VALUE_BYTES = 100 * 1000 * 1000
attack({
  name: 'a batch run over three 100 MB values does not stall Redis',
  script: `GB().map((r) => r.key + ':' + r.value.length).run('{h}huge:*')`,
  setup: async (t) => {
    for (let i = 0; i < 3; i++) await t.admin.setrange(`{h}huge:${i}`, HUGE_VALUE_BYTES - 1, 'x')
  },
  // As a reader failure in RedisGears: the run ends with the error, and the value was never read whole.
  expect: async (outcome) => {
    const [results, errors] = (await outcome) as [unknown[], string[]]
    assert.equal(results, [])
    assert.equal(errors, ['KeysReader: a string value of 100000000 bytes exceeds limits.maxReplyBytes (67108864 bytes)'])
  },
  after: async (t) => void (await t.admin.del('{h}huge:0', '{h}huge:1', '{h}huge:2')),
  rssBoundBytes: BIG_RSS,
})

// 3. Administration --------------------------------------------------------------------------------

for (const args of [
  `'SWAPDB', '0', '1'`,
  `'MIGRATE', '127.0.0.1', '1', '{c}canary', '0', '1000'`,
  `'SLOWLOG', 'RESET'`,
  `'CLUSTER', 'DELSLOTSRANGE', '0', '100'`,
  `'CLUSTER', 'ADDSLOTS', '0'`,
  `'CLUSTER', 'SETSLOT', '0', 'NODE', 'nobody'`,
  `'CLUSTER', 'FORGET', 'nobody'`,
  `'CLUSTER', 'RESET'`,
  `'CONFIG', 'SET', 'maxmemory', '1'`,
  `'CONFIG', 'GET', 'requirepass'`,
  `'DEBUG', 'SLEEP', '1'`,
  `'SHUTDOWN', 'NOSAVE'`,
  `'FLUSHALL'`,
  `'FLUSHDB'`,
  `'CLIENT', 'PAUSE', '10000'`,
  `'CLIENT', 'KILL', 'TYPE', 'normal'`,
  `'REPLICAOF', '127.0.0.1', '1'`,
  `'ACL', 'SETUSER', 'evil', 'on', 'nopass', '+@all'`,
  `'MODULE', 'LOAD', '/tmp/x.so'`,
  `'BGSAVE'`,
  `'FAILOVER'`,
  `'MONITOR'`,
  `'SUBSCRIBE', 'ch'`,
  `'FUNCTION', 'FLUSH'`,
  `'SCRIPT', 'FLUSH'`,
  `'RESTORE', '{c}r', '0', 'x'`,
  `'SELECT', '1'`,
  `'HELLO', '3'`,
  `'CLIENT', 'REPLY', 'OFF'`,
]) {
  attack({
    name: `admin command refused: ${args}`,
    body: true,
    script: tryCommand(args),
    setup: async (t) => void (await t.admin.set('{c}canary', 'alive')),
    expect: value('ERR_GEARBOX_COMMAND_DENIED'),
    after: async (t) => {
      assert.is(await t.admin.get('{c}canary'), 'alive')
      if (t.name === 'cluster') {
        for (const info of await t.eachMaster(['CLUSTER', 'INFO'])) assert.match(String(info), 'cluster_slots_assigned:16384')
      }
    },
  })
}

// 4. Replies bigger than maxReplyBytes are refused as they arrive ----------------------------------

attack({
  name: 'GET of a 300 MB value',
  body: true,
  script: `return execute('GET', '{b}big').length`,
  setup: async (t) => void (await t.admin.setrange('{b}big', 300 * 1000 * 1000 - 1, 'x')),
  expect: limit('ERR_GEARBOX_REPLY_LIMIT'),
  // Redis copies a 300 MB value into the reply for any client (~280 ms here): its own cost.
  redisOwnCost: ['get'],
  after: async (t) => void (await t.admin.del('{b}big')),
  rssBoundBytes: BIG_RSS,
})

attack({
  name: 'LRANGE of 100,000 elements over a 1 MiB maxReplyBytes',
  body: true,
  script: `return execute('LRANGE', '{b}list', '0', '-1').length`,
  limits: { maxReplyBytes: MiB },
  setup: async (t) => {
    await t.admin.del('{b}list')
    const chunk = Array.from({ length: 10_000 }, (_, i) => String(i))
    for (let i = 0; i < 10; i++) await t.admin.rpush('{b}list', ...chunk)
  },
  expect: limit('ERR_GEARBOX_REPLY_LIMIT'),
  redisOwnCost: ['lrange'],
  after: async (t) => void (await t.admin.del('{b}list')),
})

attack({
  name: 'KEYS over 100,000 keys over a 1 MiB maxReplyBytes',
  body: true,
  script: `return execute('KEYS', '*').length`,
  limits: { maxReplyBytes: MiB },
  setup: async (t) => {
    // KEYS runs on the execution's shard: the one owning slot 0, whose hashtag is 06S. Each Lua
    // call writes 10,000 keys inside Redis (a few ms).
    for (let i = 0; i < 10; i++) {
      await t.admin.eval(`for i = 1, 10000 do redis.call('SET', '{06S}k:${i}:' .. i, '1') end`, 1, '{06S}anchor')
    }
  },
  expect: limit('ERR_GEARBOX_REPLY_LIMIT'),
  redisOwnCost: ['keys'],
  after: async (t) => void (await t.eachMaster(['FLUSHALL'])),
})

attack({
  name: 'a run producing 300,000 tiny results over a 1 MiB maxReplyBytes',
  script: `GB('ShardsIDReader').flatmap(() => { const out = []; for (let i = 0; i < 100000; i++) out.push(i); return out }).run()`,
  limits: { maxReplyBytes: MiB },
  // The run stops taking results at the limit, counted by what each result costs the host.
  expect: async (outcome) => {
    const [results, errors] = (await outcome) as [unknown[], string[]]
    assert.ok(results.length < MiB / 32, `${results.length} results kept`)
    assert.ok(errors.some((e) => /maxReplyBytes/.test(e)), errors.join('\n'))
  },
})

// 5. Errors a guest can forge --------------------------------------------------------------------

attack({
  name: 'a thrown look-alike of the out-of-memory error stays the guest\'s error',
  script: `throw { name: 'InternalError', message: 'out of memory' }`,
  expect: limit('ERR_GEARBOX_GUEST'),
})

attack({
  name: 'a thrown look-alike of the stack overflow stays the guest\'s error',
  script: `const e = new Error('stack overflow'); e.name = 'InternalError'; throw e`,
  expect: limit('ERR_GEARBOX_GUEST'),
})

attack({
  name: 'Object.prototype.toJSON does not change the outcome',
  script: `Object.prototype.toJSON = () => 'hijacked'; Array.prototype.toJSON = () => 'hijacked'
    execute('SET', '{t}tj', '1')
    GB().map((r) => r.key + '=' + r.value).run('{t}tj')`,
  expect: value([['{t}tj=1'], []]),
})

// 6. Correctness ---------------------------------------------------------------------------------

attack({
  name: 'keys that differ by a lone surrogate are never written as one key',
  body: true,
  script: `try { execute('SET', 'k\\uD800', 'a'); execute('SET', 'k\\uDC00', 'b'); return [execute('GET', 'k\\uD800'), execute('GET', 'k\\uDC00')] }
    catch (e) { return e.code }`,
  expect: async (outcome) => {
    // Refused: UTF-8 cannot encode a lone surrogate, so both would become 'k\xEF\xBF\xBD'.
    assert.is(await outcome, 'ERR_GEARBOX_INVALID_STRING')
  },
})

attack({
  name: 'runCoroutine with a delay beyond what a timer holds never runs early',
  script: `runCoroutine(async () => execute('SET', '{t}early', '1'), null, 1e7)`,
  limits: { wallMs: 2000 },
  expect: async (outcome) => void (await outcome.catch(() => undefined)),
  after: async (t) => assert.is(await t.admin.get('{t}early'), null),
})

attack({
  name: 'a result nested 5,000 arrays deep fails with a coded error',
  script: `GB('ShardsIDReader').map(() => { let a = []; for (let i = 0; i < 5000; i++) a = [a]; return a }).run()`,
  // The default to-string of a record is its JSON, which QuickJS writes at any depth.
  expect: async (outcome, t) => {
    const [results, errors] = (await outcome) as [unknown[], string[]]
    assert.equal(errors, [])
    assert.equal(results, t.masters.map(() => '['.repeat(5001) + ']'.repeat(5001)))
  },
})

attack({
  name: 'top-level promise jobs are not dropped with their writes',
  script: `Promise.resolve().then(() => execute('SET', '{t}job', 'ran'))`,
  setup: async (t) => void (await t.admin.del('{t}job')),
  expect: async (outcome, t) => {
    const settled = await outcome.then(
      () => 'resolved',
      (e: { code?: string }) => e.code ?? 'uncoded',
    )
    const written = await t.admin.get('{t}job')
    assert.ok((settled === 'resolved' && written === 'ran') || (settled !== 'resolved' && settled !== 'uncoded'), `${settled}, key: ${written}`)
  },
})

attack({
  name: 'a StreamReader register() on a key holding a hash: registered, the hash left as it is',
  script: `GB('StreamReader').register('victim')`,
  // A Gearbox of its own: the registration ends with it.
  options: { logger: { log: () => undefined } },
  setup: async (target) => {
    await target.admin.hset('victim', 'f', 'v')
  },
  expect: async (outcome) => {
    assert.is(await outcome, 'OK')
  },
  after: async (target) => {
    assert.is(await target.admin.type('victim'), 'hash')
    assert.equal(await target.admin.hgetall('victim'), { f: 'v' })
    await target.admin.del('victim')
  },
})

// ---------------------------------------------------------------------------------------------------

/** The longest time Redis spent on one of `commands` since the SLOWLOG RESET, in ms. */
async function slowestOwnCommandMs(target: Target, commands: readonly string[]): Promise<number> {
  let slowest = 0
  for (const log of await target.eachMaster(['SLOWLOG', 'GET', '128'])) {
    for (const entry of log as unknown[][]) {
      const micros = Number(entry[2])
      const name = String((entry[3] as unknown[])[0]).toLowerCase()
      if (commands.includes(name)) slowest = Math.max(slowest, micros / 1000)
    }
  }
  return slowest
}

function corpus(name: string, makeTarget: () => Promise<Target>): Test {
  const s = suite(`hostile functions against Redis (${name})`)
  const ctx: { target?: Target; gearbox?: Gearbox } = {}
  s.before(async () => {
    ctx.target = await makeTarget()
    ctx.gearbox = await ctx.target.gearbox()
  })
  s.after(async () => {
    await ctx.gearbox?.close()
    await ctx.target?.close()
  })
  for (const a of attacks) {
    s(a.name, async () => {
      const target = ctx.target!
      const own = a.options ? await target.gearbox(a.options) : undefined
      const gearbox = own ?? ctx.gearbox!
      try {
        await a.setup?.(target)
        await target.eachMaster(['SLOWLOG', 'RESET'])
        const guard = new Guard(gearbox, target.masters)
        const options = a.limits ? { limits: a.limits } : {}
        const outcome = a.body
          ? gearbox.execute(asBody(a.script), options).then(async () => JSON.parse((await target.admin.get(RESULT_KEY)) ?? 'null') as unknown)
          : gearbox.execute(a.script, options)
        outcome.catch(() => {})
        try {
          await a.expect(outcome, target)
        } finally {
          const report = await guard.stop()
          const excusedMs = a.redisOwnCost ? await slowestOwnCommandMs(target, a.redisOwnCost) : 0
          assertUnharmed(a.name, report, a.rssBoundBytes ?? SMALL_RSS, excusedMs)
        }
        await a.after?.(target)
      } finally {
        await own?.close()
      }
    })
  }
  return s
}

corpus('standalone', standaloneTarget).run()
corpus('cluster', clusterTarget).run()
