/**
 * The Python GearsBuilder with RedisGears 1.2's semantics (spec §2-§3), on the host plan shared with
 * JavaScript: reversed flatmap emission, sort()'s default order, repr()'d group keys, the falsy-
 * accumulator reset, str() records, KeysReader record shapes, error records, readers, gearsFuture.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Redis } from 'ioredis'
import { Gearbox } from '../../host/gearbox.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { rejection } from '../helpers/rejection.js'

const ctx: { redis?: TestRedis; gearbox?: Gearbox; client?: Redis } = {}
const py = (source: string): Promise<unknown> => ctx.gearbox!.execute(source, { language: 'python' })

const t = suite('python GearsBuilder')
t.before(async () => {
  ctx.redis = await startRedis()
  ctx.gearbox = await Gearbox.create({ redis: ctx.redis.url, workers: 2 })
  ctx.client = new Redis(ctx.redis.port, '127.0.0.1')
  const c = ctx.client
  for (let i = 1; i <= 5; i++) await c.set(`n:${i}`, String(i))
  await c.rpush('l', '1', '2', '3', '4', '5')
  await c.hset('h', 'a', '1')
  await c.sadd('s', 'x')
})
t.after(async () => {
  ctx.client?.disconnect()
  await ctx.gearbox?.close()
  await ctx.redis?.stop()
})

t('flatmap emits a list last to first (test_basics::testLimitWithOffset)', async () => {
  assert.equal(await py("GB().flatmap(lambda r: r['value']).limit(1, 1).run('l')"), [['4'], []])
  assert.equal(await py("GB().flatmap(lambda r: r['value']).run('l')"), [['5', '4', '3', '2', '1'], []])
  assert.equal(await py("GB().flatmap(lambda r: 'abc').run('l')"), [['abc'], []])
})

t('sort() is ascending by default and sort(False) descending (reverse=True, then reversed emission)', async () => {
  assert.equal(await py("GB().map(lambda r: r['value']).sort().run('n:*')"), [['1', '2', '3', '4', '5'], []])
  assert.equal(await py("GB().map(lambda r: r['value']).sort(False).run('n:*')"), [['5', '4', '3', '2', '1'], []])
  assert.equal(await py("GB().map(lambda r: r['type']).sort().run('*')"), [['hash', 'list', 'set', 'string', 'string', 'string', 'string', 'string'], []])
})

t('records and keys are str()/repr() formatted; avg is a float; count an int with convertToStr=False', async () => {
  const [counted] = (await py("GB().countby(lambda r: int(r['value']) % 2).run('n:*')")) as [string[]]
  assert.equal([...counted].sort(), ["{'key': '0', 'value': 2}", "{'key': '1', 'value': 3}"])
  // Python cannot order dicts: sort() over dict records fails as in RedisGears.
  const [, unordered] = (await py("GB().countby(lambda r: r['value']).sort().run('n:*')")) as [string[], string[]]
  assert.match(unordered[0] ?? '', /TypeError: unsupported types for __lt__: 'dict', 'dict'/)
  assert.equal(await py("GB().countby(lambda r: (1, 'a')).run('n:1')"), [["{'key': \"(1, 'a')\", 'value': 1}"], []])
  assert.equal(await py("GB().avg(lambda r: int(r['value'])).run('n:*')"), [['3.0'], []])
  assert.equal(await py("GB().count().run('n:*', convertToStr=False)"), [[5], []])
  assert.equal(await py("GB().count().run('nothing:*')"), [[], []])
  const [[record]] = (await py("GB().run('h')")) as [[string]]
  assert.match(record, /'value': \{'a': '1'\}/)
  assert.match(record, /'type': 'hash'/)
  assert.equal(await py("GB().map(lambda r: r['value']).run('s')"), [['None'], []])
  assert.equal(await py("GB().run('n:1', readValue=False)"), [["{'key': 'n:1', 'event': None}"], []])
})

t('aggregate replaces a falsy accumulator by a copy of the zero on every call', async () => {
  // seqOp over 5 records: None→10+1=11, 12, 0 (at 12), 0 is falsy→10+1=11, 12; combOp: None→10, + 12 = 22.
  assert.equal(await py("GB().aggregate(10, lambda a, r: 0 if a == 12 else a + 1, lambda a, r: a + r).run('n:*', convertToStr=False)"), [[22], []])
})

t('a failing step leaves a traceback; accumulate resets to None after an error; flat_error is verbatim', async () => {
  const [results, errors] = (await py("GB().map(lambda r: 1 / (int(r['value']) - 3)).run('n:*')")) as [string[], string[]]
  assert.is(results.length, 4)
  assert.equal(errors, ['Traceback (most recent call last):\n  File "<string>", line 1, in <lambda>\nZeroDivisionError: divide by zero'])
  assert.equal(await py("GB().map(lambda r: flat_error('PAUSE me')).run('n:1')"), [[], ['PAUSE me']])
  // Sorted first: the records come in SCAN order otherwise, and with '3' last nothing is left to count.
  const acc = "def add(a, r):\n    if r == '3':\n        raise ValueError('three')\n    return (a or 0) + 1\nGB().map(lambda r: r['value']).sort().accumulate(add).run('n:*', convertToStr=False)"
  const [accResults, accErrors] = (await py(acc)) as [number[], string[]]
  assert.is(accErrors.length, 1)
  // '1', '2' count 1, 2; '3' fails and resets the accumulator; '4', '5' count 1, 2 again.
  assert.equal(accResults, [2])
})

t('readers: PythonReader, KeysOnlyReader, ShardsIDReader; CommandReader refuses run()', async () => {
  assert.equal(await py("def gen():\n    for i in range(3):\n        yield i * 10\nGB('PythonReader').run(gen)"), [['0', '10', '20'], []])
  assert.equal(await py("GB('KeysOnlyReader').sort().run('n:*')"), [['n:1', 'n:2', 'n:3', 'n:4', 'n:5'], []])
  assert.equal(await py("GB('ShardsIDReader').run()"), [['1'], []])
  assert.is((await rejection(py("GB('CommandReader').run()"))).message, 'Given reader do not support run or not exists')
  assert.is((await rejection(py("GB('NoReader')"))).message, 'The given reader does not exists')
  assert.is((await rejection(py('GB().map(5)'))).message, 'map argument must be a function')
  assert.is((await rejection(py("GB().limit('a')"))).message, 'limit argument must be a number')
})

t('coroutines and gearsFuture park a record until they finish', async () => {
  const coroutine = "import asyncio\nasync def slow(r):\n    await asyncio.sleep(0.01)\n    return r['value'] + str(isAsyncAllow())\nGB().map(slow).sort().run('n:*')"
  assert.equal(await py(coroutine), [['1True', '2True', '3True', '4True', '5True'], []])
  const future = [
    'def later(r):',
    '    f = gearsFuture()',
    "    async def go():",
    "        return int(r['value']) * 100",
    '    runCoroutine(go(), f, 0.01)',
    '    return f',
    "GB().map(later).sort().run('n:*')",
  ].join('\n')
  assert.equal(await py(future), [['100', '200', '300', '400', '500'], []])
  assert.equal(await py("GB().map(lambda r: gearsFuture()).run('n:1')"), [[], ['Async record did not called continue']])
  assert.is((await rejection(py('gearsFuture()'))).message, 'Future object can only be created inside certain execution steps')
  const [, twice] = (await py("def f(r):\n    gearsFuture()\n    return gearsFuture()\nGB().map(f).run('n:1')")) as [string[], string[]]
  assert.match(twice[0] ?? '', /Can not create async record twice on the same step/)
})

t.run()
