/**
 * QuickJS: reading what a guest threw without trusting its shape (the realm's describer), and
 * the error texts by which this engine reports its own conditions.
 */
import type { QuickJSContext, QuickJSHandle } from 'quickjs-emscripten-core'
import { guestFailure, MAX_MESSAGE_CHARS, MAX_STACK_CHARS, type GuestFailure } from '../../guest-errors.js'

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
  return guestFailure(
    typeof name === 'string' ? name : undefined,
    message,
    typeof stack === 'string' ? stack : undefined,
    typeof code === 'string' ? code : undefined,
  )
}
