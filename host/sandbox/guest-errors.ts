/**
 * Worker side: turns what a guest threw into a coded error. A limit code comes only from what the
 * engine observed (an allocation that failed at the memory cap, the stack written past its
 * limit, the interrupt deadline, host-call counts), never from the name or text of the thrown
 * value: engines report their limits as ordinary exceptions (QuickJS: `InternalError: out of
 * memory`, `InternalError: stack overflow`; MicroPython: `MemoryError`, `RuntimeError: maximum
 * recursion depth exceeded`) that any guest can also construct and throw.
 */
import type { EngineObservations } from './engine.js'
import type { WireError } from './protocol.js'
import type { Limits } from './types.js'

/** What the guest threw, read without trusting its shape. */
export interface GuestFailure {
  readonly name: string
  readonly message: string
  readonly stack?: string
  /** A string `code` property of the thrown value (host errors handed to the guest carry one). */
  readonly code?: string
}

/** Longest message kept (engines may cut what they read to one character more). */
export const MAX_MESSAGE_CHARS = 64 * 1024
/** Longest stack kept, in whole lines. */
export const MAX_STACK_CHARS = 8 * 1024

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`
}

/** Keeps whole lines of a stack up to the size cap (deep recursion makes megabyte stacks). */
function clipStack(stack: string): string {
  if (stack.length <= MAX_STACK_CHARS) return stack
  const cut = stack.lastIndexOf('\n', MAX_STACK_CHARS)
  const kept = stack.slice(0, cut > 0 ? cut : MAX_STACK_CHARS)
  const omitted = stack.slice(kept.length).split('\n').filter((line) => line.trim() !== '').length
  return `${kept}\n    ... ${omitted} more frames`
}

/**
 * A failure as an engine read it (fields the guest controls, already strings), clipped to the
 * sizes the host keeps: the message to 64 KiB, the stack to whole lines within 8 KiB.
 */
export function guestFailure(name: string | undefined, message: string, stack: string | undefined, code: string | undefined): GuestFailure {
  return {
    name: name ?? 'Error',
    message: clip(message, MAX_MESSAGE_CHARS),
    ...(stack !== undefined && stack !== '' ? { stack: clipStack(stack) } : {}),
    ...(code === undefined ? {} : { code: clip(code, 200) }),
  }
}

export function memoryLimitError(limits: Limits): WireError {
  return {
    code: 'ERR_GEARBOX_MEMORY_LIMIT',
    message: `execution exceeded limits.memoryBytes (${limits.memoryBytes} bytes on top of the interpreter's base)`,
  }
}

export function stackLimitError(limits: Limits): WireError {
  return {
    code: 'ERR_GEARBOX_STACK_LIMIT',
    message: `execution exceeded limits.stackBytes (${limits.stackBytes} bytes): recursion too deep`,
  }
}

export function cpuLimitError(limits: Limits): WireError {
  return {
    code: 'ERR_GEARBOX_CPU_LIMIT',
    message: `execution exceeded limits.cpuMs (${limits.cpuMs} ms of interpreter time)`,
  }
}

export type { EngineObservations } from './engine.js'

/**
 * The coded error for a guest failure. A limit the engine observed wins over whatever the guest
 * threw afterwards: a guest that caught a real stack overflow or out-of-memory and then fails
 * (rethrowing it later, or throwing anything else) gets the limit's code. One that caught it and
 * finished normally succeeds, except for memory (an allocation failed at the cap: always the limit).
 */
export function classifyFailure(failure: GuestFailure, limits: Limits, observed: EngineObservations): WireError {
  if (observed.memoryCapHit) return memoryLimitError(limits)
  if (observed.stackLimitHit) return stackLimitError(limits)
  return {
    code: 'ERR_GEARBOX_GUEST',
    message: failure.message,
    guestName: failure.name,
    ...(failure.stack === undefined ? {} : { guestStack: failure.stack }),
    ...(failure.code === undefined ? {} : { guestCode: failure.code }),
  }
}
