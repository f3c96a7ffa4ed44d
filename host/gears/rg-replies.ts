/**
 * The executions API's answers in RedisGears 1.2's RESP reply shapes (spec §4), for the RESP
 * server's RG.DUMPEXECUTIONS, RG.GETEXECUTION and RG.GETRESULTS(BLOCKING).
 */
import type { ExecutionInfo, ExecutionResults, ExecutionSummary } from './executions.js'
import { resultsReply } from './result-reply.js'
import type { ExecuteReply } from './session.js'

/** RG.DUMPEXECUTIONS: `[['executionId', id, 'status', status, 'registered', 0|1], ...]`. */
export function dumpExecutionsReply(executions: readonly ExecutionSummary[]): ExecuteReply {
  return executions.map((e) => ['executionId', e.id, 'status', e.status, 'registered', e.registered ? 1 : 0])
}

/**
 * RG.GETEXECUTION: `[['shard_id', id, 'execution_plan', ['status', s, 'shards_received', n,
 * 'shards_completed', n, 'results', n (-1 while running), 'errors', [...], 'total_duration', ms,
 * 'read_duration', ms, 'steps', [['type', t, 'duration', ms, 'name', n, 'arg', a], ...]]]]`, steps
 * listed last to first as RedisGears lists them; durations in whole milliseconds.
 */
export function getExecutionReply(info: ExecutionInfo): ExecuteReply {
  const steps = [...info.steps]
    .reverse()
    .map((s) => ['type', s.type, 'duration', Math.round(s.durationMs), 'name', s.name, 'arg', s.arg])
  return [
    [
      'shard_id',
      info.shardId,
      'execution_plan',
      [
        'status',
        info.status,
        'shards_received',
        info.shardsReceived,
        'shards_completed',
        info.shardsCompleted,
        'results',
        info.results,
        'errors',
        [...info.errors],
        'total_duration',
        Math.round(info.totalDurationMs),
        'read_duration',
        Math.round(info.readDurationMs),
        'steps',
        steps,
      ],
    ],
  ]
}

/** RG.GETRESULTS / RG.GETRESULTSBLOCKING: `[[results], [errors]]`. */
export function getResultsReply(results: ExecutionResults): ExecuteReply {
  return resultsReply(results.results, results.errors)
}
