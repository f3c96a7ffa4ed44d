/**
 * Every GearsBuilder operation with its exact output shape (JS semantics), error records with
 * partial results, and async steps. Input comes from the generator reader, so the order is known.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { useGearsBox } from './support.js'


/** A generator-reader flow over `items` (a JS expression), then `steps`, run with `options`. */
function flow(items: string, steps: string, options = '{convertToStr: false}'): string {
  return `GB('PythonReader')${steps}.run(function* () { yield* ${items} }, ${options})`
}

const t = suite('gears operations')
const box = useGearsBox(t)


t('map, filter (truthiness), foreach (passes the record on)', async () => {
  assert.equal((await box().raw(flow('[1, 2, 3]', '.map(x => x * 2)'))).results, [2, 4, 6])
  assert.equal((await box().raw(flow('[1, 2, 3, 4, 5]', '.filter(x => x % 2)'))).results, [1, 3, 5])
  assert.equal((await box().raw(flow('[1, 2]', ".filter(x => '')"))).results, [])
  assert.equal((await box().raw(flow('[1, 2]', ".foreach(x => 'ignored')"))).results, [1, 2])
})

t('flatmap explodes arrays in list order; other values are one record; [] emits nothing', async () => {
  assert.equal((await box().raw(flow('[1, 2]', '.flatmap(x => [x, x + 10])'))).results, [1, 11, 2, 12])
  assert.equal((await box().raw(flow('[1, 2]', ".flatmap(x => 'ab')"))).results, ['ab', 'ab'])
  assert.equal((await box().raw(flow('[1, 2]', '.flatmap(x => ({x}))'))).results, [{ x: 1 }, { x: 2 }])
  assert.equal((await box().raw(flow('[1, 2]', '.flatmap(x => [])'))).results, [])
})

t('accumulate: null first accumulator, one record at the end, nothing on empty input', async () => {
  assert.equal((await box().raw(flow('[1, 2, 3]', '.accumulate((a, r) => (a ?? 0) + r)'))).results, [6])
  assert.equal((await box().raw(flow('[7]', ".accumulate((a, r) => a === null ? 'was null' : a)"))).results, ['was null'])
  assert.equal((await box().raw(flow('[]', '.accumulate((a, r) => (a ?? 0) + r)'))).results, [])
})

t('localgroupby / groupby / batchgroupby give {key, value} per key, in first-seen key order', async () => {
  const oddEven = "x => x % 2 ? 'odd' : 'even'"
  const sum = '(k, a, r) => (a ?? 0) + r'
  const expected = [
    { key: 'odd', value: 9 },
    { key: 'even', value: 6 },
  ]
  assert.equal((await box().raw(flow('[1, 2, 3, 4, 5]', `.localgroupby(${oddEven}, ${sum})`))).results, expected)
  assert.equal((await box().raw(flow('[1, 2, 3, 4, 5]', `.groupby(${oddEven}, ${sum})`))).results, expected)
  assert.equal((await box().raw(flow('[1, 2, 3, 4, 5]', `.batchgroupby(${oddEven}, (k, list) => list.join('+'))`))).results, [
    { key: 'odd', value: '1+3+5' },
    { key: 'even', value: '2+4' },
  ])
  // The reducer gets the key as a string: primitives String(x), objects their JSON.
  assert.equal((await box().raw(flow('[1, 2, 3, 4]', '.groupby(x => x % 3, (k, a, r) => [k, typeof k])'))).results, [
    { key: '1', value: ['1', 'string'] },
    { key: '2', value: ['2', 'string'] },
    { key: '0', value: ['0', 'string'] },
  ])
  assert.equal((await box().raw(flow('[1, 2, 3]', '.groupby(x => ({m: x % 2}), (k, a, r) => (a ?? 0) + 1)'))).results, [
    { key: '{"m":1}', value: 2 },
    { key: '{"m":0}', value: 1 },
  ])
})

t('collect and repartition keep every record (no other shard in standalone)', async () => {
  assert.equal((await box().raw(flow('[3, 1, 2]', '.collect()'))).results, [3, 1, 2])
  assert.equal((await box().raw(flow('[3, 1, 2]', '.repartition(x => String(x)).map(x => x + 1)'))).results, [4, 2, 3])
})

t('limit(length, start) passes the window and stops reading once past it', async () => {
  assert.equal((await box().raw(flow('[1, 2, 3, 4, 5]', '.limit(2)'))).results, [1, 2])
  assert.equal((await box().raw(flow('[1, 2, 3, 4, 5]', '.limit(2, 1)'))).results, [2, 3])
  assert.equal((await box().raw(flow('[1, 2, 3]', '.limit(0)'))).results, [])
  // The generator would yield 1e6 values; once the limit is full no further batch is read.
  const out = await box().raw(`
    let produced = 0
    GB('PythonReader').limit(3).accumulate(() => produced).run(function* () {
      for (let i = 1; i <= 1000000; i++) { produced = i; yield i }
    }, {convertToStr: false})`)
  assert.equal(out.errors, [])
  assert.equal(out.results.length, 1)
  assert.ok((out.results[0] as number) < 10000, `read ${String(out.results[0])} records for limit(3)`)
})

