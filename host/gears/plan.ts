/**
 * A run()'s description as executions show it (gears/flow.ts compiles it from the guest's flow):
 * the reader, the mode, the steps as RedisGears lists them in RG.GETEXECUTION, and the routes
 * between the plan's stages.
 */

/** Where a stage's output records go: by their key's slot, or all to the initiator shard. */
export type StageRoute = 'key' | 'initiator'

/** One step as RG.GETEXECUTION shows it. */
export interface PlanStep {
  /** reader, map, filter, flatmap, foreach, accumulate, extractkey, repartition, accumulatebykey, group, reduce, collect, limit. */
  readonly type: string
  /** The callback's function name ('<anonymous>' for anonymous functions), the reader name, or ''. */
  readonly name: string
  /** The step's extra argument as text (limit's 'length,start', the reader's pattern), or ''. */
  readonly arg: string
}

export interface RunDescription {
  readonly reader: string
  readonly desc: string | null
  readonly mode: 'async' | 'async_local'
  readonly steps: readonly PlanStep[]
  /** One route per stage boundary: the plan has `routes.length + 1` stages. */
  readonly routes: readonly StageRoute[]
}

/** True when two descriptions describe the same plan (a stage's re-evaluation built what the first run built). */
export function samePlan(a: Pick<RunDescription, 'steps' | 'routes'>, b: Pick<RunDescription, 'steps' | 'routes'>): boolean {
  return JSON.stringify([a.steps, a.routes]) === JSON.stringify([b.steps, b.routes])
}
