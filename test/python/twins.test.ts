/**
 * One body, two guests: README's word count and average (examples/*.js) and their Python twins
 * (examples/*.py, RedisGears' semantics) print the same answer through `gearbox run`, on a
 * standalone Redis and on the 3-master cluster. Plus small flows where the languages agree.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { main } from '../../host/cli/main.js'
import { Gearbox } from '../../host/gearbox.js'
import { sharedCluster, startRedis, type TestCluster, type TestRedis } from '../helpers/redis.js'

const path = (relative: string): string => new URL(`../../../${relative}`, import.meta.url).pathname
const EXAMPLES = [
  ['wordcount', 'pride-and-prejudice.txt'],
  ['average', 'weather.csv'],
] as const

async function cli(argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const status = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), progress: false })
  return { status, stdout, stderr }
}

async function sameAnswer(target: string[]): Promise<void> {
  for (const [name, data] of EXAMPLES) {
    const load = ['--load', path(`examples/data/${data}`), ...target]
    const js = await cli(['run', path(`examples/${name}.js`), ...load])
    const py = await cli(['run', path(`examples/${name}.py`), ...load])
    assert.is(js.status, 0, js.stderr)
    assert.is(py.status, 0, py.stderr)
    assert.match(js.stdout, /^1\) {2}1\) "/, `${name}.js printed results`)
    assert.is(py.stdout, js.stdout, `${name}.py answers as ${name}.js`)
  }
}

const standalone = suite('JS and Python twins (standalone)')
const s: { redis?: TestRedis } = {}
standalone.before(async () => {
  s.redis = await startRedis()
})
standalone.after(async () => {
  await s.redis?.stop()
})

standalone("README's word count and average: the Python twins give the JavaScript answers", async () => {
  await sameAnswer(['--redis', s.redis!.url])
})

standalone('small flows where the languages agree give the same records', async () => {
  const gearbox = await Gearbox.create({ redis: s.redis!.url, workers: 2 })
  try {
    await gearbox.execute("for (let i = 1; i <= 20; i++) execute('SET', 'twin:' + i, String(i))")
    const pairs: [string, string][] = [
      ["GB().map(r => r.value).count().run('twin:*')", "GB().map(lambda r: r['value']).count().run('twin:*')"],
      ["GB().filter(r => Number(r.value) % 3 === 0).map(r => r.key).sort().run('twin:*')", "GB().filter(lambda r: int(r['value']) % 3 == 0).map(lambda r: r['key']).sort().run('twin:*')"],
      ["GB().map(r => Number(r.value)).accumulate((a, r) => (a ?? 0) + r).run('twin:*')", "GB().map(lambda r: int(r['value'])).accumulate(lambda a, r: (a or 0) + r).run('twin:*')"],
      ["GB('KeysOnlyReader').count().run('twin:1*')", "GB('KeysOnlyReader').count().run('twin:1*')"],
    ]
    for (const [js, py] of pairs) {
      assert.equal(await gearbox.execute(py, { language: 'python' }), await gearbox.execute(js), py)
    }
  } finally {
    await gearbox.close()
  }
})

standalone.run()

const clustered = suite('JS and Python twins (cluster)')
const c: { cluster?: TestCluster } = {}
clustered.before(async () => {
  c.cluster = await sharedCluster()
  await c.cluster.flushAll()
})
clustered.after(async () => {
  await c.cluster?.stop()
})

clustered('on the 3-master cluster too (records read on every master, moved between shards)', async () => {
  await sameAnswer(c.cluster!.urls.flatMap((url) => ['--cluster', url]))
})

clustered.run()
