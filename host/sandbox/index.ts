/**
 * The sandbox core: a pool of worker threads running each sandbox run in a fresh, capped
 * interpreter of a guest engine (engine.ts; QuickJS in engines/quickjs/). Knows nothing of Redis;
 * platforms (Node, Deno, ...) are injected.
 */

// Contract
export type { ExecutionHandle, ExecutionJob, GuestScript, HostHandler, Limits, SandboxJob, SandboxRunHandle, SavedRealmSpec } from './types.js'
export type { EngineCounters, EngineName, EngineTraits, EntryArg, GuestEntry, WireCodec, WireValue } from './engine.js'
export { DEFAULT_ENGINE, engineTraits, wireCodec } from './engines/index.js'
export { DEFAULT_LIMITS, INTERPRETER_BASE_BYTES, MAX_STACK_BYTES, resolveLimits } from './limits.js'

// Pool (main thread)
export { SandboxPool, type SandboxPoolOptions, type SandboxPoolStats } from './pool.js'
export { CPU_GRACE_MS, STOP_GRACE_MS } from './pool-worker.js'

// Platforms
export type { PlatformWorker, PlatformWorkerEvents, SandboxPlatform, WorkerPort } from './platform.js'
export type { FromWorkerMessage, ToWorkerMessage } from './protocol.js'
export { runSandboxWorker } from './worker-loop.js'
