/**
 * The GearsBuilder kernel and its protocol with the host: builtins the user replaces do not change
 * what GB() computes, register() answers a coded error, held results are counted by their host
 * cost, and the entry's outcome is what the host reads.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { GuestError, SandboxError } from '../../host/errors.js'
import { HELD_VALUE_OVERHEAD_BYTES } from '../../host/gears/batch-run.js'
import { compileFlow, parseFlowRequest } from '../../host/gears/flow.js'
import { parseGuestOutcome } from '../../host/gears/jobs.js'
import { useGearsBox } from './support.js'

const t = suite('gears kernel')
const box = useGearsBox(t)

// Replaces the builtins a kernel could be tempted to use; the flows below use none of them in their callbacks.
const HIJACK = `
  const boom = (what) => function () { throw new Error(what + ' hijacked') }
  Array.prototype.push = boom('push')
  Array.prototype.map = boom('map')
  Array.prototype.slice = boom('slice')
  Array.prototype.sort = boom('sort')
  Array.prototype.concat = boom('concat')
  Array.prototype[Symbol.iterator] = boom('array iterator')
  Math.floor = () => 42
  Math.min = () => -1
  JSON.parse = () => 'hijacked'
  JSON.stringify = () => '"hijacked"'
  Object.keys = () => []
  Map.prototype.get = boom('Map.get')
  Map.prototype.set = boom('Map.set')
  Map.prototype.has = boom('Map.has')
  Map.prototype.forEach = boom('Map.forEach')
  Set.prototype.add = boom('Set.add')
  Set.prototype.has = boom('Set.has')
  Set.prototype.forEach = boom('Set.forEach')
  String.fromCharCode = () => 'hijacked'
  Number.isNaN = () => true
  Array.prototype.toJSON = () => 'hijacked'
`

// Each flow with what it must give; the generator yields without array iteration.
const FLOWS: readonly [string, unknown[]][] = [
  [".map(x => x * 2).filter(x => x > 2).limit(2.7, 0.5)", [6, 10]],
  ['.sort()', [1, 2, 3, 3, 5]],
  ['.sort(true)', [5, 3, 3, 2, 1]],
  ['.distinct().count()', [4]],
  [
    ".countby(x => x % 2 ? 'odd' : 'even')",
    [
      { key: 'odd', value: 4 },
      { key: 'even', value: 1 },
    ],
  ],
  ['.avg()', [2.8]],
  [
    ".groupby(x => x % 2 ? 'odd' : 'even', (k, a, r) => (a ?? 0) + r)",
    [
      { key: 'odd', value: 12 },
      { key: 'even', value: 2 },
    ],
  ],
  [".aggregateby(x => 'all', new Map(), (k, a, r) => a, (k, a, r) => a).map(r => r.key)", ['all']],
  ['.flatmap(x => [x, -x]).limit(4).accumulate((a, r) => (a ?? 0) + r)', [0]],
  [".map(x => ({n: x, m: new Set()})).limit(1)", [{ n: 3, m: {} }]],
]
const INPUT = 'function* () { yield 3; yield 1; yield 5; yield 2; yield 3 }'

t('builtins replaced at the top level do not change what the flows compute', async () => {
  for (const [steps, expected] of FLOWS) {
    const out = await box().raw(`${HIJACK}; GB('PythonReader')${steps}.run(${INPUT}, {convertToStr: false})`)
    assert.equal(out, { results: expected, errors: [] }, steps)
  }
  // convertToStr renders with the captured JSON, and host reader batches parse with the captured JSON.parse.
  const rendered = await box().run(`${HIJACK}; GB('PythonReader').map(x => ({x})).run(function* () { yield 1 })`)
  assert.equal(rendered, [['{"x":1}'], []])
  await box().gearbox.execute("execute('SET', 'hijack:a', '1'); execute('SET', 'hijack:b', '2')")
  assert.equal(await box().run(`${HIJACK}; GB().map(r => r.value).count().run('hijack:*')`), [['2'], []])
})

t('builtins replaced inside a step do not change the later steps', async () => {
  const hijackOnce = `let done = false; const hijack = (x) => { if (!done) { done = true; ${HIJACK} } return x }`
  for (const [steps, expected] of FLOWS) {
    const out = await box().raw(`${hijackOnce}; GB('PythonReader').map(hijack)${steps}.run(${INPUT}, {convertToStr: false})`)
    assert.equal(out, { results: expected, errors: [] }, steps)
  }
})

t("a callback that uses a replaced builtin fails with its own error; the other records go on", async () => {
  const out = await box().raw(
    `Array.prototype.push = function () { throw new Error('push hijacked') }
     GB('PythonReader').map(x => { if (x === 2) { const a = []; a.push(x) } return x }).run(function* () { yield 1; yield 2; yield 3 }, {convertToStr: false})`,
  )
  assert.equal(out, { results: [1, 3], errors: ['Error: push hijacked'] })
})

t('a StreamReader register() applies: listed with its stream arguments, then unregistered', async () => {
  const gearbox = box().gearbox
  assert.is(await gearbox.execute("GB('StreamReader').map(r => r).register('s*', { batch: 5 })"), 'OK')
  const registration = gearbox.registrations.list().find((r) => r.reader === 'StreamReader')
  assert.ok(registration)
  assert.equal(registration!.RegistrationData.args.slice(0, 6), ['batchSize', 5, 'durationMS', 0, 'stream', 's*'])
  await gearbox.registrations.unregister(registration!.id)
  // Other executions are unaffected.
  assert.equal(await box().run("GB('PythonReader').run(function* () { yield 'ok' })"), [['ok'], []])
})

t('held results count their host cost: millions of tiny results stop at limits.maxReplyBytes', async () => {
  const maxReplyBytes = 1024 * 1024
  const reply = (await box().gearbox.execute(
    "GB('PythonReader').run(function* () { for (let i = 0; i < 3000000; i++) yield 1 }, {convertToStr: false})",
    { limits: { maxReplyBytes, cpuMs: 60_000, wallMs: 60_000 } },
  )) as [unknown[], string[]]
  // Counted by their text alone (~2 characters each), ~500,000 results would have been held.
  assert.ok(reply[0].length > 0, 'some results were kept')
  assert.ok(reply[0].length <= maxReplyBytes / HELD_VALUE_OVERHEAD_BYTES, `${reply[0].length} results held`)
  assert.equal(reply[1], [`the results exceeded limits.maxReplyBytes (${maxReplyBytes} bytes): raise it, or reduce the results (limit(), aggregate)`])
  assert.equal(await box().run("GB('PythonReader').run(function* () { yield 'next' })"), [['next'], []])
})

t('the entry outcome is the protocol: ok, or the run with its id; the old gears.run kind is refused', () => {
  assert.equal(parseGuestOutcome('{"kind":"ok"}'), { kind: 'ok' })
  assert.equal(parseGuestOutcome('{"kind":"run","id":"abc-1"}'), { kind: 'run', id: 'abc-1' })
  assert.throws(() => parseGuestOutcome('{"kind":"gears.run","id":"abc-1"}'), (e: unknown) => e instanceof SandboxError)
  assert.throws(() => parseGuestOutcome('{"kind":"run"}'), (e: unknown) => e instanceof SandboxError)
})

t('the host plan: count desugars into builtin reducers around a collect, cut into two stages', () => {
  const flow = compileFlow(
    parseFlowRequest({
      lang: 'js',
      builder: [{ t: 'string', v: 'KeysReader', i: 0 }],
      ops: [
        { op: 'map', args: [{ t: 'function', i: 1, name: '' }] },
        { op: 'count', args: [] },
      ],
      args: [],
    }),
    false,
  )
  assert.equal(
    flow.description.steps.map((s) => `${s.type}:${s.name}:${s.arg}`),
    ['reader:KeysReader:*', 'map:<anonymous>:', 'accumulate:count:', 'collect::', 'accumulate:count:', 'map:convertToStr:', 'collect::'],
  )
  assert.equal(flow.description.routes, ['initiator'])
  assert.equal(flow.stages.map((stage) => stage.map((s) => s.k)), [['map', 'accumulate', 'route'], ['accumulate', 'tostr', 'route']])
  assert.equal(flow.reader, { open: { reader: 'KeysReader', pattern: '*', noScan: false, readValue: true }, patternGenerator: null, generator: null })
})

t.run()
