/**
 * Messages between the pool (main thread) and a sandbox worker, and how coded errors cross the
 * thread boundary. Everything here is structured-clone data (strings, numbers, SharedArrayBuffers).
 *
 * Sync host calls do not answer by message: the worker blocks on the reply channel
 * (see reply-channel.ts) and the main thread writes the reply into shared memory.
 */
import {
  AbortedError,
  CpuLimitError,
  GearboxError,
  GuestError,
  HostCallLimitError,
  MemoryLimitError,
  ReplyLimitError,
  SandboxError,
  StackLimitError,
  WallLimitError,
} from '../errors.js'
import type { EngineName, GuestEntry } from './engine.js'
import type { DirectRedisConfig } from './platform.js'
import type { Limits } from './types.js'

/**
 * A script of a job as sent to one worker. Large scripts are cached per worker: the pool sends
 * `code` with a `slot` once ("store it there") and afterwards only the `slot`.
 */
export interface WireScript {
  readonly name: string
  readonly code?: string
  readonly slot?: number
}

/** SandboxJob.realm as sent to a worker. */
export interface WireRealm {
  readonly key: string
  readonly scripts: number
  readonly entry: GuestEntry
}

/** Main thread → worker. */
export type ToWorkerMessage =
  | {
      readonly t: 'init'
      /** Shared state (see shared-state.ts). */
      readonly state: SharedArrayBuffer
      /** Growable buffer the main thread writes sync replies into. */
      readonly replyData: SharedArrayBuffer
      /** Growable buffer the worker writes sync calls into; absent: calls are posted as messages. */
      readonly requestData?: SharedArrayBuffer
      /** Memory budget to pre-create the first interpreter for. */
      readonly memoryBytes: number
    }
  | {
      readonly t: 'run'
      readonly id: number
      /** The engine the job names (absent: the default engine). */
      readonly engine?: EngineName
      readonly scripts: readonly WireScript[]
      readonly entry: GuestEntry
      readonly limits: Limits
      /** Leading scripts that may be evaluated ahead of time (see SandboxJob.preload). */
      readonly preload: number
      /** A larger reply buffer, when this job's maxReplyBytes outgrew the current one. */
      readonly replyData?: SharedArrayBuffer
      /** The job's saved realm (SandboxJob.realm without its main-side host). */
      readonly realm?: WireRealm
      /** Its host handler allows direct calls (HostHandler.directCalls). */
      readonly direct?: true
    }
  /** Where the worker may send plain commands itself (see platform.ts DirectCalls). */
  | { readonly t: 'direct'; readonly config: DirectRedisConfig }
  | { readonly t: 'reply'; readonly id: number; readonly call: number; readonly value: string }
  | { readonly t: 'stop'; readonly id: number }

/** How an execution ended, as reported by the worker. */
export type WireOutcome =
  | { readonly ok: true; readonly value: string }
  | { readonly ok: false; readonly error: WireError }
  /** The main thread stopped it (abort, wall limit, host failure): it already settled the result. */
  | { readonly ok: false; readonly stopped: true }

/** Worker → main thread. */
export type FromWorkerMessage =
  | { readonly t: 'ready' }
  /** A sync host call; the worker waits on the reply channel. */
  | { readonly t: 'call'; readonly op: string; readonly payload: string }
  /** An async host call; answered by a `reply` message with the same `call` number. */
  | { readonly t: 'start'; readonly id: number; readonly call: number; readonly op: string; readonly payload: string }
  | { readonly t: 'done'; readonly id: number; readonly outcome: WireOutcome }
  /**
   * The run starts (`on`) or ended (`!on`) building its saved realm: host calls in between go to
   * the job's `realm.setupHost`.
   */
  | { readonly t: 'setup'; readonly id: number; readonly on: boolean }
  /** The run only waits for async replies: the worker set it aside and takes other jobs. */
  | { readonly t: 'parked'; readonly id: number }
  /**
   * The worker now runs `id` (a parked run resumed, or a job that waited): its sync calls are
   * that run's. A job started on arrival is active without this message.
   */
  | { readonly t: 'active'; readonly id: number }

/** A {@link GearboxError} as data. */
export interface WireError {
  readonly code: string
  readonly message: string
  readonly guestName?: string
  readonly guestStack?: string
  readonly guestCode?: string
}

/** Builds the coded error a worker reported. Unknown codes become {@link SandboxError}. */
export function errorFromWire(error: WireError): GearboxError {
  switch (error.code) {
    case 'ERR_GEARBOX_GUEST':
      return new GuestError(error.guestName ?? 'Error', error.message, error.guestStack, error.guestCode)
    case 'ERR_GEARBOX_MEMORY_LIMIT':
      return new MemoryLimitError(error.message)
    case 'ERR_GEARBOX_CPU_LIMIT':
      return new CpuLimitError(error.message)
    case 'ERR_GEARBOX_WALL_LIMIT':
      return new WallLimitError(error.message)
    case 'ERR_GEARBOX_STACK_LIMIT':
      return new StackLimitError(error.message)
    case 'ERR_GEARBOX_HOST_CALL_LIMIT':
      return new HostCallLimitError(error.message)
    case 'ERR_GEARBOX_REPLY_LIMIT':
      return new ReplyLimitError(error.message)
    case 'ERR_GEARBOX_ABORTED':
      return new AbortedError(error.message)
    default:
      return new SandboxError(error.message)
  }
}
