/**
 * gearbox serve against a real redis-server: redis-cli (commands and --pipe), ioredis, RESP3,
 * forwarding with Redis' semantics (MULTI, pub/sub, BLPOP pinned, SELECT, AUTH with an ACL user),
 * pipelining order, the RG.* commands, client limits, and the CLI's start line and drain.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { rawCommand } from '../../host/platform/redis-cluster.js'
import { MULTI_TEXT } from '../../host/server/rg-commands.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { RawClient, redisCli, serveGearbox, type Served } from './support.js'

const test = suite('server: gearbox serve (standalone)')
let redis: TestRedis
let served: Served
const clients: Redis[] = []

function client(options: Record<string, unknown> = {}): Redis {
  const c = new Redis({ host: '127.0.0.1', port: served.port, lazyConnect: false, maxRetriesPerRequest: 0, ...options })
  clients.push(c)
  return c
}

test.before(async () => {
  redis = await startRedis()
  served = await serveGearbox(redis.url, { limits: { maxOutputBytes: 1024 * 1024 } })
})

test.after(async () => {
  for (const c of clients) c.disconnect()
  await served.close()
  await redis.stop()
})

test('redis-cli: ordinary commands, an RG.JSEXECUTE batch, errors as Redis gives them', async () => {
  assert.is(await redisCli(served.port, ['SET', 'cli:1', 'one']), 'OK\n')
  assert.is(await redisCli(served.port, ['GET', 'cli:1']), 'one\n')
  // Non-interactive redis-cli prints each element of [[results], [errors]] on its own line.
  assert.is(await redisCli(served.port, ['RG.JSEXECUTE', "GB().map((r) => r.key + '=' + r.value).run('cli:*')"]), 'cli:1=one\n\n')
  assert.is(await redisCli(served.port, ['RG.JSEXECUTE', "execute('SET', 'cli:2', 'two')"]), 'OK\n')
  assert.is(await redisCli(served.port, ['GET', 'cli:2']), 'two\n')
  assert.match(await redisCli(served.port, ['LPUSH', 'cli:1', 'x']), /WRONGTYPE/)
  assert.match(await redisCli(served.port, ['RG.JSEXECUTE', "throw new Error('boom')"]), /Error: boom/)
  assert.is(await redisCli(served.port, ['RG.PYEXECUTE', "GB().map(lambda r: r['key'] + '=' + r['value']).run('cli:1')"]), 'cli:1=one\n\n')
  // redis-cli prints an error reply's text and a blank line.
  assert.match(await redisCli(served.port, ['RG.TRIGGER', 'cli-unknown']), /^ERR subcommand not found\n/)
})

test('registrations: RG.TRIGGER / RG.TRIGGERONKEY, errors as the whole reply, DUMPREGISTRATIONS, CLEAR, UNREGISTER', async () => {
  const c = client({ protocol: 2 } as Record<string, unknown>)
  assert.is(await redisCli(served.port, ['RG.JSEXECUTE', "GB('CommandReader').map((r) => r.join(' ')).register({ trigger: 'srv-hello' })"]), 'OK\n')
  assert.is(await redisCli(served.port, ['RG.TRIGGER', 'srv-hello', 'bob', 'alice']), 'srv-hello bob alice\n')
  assert.is(await redisCli(served.port, ['RG.TRIGGERONKEY', 'srv-hello', 'some-key', 'x']), 'srv-hello some-key x\n')
  // A trigger whose execution has an error answers that error as the whole reply (spec §1).
  await redisCli(served.port, ['RG.JSEXECUTE', "GB('CommandReader').map((r) => { throw new Error('no ' + r[1]) }).register({ trigger: 'srv-fail' })"])
  assert.match(await redisCli(served.port, ['RG.TRIGGER', 'srv-fail', 'way']), /^Error: no way\n/)
  // Inside MULTI: the RedisGears text.
  const raw = await RawClient.open(served.port)
  raw.write('MULTI\r\nRG.TRIGGER srv-hello\r\nDISCARD\r\n')
  assert.match(await raw.until((t) => t.includes('OK\r\n', 5)), /can not run a non-sync execution inside a MULTI/)
  raw.close()

  const dump = (await c.call('RG.DUMPREGISTRATIONS')) as unknown[][]
  const hello = dump.find((entry) => JSON.stringify(entry).includes('srv-hello'))
  assert.ok(hello, JSON.stringify(dump))
  assert.equal([hello[0], hello[2], hello[3], hello[6], hello[8], hello[10], hello[11]], ['id', 'reader', 'CommandReader', 'RegistrationData', 'PD', 'ExecutionThreadPool', 'DefaultPool'])
  const data = hello[7] as unknown[]
  assert.equal(data.slice(0, 4), ['mode', 'async', 'numTriggered', 2])
  assert.equal(data.slice(16, 18), ['lastError', null])
  assert.equal(data.slice(18, 20), ['args', ['trigger', 'srv-hello', 'inorder', 0]])
  assert.equal(data.slice(20, 22), ['status', 'OK'])
  assert.is(await c.call('RG.CLEARREGISTRATIONSSTATS'), 'OK')
  const cleared = ((await c.call('RG.DUMPREGISTRATIONS')) as unknown[][]).find((e) => e[1] === hello[1])!
  assert.is((cleared[7] as unknown[])[3], 0)
  assert.is(await c.call('RG.UNREGISTER', String(hello[1])), 'OK')
  assert.match(await redisCli(served.port, ['RG.UNREGISTER', String(hello[1])]), /^execution is not registered\n/)
  assert.match(await redisCli(served.port, ['RG.TRIGGER', 'srv-hello']), /^ERR subcommand not found\n/)
})

test('redis-cli --pipe: 2000 commands, all answered', async () => {
  let input = ''
  for (let i = 0; i < 2000; i++) input += `*3\r\n$3\r\nSET\r\n$${`pipe:${i}`.length}\r\npipe:${i}\r\n$${String(i).length}\r\n${i}\r\n`
  const out = await redisCli(served.port, ['--pipe'], input)
  assert.match(out, /errors: 0, replies: 2000/)
  assert.is(await rawCommand(redis.port, ['GET', 'pipe:1999']), '1999')
})

test('ioredis: batch, ordinary commands, MULTI/EXEC, binary values', async () => {
  const c = client()
  await c.set('io:a', '1')
  assert.is(await c.incr('io:a'), 2)
  const exec = await c.multi().set('io:b', 'x').incr('io:a').get('io:b').exec()
  assert.equal(exec, [[null, 'OK'], [null, 3], [null, 'x']])
  const bytes = Buffer.from([0, 255, 13, 10, 128])
  await c.set('io:bin', bytes)
  assert.equal(await c.getBuffer('io:bin'), bytes)
  const reply = await c.call('RG.JSEXECUTE', "GB().map((r) => r.key).run('io:*')")
  assert.equal((reply as [string[], string[]])[0].sort(), ['io:a', 'io:b', 'io:bin'])
  assert.equal((reply as [string[], string[]])[1], [])
})

test('replies pass through unchanged: status stays status, bulk stays bulk; §3 conversion of results', async () => {
  const raw = await RawClient.open(served.port)
  raw.write('SET pass:k v\r\nGET pass:k\r\nPING\r\n')
  assert.is(await raw.until((t) => t.endsWith('+PONG\r\n')), '+OK\r\n$1\r\nv\r\n+PONG\r\n')
  raw.clear()
  raw.write("RG.JSEXECUTE \"GB('PythonReader').run(() => ['+FINE', '-BAD thing', 'plain', 1.5, 7, [true]], { convertToStr: false })\"\r\n")
  assert.is(
    await raw.until((t) => t.endsWith('*0\r\n')),
    '*2\r\n*6\r\n+FINE\r\n-BAD thing\r\n$5\r\nplain\r\n$8\r\n1.500000\r\n:7\r\n*1\r\n:1\r\n*0\r\n',
  )
  raw.close()
})

test('RESP3: HELLO 3 answers a map; pub/sub messages arrive as push frames; HELLO with AUTH', async () => {
  const sub = await RawClient.open(served.port)
  sub.write('HELLO 3\r\n')
  const hello = await sub.until((t) => t.includes('modules'))
  assert.ok(hello.startsWith('%7\r\n'), hello)
  assert.match(hello, /\$5\r\nproto\r\n:3\r\n/)
  sub.clear()
  sub.write('GET nothing:here\r\n')
  assert.is(await sub.until((t) => t.length >= 3), '_\r\n')
  // Redis' RESP3 replies pass through as it sends them: maps, doubles, sets.
  sub.clear()
  sub.write('HSET r3:h f v\r\nHGETALL r3:h\r\nZADD r3:z 1.5 m\r\nZSCORE r3:z m\r\nSADD r3:s a\r\nSMEMBERS r3:s\r\n')
  assert.is(
    await sub.until((t) => t.endsWith('~1\r\n$1\r\na\r\n')),
    ':1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n:1\r\n,1.5\r\n:1\r\n~1\r\n$1\r\na\r\n',
  )
  sub.clear()
  sub.write('SUBSCRIBE news\r\n')
  assert.is(await sub.until((t) => t.endsWith(':1\r\n')), '>3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n')
  sub.clear()
  const pub = client()
  assert.is(await pub.publish('news', 'hello'), 1)
  assert.is(await sub.until((t) => t.endsWith('hello\r\n')), '>3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n')
  sub.clear()
  sub.write('RESET\r\n')
  assert.is(await sub.until((t) => t.endsWith('+RESET\r\n')), '+RESET\r\n')
  sub.clear()
  sub.write('PING\r\n')
  assert.is(await sub.until((t) => t.length > 0), '+PONG\r\n')
  sub.close()
})

test('a subscribed RESP2 client that switches to RESP3 keeps its subscription, now with push frames', async () => {
  const sub = await RawClient.open(served.port)
  sub.write('SUBSCRIBE switch\r\n')
  await sub.until((t) => t.endsWith(':1\r\n'))
  sub.clear()
  sub.write('HELLO 3\r\n')
  await sub.until((t) => t.includes('modules'))
  sub.clear()
  assert.is(await client().publish('switch', 'x'), 1)
  assert.is(await sub.until((t) => t.endsWith('x\r\n')), '>3\r\n$7\r\nmessage\r\n$6\r\nswitch\r\n$1\r\nx\r\n')
  sub.close()
})

test('pub/sub through the server with ioredis (which speaks RESP3)', async () => {
  const sub = client()
  const got: string[] = []
  sub.on('message', (channel: string, message: string) => got.push(`${channel}:${message}`))
  await sub.subscribe('chan-a', 'chan-b')
  const pub = client()
  await pub.publish('chan-a', 'one')
  await pub.publish('chan-b', 'two')
  const deadline = Date.now() + 5000
  while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  assert.equal(got, ['chan-a:one', 'chan-b:two'])
})

test('BLPOP pins a connection: it blocks only its client', async () => {
  const blocked = client()
  const other = client()
  const popped = blocked.blpop('queue', 10)
  let settled = false
  void popped.then(() => (settled = true))
  // The other client is served while BLPOP waits (nothing was pushed yet, so BLPOP cannot have returned).
  assert.is(await other.ping(), 'PONG')
  assert.is(await other.get('queue'), null)
  assert.is(settled, false)
  await other.lpush('queue', 'job')
  assert.equal(await popped, ['queue', 'job'])
})

test('a pinned client that switches to RESP3 gets RESP3 replies from its own connection', async () => {
  const raw = await RawClient.open(served.port)
  raw.write('SELECT 2\r\nHSET p3:h f v\r\nHELLO 3\r\nHGETALL p3:h\r\n')
  const out = await raw.until((t) => t.endsWith('%1\r\n$1\r\nf\r\n$1\r\nv\r\n'))
  assert.ok(out.startsWith('+OK\r\n:1\r\n%7\r\n'), out)
  assert.ok(out.endsWith('%1\r\n$1\r\nf\r\n$1\r\nv\r\n'), out)
  raw.close()
})

test('SELECT is per client; RESET goes back to db 0', async () => {
  const raw = await RawClient.open(served.port)
  raw.write('SELECT 3\r\nSET sel:k three\r\nGET sel:k\r\n')
  assert.is(await raw.until((t) => t.endsWith('three\r\n')), '+OK\r\n+OK\r\n$5\r\nthree\r\n')
  assert.is(await client().get('sel:k'), null)
  raw.clear()
  raw.write('RESET\r\nGET sel:k\r\n')
  assert.is(await raw.until((t) => t.endsWith('$-1\r\n')), '+RESET\r\n$-1\r\n')
  raw.close()
})

test("AUTH with an ACL user: Redis' ACL governs the client's forwarded commands", async () => {
  assert.is(await rawCommand(redis.port, ['ACL', 'SETUSER', 'reader', 'on', '>pw', '~*', '+get', '+ping', '+auth', '+hello']), '+OK')
  await rawCommand(redis.port, ['SET', 'acl:k', 'v'])
  const c = client({ username: 'reader', password: 'pw' })
  assert.is(await c.get('acl:k'), 'v')
  const denied = await c.set('acl:k', 'w').then(() => 'no error', (e: Error) => e.message)
  assert.match(denied, /NOPERM/)
  const wrong = await RawClient.open(served.port)
  wrong.write('AUTH reader nope\r\n')
  assert.match(await wrong.until((t) => t.endsWith('\r\n')), /^-WRONGPASS/)
  wrong.clear()
  wrong.write('HELLO 2 AUTH reader pw\r\nSET acl:k w\r\nGET acl:k\r\n')
  const text = await wrong.until((t) => t.endsWith('$1\r\nv\r\n'))
  assert.match(text, /-NOPERM/)
  wrong.close()
  // A client without AUTH runs as the server's configured user.
  assert.is(await client().set('acl:k', 'x'), 'OK')
})

test('pipelining: replies in order across forwarded and RG.* commands; RG.* sees earlier writes', async () => {
  const c = client()
  const p = c.pipeline()
  for (let i = 0; i < 200; i++) {
    p.incr('order:n')
    if (i % 40 === 0) p.call('RG.CONFIGGET', 'MaxExecutions')
  }
  p.call('RG.JSEXECUTE', "execute('SET', 'order:after', execute('GET', 'order:n'))")
  p.get('order:after')
  const results = (await p.exec())!
  const values = results.map(([err, v]) => (err ? `error ${err.message}` : v))
  const incrs = values.filter((v) => typeof v === 'number')
  assert.equal(incrs, Array.from({ length: 200 }, (_, i) => i + 1))
  assert.equal(values.filter((v) => Array.isArray(v)), Array.from({ length: 5 }, () => [1000]))
  assert.equal(values.slice(-2), ['OK', '200'])
})

test('a deep pipeline (30,000 commands) is read with backpressure and fully answered, in order', async () => {
  const raw = await RawClient.open(served.port)
  let wire = ''
  for (let i = 0; i < 30_000; i++) wire += i % 1000 === 999 ? 'INCR deep:n\r\n' : 'PING\r\n'
  raw.write(wire)
  const expected = Array.from({ length: 30_000 }, (_, i) => (i % 1000 === 999 ? `:${(i + 1) / 1000}\r\n` : '+PONG\r\n')).join('')
  assert.is(await raw.until((t) => t.length >= expected.length, 30_000), expected)
  raw.close()
})

test('RG.* inside MULTI: the RedisGears text, and EXEC aborts as Redis would', async () => {
  const raw = await RawClient.open(served.port)
  raw.write('MULTI\r\nSET m:k 1\r\nRG.JSEXECUTE "1"\r\nEXEC\r\n')
  const text = await raw.until((t) => t.includes('EXECABORT'))
  assert.is(text, `+OK\r\n+QUEUED\r\n-${MULTI_TEXT}\r\n-EXECABORT Transaction discarded because of previous errors.\r\n`)
  assert.is(await client().exists('m:k'), 0)
  raw.close()
})

test('executions: UNBLOCKING id, RG.GETRESULTSBLOCKING blocks only its client, ABORT, GETEXECUTION, DROP', async () => {
  const c = client()
  await c.set('slow:1', 'x')
  const id = (await c.call('RG.JSEXECUTE', "GB().map((r) => { for (;;) {} }).run('slow:*')", 'UNBLOCKING')) as string
  assert.match(id, /^[0-9a-f]{40}-\d+$/)
  const waiter = client()
  const blocking = waiter.call('RG.GETRESULTSBLOCKING', id)
  // The execution loops until aborted: the blocked client cannot have its answer yet, others are served.
  assert.is(await c.ping(), 'PONG')
  assert.match(String(await c.call('RG.GETRESULTS', id).catch((e: Error) => e.message)), /execution is still running/)
  const dump = (await c.call('RG.DUMPEXECUTIONS')) as unknown[][]
  assert.ok(dump.some((e) => e[1] === id && e[3] === 'running'))
  assert.is(await c.call('RG.ABORTEXECUTION', id), 'OK')
  assert.equal(await blocking, [[], ['execution aborted']])
  const info = (await c.call('RG.GETEXECUTION', id)) as unknown[][]
  assert.is(info[0]![0], 'shard_id')
  assert.is((info[0]![3] as unknown[])[1], 'aborted')
  assert.is(await c.call('RG.DROPEXECUTION', id), 'OK')
  assert.match(String(await c.call('RG.GETRESULTS', id).catch((e: Error) => e.message)), /execution plan does not exist/)
})

test('RG.JSEXECUTE grammar: options accepted, errors with the spec texts', async () => {
  const c = client()
  const err = (p: Promise<unknown>): Promise<string> => p.then((v) => `no error: ${String(v)}`, (e: Error) => e.message)
  assert.is(await c.call('RG.JSEXECUTE', "execute('SET', 'g:1', '1')", 'ID', 'my-id_1', 'DESCRIPTION', 'd', 'UPGRADE', 'REQUIREMENTS'), 'OK')
  assert.is(await err(c.call('RG.JSEXECUTE', '1', 'ID')), 'ID is missing')
  assert.is(await err(c.call('RG.JSEXECUTE', '1', 'ID', 'bad id')), "ID must be compose of: ['A'-'Z' | 'a'-'z' | '0' - '9' | '-' | '_']")
  assert.is(await err(c.call('RG.JSEXECUTE', '1', 'DESCRIPTION')), 'DESCRIPTION is missing')
  assert.is(await err(c.call('RG.JSEXECUTE', '1', 'BOGUS')), 'Unknown arguments were given: BOGUS')
  assert.is(await err(c.call('RG.JSEXECUTE', '1', 'REPLACE_WITH', 'old')), 'Can not replace with old, session does not exists.')
  assert.match(await err(c.call('RG.JSEXECUTE', '1', 'REQUIREMENTS', 'numpy')), /REQUIREMENTS are not supported/)
})

test('RG.CONFIGGET / RG.CONFIGSET (raw replies); functions read what CONFIGSET saved', async () => {
  const raw = await RawClient.open(served.port)
  raw.write('RG.CONFIGSET MaxExecutions 50 ExecutionThreads 2 myKey myValue lonely\r\n')
  assert.is(
    await raw.until((t) => t.endsWith('lonely\r\n')),
    '*4\r\n+OK\r\n-(error) Config value ExecutionThreads not modifiable at runtime\r\n+OK - value was saved in extra config dictionary\r\n-(error) Value was not given to lonely\r\n',
  )
  raw.clear()
  raw.write('RG.CONFIGGET MaxExecutions myKey nope\r\n')
  assert.is(await raw.until((t) => t.endsWith('nope\r\n')), '*3\r\n:50\r\n$7\r\nmyValue\r\n-(error) Unsupported config parameter: nope\r\n')
  raw.clear()
  raw.write('RG.JSEXECUTE "execute(\'SET\', \'cfg:seen\', configGet(\'myKey\'))"\r\nGET cfg:seen\r\n')
  assert.is(await raw.until((t) => t.endsWith('myValue\r\n')), '+OK\r\n$7\r\nmyValue\r\n')
  raw.close()
})

test('RG.INFOCLUSTER, RG.REFRESHCLUSTER, RG.PYSTATS, INFO rg, COMMAND INFO / DOCS', async () => {
  const c = client()
  assert.is(await c.call('RG.INFOCLUSTER'), 'no cluster mode')
  assert.is(await c.call('RG.REFRESHCLUSTER'), 'OK')
  const stats = (await c.call('RG.PYSTATS')) as unknown[]
  assert.equal([stats[0], stats[2], stats[4]], ['TotalAllocated', 'PeakAllocated', 'CurrAllocated'])
  assert.ok(stats.every((v, i) => i % 2 === 0 || (typeof v === 'number' && v >= 0)))
  const info = (await c.info('rg')) as string
  assert.match(info, /^# rg\r\nrg_TotalAllocated:\d+\r\nrg_PeakAllocated:\d+\r\nrg_CurrAllocated:\d+\r\nrg_nexecutions:\d+\r\nrg_nregistrations:0\r\n$/)
  const all = (await c.info()) as string
  assert.match(all, /# Server/)
  assert.match(all, /# rg/)
  const cmd = (await c.call('COMMAND', 'INFO', 'RG.JSEXECUTE', 'GET')) as unknown[][]
  assert.is(cmd[0]![0], 'rg.jsexecute')
  assert.is(cmd[0]![1], -2)
  assert.is(cmd[1]![0], 'get')
  const docs = (await c.call('COMMAND', 'DOCS', 'RG.GETRESULTS')) as unknown[]
  assert.is(docs[0], 'rg.getresults')
  assert.ok(((docs[1] as unknown[]) ?? []).includes('summary'))
})

test('a protocol error answers the error and closes only that connection', async () => {
  const bad = await RawClient.open(served.port)
  const good = client()
  bad.write('*1\r\n$-5\r\n')
  assert.is(await bad.until(() => false, 3000).then(() => bad.text()), '-ERR Protocol error: invalid bulk length\r\n')
  assert.ok(bad.closed)
  assert.is(await good.ping(), 'PONG')
})

test('a client that never reads its replies is disconnected at the output buffer cap', async () => {
  const c = client()
  await c.set('big', 'x'.repeat(512 * 1024))
  const lazy = await RawClient.open(served.port)
  lazy.socket.pause()
  let requests = ''
  for (let i = 0; i < 200; i++) requests += 'GET big\r\n'
  lazy.write(requests)
  const deadline = Date.now() + 10_000
  while (!lazy.socket.destroyed && served.handle.clients > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50))
    lazy.socket.resume()
    lazy.socket.pause()
    if (lazy.closed) break
  }
  lazy.socket.resume()
  assert.ok(await lazy.closedByServer(10_000), 'the server closed the lazy client')
  assert.ok(lazy.text().length < 200 * 512 * 1024, 'not every reply was delivered')
  assert.is(await c.ping(), 'PONG')
})

test('QUIT answers OK and closes', async () => {
  const raw = await RawClient.open(served.port)
  raw.write('PING\r\nQUIT\r\nPING\r\n')
  assert.ok(await raw.closedByServer())
  assert.is(raw.text(), '+PONG\r\n+OK\r\n')
})

test('close() drains: stops accepting, lets a running execution finish and answer, then closes', async () => {
  const own = await serveGearbox(redis.url)
  const raw = await RawClient.open(own.port)
  raw.write("RG.JSEXECUTE \"GB('PythonReader').map((x) => { let n = 0; for (let i = 0; i < 3e6; i++) n += i; return x }).run(() => ['done'])\"\r\n")
  const deadline = Date.now() + 10_000
  while (!own.gearbox.executions.list().some((e) => e.status === 'running') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
  assert.ok(own.gearbox.executions.list().some((e) => e.status === 'running'), 'the execution runs')
  const closing = own.handle.close()
  // New connections are refused from now on.
  const refused = await RawClient.open(own.port).then((c) => (c.close(), 'accepted'), () => 'refused')
  assert.is(refused, 'refused')
  await closing
  // The reply was flushed before the close: read until the server's FIN, then compare.
  assert.ok(await raw.closedByServer())
  assert.is(raw.text(), '*2\r\n*1\r\n$4\r\ndone\r\n*0\r\n')
  await own.gearbox.close()
})

test('gearbox serve (CLI): one line when accepting, SIGTERM drains and exits 0', async () => {
  const child = spawn(process.execPath, ['dist/host/cli/main.js', 'serve', '--port', '0', '--redis', redis.url], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const deadline = Date.now() + 20_000
  while (!out.includes('\n') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50))
  const line = /^gearbox serve: accepting connections on 127\.0\.0\.1:(\d+), backend redis redis:\/\/127\.0\.0\.1:\d+\n$/.exec(out)
  assert.ok(line, out)
  assert.is(await redisCli(Number(line![1]), ['PING']), 'PONG\n')
  child.kill('SIGTERM')
  const [code] = (await once(child, 'exit')) as [number | null]
  assert.is(code, 0)
})

test.run()
