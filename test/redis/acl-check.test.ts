import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { AclEvaluation } from '../../host/redis/acl-check.js'
import { COMMAND_TABLE, COMMAND_TABLE_REDIS_VERSION } from '../../host/redis/command-table.generated.js'
import { CommandPolicy } from '../../host/redis/command-policy.js'
import { functionAclCommandRules, functionAclRules, type FunctionAclOptions } from '../../host/redis/function-acl.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'

const test = suite('redis: the host check mirrors the function ACL (ACL DRYRUN)')
let server: TestRedis
let client: Redis

test.before(async () => {
  server = await startRedis()
  client = new Redis(server.port, '127.0.0.1')
})

test.after(async () => {
  client.disconnect()
  await server.stop()
})

/** Every command and subcommand of the table, with arguments enough for its arity. */
function everyCommand(): { name: string; sub: string | undefined; args: string[] }[] {
  const out: { name: string; sub: string | undefined; args: string[] }[] = []
  const pad = (words: string[], arity: number): string[] => [...words, ...Array<string>(Math.max(0, Math.abs(arity) - words.length)).fill('x')]
  for (const [name, entry] of Object.entries(COMMAND_TABLE)) {
    if (!entry.subcommands) out.push({ name, sub: undefined, args: pad([name], entry.arity) })
    for (const [sub, subEntry] of Object.entries(entry.subcommands ?? {})) out.push({ name, sub, args: pad([name, sub], subEntry.arity) })
  }
  return out
}

test('the generated command table is what the server reports', async () => {
  const info = await client.info('server')
  const version = /redis_version:(\S+)/.exec(info)?.[1] ?? ''
  assert.is(version.split('.').slice(0, 2).join('.'), COMMAND_TABLE_REDIS_VERSION.split('.').slice(0, 2).join('.'), 'same Redis major.minor')
  const reply = (await client.call('COMMAND')) as unknown[][]
  assert.is(reply.length, Object.keys(COMMAND_TABLE).length)
  for (const c of reply) {
    const name = String(c[0])
    const entry = COMMAND_TABLE[name]
    assert.ok(entry, name)
    assert.equal(((c[6] as unknown[]).map((x) => String(x).slice(1))).sort(), [...entry.categories], `${name} categories`)
    assert.is(Number(c[1]), entry.arity, `${name} arity`)
    for (const s of (c[9] as unknown[][] | undefined) ?? []) {
      const sub = String(s[0]).split('|')[1] ?? ''
      assert.equal(((s[6] as unknown[]).map((x) => String(x).slice(1))).sort(), [...(entry.subcommands?.[sub]?.categories ?? ['missing'])], `${String(s[0])} categories`)
    }
  }
})

const optionSets: FunctionAclOptions[] = [
  new CommandPolicy().aclOptions(),
  new CommandPolicy({ allowCommands: ['EVAL', 'CONFIG GET', 'OBJECT FREQ'], denyCommands: ['GET', 'CLUSTER INFO'] }).aclOptions(),
  new CommandPolicy({ allowCommands: ['@scripting', '@admin', 'FLUSHDB'], denyCommands: ['@write', 'EVALSHA'] }).aclOptions(),
  new CommandPolicy({ allowCommands: ['@all'], denyCommands: [] }).aclOptions(),
]

test('for every command and subcommand, the host evaluation of the rules equals ACL DRYRUN', async () => {
  const commands = everyCommand()
  let compared = 0
  for (const [i, options] of optionSets.entries()) {
    const user = `gearbox-acl-test-${i}`
    assert.is(await client.call('ACL', 'SETUSER', user, 'reset', 'nopass', ...functionAclRules(options)), 'OK')
    const evaluation = new AclEvaluation(functionAclCommandRules(options))
    const pipeline = client.pipeline()
    for (const c of commands) pipeline.call('ACL', 'DRYRUN', user, ...c.args)
    const replies = (await pipeline.exec()) ?? []
    commands.forEach((c, j) => {
      const [err, reply] = replies[j] ?? [new Error('no reply'), null]
      assert.is(err, null, `${c.args.join(' ')}: ${String(err)}`)
      const redisAllows = reply === 'OK'
      if (!redisAllows) assert.match(String(reply), 'has no permissions', String(reply))
      assert.is(evaluation.allows(c.name, c.sub), redisAllows, `${c.name}${c.sub ? '|' + c.sub : ''} with ${JSON.stringify(options)}`)
      compared++
    })
  }
  assert.ok(compared > 4 * 300, `compared ${compared}`)
})

test('the host policy refuses exactly what the ACL refuses, plus its host-only rules', async () => {
  const user = 'gearbox-acl-test-policy'
  const policy = new CommandPolicy()
  await client.call('ACL', 'SETUSER', user, 'reset', 'nopass', ...functionAclRules(policy.aclOptions()))
  const commands = everyCommand()
  const pipeline = client.pipeline()
  for (const c of commands) pipeline.call('ACL', 'DRYRUN', user, ...c.args)
  const replies = (await pipeline.exec()) ?? []
  const hostOnly = new Set(['auth', 'hello', 'quit', 'reset', 'multi', 'exec', 'discard', 'watch', 'unwatch'])
  const blocking = new Set(['blpop', 'brpop', 'bzpopmin', 'bzpopmax', 'blmpop', 'bzmpop', 'brpoplpush', 'blmove'])
  commands.forEach((c, j) => {
    const redisAllows = replies[j]?.[1] === 'OK'
    let hostAllows = true
    try {
      policy.prepare(c.args)
    } catch (err) {
      // Redis's own argument errors (a blocking command's dummy timeout) are not refusals.
      hostAllows = (err as { code?: string }).code !== 'ERR_GEARBOX_COMMAND_DENIED'
    }
    const id = c.sub ? `${c.name}|${c.sub}` : c.name
    if (hostOnly.has(c.name)) assert.not.ok(hostAllows, `${id} is refused by a host-only rule`)
    else if (blocking.has(c.name)) assert.ok(!redisAllows && hostAllows, `${id}: refused by the ACL, run as its non-blocking twin by the host`)
    else assert.is(hostAllows, redisAllows, id)
  })
})

test.run()
