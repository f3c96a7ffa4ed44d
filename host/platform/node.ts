/**
 * The Node.js sandbox platform: workers on node:worker_threads, the engine's .wasm read and
 * compiled once per process and shared with every worker as a compiled WebAssembly.Module.
 */
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import { DEFAULT_ENGINE, engineTraits } from '../sandbox/engines/index.js'
import type { PlatformWorker, PlatformWorkerEvents, SandboxPlatform } from '../sandbox/platform.js'
import type { FromWorkerMessage } from '../sandbox/protocol.js'

/** Options of {@link nodePlatform}. */
export interface NodePlatformOptions {
  /**
   * Native stack of each worker thread, in MiB. Default 16. QuickJS's own limit
   * (`limits.stackBytes` ≤ 256 KiB) must trip before V8's: measured here, recursion through the
   * parser (`eval` of 4 000 nested parentheses at the 256 KiB limit) needs more than 4 MiB of
   * native stack and overflows V8 first at Node's default of 4 MiB (host RangeError, the module
   * then aborts on dispose); 8 MiB was enough for every pattern tried, 16 leaves a margin.
   */
  readonly stackSizeMb?: number
}

/** The compiled worker entry next to this file (dist/host/platform/node-worker.js). */
const WORKER_ENTRY = new URL('./node-worker.js', import.meta.url)

let compiledEngine: Promise<WebAssembly.Module> | undefined

/** Reads and compiles the engine's .wasm once per process (where the engine's traits say it is). */
function compileEngine(): Promise<WebAssembly.Module> {
  compiledEngine ??= (async () => {
    const path = createRequire(import.meta.url).resolve(engineTraits(DEFAULT_ENGINE).wasmSpecifier)
    return WebAssembly.compile(await readFile(path))
  })()
  return compiledEngine
}

/** Data every node-worker.js receives as `workerData`. */
export interface NodeWorkerData {
  readonly wasmModule: WebAssembly.Module
}

/** A {@link SandboxPlatform} running sandbox workers on node:worker_threads. */
export function nodePlatform(options: NodePlatformOptions = {}): SandboxPlatform {
  const stackSizeMb = options.stackSizeMb ?? 16
  return {
    name: 'node',
    async spawnWorker(events: PlatformWorkerEvents): Promise<PlatformWorker> {
      const workerData: NodeWorkerData = { wasmModule: await compileEngine() }
      const worker = new Worker(WORKER_ENTRY, { workerData, resourceLimits: { stackSizeMb } })
      let terminating = false
      let crash: Error | undefined
      worker.on('message', (message: FromWorkerMessage) => events.message(message))
      worker.on('error', (error: Error) => {
        crash = error
      })
      worker.on('exit', (code: number) => {
        if (terminating) events.exit(undefined)
        else events.exit(crash ?? new Error(`sandbox worker exited with code ${code}`))
      })
      return {
        postMessage: (message) => worker.postMessage(message),
        terminate: async () => {
          terminating = true
          await worker.terminate()
        },
      }
    },
  }
}
