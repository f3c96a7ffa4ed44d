/** GearsBuilder and run() argument checks: RedisGears 1.2's error texts, raised at the script's top level. */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { useGearsBox } from './support.js'


const t = suite('gears builder checks')
const box = useGearsBox(t)


async function fails(script: string, text: string): Promise<void> {
  const error = await box().failure(script)
  assert.equal(error.code, 'ERR_GEARBOX_GUEST', script)
  assert.ok(error.message.includes(text), `${script}: expected '${text}' in '${error.message}'`)
}

t('constructor: reader and desc checks; GB is GearsBuilder, with or without new', async () => {
  await fails('GB(1)', 'reader argument must be a string')
  await fails("GB('NoSuchReader')", 'The given reader does not exists')
  await fails("GB('KeysReader', '*', 5)", 'desc argument must be a string')
  assert.equal(
    await box().gearbox.execute("if (GB !== GearsBuilder || !(GB() instanceof GearsBuilder) || !(new GB('KeysReader') instanceof GB)) throw new Error('no')"),
    'OK',
  )
})

t('every callback-taking operation checks its arguments', async () => {
  for (const op of ['map', 'flatmap', 'foreach', 'filter', 'accumulate', 'repartition', 'countby', 'avg']) {
    await fails(`GB().${op}(1)`, `${op} argument must be a function`)
  }
  for (const op of ['localgroupby', 'groupby', 'batchgroupby']) {
    await fails(`GB().${op}(x => x, 'no')`, `${op} argument must be a function`)
    await fails(`GB().${op}(1, (k, a, r) => a)`, `${op} argument must be a function`)
  }
  await fails('GB().aggregate(0, 1, (a, r) => a)', 'aggregate argument must be a function')
  await fails('GB().aggregateby(x => x, 0, (k, a, r) => a, null)', 'aggregateby argument must be a function')
  await fails("GB().limit('3')", 'limit argument must be a number')
  await fails('GB().limit(3, null)', 'limit argument must be a number')
})

t('run(): reader arguments', async () => {
  await fails('GB().run(5)', 'regex argument must be a string')
  await fails("GB().run('*', {noScan: 'yes'})", 'exactMatch value is not boolean')
  await fails("GB().run('*', {readValue: 1})", 'readValue value is not boolean')
  await fails("GB('KeysOnlyReader').run('*', {noScan: 1})", 'exactMatch value is not boolean')
  await fails("GB('KeysOnlyReader').run('*', {patternGenerator: 'p*'})", 'patternGenerator argument must be a function')
  await fails("GB('StreamReader').run('s', {fromId: 5})", 'fromId argument must be a string')
  await fails("GB('PythonReader').run('not a function')", 'pyreader argument must be a function')
  await fails("GB('CommandReader').run()", 'Given reader do not support run or not exists')
})

t('run(): modes, and one run() per script', async () => {
  await fails("GB().run('*', {mode: 'sync'})", 'unknown execution mode')
  await fails("GB().run('*', {mode: 'nope'})", 'unknown execution mode')
  await fails("GB().run('*', {mode: 1})", 'execution mode must be a string')
  await fails("GB('PythonReader').run(function* () {}); GB('PythonReader').run(function* () {})", 'Can not run more then 1 executions in a single script')
  // A failed argument check does not count as the script's run().
  assert.equal(
    await box().run("try { GB().run(5) } catch (e) {}; GB('PythonReader').run(function* () { yield 'ok' })"),
    [['ok'], []],
  )
  // A falsy argument means the reader's default argument.
  assert.equal(await box().run("execute('SET', 'only', '1'); GB('KeysReader', 'only').map(r => r.key).run('')"), [['only'], []])
})

t('the builder is snapshotted at run(): later calls on it do not change the run', async () => {
  assert.equal(await box().run("const b = GB('PythonReader').map(x => x * 2); b.run(function* () { yield 1 }); b.map(x => 'changed')"), [['2'], []])
})

t.run()