t('aggregate: zero replaces a null accumulator only (JS semantics: 0 is a value)', async () => {
  assert.equal((await box().raw(flow('[1, 2, 3, 4]', '.aggregate(0, (a, r) => a + r, (a, r) => a + r)'))).results, [10])
  assert.equal((await box().raw(flow('[2, 1]', '.aggregate([], (a, r) => a.concat([r]), (a, r) => a.concat(r))'))).results, [[2, 1]])
  // 5 - 5 = 0 stays 0 (RedisGears would replace the falsy 0 by the zero again and answer 9).
  assert.equal((await box().raw(flow('[5, 1]', '.aggregate(5, (a, r) => a - r, (a, r) => a + r)'))).results, [4])
  assert.equal((await box().raw(flow('[]', '.aggregate(0, (a, r) => a + r, (a, r) => a + r)'))).results, [])
  // The zero is copied for every use: mutating it does not leak into the next group.
  assert.equal(
    (await box().raw(flow('[1, 2, 3]', ".aggregateby(x => x % 2 ? 'odd' : 'even', [], (k, a, r) => (a.push(r), a), (k, a, r) => a.concat(r))"))).results,
    [
      { key: 'odd', value: [1, 3] },
      { key: 'even', value: [2] },
    ],
  )
})

t('count, countby, avg', async () => {
  assert.equal((await box().run(flow('[1, 2, 3, 4, 5]', '.count()', '{}'))), [['5'], []])
  assert.equal((await box().raw(flow('[1, 2, 3]', '.count()'))).results, [3])
  assert.equal((await box().raw(flow('[]', '.count()'))).results, [])
  assert.equal((await box().raw(flow("['a', 'b', 'a']", '.countby()'))).results, [
    { key: 'a', value: 2 },
    { key: 'b', value: 1 },
  ])
  assert.equal((await box().raw(flow('[1, 2, 3, 4]', ".countby(x => x > 2 ? 'big' : 'small')"))).results, [
    { key: 'small', value: 2 },
    { key: 'big', value: 2 },
  ])
  assert.equal(await box().run(flow('[1, 2, 3, 4]', '.avg()', '{}')), [['2.5'], []])
  assert.equal((await box().raw(flow("['1', '2']", '.avg()'))).results, [1.5])
  assert.equal((await box().raw(flow('[{n: 2}, {n: 4}]', '.avg(r => r.n)'))).results, [3])
})

t('distinct keeps the first of equal records ("1" and 1 differ)', async () => {
  assert.equal((await box().raw(flow("[1, '1', 1, 'a', 'a', {x: 1}, {x: 1}, null, null]", '.distinct()'))).results, [1, '1', 'a', { x: 1 }, null])
})

t('sort() ascending, sort(true) descending; numbers numerically, then strings', async () => {
  assert.equal((await box().raw(flow('[3, 10, 1, 2]', '.sort()'))).results, [1, 2, 3, 10])
  assert.equal((await box().raw(flow('[3, 10, 1, 2]', '.sort(true)'))).results, [10, 3, 2, 1])
  assert.equal((await box().raw(flow("['b', 10, 'a', 9, null, true]", '.sort()'))).results, [null, true, 9, 10, 'a', 'b'])
  assert.equal((await box().raw(flow("['10', '9', '1']", '.sort()'))).results, ['1', '10', '9'])
  assert.equal(await box().run(flow('[3, 1, 2]', '.sort()', '{}')), [['1', '2', '3'], []])
})

t('convertToStr (the default): String(x), objects as JSON, bytes stay bytes', async () => {
  const out = await box().raw(
    `GB('PythonReader').run(function* () { yield* [1, 1.5, true, null, 'text', [1, 'a'], {a: {b: 2}}, 10n, new Uint8Array([255, 0]), new Map([['k', 1]]), new Error('e')] })`,
  )
  assert.equal(out.results, ['1', '1.5', 'true', 'null', 'text', '[1,"a"]', '{"a":{"b":2}}', '10', new Uint8Array([255, 0]), '[["k",1]]', 'Error: e'])
  // Without it, values keep their types across the boundary (bigint and bytes included).
  const raw = await box().raw(flow('[1, true, null, 10n, new Uint8Array([1])]', ''))
  assert.equal(raw.results, [1, true, null, 10n, new Uint8Array([1])])
})

t('a result that cannot become JSON (a cycle) is an error text, the others are kept', async () => {
  const out = await box().run(flow('[1, 2]', '.map(x => { if (x === 1) { const o = {}; o.self = o; return o } return x })'))
  assert.equal(out[0], [2])
  assert.equal(out[1].length, 1)
  assert.match(out[1][0]!, /^TypeError: /)
})

