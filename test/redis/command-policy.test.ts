import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  CommandPolicy,
  DEFAULT_DENY_COMMANDS,
  commandKeyIndexes,
  commandKeys,
  isReadOnly,
} from '../../host/redis/index.js'
import type { RedisArg } from '../../host/redis/types.js'

const test = suite('redis: command policy')
const policy = new CommandPolicy()

function refusal(p: CommandPolicy, args: readonly RedisArg[]): { code: string | undefined; message: string } {
  try {
    p.prepare(args)
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message }
  }
  throw new Error(`${args.join(' ')} was not refused`)
}

test('commands outside the function ACL are refused, naming the category and how to widen it', () => {
  // [command, the ACL category that refuses it]: what the old noscript rule and issue 6 named.
  const cases: [RedisArg[], string][] = [
    [['LATENCY', 'RESET'], 'dangerous'],
    [['BGSAVE'], 'dangerous'],
    [['CONFIG', 'GET', 'maxmemory'], 'dangerous'],
    [['SCRIPT', 'FLUSH'], 'scripting'],
    [['FUNCTION', 'DELETE', 'lib'], 'scripting'],
    [['ROLE'], 'dangerous'],
    [['SWAPDB', '0', '1'], 'dangerous'],
    [['MIGRATE', '10.0.0.1', '6379', 'k', '0', '1000'], 'dangerous'],
    [['SLOWLOG', 'RESET'], 'dangerous'],
    [['CLUSTER', 'DELSLOTSRANGE', '0', '10'], 'dangerous'],
    [['cluster', 'addslots', '1'], 'dangerous'],
    [['CLUSTER', 'SETSLOT', '1', 'NODE', 'x'], 'dangerous'],
    [['CLUSTER', 'FORGET', 'x'], 'dangerous'],
    [['EVAL', 'return 1', '0'], 'scripting'],
    [['EVALSHA', 'abc', '0'], 'scripting'],
    [['EVAL_RO', 'return 1', '0'], 'scripting'],
    [['FCALL', 'f', '0'], 'scripting'],
    [['FCALL_RO', 'f', '0'], 'scripting'],
    [['PUBSUB', 'CHANNELS'], 'pubsub'],
  ]
  for (const [args, category] of cases) {
    const display = args.length > 1 && ['CONFIG', 'SCRIPT', 'FUNCTION', 'SLOWLOG', 'CLUSTER', 'PUBSUB', 'LATENCY'].includes(String(args[0]).toUpperCase())
      ? `${String(args[0])} ${String(args[1])}`.toUpperCase()
      : String(args[0]).toUpperCase()
    const { code, message } = refusal(policy, args)
    assert.is(code, 'ERR_GEARBOX_COMMAND_DENIED', display)
    assert.ok(message.startsWith(`${display} is not allowed in gearbox functions: it is in the @${category} ACL category`), message)
    assert.match(message, 'not the denyCommands option')
    assert.match(message, `add '${display}' or '@${category}' to allowCommands`)
  }
  assert.match(refusal(policy, ['EVAL', 'while true do end', '0']).message, 'BUSY')
})

test('commands that change or break the shared connection are refused, whatever allowCommands says', () => {
  const cases: RedisArg[][] = [
    ['SUBSCRIBE', 'ch'],
    ['psubscribe', 'p*'],
    ['SSUBSCRIBE', 'ch'],
    ['UNSUBSCRIBE'],
    ['SYNC'],
    ['MONITOR'],
    ['PSYNC', '?', '-1'],
    ['QUIT'],
    ['RESET'],
    ['HELLO', '3'],
    ['AUTH', 'pw'],
    ['CLIENT', 'LIST'],
    ['client', 'kill', 'ID', '1'],
    ['CLIENT', 'REPLY', 'OFF'],
    ['SELECT', '1'],
    ['READONLY'],
    ['READWRITE'],
    ['ASKING'],
  ]
  const widened = new CommandPolicy({ allowCommands: ['@all'] })
  for (const args of cases) {
    for (const p of [policy, widened]) {
      const { code, message } = refusal(p, args)
      assert.is(code, 'ERR_GEARBOX_COMMAND_DENIED', String(args[0]))
      assert.ok(message.startsWith(String(args[0]).toUpperCase()), message)
      assert.match(message, 'changes the state of the connection')
      assert.match(message, 'allowCommands cannot widen this')
    }
  }
  assert.match(refusal(policy, ['CLIENT', 'LIST']).message, /^CLIENT LIST is not allowed/)
})

