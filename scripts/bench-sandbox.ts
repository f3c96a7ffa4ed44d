/**
 * Sandbox micro-benchmarks (not part of `npm run bench`): pooled cold execution vs bare
 * quickjs-emscripten, fresh module vs fresh runtime, sync/async host-call overhead, and the
 * reply-wait strategy. Run: `npm run build && node dist/scripts/bench-sandbox.js`.
 * Medians over many runs; prints numbers only (no assertions).
 */
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import releaseSyncImport from '@jitl/quickjs-wasmfile-release-sync'
import { newQuickJSWASMModuleFromVariant, newVariant, type QuickJSSyncVariant, type QuickJSWASMModule } from 'quickjs-emscripten-core'
import { DEFAULT_LIMITS, resolveLimits, SandboxPool, type ExecutionJob, type HostHandler } from '../host/sandbox/index.js'
import { nodePlatform } from '../host/platform/node.js'
import { GUEST_JS } from '../host/generated/guest-js.js'

const imported = releaseSyncImport as unknown as { type?: unknown; default?: unknown }
const RELEASE_SYNC = (imported.type === 'sync' ? imported : imported.default) as QuickJSSyncVariant

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? NaN
}
function pct(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}
function report(label: string, samplesMs: number[]): number {
  const med = median(samplesMs)
  console.log(`${label.padEnd(58)} median ${(med * 1000).toFixed(1).padStart(8)} µs   p10 ${(pct(samplesMs, 0.1) * 1000).toFixed(1).padStart(8)}   p90 ${(pct(samplesMs, 0.9) * 1000).toFixed(1).padStart(8)}`)
  return med
}

async function newCappedModule(wasmModule: WebAssembly.Module): Promise<QuickJSWASMModule> {
  const memory = new WebAssembly.Memory({ initial: 256, maximum: 256 + 1024 })
  return newQuickJSWASMModuleFromVariant(newVariant(RELEASE_SYNC, { wasmModule, wasmMemory: memory }))
}

async function bare(wasmModule: WebAssembly.Module): Promise<number> {
  const mod = await newCappedModule(wasmModule)
  const samples: number[] = []
  for (let i = 0; i < 3000; i++) {
    const t = performance.now()
    const rt = mod.newRuntime()
    const ctx = rt.newContext()
    ctx.evalCode("'x'").unwrap().dispose()
    ctx.dispose()
    rt.dispose()
    if (i >= 500) samples.push(performance.now() - t)
  }
  return report('bare newRuntime+newContext+evalCode+dispose, tight loop', samples)
}

async function freshModule(wasmModule: WebAssembly.Module): Promise<void> {
  const samples: number[] = []
  for (let i = 0; i < 60; i++) {
    const t = performance.now()
    const mod = await newCappedModule(wasmModule)
    const rt = mod.newRuntime()
    const ctx = rt.newContext()
    ctx.evalCode("'x'").unwrap().dispose()
    ctx.dispose()
    rt.dispose()
    if (i >= 10) samples.push(performance.now() - t)
  }
  report('fresh capped module + runtime+context+eval per execution', samples)
}

/** A job whose result is the completion value of `code` (the guest's own eval, called as the entry). */
function job(code: string, limits = DEFAULT_LIMITS): ExecutionJob {
  return { engine: 'quickjs', scripts: [], entry: { entry: 'eval', args: [code] }, limits }
}