t('a failing record becomes an error text, skips the later steps, the others go on', async () => {
  const out = await box().run(
    flow('[1, 2, 3]', ".map(x => { if (x === 2) throw new Error('bad ' + x); return x }).map(x => x * 10)", '{}'),
  )
  assert.equal(out, [['10', '30'], ['Error: bad 2']])
  const texts = await box().run(
    flow(
      '[1, 2, 3, 4]',
      `.map(x => {
        if (x === 1) throw 'a plain string'
        if (x === 2) null.property
        if (x === 3) flat_error('flat text')
        execute('GET')
        return x
      })`,
      '{}',
    ),
  )
  assert.equal(texts[0], [])
  assert.equal(texts[1][0], 'a plain string')
  assert.match(texts[1][1]!, /^TypeError: /)
  assert.equal(texts[1][2], 'flat text')
  assert.match(texts[1][3]!, /^GearsError: ERR wrong number of arguments/)
})

t('accumulate resets its accumulator after an error; an error on the last record emits nothing', async () => {
  const reducer = "(a, r) => { if (r === 'x') throw new Error('x'); return (a ?? 0) + r }"
  assert.equal(await box().run(flow("[1, 2, 'x', 4, 5]", `.accumulate(${reducer})`, '{}')), [['9'], ['Error: x']])
  assert.equal(await box().run(flow("[1, 2, 'x']", `.accumulate(${reducer})`, '{}')), [[], ['Error: x']])
  // groupby resets only the failing key.
  assert.equal(
    (await box().raw(flow("[1, 'x', 2, 3]", ".groupby(x => x === 'x' ? 'odd' : x % 2 ? 'odd' : 'even', (k, a, r) => { if (r === 'x') throw new Error('x'); return (a ?? 0) + r })"))).results,
    [
      { key: 'odd', value: 3 },
      { key: 'even', value: 2 },
    ],
  )
})

t('async steps: a returned promise parks the record until it settles', async () => {
  assert.equal((await box().raw(flow('[1, 2, 3]', '.map(async x => x * 2)'))).results, [2, 4, 6])
  assert.equal((await box().raw(flow('[1, 2, 3, 4]', '.filter(async x => x > 2)'))).results, [3, 4])
  assert.equal((await box().raw(flow('[1, 2]', '.flatmap(async x => [x, x])'))).results, [1, 1, 2, 2])
  assert.equal((await box().raw(flow('[1, 2]', '.foreach(async x => 0)'))).results, [1, 2])
  assert.equal((await box().raw(flow('[1, 2, 3]', '.accumulate(async (a, r) => (a ?? 0) + r)'))).results, [6])
  assert.equal((await box().raw(flow('[1, 2, 3]', ".groupby(x => 'k', async (k, a, r) => (a ?? 0) + r)"))).results, [{ key: 'k', value: 6 }])
  // Futures and timers: runCoroutine settles a createFuture() from the event loop.
  assert.equal(
    (await box().raw(flow('[1, 2]', '.map(x => { const f = createFuture(); runCoroutine(async () => x * 3, f, 0.005); return f })'))).results,
    [3, 6],
  )
  const rejected = await box().run(flow('[1, 2]', ".map(async x => { if (x === 1) throw new Error('async ' + x); return x })", '{}'))
  assert.equal(rejected, [['2'], ['Error: async 1']])
  const extractor = await box().run(flow('[1]', '.groupby(async x => x, (k, a, r) => r)', '{}'))
  assert.equal(extractor, [[], ['GearsError: coroutine are not allow on extractor']])
  const reducer = await box().run(flow('[1]', '.batchgroupby(x => x, async (k, list) => list)', '{}'))
  assert.equal(reducer, [[], ['GearsError: coroutine are not allow on reduce']])
})

t('isAsyncAllow() is true inside steps and false at the top level', async () => {
  assert.equal(
    (await box().raw("const top = isAsyncAllow(); GB('PythonReader').map(() => [top, isAsyncAllow()]).run(function* () { yield 1 }, {convertToStr: false})")).results,
    [[false, true]],
  )
})

t('generator reader: generators, async generators, iterables; failures become error texts', async () => {
  assert.equal((await box().raw("GB('PythonReader').run(async function* () { yield 1; yield 2 }, {convertToStr: false})")).results, [1, 2])
  assert.equal((await box().raw("GB('GeneratorReader').run(() => new Set(['a', 'b']))")).results, ['a', 'b'])
  const notIterable = await box().run("GB('PythonReader').run(() => 5)")
  assert.equal(notIterable[0], [])
  assert.match(notIterable[1][0]!, /must return an iterable/)
  const midway = await box().run("GB('PythonReader').run(function* () { yield 1; yield 2; throw new Error('reader broke') })")
  assert.equal(midway, [['1', '2'], ['Error: reader broke']])
})

t('run() inside a step is an error record; the top level failing after run() fails the execute', async () => {
  const nested = await box().run(flow('[1]', ".map(x => GB('PythonReader').run(function* () {}))", '{}'))
  assert.equal(nested[0], [])
  assert.match(nested[1][0]!, /run\(\) can only be called at the top level/)
  const error = await box().failure("GB('PythonReader').run(function* () { yield 1 }); throw new Error('late failure')")
  assert.equal(error.code, 'ERR_GEARBOX_GUEST')
  assert.match(error.message, /late failure/)
  assert.equal(box().gearbox.executions.list(), [])
})

t.run()