test('transactions are refused with a pointer to atomic()', () => {
  for (const p of [policy, new CommandPolicy({ allowCommands: ['MULTI', '@transaction'] })]) {
    for (const name of ['MULTI', 'EXEC', 'DISCARD', 'WATCH', 'UNWATCH']) {
      const { code, message } = refusal(p, name === 'WATCH' ? [name, 'k'] : [name])
      assert.is(code, 'ERR_GEARBOX_COMMAND_DENIED')
      assert.match(message, 'atomic()')
    }
  }
})

test('WAIT (no non-blocking form) is refused', () => {
  assert.match(refusal(policy, ['WAIT', '1', '0']).message, 'would block the connection')
  assert.match(refusal(policy, ['waitaof', '1', '1', '0']).message, 'would block the connection')
  assert.match(refusal(new CommandPolicy({ allowCommands: ['WAIT'] }), ['WAIT', '1', '0']).message, 'no non-blocking form')
})

test('kept commands of denied categories, ordinary commands and unknown commands pass', () => {
  for (const args of [['KEYS', '*'], ['SORT', 'l'], ['SORT_RO', 'l'], ['INFO'], ['XREAD', 'STREAMS', 's', '0'], ['XREADGROUP', 'GROUP', 'g', 'c', 'STREAMS', 's', '>'], ['PUBLISH', 'c', 'm'], ['SPUBLISH', 'c', 'm'], ['GET', 'k'], ['OBJECT', 'ENCODING', 'k'], ['CONFIG', 'HELP'], ['ACL', 'WHOAMI']]) {
    assert.equal(policy.prepare(args).args, args)
  }
  assert.equal(policy.prepare(['NOSUCHCMD', 'x']).args, ['NOSUCHCMD', 'x'])
  assert.equal(policy.prepare(['CONFIG', 'NOSUCHSUB']).args, ['CONFIG', 'NOSUCHSUB'], 'Redis answers unknown subcommands')
})

test('allowCommands widens by command, subcommand or category; Lua is refused until allowed', () => {
  const evalOnly = new CommandPolicy({ allowCommands: ['eval'] })
  assert.equal(evalOnly.prepare(['EVAL', 'return 1', '0']).args, ['EVAL', 'return 1', '0'])
  assert.match(refusal(evalOnly, ['FCALL', 'f', '0']).message, '@scripting')
  const scripting = new CommandPolicy({ allowCommands: ['@scripting'] })
  for (const args of [['EVAL', 'return 1', '0'], ['EVALSHA', 'abc', '0'], ['FCALL', 'f', '0'], ['SCRIPT', 'LOAD', 'return 1']]) {
    assert.equal(scripting.prepare(args).args, args)
  }
  const configGet = new CommandPolicy({ allowCommands: ['CONFIG GET'] })
  assert.equal(configGet.prepare(['config', 'get', 'x']).args, ['config', 'get', 'x'])
  assert.match(refusal(configGet, ['CONFIG', 'SET', 'x', 'y']).message, /^CONFIG SET is denied by the denyCommands option/)
  assert.match(refusal(configGet, ['CONFIG', 'RESETSTAT']).message, '@dangerous')
  // denyCommands applies after allowCommands: a category widened, one command narrowed.
  const narrowed = new CommandPolicy({ allowCommands: ['@scripting'], denyCommands: ['EVAL'] })
  assert.match(refusal(narrowed, ['EVAL', 'return 1', '0']).message, /^EVAL is denied by the denyCommands option \(currently: EVAL\)/)
  assert.equal(narrowed.prepare(['FCALL', 'f', '0']).args, ['FCALL', 'f', '0'])
  assert.equal(narrowed.aclOptions(), { deny: ['eval'], allow: ['@scripting'] })
  assert.equal(policy.aclOptions(), { deny: ['shutdown', 'debug', 'module', 'config|set', 'acl|setuser', 'flushall', 'flushdb', 'replicaof', 'slaveof'], allow: [] })
  for (const bad of ['', 'a b c', '@nosuchcategory', 'GET x', 'CONFIG NOSUCHSUB', '@read x']) {
    try {
      new CommandPolicy({ allowCommands: [bad] })
      assert.unreachable(JSON.stringify(bad))
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_GEARBOX_INVALID_ARGUMENT')
      assert.match((err as Error).message, 'allowCommands')
    }
  }
})

