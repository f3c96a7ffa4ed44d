/**
 * Worker side: turns what a guest threw into a coded error. QuickJS reports its own limits as
 * ordinary exceptions (`InternalError: out of memory`, `InternalError: stack overflow`,
 * `SyntaxError: stack overflow` from the parser), so they are recognised by message; limits the
 * sandbox detects itself (interrupt deadline, memory cap, host-call counts) win over whatever the
 * guest threw, since the guest could catch or disguise them.
 */
import type { QuickJSContext, QuickJSHandle } from 'quickjs-emscripten-core'
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

const MAX_MESSAGE_CHARS = 64 * 1024
const MAX_STACK_CHARS = 8 * 1024

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

function render(value: unknown): string {
  if (typeof value === 'string') return value
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/**
 * Reads a thrown guest value. Runs guest getters (name, message, toJSON): the interrupt handler
 * stays installed, so a hostile getter is still bounded by the CPU limit. Disposes `thrown`.
 */
export function describeThrown(ctx: QuickJSContext, thrown: QuickJSHandle): GuestFailure {
  let dumped: unknown
  try {
    dumped = ctx.dump(thrown)
  } catch {
    return { name: 'Error', message: 'the guest threw a value that could not be read' }
  } finally {
    if (thrown.alive) thrown.dispose()
  }
  // `throw null` also comes from QuickJS itself when it cannot allocate the error object; the
  // memory-cap check in classifyFailure catches that case.
  if (typeof dumped === 'object' && dumped !== null) {
    const fields = dumped as { name?: unknown; message?: unknown; stack?: unknown; code?: unknown }
    if (typeof fields.message === 'string') {
      const name = typeof fields.name === 'string' ? fields.name : 'Error'
      const message = clip(fields.message, MAX_MESSAGE_CHARS)
      const code = typeof fields.code === 'string' ? { code: clip(fields.code, 200) } : {}
      return typeof fields.stack === 'string' && fields.stack !== ''
        ? { name, message, stack: clipStack(fields.stack), ...code }
        : { name, message, ...code }
    }
  }
  return { name: 'Error', message: clip(render(dumped), MAX_MESSAGE_CHARS) }
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

/**
 * The coded error for a guest failure.
 * @param capHit - an allocation failed at the memory cap during this execution.
 */
export function classifyFailure(failure: GuestFailure, limits: Limits, capHit: boolean): WireError {
  if (capHit) return memoryLimitError(limits)
  const { name, message } = failure
  if (message === 'stack overflow' && (name === 'InternalError' || name === 'SyntaxError' || name === 'RangeError')) {
    return stackLimitError(limits)
  }
  // An allocation bigger than the whole cap is refused before the memory grows.
  if (message === 'out of memory' && name === 'InternalError') return memoryLimitError(limits)
  return {
    code: 'ERR_GEARBOX_GUEST',
    message,
    guestName: name,
    ...(failure.stack === undefined ? {} : { guestStack: failure.stack }),
    ...(failure.code === undefined ? {} : { guestCode: failure.code }),
  }
}
