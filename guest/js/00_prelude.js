// gearbox guest prelude, part 0: the bridge to the host.
//
// Runs first in every interpreter, before any user code. It captures every builtin the prelude
// uses (Deno ext/ "primordials" style) so user code that later replaces Array.prototype.push,
// JSON.parse, Promise.prototype.then, ... cannot change what the runtime API does; it takes the
// sandbox's raw host-call functions off the global object so only the prelude can call the host;
// and it hands its internals to the later prelude files through one global that 99_seal.js
// deletes before the user's script runs.
//
// Wire format (host/runtime/wire.ts): JSON where bytes travel as {"\u0000b": "<latin1>"} and
// bigints as {"\u0000n": "<decimal>"}; a host reply is a one-character tag and a body:
// 'v' plain JSON, 'x' JSON with special objects, 'e' a GearsError message, 'c' {code, message}.
;(function () {
  'use strict'
  const global = globalThis

  // ---- primordials ----------------------------------------------------------------------------
  const ReflectApply = Reflect.apply
  const FunctionPrototypeCall = Function.prototype.call
  const FunctionPrototypeBind = Function.prototype.bind
  // uncurryThis(String.prototype.slice)(text, 1) === text.slice(1), immune to later changes of
  // String.prototype or Function.prototype.call; a bound native call allocates nothing per call.
  const uncurryThis = (fn) => ReflectApply(FunctionPrototypeBind, FunctionPrototypeCall, [fn])
  const ObjectDefineProperty = Object.defineProperty
  const ObjectGetOwnPropertyDescriptor = Object.getOwnPropertyDescriptor
  const ObjectGetPrototypeOf = Object.getPrototypeOf
  const ObjectFreeze = Object.freeze
  const ObjectKeys = Object.keys
  const ObjectCreate = Object.create
  const ArrayIsArray = Array.isArray
  const JSONParse = JSON.parse
  const JSONStringify = JSON.stringify
  const String_ = String
  const StringFromCharCode = String.fromCharCode
  const StringPrototype = String.prototype
  const OriginalCharCodeAt = String.prototype.charCodeAt
  const StringPrototypeCharCodeAt = uncurryThis(OriginalCharCodeAt)
  const StringPrototypeSlice = uncurryThis(String.prototype.slice)
  const StringPrototypeStartsWith = uncurryThis(String.prototype.startsWith)
  const StringPrototypeSplit = uncurryThis(String.prototype.split)
  const StringPrototypeIncludes = uncurryThis(String.prototype.includes)
  const Uint8Array_ = Uint8Array
  const TypedArrayPrototype = ObjectGetPrototypeOf(Uint8Array.prototype)
  const TypedArrayPrototypeGetSymbolToStringTag = uncurryThis(
    ObjectGetOwnPropertyDescriptor(TypedArrayPrototype, Symbol.toStringTag).get,
  )
  const TypedArrayPrototypeGetLength = uncurryThis(ObjectGetOwnPropertyDescriptor(TypedArrayPrototype, 'length').get)
  const TypedArrayPrototypeGetBuffer = uncurryThis(ObjectGetOwnPropertyDescriptor(TypedArrayPrototype, 'buffer').get)
  const TypedArrayPrototypeGetByteOffset = uncurryThis(
    ObjectGetOwnPropertyDescriptor(TypedArrayPrototype, 'byteOffset').get,
  )
  const ObjectGetOwnPropertyDescriptors = Object.getOwnPropertyDescriptors
  const ObjectPrototype = Object.prototype
  const ObjectPrototypeHasOwnProperty = uncurryThis(Object.prototype.hasOwnProperty)
  const hasOwn = (object, key) => ObjectPrototypeHasOwnProperty(object, key)
  const DatePrototypeGetTime = uncurryThis(Date.prototype.getTime)
  const DatePrototypeToISOString = uncurryThis(Date.prototype.toISOString)
  const NumberPrototypeValueOf = uncurryThis(Number.prototype.valueOf)
  const StringPrototypeValueOf = uncurryThis(String.prototype.valueOf)
  const BooleanPrototypeValueOf = uncurryThis(Boolean.prototype.valueOf)
  const BigIntPrototypeValueOf = uncurryThis(BigInt.prototype.valueOf)
  const NumberIsFinite = Number.isFinite
  const OriginalTypedArrayLength = ObjectGetOwnPropertyDescriptor(TypedArrayPrototype, 'length').get
  const BigInt_ = BigInt
  const BigIntPrototypeToString = uncurryThis(BigInt.prototype.toString)
  const Error_ = Error
  const TypeError_ = TypeError
  const Promise_ = Promise
  const PromisePrototypeThen = uncurryThis(Promise.prototype.then)
  const PromiseResolveFn = Promise.resolve
  const PromiseResolve = (value) => ReflectApply(PromiseResolveFn, Promise_, [value])
  const WeakMap_ = WeakMap
  const WeakMapPrototypeGet = uncurryThis(WeakMap.prototype.get)
  const WeakMapPrototypeSet = uncurryThis(WeakMap.prototype.set)
  const WeakMapPrototypeHas = uncurryThis(WeakMap.prototype.has)
  const Set_ = Set
  const SetPrototypeHas = uncurryThis(Set.prototype.has)

  // The builtins later prelude files share (they capture their own extras the same way).
  const primordials = ObjectFreeze({
    uncurryThis,
    ReflectApply,
    ObjectDefineProperty,
    ObjectKeys,
    ArrayIsArray,
    JSONStringify,
    String: String_,
    Uint8Array: Uint8Array_,
    TypedArrayPrototypeGetLength,
    Error: Error_,
    Promise: Promise_,
    PromisePrototypeThen,
    PromiseResolve,
    WeakMap: WeakMap_,
    WeakMapPrototypeGet,
    WeakMapPrototypeSet,
    WeakMapPrototypeHas,
    Set: Set_,
    SetPrototypeHas,
  })

  // ---- the sandbox's raw host calls: captured, then removed from the global object --------------
  const rawHostCall = global.__gearbox_host_call
  const rawHostStart = global.__gearbox_host_start
  if (typeof rawHostCall !== 'function' || typeof rawHostStart !== 'function') {
    throw new Error_('gearbox prelude: the sandbox did not provide __gearbox_host_call/__gearbox_host_start')
  }
  delete global.__gearbox_host_call
  delete global.__gearbox_host_start

  // ---- GearsError -------------------------------------------------------------------------------
  /** A stack without the prelude's own frames: users see where their script called the API. */
  function userFrames(stack) {
    const lines = StringPrototypeSplit(stack, '\n')
    let out = ''
    for (let i = 0; i < lines.length; i++) {
      if (StringPrototypeIncludes(lines[i], '(guest/js/')) continue
      out += (out === '' ? '' : '\n') + lines[i]
    }
    return out
  }

  /** The error class of the runtime API (RedisGears `gears.error`); `.code` is set for host errors. */
  class GearsError extends Error_ {
    constructor(message, code) {
      super(message)
      if (code !== undefined) ObjectDefineProperty(this, 'code', { __proto__: null, value: code, enumerable: true })
      const stack = this.stack
      if (typeof stack === 'string') {
        ObjectDefineProperty(this, 'stack', { __proto__: null, value: userFrames(stack), writable: true, configurable: true })
      }
    }
  }
  ObjectDefineProperty(GearsError.prototype, 'name', { value: 'GearsError', writable: true, configurable: true })
  ObjectDefineProperty(global, 'GearsError', { value: GearsError, writable: true, configurable: true })

  /** A GearsError raised by flat_error(): its message is reported verbatim (no name, no stack). */
  const flatErrors = new WeakMap_()
  function newFlatError(message) {
    const error = new GearsError(message)
    WeakMapPrototypeSet(flatErrors, error, true)
    return error
  }
  function isFlatError(value) {
    return value !== null && typeof value === 'object' && WeakMapPrototypeHas(flatErrors, value)
  }

  /** The text an error leaves in an errors list or an error reply: `Name: message`, or the flat text. */
  function formatError(value) {
    if (isFlatError(value)) return value.message
    if (value !== null && typeof value === 'object') {
      let name, message
      try {
        name = value.name
        message = value.message
      } catch {
        return 'Error: (unprintable error)'
      }
      if (typeof message === 'string') return (typeof name === 'string' && name !== '' ? name + ': ' : '') + message
    }
    try {
      return String_(value)
    } catch {
      return 'Error: (unprintable error)'
    }
  }

  // ---- bytes and wire encoding ----------------------------------------------------------------
  function isUint8Array(value) {
    return (
      value !== null &&
      typeof value === 'object' &&
      TypedArrayPrototypeGetSymbolToStringTag(value) === 'Uint8Array'
    )
  }

  const CHUNK = 8192
  function bytesToLatin1(bytes) {
    const length = TypedArrayPrototypeGetLength(bytes)
    const buffer = TypedArrayPrototypeGetBuffer(bytes)
    const offset = TypedArrayPrototypeGetByteOffset(bytes)
    let out = ''
    // fromCharCode.apply reads the view's `length` through the prototype: use it only while
    // nobody replaced that getter (read as descriptors: no guest code runs), else go per byte.
    if (applyReadsTrueLength()) {
      for (let i = 0; i < length; i += CHUNK) {
        const view = new Uint8Array_(buffer, offset + i, length - i < CHUNK ? length - i : CHUNK)
        out += ReflectApply(StringFromCharCode, null, view)
      }
      return out
    }
    const view = new Uint8Array_(buffer, offset, length)
    for (let i = 0; i < length; i++) out += StringFromCharCode(view[i])
    return out
  }

  function applyReadsTrueLength() {
    const shared = ObjectGetOwnPropertyDescriptor(TypedArrayPrototype, 'length')
    return (
      shared !== undefined &&
      shared.get === OriginalTypedArrayLength &&
      ObjectGetOwnPropertyDescriptor(Uint8Array_.prototype, 'length') === undefined
    )
  }

  function latin1ToBytes(text) {
    const out = new Uint8Array_(text.length)
    // The plain method call is ~1.5x faster than the uncurried one in QuickJS; use it while
    // String.prototype.charCodeAt is still the original (read as a descriptor: no getter runs).
    const current = ObjectGetOwnPropertyDescriptor(StringPrototype, 'charCodeAt')
    if (current !== undefined && current.value === OriginalCharCodeAt) {
      for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i)
    } else {
      for (let i = 0; i < text.length; i++) out[i] = StringPrototypeCharCodeAt(text, i)
    }
    return out
  }

  const BYTES_KEY = '\u0000b'
  const BIGINT_KEY = '\u0000n'

  /** JSON text of one execute()-style argument list: Uint8Array binary-safe, anything else String(x). */
  function encodeArgs(args, from) {
    let out = '['
    for (let i = from; i < args.length; i++) {
      const arg = args[i]
      if (i > from) out += ','
      if (isUint8Array(arg)) out += '{"\\u0000b":' + JSONStringify(bytesToLatin1(arg)) + '}'
      else out += JSONStringify(typeof arg === 'string' ? arg : String_(arg))
    }
    return out + ']'
  }

  /** Deepest nesting of arrays/objects that crosses to the host (host/runtime/wire.ts MAX_NESTING_DEPTH). */
  const MAX_NESTING_DEPTH = 1000

  /**
   * JSON text of a primitive or a value the encoder treats as one (bytes, bigints, dates, boxed
   * primitives); undefined for an object or array to walk; NOTHING for what JSON leaves out.
   */
  const NOTHING = {}
  function encodeLeaf(value) {
    switch (typeof value) {
      case 'string':
        return JSONStringify(value)
      case 'number':
        return NumberIsFinite(value) ? JSONStringify(value) : 'null'
      case 'boolean':
        return value ? 'true' : 'false'
      case 'bigint':
        return '{"\\u0000n":"' + BigIntPrototypeToString(value) + '"}'
      case 'undefined':
      case 'function':
      case 'symbol':
        return NOTHING
    }
    if (value === null) return 'null'
    if (isUint8Array(value)) return '{"\\u0000b":' + JSONStringify(bytesToLatin1(value)) + '}'
    if (ArrayIsArray(value)) return undefined
    const proto = ObjectGetPrototypeOf(value)
    if (proto === ObjectPrototype || proto === null) return undefined
    // What JSON.stringify does for these through their builtin methods, with the originals.
    try {
      const time = DatePrototypeGetTime(value)
      return time === time ? JSONStringify(DatePrototypeToISOString(value)) : 'null'
    } catch {}
    try {
      return encodeLeaf(NumberPrototypeValueOf(value))
    } catch {}
    try {
      return JSONStringify(StringPrototypeValueOf(value))
    } catch {}
    try {
      return BooleanPrototypeValueOf(value) ? 'true' : 'false'
    } catch {}
    try {
      return encodeLeaf(BigIntPrototypeValueOf(value))
    } catch {}
    return undefined
  }

  function nestingError() {
    return new GearsError(
      'a value nested deeper than ' + MAX_NESTING_DEPTH + ' arrays/objects cannot cross to the host',
      'ERR_GEARBOX_NESTING_LIMIT',
    )
  }

  /**
   * JSON text of any guest value, bytes and bigints as wire special objects. Reads own data
   * properties only, through builtins captured before user code ran: no toJSON, no getters, no
   * prototype of the guest's takes part, so user code cannot change or break what the host reads.
   * Iterative (an explicit stack), so deep values fail with a coded error, not a stack overflow.
   */
  function encodeWire(root) {
    const leaf = encodeLeaf(root)
    if (leaf === NOTHING) return 'null'
    if (leaf !== undefined) return leaf
    let out = ''
    // Frames: [object, keys (undefined for arrays), next index, length, descriptors]
    const stack = []
    let depth = 0
    let value = root
    for (;;) {
      // Open `value` (an object to walk).
      if (++depth > MAX_NESTING_DEPTH) throw nestingError()
      for (let i = 0; i < stack.length; i++) if (stack[i][0] === value) throw new TypeError_('circular reference')
      const isArray = ArrayIsArray(value)
      const descriptors = ObjectGetOwnPropertyDescriptors(value)
      const keys = isArray ? undefined : ObjectKeys(descriptors)
      const lengthDescriptor = isArray && hasOwn(descriptors, 'length') ? descriptors.length : undefined
      const length = isArray ? (lengthDescriptor !== undefined && hasOwn(lengthDescriptor, 'value') ? lengthDescriptor.value : 0) : keys.length
      out += isArray ? '[' : '{'
      stack[stack.length] = [value, keys, 0, length, descriptors, true]
      // Emit members until one needs walking, or frames close.
      for (;;) {
        const frame = stack[stack.length - 1]
        if (frame === undefined) return out
        const index = frame[2]
        if (index >= frame[3]) {
          out += frame[1] === undefined ? ']' : '}'
          stack.length = stack.length - 1
          depth--
          if (stack.length === 0) return out
          continue
        }
        frame[2] = index + 1
        const key = frame[1] === undefined ? String_(index) : frame[1][index]
        const descriptor = hasOwn(frame[4], key) ? frame[4][key] : undefined
        const member =
          descriptor !== undefined && hasOwn(descriptor, 'value') && (frame[1] === undefined || descriptor.enumerable === true)
            ? descriptor.value
            : undefined
        if (frame[1] !== undefined && StringPrototypeStartsWith(key, '\u0000')) {
          throw new GearsError('object keys starting with U+0000 cannot cross to the host')
        }
        const memberLeaf = encodeLeaf(member)
        if (memberLeaf === NOTHING && frame[1] !== undefined) continue
        if (!frame[5]) out += ','
        frame[5] = false
        if (frame[1] !== undefined) out += JSONStringify(key) + ':'
        if (memberLeaf === NOTHING) out += 'null'
        else if (memberLeaf !== undefined) out += memberLeaf
        else {
          value = member
          break
        }
      }
    }
  }

  function wireReviver(_key, value) {
    if (value !== null && typeof value === 'object' && !ArrayIsArray(value)) {
      const keys = ObjectKeys(value)
      if (keys.length === 1) {
        if (keys[0] === BYTES_KEY && typeof value[BYTES_KEY] === 'string') return latin1ToBytes(value[BYTES_KEY])
        if (keys[0] === BIGINT_KEY && typeof value[BIGINT_KEY] === 'string') return BigInt_(value[BIGINT_KEY])
      }
    }
    return value
  }

  /** Turns a host reply string into a value, or throws the GearsError it carries. */
  function decodeReply(reply) {
    if (typeof reply !== 'string' || reply.length === 0) {
      throw new GearsError('gearbox: malformed host reply')
    }
    const tag = reply[0]
    const body = StringPrototypeSlice(reply, 1)
    if (tag === 'v') return JSONParse(body)
    if (tag === 'x') return JSONParse(body, wireReviver)
    if (tag === 'e') throw new GearsError(body)
    if (tag === 'c') {
      const { code, message } = JSONParse(body)
      throw new GearsError(message, code)
    }
    throw new GearsError('gearbox: malformed host reply')
  }

  /** A blocking host call; `payload` is already wire JSON text. Returns the decoded reply. */
  function hostCall(op, payload) {
    return decodeReply(rawHostCall(op, payload))
  }

  /** An asynchronous host call; resolves with the decoded reply or rejects with its GearsError. */
  function hostStart(op, payload) {
    return PromisePrototypeThen(rawHostStart(op, payload), decodeReply)
  }

  /** Whether `value` has a callable `then` (a throwing getter counts as no). */
  function isThenable(value) {
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false
    try {
      return typeof value.then === 'function'
    } catch {
      return false
    }
  }

  // ---- state shared by the prelude files ----------------------------------------------------------
  let asyncAllowed = false
  let outcomeProvider = null
  const entries = ObjectCreate(null)

  // Later prelude files add their own members (e.g. drain); 99_seal.js removes the object.
  const internals = {
    primordials,
    GearsError,
    newFlatError,
    isFlatError,
    formatError,
    isUint8Array,
    isThenable,
    encodeArgs,
    encodeWire,
    hostCall,
    hostStart,
    decodeReply,
    /** isAsyncAllow(): false at top level; the gears prelude sets it around step callbacks. */
    setAsyncAllowed(value) {
      asyncAllowed = value === true
    },
    isAsyncAllowed() {
      return asyncAllowed
    },
    /**
     * The gears prelude registers what the execution reports after the top level finished
     * (e.g. the results of a run()); without one, the outcome is {kind: 'ok'}.
     */
    setOutcomeProvider(fn) {
      outcomeProvider = fn
    },
    /** Whether a later prelude file registered an outcome (a run() happened at top level). */
    hasOutcomeProvider() {
      return outcomeProvider !== null
    },
    outcome() {
      return outcomeProvider === null ? { kind: 'ok' } : outcomeProvider()
    },
    /** Functions 99_seal.js defines as non-writable globals (the sandbox entry points). */
    defineEntry(name, fn) {
      entries[name] = fn
    },
    entries,
  }

  ObjectDefineProperty(global, '__gearbox_internals', { value: internals, configurable: true })
})()