test('the default deny list names the denyCommands option', () => {
  assert.equal([...DEFAULT_DENY_COMMANDS], ['SHUTDOWN', 'DEBUG', 'MODULE', 'CONFIG SET', 'ACL SETUSER', 'FLUSHALL', 'FLUSHDB', 'REPLICAOF', 'SLAVEOF'])
  for (const args of [['FLUSHALL'], ['flushdb', 'ASYNC'], ['SHUTDOWN', 'NOSAVE'], ['config', 'set', 'maxmemory', '1'], ['ACL', 'setuser', 'u'], ['SLAVEOF', 'no', 'one'], ['MODULE', 'LIST'], ['DEBUG', 'SLEEP', '0']]) {
    const { code, message } = refusal(policy, args)
    assert.is(code, 'ERR_GEARBOX_COMMAND_DENIED')
    assert.match(message, 'denied by the denyCommands option')
    assert.match(message, 'remove it from denyCommands')
  }
  assert.match(refusal(policy, ['config', 'set', 'x', 'y']).message, /^CONFIG SET is denied/)
})

test('a configured deny list replaces the default; entries match case-insensitively, subcommands on two words', () => {
  const custom = new CommandPolicy({ denyCommands: ['del', 'Object Encoding'] })
  assert.match(refusal(custom, ['DEL', 'k']).message, /^DEL is denied by the denyCommands option \(currently: DEL, OBJECT ENCODING\)/)
  assert.match(refusal(custom, ['object', 'ENCODING', 'k']).message, /^OBJECT ENCODING is denied/)
  assert.equal(custom.prepare(['OBJECT', 'FREQ', 'k']).args, ['OBJECT', 'FREQ', 'k'])
  // FLUSHALL left the list, but it is @dangerous: the built-in rule still refuses it.
  assert.match(refusal(custom, ['FLUSHALL']).message, '@dangerous')
  const none = new CommandPolicy({ denyCommands: [], allowCommands: ['FLUSHDB'] })
  assert.equal(none.prepare(['FLUSHDB']).args, ['FLUSHDB'])
  // SHUTDOWN is still refused by the built-in rule when the list is empty.
  assert.match(refusal(none, ['SHUTDOWN']).message, 'not the denyCommands option')
  const byCategory = new CommandPolicy({ denyCommands: ['@write'] })
  assert.match(refusal(byCategory, ['SET', 'k', 'v']).message, /^@write is denied by the denyCommands option/)
  assert.equal(byCategory.prepare(['GET', 'k']).args, ['GET', 'k'])
  for (const bad of ['', 'a b c', 'SET NX']) {
    try {
      new CommandPolicy({ denyCommands: [bad] })
      assert.unreachable(JSON.stringify(bad))
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_GEARBOX_INVALID_ARGUMENT')
      assert.match((err as Error).message, 'denyCommands')
    }
  }
})

test('binary command names and arguments are matched as text', () => {
  const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
  assert.is(refusal(policy, [bytes('flushall')]).code, 'ERR_GEARBOX_COMMAND_DENIED')
  assert.match(refusal(policy, [bytes('CONFIG'), bytes('set'), 'a', 'b']).message, /^CONFIG SET/)
})

