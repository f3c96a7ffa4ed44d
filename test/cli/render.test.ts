import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { renderJson, renderPlain } from '../../host/cli/render.js'

test('a top-level string prints as is (status OK, execution ids)', () => {
  assert.is(renderPlain('OK'), 'OK')
})

test('scalars render like redis-cli', () => {
  assert.is(renderPlain(null), '(nil)')
  assert.is(renderPlain(42), '(integer) 42')
  assert.is(renderPlain(2n ** 64n), '(integer) 18446744073709551616')
  assert.is(renderPlain(new Uint8Array([0x61, 0xff, 0x00, 0x22])), '"a\\xff\\x00\\""')
})

test('arrays: numbered, nested with indentation, quoted strings', () => {
  assert.is(renderPlain([]), '(empty array)')
  assert.is(renderPlain([['a', 'b\n'], [], null, 3]), ['1) 1) "a"', '   2) "b\\n"', '2) (empty array)', '3) (nil)', '4) (integer) 3'].join('\n'))
  const ten = Array.from({ length: 10 }, (_, i) => String(i))
  assert.is(renderPlain(ten).split('\n')[0], ' 1) "0"')
  assert.is(renderPlain(ten).split('\n')[9], '10) "9"')
})

test('JSON: bigints as decimal strings, bytes as base64', () => {
  assert.is(renderJson('OK'), '"OK"')
  assert.is(renderJson([1, 2n ** 64n, null, new Uint8Array([0xff, 0x00])]), '[1,"18446744073709551616",null,{"base64":"/wA="}]')
})

test.run()
