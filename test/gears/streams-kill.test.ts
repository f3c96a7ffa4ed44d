/**
 * At least once across a host crash: a host process (stream-host-fixture.ts) processing a stream
 * is killed with SIGKILL mid-stream while entries keep coming, and a new one is started. Every
 * entry id is processed at least once, none is lost, and duplicates are bounded by what the
 * killed host held (up to three batches per stream: running, read ahead, being acknowledged). Against a standalone redis-server (10,000 entries) and
 * the 3-master cluster (a stream on every master).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { Cluster, Redis } from 'ioredis'
import { STREAM_CONSUMER_GROUP } from '../../host/gears/streams.js'
import { createRedisBackend, hashtagForSlot, shardOwningSlot } from '../../host/redis/index.js'
import { sharedCluster, startRedis, type TestRedis } from '../helpers/redis.js'
import { poller } from '../helpers/until.js'

const FIXTURE = fileURLToPath(new URL('./stream-host-fixture.js', import.meta.url))
const BATCH = 20
const CLAIM_IDLE_MS = 1000

const until = poller(10_000, 50)

/** Starts a host process; resolves once it registered. */
async function startHost(target: string, prefix: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [FIXTURE, target, prefix, String(BATCH), String(CLAIM_IDLE_MS)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the host process did not register within 30 s: ${out}`)), 30_000)
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (out.includes('ready')) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`the host process exited with ${String(code)} before registering: ${out}`))
    })
  })
  return child
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

type Client = Redis | Cluster

/**
 * Produces `perStream` entries on each stream (in chunks, while hosts process them), kills the
 * first host once `killAfter` entries were seen, starts a second, and checks what was processed.
 */
async function crashAndRecover(client: Client, target: string, prefix: string, streams: readonly string[], perStream: number, killAfter: number): Promise<void> {
  const ids = new Map<string, string[]>(streams.map((s) => [s, []]))
  const seenCount = async (): Promise<number> => {
    let n = 0
    for (const s of streams) n += await client.hlen(`seen:${s}`)
    return n
  }
  const first = await startHost(target, prefix)
  let second: ChildProcess | undefined
  try {
    // The producer writes while the hosts work: chunks of 250 entries per stream.
    const producing = (async () => {
      for (let written = 0; written < perStream; written += 250) {
        for (const s of streams) {
          const pipeline = client.pipeline()
          for (let i = written; i < Math.min(perStream, written + 250); i++) pipeline.xadd(s, '*', 'n', String(i))
          const replies = (await pipeline.exec()) ?? []
          for (const [error, id] of replies) {
            assert.is(error, null)
            ids.get(s)!.push(String(id))
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    })()
    await until(`${killAfter} entries processed by the first host`, async () => (await seenCount()) >= killAfter, 120_000)
    await killed(first)
    // What the killed host held, read and not acknowledged: per stream at most the running batch,
    // the next one read ahead and the previous one whose acknowledgement was in flight.
    let held = 0
    for (const s of streams) {
      const [pending] = (await client.xpending(s, STREAM_CONSUMER_GROUP)) as [number]
      assert.ok(pending <= 3 * BATCH, `${pending} entries pending on ${s} at the kill, at most ${3 * BATCH} expected`)
      held += pending
    }
    second = await startHost(target, prefix)
    await producing
    const total = streams.length * perStream
    await until('every entry processed', async () => (await seenCount()) >= total, 180_000)
    await until('every entry acknowledged and trimmed', async () => {
      for (const s of streams) {
        const [pending] = (await client.xpending(s, STREAM_CONSUMER_GROUP)) as [number]
        if (pending !== 0 || (await client.xlen(s)) !== 0) return false
      }
      return true
    }, 60_000)
    let duplicates = 0
    for (const s of streams) {
      const seen = await client.hgetall(`seen:${s}`)
      // None lost: every id written was processed; nothing else was.
      assert.equal(Object.keys(seen).sort(), [...ids.get(s)!].sort(), `the ids of ${s}`)
      for (const count of Object.values(seen)) duplicates += Number(count) - 1
    }
    // Only what the killed host held (read, not acknowledged: at most three batches per stream) ran twice.
    assert.ok(duplicates <= held, `${duplicates} duplicates, at most the ${held} entries the killed host held`)
  } finally {
    await killed(first)
    if (second) await killed(second)
  }
}

const t = suite('stream registrations: a host killed mid-stream')
const ctx: { redis?: TestRedis; client?: Redis } = {}

t.before(async () => {
  ctx.redis = await startRedis()
  ctx.client = new Redis(ctx.redis.port, '127.0.0.1')
})

t.after(async () => {
  ctx.client?.disconnect()
  await ctx.redis?.stop()
})

t('standalone: 10,000 entries, SIGKILL mid-stream, a new host: every id processed, none lost, duplicates bounded', async () => {
  await crashAndRecover(ctx.client!, ctx.redis!.url, 'kill', ['kill'], 10_000, 3000)
})

t('cluster: a stream on every master, SIGKILL mid-stream, a new host: every id processed, none lost, duplicates bounded', async () => {
  const cluster = await sharedCluster()
  await cluster.flushAll()
  const backend = createRedisBackend({ cluster: [...cluster.urls] })
  const client = new Cluster(cluster.nodes.map((n) => ({ host: n.host, port: n.port })))
  try {
    const shards = await backend.shards()
    assert.is(shards.length, 3)
    const streams = shards.map((s) => `kill:{${hashtagForSlot(s.minSlot)}}`)
    for (const s of shards) assert.ok(shardOwningSlot(shards, s.minSlot)?.id === s.id)
    await crashAndRecover(client, `cluster:${cluster.urls.join(',')}`, 'kill:*', streams, 1000, 900)
  } finally {
    client.disconnect()
    await backend.close()
  }
})

t.run()