test('blocking commands get their non-blocking form', () => {
  assert.equal(policy.prepare(['BLPOP', 'a', 'b', '5']).args, ['LMPOP', '2', 'a', 'b', 'LEFT'])
  assert.equal(policy.prepare(['brpop', 'a', '0']).args, ['LMPOP', '1', 'a', 'RIGHT'])
  assert.equal(policy.prepare(['BZPOPMAX', 'z', '0.5']).args, ['ZMPOP', '1', 'z', 'MAX'])
  assert.equal(policy.prepare(['BLMPOP', '1', '1', 'l', 'LEFT', 'COUNT', '2']).args, ['LMPOP', '1', 'l', 'LEFT', 'COUNT', '2'])
  assert.equal(policy.prepare(['BZMPOP', '1', '1', 'z', 'MIN']).args, ['ZMPOP', '1', 'z', 'MIN'])
  assert.equal(policy.prepare(['BRPOPLPUSH', 's', 'd', '1']).args, ['RPOPLPUSH', 's', 'd'])
  assert.equal(policy.prepare(['BLMOVE', 's', 'd', 'LEFT', 'RIGHT', '1']).args, ['LMOVE', 's', 'd', 'LEFT', 'RIGHT'])
  assert.equal(policy.prepare(['XREAD', 'COUNT', '2', 'BLOCK', '100', 'STREAMS', 's', '$']).args, ['XREAD', 'COUNT', '2', 'STREAMS', 's', '$'])
  assert.equal(
    policy.prepare(['XREADGROUP', 'GROUP', 'g', 'BLOCK', 'BLOCK', '0', 'NOACK', 'STREAMS', 's', '>']).args,
    ['XREADGROUP', 'GROUP', 'g', 'BLOCK', 'NOACK', 'STREAMS', 's', '>'],
    'a consumer called BLOCK is not the option',
  )
  assert.equal(policy.prepare(['XREAD', 'STREAMS', 's', '0']).args, ['XREAD', 'STREAMS', 's', '0'])
  // Forms Redis would refuse are refused here, with Redis's own text: never sent as they are.
  const redisError = (args: RedisArg[]): string => {
    try {
      policy.prepare(args)
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_GEARBOX_REDIS_ERROR')
      return (err as Error).message
    }
    throw new Error(`${args.join(' ')} was not refused`)
  }
  assert.is(redisError(['BLPOP', 'a', 'soon']), 'ERR timeout is not a float or out of range')
  assert.is(redisError(['BLPOP', 'a', '-1']), 'ERR timeout is negative')
  assert.is(redisError(['BLPOP', 'a']), "ERR wrong number of arguments for 'blpop' command")
  assert.is(redisError(['XREAD', 'BLOCK', 'x', 'STREAMS', 's', '0']), 'ERR timeout is not an integer or out of range')
  // Forms the old rewrite missed.
  assert.equal(policy.prepare(['BLPOP', 'nolist', '0x1p30']).args, ['LMPOP', '1', 'nolist', 'LEFT'])
  assert.equal(policy.prepare(['XREAD', 'BLOCK', '10', 'BLOCK', '0', 'STREAMS', 's', '$']).args, ['XREAD', 'STREAMS', 's', '$'])
  assert.equal(
    policy.prepare(['XREADGROUP', 'BLOCK', '0', 'COUNT', '1', 'GROUP', 'g', 'c', 'NOACK', 'STREAMS', 's', '>']).args,
    ['XREADGROUP', 'COUNT', '1', 'GROUP', 'g', 'c', 'NOACK', 'STREAMS', 's', '>'],
  )
  // A blocking command whose twin is denied is refused, naming both.
  assert.match(refusal(new CommandPolicy({ denyCommands: ['LMPOP'] }), ['BLPOP', 'a', '0']).message, /^BLPOP runs as LMPOP in gearbox \(without blocking\), and LMPOP is denied by the denyCommands option/)
  assert.match(refusal(new CommandPolicy({ denyCommands: ['BLPOP'] }), ['BLPOP', 'a', '0']).message, /^BLPOP is denied/)
})

test('reply adapters give the blocking command shapes back', () => {
  const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
  const blpop = policy.prepare(['BLPOP', 'a', '1'])
  assert.equal(blpop.adaptReply?.([bytes('a'), [bytes('x')]]), [bytes('a'), bytes('x')])
  assert.is(blpop.adaptReply?.(null), null)
  const bzpop = policy.prepare(['BZPOPMIN', 'z', '1'])
  assert.equal(bzpop.adaptReply?.([bytes('z'), [[bytes('m'), bytes('1.5')]]]), [bytes('z'), bytes('m'), bytes('1.5')])
})

test('isReadOnly resolves subcommands; commandKeys finds keys via the command table', () => {
  assert.ok(isReadOnly(['GET', 'k']))
  assert.ok(isReadOnly('hgetall'))
  assert.ok(isReadOnly('OBJECT ENCODING'))
  assert.ok(isReadOnly(['XREAD', 'STREAMS', 's', '0']))
  assert.not.ok(isReadOnly(['SET', 'k', 'v']))
  assert.not.ok(isReadOnly(['NOSUCHCMD']))
  assert.equal(commandKeyIndexes(['SET', 'k', 'v']), [1])
  assert.equal(commandKeys(['MSET', 'a', '1', 'b', '2']), ['a', 'b'])
  assert.equal(commandKeys(['EVAL', 'return 1', '2', 'k1', 'k2', 'arg']), ['k1', 'k2'])
  assert.equal(commandKeys(['XREAD', 'COUNT', '1', 'STREAMS', 's1', 's2', '0', '0']), ['s1', 's2'])
  assert.equal(commandKeys(['LMPOP', '2', 'a', 'b', 'LEFT']), ['a', 'b'])
  assert.equal(commandKeys(['OBJECT', 'ENCODING', 'k']), ['k'])
  const binaryKey = new Uint8Array([0xff, 0x00])
  assert.equal(commandKeys(['GET', binaryKey]), [binaryKey])
  assert.equal(commandKeys(['SET']), [], 'missing key: nothing out of range')
  assert.equal(commandKeys(['PING']), [])
  assert.equal(commandKeys(['NOSUCHCMD', 'x']), [])
})

test.run()
