/**
 * The sandbox core: a pool of worker threads running each execution in a fresh, capped QuickJS
 * interpreter. Knows nothing of Redis; platforms (Node, Deno, ...) are injected.
 */

// Contract
export type { ExecutionHandle, ExecutionJob, GuestScript, HostHandler, Limits } from './types.js'
export { DEFAULT_LIMITS, INTERPRETER_BASE_BYTES, MAX_STACK_BYTES, resolveLimits } from './limits.js'

// Pool (main thread)
export { SandboxPool, type SandboxPoolOptions, type SandboxPoolStats } from './pool.js'
export { CPU_GRACE_MS, STOP_GRACE_MS } from './pool-worker.js'

// Platforms
export type { PlatformWorker, PlatformWorkerEvents, SandboxPlatform, WorkerPort } from './platform.js'
export type { FromWorkerMessage, ToWorkerMessage } from './protocol.js'
export { runSandboxWorker } from './worker-loop.js'
