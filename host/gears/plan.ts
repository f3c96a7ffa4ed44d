/**
 * What the guest tells the host about a run() (the `gears.start` payload): the reader, the mode,
 * the steps as RedisGears lists them in RG.GETEXECUTION, and the routes between the plan's stages.
 * It comes from guest code, so it is validated here.
 */
import type { WireValue } from '../runtime/wire.js'
import { GuestFacingError } from '../runtime/guest-facing-error.js'

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

const MAX_STEPS = 10_000

function fail(what: string): never {
  throw new GuestFacingError(`gears.start: malformed run description (${what})`)
}

function text(value: WireValue | undefined, what: string): string {
  if (typeof value !== 'string') fail(what)
  return value
}

/** Checks a `gears.start` payload. */
export function parseRunDescription(value: WireValue): RunDescription {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) fail('not an object')
  const o = value as { readonly [key: string]: WireValue }
  const reader = text(o['reader'], 'reader')
  const desc = o['desc'] === null ? null : text(o['desc'], 'desc')
  const mode = o['mode']
  if (mode !== 'async' && mode !== 'async_local') fail('mode')
  const steps = o['steps']
  if (!Array.isArray(steps) || steps.length > MAX_STEPS) fail('steps')
  const parsedSteps = (steps as readonly WireValue[]).map((s): PlanStep => {
    if (typeof s !== 'object' || s === null || Array.isArray(s) || s instanceof Uint8Array) fail('step')
    const step = s as { readonly [key: string]: WireValue }
    return { type: text(step['type'], 'step type'), name: text(step['name'], 'step name'), arg: text(step['arg'], 'step arg') }
  })
  const routes = o['routes']
  if (!Array.isArray(routes) || routes.length > MAX_STEPS) fail('routes')
  const parsedRoutes = (routes as readonly WireValue[]).map((r): StageRoute => {
    if (r !== 'key' && r !== 'initiator') fail('route')
    return r
  })
  return { reader, desc, mode, steps: parsedSteps, routes: parsedRoutes }
}

/** True when two descriptions describe the same plan (a stage's re-evaluation built what the first run built). */
export function samePlan(a: Pick<RunDescription, 'steps' | 'routes'>, b: Pick<RunDescription, 'steps' | 'routes'>): boolean {
  return JSON.stringify([a.steps, a.routes]) === JSON.stringify([b.steps, b.routes])
}
