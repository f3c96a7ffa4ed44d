/**
 * The Python conformance corpus (test/python/corpus/*.py, RedisGears 1.2-style scripts built from
 * the spec's §1) through every entry point: gearbox.execute(source, {language: 'python'}),
 * `gearbox run file.py`, and RG.PYEXECUTE in `gearbox serve`, on a standalone Redis and on the
 * 3-master cluster. Each script asserts its own expectations in Python (a failed assert is an
 * error reply); the replies and the keys they leave are checked here.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis, Cluster } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { main } from '../../host/cli/main.js'
import { GuestError } from '../../host/errors.js'
import { startRedis, sharedCluster, type TestCluster, type TestRedis } from '../helpers/redis.js'
import { serveGearbox, type Served } from '../server/support.js'

const corpusPath = (name: string): string => new URL(`../../../test/python/corpus/${name}`, import.meta.url).pathname
const corpus = (name: string): string => readFileSync(corpusPath(name), 'utf8')
const SELF_CHECKING = ['execute.py', 'runtime.py', 'futures.py', 'polyfills.py']

const TRACEBACK = [
  'Traceback (most recent call last):',
  '  File "<string>", line 5, in <module>',
  '  File "<string>", line 3, in fetch_data',
  "NameError: name 'notexists' is not defined",
].join('\n')

async function cli(argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const status = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), progress: false })
  return { status, stdout, stderr }
}

// ---- standalone -----------------------------------------------------------------------------------
const standalone = suite('python conformance (standalone)')
const s: { redis?: TestRedis; served?: Served; client?: Redis } = {}

standalone.before(async () => {
  s.redis = await startRedis()
  s.served = await serveGearbox(s.redis.url)
  s.client = new Redis({ host: '127.0.0.1', port: s.served.port, maxRetriesPerRequest: 0 })
})
standalone.after(async () => {
  s.client?.disconnect()
  await s.served?.close()
  await s.redis?.stop()
})

standalone('gearbox.execute: every corpus script replies OK', async () => {
  for (const name of SELF_CHECKING) {
    assert.is(await s.served!.gearbox.execute(corpus(name), { language: 'python' }), 'OK', name)
  }
  assert.is(await s.client!.get('{py}:future'), '42')
  assert.is(await s.client!.get('{py}:gathered'), '6')
})

standalone('gearbox.execute: an uncaught exception is a GuestError with the traceback', async () => {
  try {
    await s.served!.gearbox.execute(corpus('traceback.py'), { language: 'python' })
    assert.unreachable('the script should fail')
  } catch (error) {
    assert.instance(error, GuestError)
    const guest = error as GuestError
    assert.is(guest.guestName, 'NameError')
    assert.is(guest.message, "name 'notexists' is not defined")
    assert.is(guest.guestStack, TRACEBACK)
  }
})

standalone('RG.PYEXECUTE: every corpus script replies OK; a failing one replies its traceback', async () => {
  await s.client!.del('{py}:future')
  for (const name of SELF_CHECKING) assert.is(await s.client!.call('RG.PYEXECUTE', corpus(name)), 'OK', name)
  assert.is(await s.client!.get('{py}:future'), '42')
  try {
    await s.client!.call('RG.PYEXECUTE', corpus('traceback.py'))
    assert.unreachable('RG.PYEXECUTE should reply an error')
  } catch (error) {
    // The RESP encoder flattens line breaks of error replies.
    assert.is((error as Error).message, TRACEBACK.replace(/\n/g, ' '))
  }
  assert.is(await s.client!.call('RG.PYEXECUTE', "execute('SET', 'py:opt', 'x')", 'UNBLOCKING', 'ID', 'abc'), 'OK')
  const bogus = await s.client!.call('RG.PYEXECUTE', 'x = 1', 'BOGUS').then(
    () => 'no error',
    (error: unknown) => (error as Error).message,
  )
  assert.is(bogus, 'Unknown arguments were given: BOGUS')
})

standalone('gearbox run file.py', async () => {
  const ok = await cli(['run', corpusPath('execute.py'), '--redis', s.redis!.url])
  assert.is(ok.status, 0, ok.stderr)
  assert.match(ok.stdout, /OK/)
  const failed = await cli(['run', corpusPath('traceback.py'), '--redis', s.redis!.url])
  assert.is.not(failed.status, 0)
  assert.match(failed.stderr, /NameError: name 'notexists' is not defined/)
  // --language overrides the extension.
  const dir = mkdtempSync(join(tmpdir(), 'gearbox-py-'))
  try {
    const file = join(dir, 'script.txt')
    writeFileSync(file, "execute('SET', 'py:lang', 'python')")
    const flagged = await cli(['run', file, '--language', 'python', '--redis', s.redis!.url])
    assert.is(flagged.status, 0, flagged.stderr)
    const bad = await cli(['run', file, '--language', 'ruby'])
    assert.is(bad.status, 1)
    assert.match(bad.stderr, /--language expects js or python, got 'ruby'/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  const check = new Redis(s.redis!.url)
  assert.is(await check.get('py:lang'), 'python')
  check.disconnect()
})

standalone.run()

// ---- cluster --------------------------------------------------------------------------------------
const clustered = suite('python conformance (cluster)')
const c: { cluster?: TestCluster; served?: Served; client?: Redis; direct?: Cluster } = {}

clustered.before(async () => {
  c.cluster = await sharedCluster()
  c.served = await serveGearbox({ cluster: [...c.cluster.urls] })
  c.client = new Redis({ host: '127.0.0.1', port: c.served.port, maxRetriesPerRequest: 0 })
  c.direct = new Cluster(c.cluster.nodes.map((n) => ({ host: n.host, port: n.port })))
})
clustered.after(async () => {
  c.client?.disconnect()
  c.direct?.disconnect()
  await c.served?.close()
  await c.cluster?.stop()
})

clustered('RG.PYEXECUTE on the cluster: the corpus replies OK and its keys land on their masters', async () => {
  await c.direct!.del('{py}:future')
  for (const name of SELF_CHECKING) assert.is(await c.client!.call('RG.PYEXECUTE', corpus(name)), 'OK', name)
  assert.is(await c.direct!.get('{py}:future'), '42')
  assert.is(await c.direct!.get('{py}:a'), '2')
})

clustered('hashtag() names a slot of the shard the execution runs on', async () => {
  assert.is(await c.client!.call('RG.PYEXECUTE', "execute('SET', '{' + hashtag() + '}:py', 'here')"), 'OK')
  const keys: string[] = []
  for (const node of c.direct!.nodes('master')) keys.push(...(await node.keys('{*}:py')))
  assert.is(keys.length, 1)
})

clustered.run()
