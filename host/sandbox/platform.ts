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

/**
 * Where a worker may send a function's plain commands itself (see {@link DirectCalls}): a
 * standalone Redis reached over TCP, as the function user. Sent to workers by the pool
 * (`SandboxPool.enableDirectCalls`); structured-clone data.
 */
export interface DirectRedisConfig {
  readonly host: string
  readonly port: number
  readonly username: string
  readonly password: string
  /** The database to SELECT after AUTH (0: none). */
  readonly db: number
  /**
   * Lower-case names of the commands the host's policy lets through unchanged whatever their
   * arguments (no subcommands, not blocking, allowed by the function user's rules). Others go
   * through the main thread, which checks and may rewrite them.
   */
  readonly commands: readonly string[]
  /** Calls with an argument starting with this go through the main thread (gearbox's own keys). */
  readonly reservedPrefix: string
}

/**
 * What a direct call ended with: the wire reply for the guest, a reply over the execution's
 * budget (the run fails with ERR_GEARBOX_REPLY_LIMIT and `message`), or a stop request seen
 * while waiting.
 */
export type DirectAnswer = { readonly reply: string } | { readonly overBudget: string } | { readonly stopped: true }

/**
 * Worker side: sends a sync `execute` host call to Redis on the worker's own connection and
 * waits for its reply in the worker thread, instead of handing it to the main thread. One
 * thread hop less per call (the main thread's wake-up), which on a 2-vCPU VM halved the time of a
 * call. Implemented by the Node platform (host/platform/direct-redis.ts); other platforms have none.
 */
export interface DirectCalls {
  /**
   * Answers the call, or returns undefined when it must go through the main thread (the command
   * is not one of {@link DirectRedisConfig.commands}, an argument is bytes or reserved, the
   * connection is not ready): nothing was sent then. `stopRequested` is polled while waiting.
   */
  call(payload: string, maxReplyBytes: number, stopRequested: () => boolean): DirectAnswer | undefined
  /** After a run: a connection left with a reply owed (a stopped call) is replaced. */
  afterRun(): void
  /** Closes the connection (a new config replaced this one). */
  close(): void
}

/** Makes a worker's {@link DirectCalls} from the pool's config (worker side of a platform). */
export type DirectCallsFactory = (config: DirectRedisConfig) => DirectCalls
