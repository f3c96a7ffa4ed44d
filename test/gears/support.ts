/** Shared by the gears tests: a Gearbox against real Redis and ways to run a script's run(). */
import type { Test } from 'uvu'
import * as assert from 'uvu/assert'
import { Gearbox, type GearboxOptions } from '../../host/gearbox.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { GearboxError } from '../../host/errors.js'
import type { WireValue } from '../../host/runtime/wire.js'

/** `[results, errors]` as execute() replies for a blocking run(). */
export type RunReply = [unknown[], string[]]

export class GearsBox {
  private constructor(readonly gearbox: Gearbox) {}

  static async create(options: GearboxOptions): Promise<GearsBox> {
    return new GearsBox(await Gearbox.create({ workers: 2, ...options }))
  }

  /** The blocking reply of a script that calls run(). */
  async run(script: string): Promise<RunReply> {
    const reply = await this.gearbox.execute(script)
    assert.ok(Array.isArray(reply) && reply.length === 2, `expected [results, errors], got ${JSON.stringify(reply)}`)
    return reply as unknown as RunReply
  }

  /** The records as the guest produced them (executions.results keeps objects as objects). */
  async raw(script: string): Promise<{ results: WireValue[]; errors: string[] }> {
    const id = await this.gearbox.execute(script, { unblocking: true })
    assert.type(id, 'string')
    const { results, errors } = await this.gearbox.executions.resultsBlocking(id as string)
    this.gearbox.executions.drop(id as string)
    return { results: [...results], errors: [...errors] }
  }

  /** The message of the GearboxError a script fails with. */
  async failure(script: string): Promise<GearboxError> {
    try {
      await this.gearbox.execute(script)
    } catch (error) {
      assert.instance(error, GearboxError)
      return error as GearboxError
    }
    assert.unreachable(`expected the script to fail: ${script}`)
    throw new Error('unreachable')
  }

  close(): Promise<void> {
    return this.gearbox.close()
  }
}

/** Sorts a copy (for results whose order is not specified, e.g. SCAN order). */
export function sorted<T>(values: readonly T[]): T[] {
  return [...values].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : JSON.stringify(a) > JSON.stringify(b) ? 1 : 0))
}

/**
 * Gives `suite` a throwaway redis-server and a GearsBox on it for its tests (started in `before`,
 * stopped in `after`); returns an accessor for the box.
 */
export function useGearsBox(suite: Test, options: Omit<GearboxOptions, 'redis'> = {}): () => GearsBox {
  const ctx: { redis?: TestRedis; box?: GearsBox } = {}
  suite.before(async () => {
    ctx.redis = await startRedis()
    ctx.box = await GearsBox.create({ ...options, redis: ctx.redis.url })
  })
  suite.after(async () => {
    await ctx.box?.close()
    await ctx.redis?.stop()
  })
  return () => {
    if (ctx.box === undefined) throw new Error('useGearsBox: the suite has not started')
    return ctx.box
  }
}