const echoHost: HostHandler = {
  call: (op, payload, mode) => (mode === 'sync' ? payload : Promise.resolve(payload)),
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Cold execution latency, the way requests usually arrive (with idle time in between): bare
 * quickjs-emscripten and the pool measured alternately, each after a 1 ms pause, so both see the
 * same machine load.
 */
async function coldLatency(pool: SandboxPool, wasmModule: WebAssembly.Module): Promise<void> {
  const mod = await newCappedModule(wasmModule)
  const bareSamples: number[] = []
  const pooledSamples: number[] = []
  for (let i = 0; i < 1200; i++) {
    await sleep(1)
    let t = performance.now()
    const rt = mod.newRuntime()
    const ctx = rt.newContext()
    ctx.evalCode("'x'").unwrap().dispose()
    ctx.dispose()
    rt.dispose()
    if (i >= 200) bareSamples.push(performance.now() - t)
    await sleep(1)
    t = performance.now()
    await pool.start(job("'x'"), echoHost).result
    if (i >= 200) pooledSamples.push(performance.now() - t)
  }
  const bareMs = report('bare rt+ctx+eval+dispose, after 1 ms idle', bareSamples)
  const pooledMs = report('pooled cold execution, after 1 ms idle', pooledSamples)
  console.log(`  ratio pooled / bare = ${(pooledMs / bareMs).toFixed(2)}`)
}

/** Back-to-back: each job starts the moment the previous result arrives. */
async function backToBack(pool: SandboxPool, bareMs: number): Promise<void> {
  const samples: number[] = []
  for (let i = 0; i < 3000; i++) {
    const t = performance.now()
    await pool.start(job("'x'"), echoHost).result
    if (i >= 500) samples.push(performance.now() - t)
  }
  const med = report('pooled execution, back-to-back sequential', samples)
  console.log(`  ratio back-to-back / bare (tight loop) = ${(med / bareMs).toFixed(2)}`)
  const concurrent: number[] = []
  for (let round = 0; round < 20; round++) {
    const t = performance.now()
    await Promise.all(Array.from({ length: 200 }, () => pool.start(job("'x'"), echoHost).result))
    concurrent.push((performance.now() - t) / 200)
  }
  report('pooled throughput, 200 concurrent (time per execution)', concurrent)
}

/** The real guest prelude (guest/js, bundled): evaluated inside each job vs preloaded. */
async function withPrelude(pool: SandboxPool): Promise<void> {
  const kib = GUEST_JS.reduce((sum, script) => sum + script.code.length, 0) / 1024
  for (const preload of [0, GUEST_JS.length]) {
    const preludeJob: ExecutionJob = { ...job("'x'"), scripts: GUEST_JS, preload }
    const samples: number[] = []
    for (let i = 0; i < 300; i++) {
      await sleep(preload === 0 ? 1 : 15)
      const t = performance.now()
      await pool.start(preludeJob, echoHost).result
      if (i >= 50) samples.push(performance.now() - t)
    }
    report(`pooled execution with the ${kib.toFixed(0)} KiB prelude, preload ${preload}`, samples)
  }
}

async function hostCalls(pool: SandboxPool): Promise<void> {
  const calls = 20000
  const limits = resolveLimits({ cpuMs: 60000, wallMs: 60000 })
  const loop = (body: string) => `(() => { let s = 0; for (let i = 0; i < ${calls}; i++) { ${body} } return String(s) })()`
  const timed = async (entry: string) => {
    const t = performance.now()
    await pool.start(job(entry, limits), echoHost).result
    return performance.now() - t
  }
  const base: number[] = []
  const sync: number[] = []
  for (let round = 0; round < 7; round++) {
    base.push(await timed(loop(`s += String(i).length`)))
    sync.push(await timed(loop(`s += __gearbox_host_call('get', String(i)).length`)))
  }
  const perCall = (median(sync) - median(base)) / calls
  console.log(`${'sync host call through the pool (echo handler)'.padEnd(58)} ${(perCall * 1000).toFixed(1)} µs per call`)

  const asyncCalls = 2000
  const asyncEntry = `(async () => { let s = 0; for (let i = 0; i < ${asyncCalls}; i++) s += (await __gearbox_host_start('get', String(i))).length; return String(s) })()`
  const asyncSamples: number[] = []
  for (let round = 0; round < 5; round++) asyncSamples.push((await timed(asyncEntry)) / asyncCalls)
  report('async host call (guest awaits) round trip', asyncSamples)
}

async function inThreadHostCall(wasmModule: WebAssembly.Module): Promise<void> {
  const mod = await newCappedModule(wasmModule)
  const rt = mod.newRuntime()
  const ctx = rt.newContext()
  ctx.newFunction('echo', (h) => ctx.newString(ctx.getString(h))).consume((fn) => ctx.setProp(ctx.global, 'echo', fn))
  const calls = 20000
  const samples: number[] = []
  for (let round = 0; round < 7; round++) {
    const t = performance.now()
    ctx.evalCode(`(() => { let s = 0; for (let i = 0; i < ${calls}; i++) s += echo(String(i)).length; return s })()`).unwrap().dispose()
    samples.push((performance.now() - t) / calls)
  }
  report('in-thread quickjs-emscripten host function (no worker)', samples)
  ctx.dispose()
  rt.dispose()
}

/** The reply-wait mechanism alone: a worker posts a request and waits on shared memory. */
async function waitStrategies(): Promise<void> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { words, spinMs, calls } = workerData
    const times = []
    for (let i = 0; i < calls; i++) {
      const t = performance.now()
      Atomics.store(words, 0, 0)
      parentPort.postMessage(i)
      const until = performance.now() + spinMs
      while (Atomics.load(words, 0) === 0 && performance.now() < until) {}
      while (Atomics.load(words, 0) === 0) Atomics.wait(words, 0, 0)
      times.push(performance.now() - t)
    }
    parentPort.postMessage({ times })`
  for (const spinMs of [0, 0.3]) {
    const words = new Int32Array(new SharedArrayBuffer(8))
    const worker = new Worker(code, { eval: true, workerData: { words, spinMs, calls: 5000 } })
    const times = await new Promise<number[]>((resolve) => {
      worker.on('message', (message: number | { times: number[] }) => {
        if (typeof message === 'number') {
          Atomics.store(words, 0, 1)
          Atomics.notify(words, 0)
        } else resolve(message.times)
      })
    })
    await worker.terminate()
    report(spinMs === 0 ? 'reply wait: Atomics.wait only' : `reply wait: spin ${spinMs} ms, then Atomics.wait`, times.slice(500))
  }
}

async function main(): Promise<void> {
  const path = createRequire(import.meta.url).resolve('@jitl/quickjs-wasmfile-release-sync/wasm')
  const wasmModule = await WebAssembly.compile(await readFile(path))
  console.log(`Node ${process.version}`)
  const bareMs = await bare(wasmModule)
  await freshModule(wasmModule)
  const pool = await SandboxPool.create({ platform: nodePlatform(), workers: 2 })
  try {
    await coldLatency(pool, wasmModule)
    await backToBack(pool, bareMs)
    await withPrelude(pool)
    await hostCalls(pool)
  } finally {
    await pool.close()
  }
  await inThreadHostCall(wasmModule)
  await waitStrategies()
}

await main()
