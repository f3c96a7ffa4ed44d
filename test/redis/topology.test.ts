import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import {
  STANDALONE_SHARD_ID,
  parseClusterShards,
  parseClusterSlots,
  shardOwningSlot,
  standaloneShard,
} from '../../host/cluster/topology.js'

const test = suite('cluster: topology parsing')
const b = (s: string): Uint8Array => new TextEncoder().encode(s)
const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const R = 'r'.repeat(40)
const E = 'e'.repeat(40)

function node(id: string, port: number, role: string, extra: unknown[] = []): unknown[] {
  return [b('id'), b(id), b('port'), port, b('ip'), b('10.0.0.1'), b('endpoint'), b('127.0.0.1'), b('role'), b(role), ...extra]
}

test('CLUSTER SHARDS: masters only, ranges merged, ordered by lowest slot, slotless masters left out', () => {
  const reply = [
    [b('slots'), [10923, 16383, 100, 200], b('nodes'), [node(R, 7003, 'replica'), node(B, 7001, 'master', [b('health'), b('online')])]],
    [b('slots'), [0, 99, 201, 10922], b('nodes'), [node(A, 7000, 'master')]],
    [b('slots'), [], b('nodes'), [node(E, 7005, 'master')]],
  ]
  const shards = parseClusterShards(reply)
  assert.equal(shards, [
    { id: A, host: '127.0.0.1', port: 7000, slots: [[0, 99], [201, 10922]], minSlot: 0 },
    { id: B, host: '127.0.0.1', port: 7001, slots: [[100, 200], [10923, 16383]], minSlot: 100 },
  ])
  assert.is(shardOwningSlot(shards, 150)?.id, B)
  assert.is(shardOwningSlot(shards, 0)?.id, A)
  assert.is(shardOwningSlot([], 0), undefined)
})

test("CLUSTER SHARDS: an unknown endpoint ('?') falls back to the ip", () => {
  const reply = [[b('slots'), [0, 16383], b('nodes'), [[b('id'), b(A), b('port'), 7000, b('ip'), b('10.0.0.9'), b('endpoint'), b('?'), b('role'), b('master')]]]]
  assert.is(parseClusterShards(reply)[0]?.host, '10.0.0.9')
})

test('CLUSTER SLOTS: grouped by master id', () => {
  const reply = [
    [5461, 10922, [b('127.0.0.1'), 7001, b(B), []], [b('127.0.0.1'), 7004, b(R), []]],
    [0, 5460, [b('127.0.0.1'), 7000, b(A), []]],
    [10923, 16383, [b('127.0.0.1'), 7000, b(A), []]],
  ]
  assert.equal(parseClusterSlots(reply), [
    { id: A, host: '127.0.0.1', port: 7000, slots: [[0, 5460], [10923, 16383]], minSlot: 0 },
    { id: B, host: '127.0.0.1', port: 7001, slots: [[5461, 10922]], minSlot: 5461 },
  ])
})

test('malformed replies throw a coded error naming what was wrong', () => {
  for (const bad of [null, [[b('slots'), [0, 1], b('nodes'), b('x')]], [42]]) {
    try {
      parseClusterShards(bad)
      assert.unreachable()
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_GEARBOX_UNEXPECTED_REPLY')
    }
  }
  try {
    parseClusterSlots([[0, 1, []]])
    assert.unreachable()
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_GEARBOX_UNEXPECTED_REPLY')
  }
})

test('standalone: one shard of forty zeros owning every slot', () => {
  assert.equal(standaloneShard('127.0.0.1', 6379), { id: STANDALONE_SHARD_ID, host: '127.0.0.1', port: 6379, slots: [[0, 16383]], minSlot: 0 })
  assert.is(STANDALONE_SHARD_ID, '0'.repeat(40))
})

test.run()
