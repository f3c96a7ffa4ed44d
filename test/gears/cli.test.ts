/** `gearbox run` with run() scripts: --load, --profile, progress, --local-cluster, and the examples' answers. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { parseArgs } from '../../host/cli/args.js'
import { dataCommands, parseCsv } from '../../host/cli/load-data.js'
import { main } from '../../host/cli/main.js'
import { InvalidArgumentError } from '../../host/errors.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'

const ctx: { redis?: TestRedis } = {}
const path = (relative: string): string => new URL(`../../../${relative}`, import.meta.url).pathname

async function cli(argv: string[], progress = false): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const status = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), progress })
  return { status, stdout, stderr }
}

const t = suite('gearbox run with GearsBuilder scripts')

t.before(async () => {
  ctx.redis = await startRedis()
})

t.after(async () => {
  await ctx.redis?.stop()
})

t('arguments: --load repeats, --local-cluster and --profile are flags', () => {
  const args = parseArgs(['run', 'w.js', '--load', 'a.txt', '--load=b.csv', '--local-cluster', '--profile'])
  assert.ok(args.command === 'run')
  assert.equal([args.load, args.localCluster, args.profile], [['a.txt', 'b.csv'], true, true])
  const plain = parseArgs(['run', 'w.js'])
  assert.ok(plain.command === 'run')
  assert.equal([plain.load, plain.localCluster, plain.profile], [undefined, undefined, undefined])
  assert.throws(() => parseArgs(['run', 'w.js', '--local-cluster', '--redis', 'redis://x:1']), /--local-cluster starts its own cluster/)
  assert.throws(() => parseArgs(['run', 'w.js', '--profile=1']), /--profile takes no value/)
})

t('data files: one key per text line, one hash per CSV row (RFC 4180 quoting)', () => {
  assert.equal(parseCsv('a,b\n"x, y","say ""hi"""\r\n1,\n'), [['a', 'b'], ['x, y', 'say "hi"'], ['1', '']])
  assert.equal(dataCommands('/d/notes.txt', 'first\n\n  \nthird\n'), {
    prefix: 'notes',
    commands: [['SET', 'notes:1', 'first'], ['SET', 'notes:4', 'third']],
  })
  assert.equal(dataCommands('w.csv', 'city,t\nOslo,1.5\n'), { prefix: 'w', commands: [['HSET', 'w:1', 'city', 'Oslo', 't', '1.5']] })
  assert.throws(() => dataCommands('w.csv', 'a,b\n1\n'), (e: unknown) => e instanceof InvalidArgumentError && /row 2 has 1 fields/.test(e.message))
  assert.throws(() => dataCommands('w.json', '{}'), /supports .txt/)
})

t('the word count example with --load and --profile', async () => {
  const out = await cli(['run', path('examples/wordcount.js'), '--load', path('examples/data/pride-and-prejudice.txt'), '--redis', ctx.redis!.url, '--profile'])
  assert.equal(out.status, 0, out.stderr)
  assert.match(out.stderr, /loaded 64 keys from .*pride-and-prejudice\.txt \(pride-and-prejudice:\*\)/)
  assert.match(out.stdout, /^1\)  1\) "you 54"\n    2\) "the 48"\n/)
  assert.match(out.stdout, /2\) \(empty array\)\n$/)
  assert.match(out.stderr, /profile of 0{40}-\d+: \d+ ms in total, \d+ ms waiting for reader batches, 64 records read on 1 shard\(s\)/)
  assert.match(out.stderr, /\n {2}reader +KeysReader +pride-and-prejudice:\* +0 ms\n {2}flatmap +<anonymous> +\d+ ms\n/)
})

t('on a terminal, a run longer than a second shows the records read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gearbox-cli-'))
  const script = join(dir, 'slow.js')
  // Five records, 300 ms each: the run takes over a second.
  writeFileSync(script, "GB().map(r => { const t = Date.now(); while (Date.now() - t < 300) {} return r.key }).count().run('slow:*')")
  try {
    const client = new Redis(ctx.redis!.url)
    await client.mset('slow:1', 'a', 'slow:2', 'b', 'slow:3', 'c', 'slow:4', 'd', 'slow:5', 'e')
    client.disconnect()
    const out = await cli(['run', script, '--redis', ctx.redis!.url], true)
    assert.equal(out.status, 0, out.stderr)
    assert.match(out.stderr, /\r5 records read, \d+\.\d s/)
    assert.match(out.stdout, /"5"/)
    const quiet = await cli(['run', script, '--redis', ctx.redis!.url], false)
    assert.not.match(quiet.stderr, /records read/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

t('the average example against a throwaway 3-master cluster (--local-cluster) gives the standalone answer', async () => {
  const args = ['run', path('examples/average.js'), '--load', path('examples/data/weather.csv')]
  const standalone = await cli([...args, '--redis', ctx.redis!.url])
  const cluster = await cli([...args, '--local-cluster'])
  assert.equal(standalone.status, 0, standalone.stderr)
  assert.equal(cluster.status, 0, cluster.stderr)
  assert.match(standalone.stdout, /^1\)  1\) "Athens 18\.51 °C over 365 days"/)
  assert.equal(cluster.stdout, standalone.stdout)
})

t.run()
