/**
 * Worker side: turns what a guest threw into a coded error. A limit code comes only from what the
 * engine observed (an allocation that failed at the memory cap, the stack written past its
 * limit, the interrupt deadline, host-call counts), never from the name or text of the thrown
 * value: QuickJS reports its limits as ordinary exceptions (`InternalError: out of memory`,
 * `InternalError: stack overflow`) that any guest can also construct and throw.
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

/**
 * Source of the function that reads a thrown value inside the guest realm. It is evaluated when
 * the realm is built, before any user code, so it holds the original JSON.stringify and
 * String.prototype.slice; it reads `name`, `message`, `stack` and `code` as properties (a
 * guest getter runs, under the CPU limit) and encodes only strings, so no toJSON or prototype
 * of the guest's shapes the description. Returns `[name, message, stack, code]` as JSON text.
 */
export const DESCRIBE_THROWN_SOURCE = `(() => {
  const JSONStringify = JSON.stringify
  const String_ = String
  const slice = Function.prototype.call.bind(String.prototype.slice)
  const MAX = ${MAX_MESSAGE_CHARS + 1}
  const text = (value) => (typeof value === 'string' ? JSONStringify(value.length > MAX ? slice(value, 0, MAX) : value) : 'null')
  const read = (object, key) => { try { return object[key] } catch { return undefined } }
  return function describeThrown(thrown) {
    if (thrown !== null && (typeof thrown === 'object' || typeof thrown === 'function')) {
      const message = read(thrown, 'message')
      if (typeof message === 'string') {
        const stack = read(thrown, 'stack')
        return '[' + text(read(thrown, 'name')) + ',' + text(message) + ',' + text(typeof stack === 'string' && stack.length > ${MAX_STACK_CHARS * 64} ? slice(stack, 0, ${MAX_STACK_CHARS * 64}) : stack) + ',' + text(read(thrown, 'code')) + ']'
      }
    }
    let rendered
    try { rendered = typeof thrown === 'string' ? thrown : JSONStringify(thrown) } catch {}
    if (typeof rendered !== 'string') { try { rendered = String_(thrown) } catch {} }
    return '[null,' + text(typeof rendered === 'string' ? rendered : 'the guest threw a value that could not be read') + ',null,null]'
  }
})()`

/**
 * Reads a thrown guest value with the realm's describer (see {@link DESCRIBE_THROWN_SOURCE}).
 * Runs guest getters: the interrupt handler stays installed, so a hostile getter is still
 * bounded by the CPU limit. Disposes `thrown`.
 */
export function describeThrown(ctx: QuickJSContext, describer: QuickJSHandle, thrown: QuickJSHandle): GuestFailure {
  const unreadable: GuestFailure = { name: 'Error', message: 'the guest threw a value that could not be read' }
  let fields: unknown
  try {
    const result = ctx.callFunction(describer, ctx.undefined, thrown)
    if (result.error) {
      result.error.dispose()
      return unreadable
    }
    const json = ctx.typeof(result.value) === 'string' ? ctx.getString(result.value) : undefined
    result.value.dispose()
    if (json === undefined) return unreadable
    fields = JSON.parse(json)
  } catch {
    return unreadable
  } finally {
    if (thrown.alive) thrown.dispose()
  }
  if (!Array.isArray(fields)) return unreadable
  const [name, message, stack, code] = fields as unknown[]
  if (typeof message !== 'string') return unreadable
  return {
    name: typeof name === 'string' ? name : 'Error',
    message: clip(message, MAX_MESSAGE_CHARS),
    ...(typeof stack === 'string' && stack !== '' ? { stack: clipStack(stack) } : {}),
    ...(typeof code === 'string' ? { code: clip(code, 200) } : {}),
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

/** What the engine observed during a failed execution. */
export interface EngineObservations {
  /** An allocation failed at the memory cap. */
  readonly memoryCapHit: boolean
  /** The guest's stack reached the engine's stack limit (its own check tripped). */
  readonly stackLimitHit: boolean
}

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
