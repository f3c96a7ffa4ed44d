/**
 * What the sandbox needs from its host runtime, injected so that host/sandbox imports no Node
 * built-ins: Node runs workers on node:worker_threads (host/platform/node.ts); Deno or a browser
 * would use Web Workers. The worker side of a platform runs {@link runSandboxWorker} with a
 * {@link WorkerPort} and the compiled QuickJS WebAssembly module.
 */
import type { FromWorkerMessage, ToWorkerMessage } from './protocol.js'

/** Callbacks a platform worker reports to the pool. */
export interface PlatformWorkerEvents {
  message(message: FromWorkerMessage): void
  /** The worker is gone: `error` when it crashed, undefined after {@link PlatformWorker.terminate}. */
  exit(error: Error | undefined): void
}

/** Main side of one worker thread. */
export interface PlatformWorker {
  postMessage(message: ToWorkerMessage): void
  /** Stops the thread at once, even while it is stuck inside a WebAssembly builtin. */
  terminate(): Promise<void>
}

/** A way to start sandbox workers. */
export interface SandboxPlatform {
  /** For diagnostics ("node", "deno", ...). */
  readonly name: string
  /**
   * Starts a worker that runs {@link runSandboxWorker}. The worker must be able to block on
   * `Atomics.wait` and to receive SharedArrayBuffers by message.
   */
  spawnWorker(events: PlatformWorkerEvents): Promise<PlatformWorker>
}

/** Worker side: the channel to the pool, handed to {@link runSandboxWorker}. */
export interface WorkerPort {
  postMessage(message: FromWorkerMessage): void
  onMessage(listener: (message: ToWorkerMessage) => void): void
}
