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

test('commands Redis refuses in scripts are refused, naming the command and the reason', () => {
  const cases: RedisArg[][] = [
    ['SUBSCRIBE', 'ch'],
    ['psubscribe', 'p*'],
    ['SSUBSCRIBE', 'ch'],
    ['UNSUBSCRIBE'],
    ['MONITOR'],
    ['SYNC'],
    ['PSYNC', '?', '-1'],
    ['QUIT'],
    ['RESET'],
    ['HELLO', '3'],
    ['AUTH', 'pw'],
    ['CLIENT', 'LIST'],
    ['client', 'kill', 'ID', '1'],
    ['CONFIG', 'GET', 'maxmemory'],
    ['SCRIPT', 'FLUSH'],
    ['FUNCTION', 'DELETE', 'lib'],
    ['ROLE'],
  ]
  for (const args of cases) {
    const { code, message } = refusal(policy, args)
    assert.is(code, 'ERR_GEARBOX_COMMAND_DENIED', String(args[0]))
    assert.ok(message.startsWith(`${String(args[0]).toUpperCase()}`), message)
    assert.match(message, 'Redis refuses it inside scripts')
    assert.match(message, 'not the denyCommands option')
  }
  assert.match(refusal(policy, ['CLIENT', 'LIST']).message, /^CLIENT LIST is not allowed/)
})

test('transactions are refused with a pointer to atomic()', () => {
  for (const name of ['MULTI', 'EXEC', 'DISCARD', 'WATCH', 'UNWATCH']) {
    const { code, message } = refusal(policy, name === 'WATCH' ? [name, 'k'] : [name])
    assert.is(code, 'ERR_GEARBOX_COMMAND_DENIED')
    assert.match(message, 'atomic()')
  }
})

test('connection-state commands and blocking commands without a non-blocking form are refused', () => {
  for (const args of [['SELECT', '1'], ['READONLY'], ['READWRITE'], ['ASKING']]) {
    assert.match(refusal(policy, args).message, 'changes the state of the connection')
  }
  assert.match(refusal(policy, ['WAIT', '1', '0']).message, 'would block the connection')
})

test('script runners are allowed (no recursion outside Redis), unknown commands pass to Redis', () => {
  for (const args of [['EVAL', 'return 1', '0'], ['EVALSHA', 'abc', '0'], ['FCALL', 'f', '0'], ['FCALL_RO', 'f', '0'], ['EVAL_RO', 'return 1', '0']]) {
    assert.equal(policy.prepare(args).args, args)
  }
  assert.equal(policy.prepare(['NOSUCHCMD', 'x']).args, ['NOSUCHCMD', 'x'])
  assert.equal(policy.prepare(['GET', 'k']).args, ['GET', 'k'])
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
  assert.equal(custom.prepare(['FLUSHALL']).args, ['FLUSHALL'], 'no longer in the list')
  const none = new CommandPolicy({ denyCommands: [] })
  assert.equal(none.prepare(['FLUSHDB']).args, ['FLUSHDB'])
  // SHUTDOWN is still refused by the built-in rule when the list is empty.
  assert.match(refusal(none, ['SHUTDOWN']).message, 'not the denyCommands option')
  for (const bad of ['', 'a b c']) {
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
  // Invalid timeouts and arities go to Redis unchanged: it answers with an error at once.
  assert.equal(policy.prepare(['BLPOP', 'a', 'soon']).args, ['BLPOP', 'a', 'soon'])
  assert.equal(policy.prepare(['BLPOP', 'a', '-1']).args, ['BLPOP', 'a', '-1'])
  assert.equal(policy.prepare(['BLPOP', 'a']).args, ['BLPOP', 'a'])
  assert.equal(policy.prepare(['XREAD', 'BLOCK', 'x', 'STREAMS', 's', '0']).args, ['XREAD', 'BLOCK', 'x', 'STREAMS', 's', '0'])
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
