// gearbox guest prelude: GearsBuilder / GB for JavaScript (see guest/gears.d.ts).
//
// The builder's semantics live in the host (host/gears/flow.ts): argument checks with RedisGears'
// error texts, the desugaring of count/avg/groupby/... into primitive steps, stage cutting. This file
// is what is JavaScript about it:
//   - the language semantics: a plain object of the few rules where a guest language shows through
//     (how a step's list result explodes, how a group key becomes a string, when an aggregate's
//     accumulator is replaced by its zero, how convertToStr renders a value, how sort compares, the
//     built-in reducers). A RedisGears-exact one (reverse flatmap emission, repr keys, falsy-
//     accumulator reset, str records, sort descending) has the same members;
//   - a thin builder: each call describes its arguments (type, literal, or an index into `held`, the
//     values the script gave) and asks the host to check them (`gears.op`); run() sends the flow
//     (`gears.run`), and after the top level the kernel (21_gears_kernel.js) runs the host's plan.
// The entry's result says what the script did: {kind: 'run', id} after a run(), else {kind: 'ok'}.
;(function (G) {
  'use strict'
  const {
    ReflectApply,
    ObjectDefineProperty,
    ObjectKeys,
    ArrayIsArray,
    JSONStringify,
    String: String_,
    Uint8Array: Uint8Array_,
    TypedArrayPrototypeGetLength,
    PromisePrototypeThen,
    WeakMap: WeakMap_,
    WeakMapPrototypeGet,
    WeakMapPrototypeSet,
  } = G.primordials
  const { GearsError, hostCall, encodeWire, formatError, isUint8Array } = G
  const Number_ = Number
  const SymbolIterator = Symbol.iterator
  const NumberIsNaN = Number.isNaN
  const NumberIsFinite = Number.isFinite
  const MathMin = Math.min
  const StringFromCharCode = String.fromCharCode
  const Map_ = Map
  const Set_ = Set
  const uncurry = G.primordials.uncurryThis
  const MapPrototypeSet = uncurry(Map.prototype.set)
  const MapPrototypeForEach = uncurry(Map.prototype.forEach)
  const SetPrototypeAdd = uncurry(Set.prototype.add)
  const SetPrototypeForEach = uncurry(Set.prototype.forEach)
  const ArrayPrototypeSort = uncurry(Array.prototype.sort)
  const ObjectPrototypeToString = uncurry(Object.prototype.toString)
  const ObjectGetPrototypeOf = Object.getPrototypeOf
  const ObjectPrototype = Object.prototype
  const ErrorPrototype = Error.prototype

  // =================================================================================================
  // The JavaScript semantics
  // =================================================================================================

  function bytesToLatin1(bytes) {
    let out = ''
    const n = TypedArrayPrototypeGetLength(bytes)
    for (let i = 0; i < n; i++) out += StringFromCharCode(bytes[i])
    return out
  }

  /** `value instanceof Error`, read from the prototype chain (no user-replaceable Symbol.hasInstance). */
  function isError(value) {
    for (let p = ObjectGetPrototypeOf(value); p !== null; p = ObjectGetPrototypeOf(p)) if (p === ErrorPrototype) return true
    return false
  }

  function isPlainObject(value) {
    const proto = ObjectGetPrototypeOf(value)
    return proto === ObjectPrototype || proto === null
  }

  /** JSON for convertToStr and object group keys: bigint as decimal text, bytes as latin1 text, Map/Set as arrays. */
  function displayReplacer(_key, value) {
    if (typeof value === 'bigint') return String_(value)
    if (value !== null && typeof value === 'object') {
      if (isUint8Array(value)) return bytesToLatin1(value)
      const tag = ObjectPrototypeToString(value)
      if (tag === '[object Map]') {
        const entries = []
        MapPrototypeForEach(value, (v, k) => {
          entries[entries.length] = [k, v]
        })
        return entries
      }
      if (tag === '[object Set]') {
        const items = []
        SetPrototypeForEach(value, (v) => {
          items[items.length] = v
        })
        return items
      }
    }
    return value
  }

  function displayJson(value) {
    const json = JSONStringify(value, displayReplacer)
    return json === undefined ? String_(value) : json
  }

  /** String(x), except: bytes stay bytes; plain objects, arrays, Map and Set become JSON; errors `Name: message`. */
  function jsToStr(value) {
    if (typeof value === 'string') return value
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return String_(value)
    if (typeof value === 'function') return String_(value)
    if (isUint8Array(value)) return value
    if (isError(value)) return formatError(value)
    if (ArrayIsArray(value) || isPlainObject(value)) return displayJson(value)
    const tag = ObjectPrototypeToString(value)
    if (tag === '[object Map]' || tag === '[object Set]') return displayJson(value)
    const text = String_(value)
    return text === '[object Object]' ? displayJson(value) : text
  }

  /** Group and repartition keys: strings unchanged, other primitives String(x), objects and arrays their JSON. */
  function jsKeyOf(value) {
    if (typeof value === 'string') return value
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return String_(value)
    if (isUint8Array(value)) return bytesToLatin1(value)
    return displayJson(value)
  }

  /** A deep copy of an aggregate's zero value (arrays, plain objects, Map, Set, bytes; other objects shared). */
  function jsClone(value) {
    if (value === null || typeof value !== 'object') return value
    if (ArrayIsArray(value)) {
      const out = []
      for (let i = 0; i < value.length; i++) out[i] = jsClone(value[i])
      return out
    }
    if (isUint8Array(value)) return new Uint8Array_(value)
    const tag = ObjectPrototypeToString(value)
    if (tag === '[object Map]') {
      const out = new Map_()
      MapPrototypeForEach(value, (v, k) => MapPrototypeSet(out, k, jsClone(v)))
      return out
    }
    if (tag === '[object Set]') {
      const out = new Set_()
      SetPrototypeForEach(value, (v) => SetPrototypeAdd(out, jsClone(v)))
      return out
    }
    if (!isPlainObject(value)) return value
    const out = {}
    const keys = ObjectKeys(value)
    for (let i = 0; i < keys.length; i++) out[keys[i]] = jsClone(value[keys[i]])
    return out
  }

  // sort(): numbers (and bigints) numerically, then strings by UTF-16 code units, then bytes, then the rest by JSON.
  function typeRank(v) {
    if (v === undefined || v === null) return 0
    if (typeof v === 'boolean') return 1
    if (typeof v === 'number' || typeof v === 'bigint') return 2
    if (typeof v === 'string') return 3
    if (isUint8Array(v)) return 4
    return 5
  }
  function jsCompare(a, b) {
    const ra = typeRank(a)
    const rb = typeRank(b)
    if (ra !== rb) return ra - rb
    if (ra === 2) {
      if (typeof a === 'number' && NumberIsNaN(a)) return typeof b === 'number' && NumberIsNaN(b) ? 0 : 1
      if (typeof b === 'number' && NumberIsNaN(b)) return -1
      return a < b ? -1 : a > b ? 1 : 0
    }
    if (ra === 1 || ra === 3) return a < b ? -1 : a > b ? 1 : 0
    if (ra === 4) {
      const n = MathMin(a.length, b.length)
      for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i]
      return a.length - b.length
    }
    if (ra === 0) return 0
    const ja = displayJson(a)
    const jb = displayJson(b)
    return ja < jb ? -1 : ja > jb ? 1 : 0
  }

  /**
   * The JavaScript rules (documented in guest/gears.d.ts). A RedisGears-exact semantics object (the
   * Python guest's) has the same members: flatmapReverse true, explode = lists only, keyOf = repr,
   * resetAccumulator = falsy, toStr = str, sortList = Python's order, truthy = Python's; the host's
   * dialect (host/gears/flow.ts DIALECTS) holds what changes the plan itself (sort()'s default order).
   */
  const JS_SEMANTICS = {
    name: 'js',
    /** flatmap emits a list's elements in list order (RedisGears 1.2 emits them last to first). */
    flatmapReverse: false,
    /** The elements a flatmap result explodes into, or null to emit the value as one record. */
    explode(value) {
      return ArrayIsArray(value) ? value : null
    },
    keyOf: jsKeyOf,
    /** Distinct compares records by this text (its wire JSON: '1' and 1 stay different). */
    distinctKey(value) {
      return typeof value === 'string' ? '"' + value : encodeWire(value)
    },
    /** When aggregate/aggregateby replace the accumulator by a copy of the zero value. */
    resetAccumulator(acc) {
      return acc === null || acc === undefined
    },
    clone: jsClone,
    truthy(value) {
      return !!value
    },
    toStr: jsToStr,
    sortList(list, reverse) {
      const out = ArrayPrototypeSort(list, jsCompare)
      if (reverse) {
        for (let i = 0, j = out.length - 1; i < j; i++, j--) {
          const t = out[i]
          out[i] = out[j]
          out[j] = t
        }
      }
      return out
    },
    avgDefaultExtractor: function toNumber(x) {
      return Number_(x)
    },
    countbyDefaultExtractor: function identity(x) {
      return x
    },
    keyValue(key, value) {
      return { key, value }
    },
    /** The key a record output by localgroupby/aggregateby carries (aggregateby's second stage groups on it). */
    recordKey(record) {
      return record.key
    },
    recordValue(record) {
      return record.value
    },
    formatError,
  }
  JS_SEMANTICS.builtins = builtins(JS_SEMANTICS)

  /** The reducers the host's plan names (count, countby, avg, distinct, sort), in terms of `sem`. */
  function builtins(sem) {
    return {
      count: (a) => 1 + (sem.truthy(a) ? a : 0),
      countSum: (a, r) => r + (sem.truthy(a) ? a : 0),
      countbySeq: (k, a) => 1 + a,
      countbyComb: (k, a, r) => r + a,
      identity: (x) => x,
      toNumber: sem.avgDefaultExtractor,
      avgSeq: (a, r) => [a[0] + r, a[1] + 1],
      avgComb: (a, r) => [a[0] + r[0], a[1] + r[1]],
      avgFinal: (x) => x[0] / x[1],
      distinctAdd(a, r) {
        a[sem.distinctKey(r)] = r
        return a
      },
      distinctMerge(a, r) {
        const keys = ObjectKeys(r)
        for (let j = 0; j < keys.length; j++) if (!(keys[j] in a)) a[keys[j]] = r[keys[j]]
        return a
      },
      distinctValues(a) {
        const keys = ObjectKeys(a)
        const out = []
        for (let j = 0; j < keys.length; j++) out[j] = a[keys[j]]
        return out
      },
      sortAdd(a, r) {
        a[a.length] = r
        return a
      },
      sortMerge(a, r) {
        for (let j = 0; j < r.length; j++) a[a.length] = r[j]
        return a
      },
      recordKey: sem.recordKey,
    }
  }

  // =================================================================================================
  // The thin builder
  // =================================================================================================

  const held = [] // every value the script passed to the builder; the host's plan names them by index
  const builders = new WeakMap_() // builder -> {builder: constructor argument descriptors, ops: [{op, args}]}

  function callableName(fn) {
    try {
      const name = fn.name
      return typeof name === 'string' ? name : ''
    } catch {
      return ''
    }
  }

  /** One argument for the host (host/gears/flow.ts ArgDesc). */
  function describe(value) {
    if (value === undefined) return { t: 'missing' }
    const i = held.length
    held[i] = value
    if (value === null) return { t: 'null', i }
    switch (typeof value) {
      case 'string':
        return { t: 'string', i, v: value, f: value === '' }
      case 'number':
        return { t: 'number', i, v: NumberIsFinite(value) ? value : String_(value), f: !value }
      case 'boolean':
        return { t: 'boolean', i, v: value, f: !value }
      case 'function':
        return { t: 'function', i, name: callableName(value) }
      case 'object':
        return { t: 'object', i }
      default:
        return { t: 'other', i, f: !value }
    }
  }

  function describeAll(args) {
    const out = []
    for (let i = 0; i < args.length; i++) out[i] = describe(args[i])
    return out
  }

  const RUN_OPTIONS = ['mode', 'noScan', 'readValue', 'count', 'patternGenerator', 'fromId', 'convertToStr', 'collect']

  /** run()'s options: an object's known fields are described too. */
  function describeOptions(options) {
    const d = describe(options)
    if (d.t !== 'object') return d
    d.fields = {}
    for (let i = 0; i < RUN_OPTIONS.length; i++) d.fields[RUN_OPTIONS[i]] = describe(options[RUN_OPTIONS[i]])
    return d
  }

  const REGISTER_OPTIONS = [
    'prefix',
    'regex',
    'mode',
    'onRegistered',
    'eventTypes',
    'keyTypes',
    'readValue',
    'commands',
    'batch',
    'duration',
    'onFailedPolicy',
    'onFailedRetryInterval',
    'trimStream',
    'fromId',
    'deadLetter',
    'claimIdleMs',
    'trigger',
    'hook',
    'keyprefix',
    'inorder',
    'convertToStr',
    'collect',
  ]
  const ITERABLE_OPTIONS = { eventTypes: true, keyTypes: true, commands: true }
  const MAX_ITEMS = 1000 // host/gears/flow.ts MAX_ITEMS

  /** An iterable option's elements (bounded); not iterable: no `items`. */
  function describeIterable(value) {
    const d = describe(value)
    if (value === null || value === undefined) return d
    const iterator = typeof value === 'string' || typeof value === 'object' ? value[SymbolIterator] : undefined
    if (typeof iterator !== 'function') return d
    const items = []
    for (const item of value) {
      if (items.length >= MAX_ITEMS) throw new GearsError('register(): an iterable option has more than ' + String_(MAX_ITEMS) + ' elements')
      items[items.length] = describe(item)
    }
    d.items = items
    return d
  }

  /** register()'s arguments: an object is its options (their known fields described too). */
  function describeRegisterArg(value) {
    const d = describe(value)
    if (d.t !== 'object') return d
    d.fields = {}
    for (let i = 0; i < REGISTER_OPTIONS.length; i++) {
      const name = REGISTER_OPTIONS[i]
      d.fields[name] = ITERABLE_OPTIONS[name] === true ? describeIterable(value[name]) : describe(value[name])
    }
    return d
  }

  function state(builder) {
    const s = WeakMapPrototypeGet(builders, builder)
    if (s === undefined) throw new GearsError('GearsBuilder method called on an object that is not a GearsBuilder')
    return s
  }

  /**
   * GearsBuilder(reader = 'KeysReader', defaultArg = '*', desc = null): a batch flow. Callable with or
   * without `new`; every operation appends a step and returns the same builder.
   */
  function GearsBuilder(reader, defaultArg, desc) {
    if (!new.target) return new GearsBuilder(reader, defaultArg, desc)
    const args = describeAll([reader, defaultArg, desc])
    hostCall('gears.builder', encodeWire({ args }))
    WeakMapPrototypeSet(builders, this, { builder: args, ops: [] })
  }

  function addOp(builder, op, values) {
    const s = state(builder)
    const args = describeAll(values)
    hostCall('gears.op', encodeWire({ op, args }))
    s.ops[s.ops.length] = { op, args }
    return builder
  }

  const methods = {
    map(f) {
      return addOp(this, 'map', [f])
    },
    flatmap(f) {
      return addOp(this, 'flatmap', [f])
    },
    foreach(f) {
      return addOp(this, 'foreach', [f])
    },
    filter(f) {
      return addOp(this, 'filter', [f])
    },
    accumulate(f) {
      return addOp(this, 'accumulate', [f])
    },
    localgroupby(extractor, reducer) {
      return addOp(this, 'localgroupby', [extractor, reducer])
    },
    groupby(extractor, reducer) {
      return addOp(this, 'groupby', [extractor, reducer])
    },
    batchgroupby(extractor, reducer) {
      return addOp(this, 'batchgroupby', [extractor, reducer])
    },
    collect() {
      return addOp(this, 'collect', [])
    },
    repartition(extractor) {
      return addOp(this, 'repartition', [extractor])
    },
    limit(length, start) {
      return addOp(this, 'limit', [length, start])
    },
    aggregate(zero, seqOp, combOp) {
      return addOp(this, 'aggregate', [zero, seqOp, combOp])
    },
    aggregateby(extractor, zero, seqOp, combOp) {
      return addOp(this, 'aggregateby', [extractor, zero, seqOp, combOp])
    },
    count() {
      return addOp(this, 'count', [])
    },
    countby(extractor) {
      return addOp(this, 'countby', [extractor])
    },
    avg(extractor) {
      return addOp(this, 'avg', [extractor])
    },
    distinct() {
      return addOp(this, 'distinct', [])
    },
    sort(reverse) {
      return addOp(this, 'sort', [reverse])
    },
    run(arg, options) {
      const s = state(this)
      const ops = []
      for (let i = 0; i < s.ops.length; i++) ops[i] = s.ops[i]
      const args = [describe(arg), describeOptions(options)]
      // The host checks and compiles the flow now: later calls on this builder do not change the run.
      hostCall('gears.run', encodeWire({ lang: 'js', builder: s.builder, ops, args }))
      G.setOutcomeProvider(runOutcome)
    },
    /**
     * register(prefix = '*', options = {}) or register(options): the host checks and compiles the
     * flow now and applies the registration once the script's top level finished (all or nothing).
     * Returns the registration id.
     */
    register(prefix, options) {
      const s = state(this)
      const ops = []
      for (let i = 0; i < s.ops.length; i++) ops[i] = s.ops[i]
      const args = [describeRegisterArg(prefix), describeRegisterArg(options)]
      return hostCall('gears.register', encodeWire({ lang: 'js', builder: s.builder, ops, args }))
    },
  }
  const methodNames = ObjectKeys(methods)
  for (let i = 0; i < methodNames.length; i++) {
    ObjectDefineProperty(GearsBuilder.prototype, methodNames[i], {
      value: methods[methodNames[i]],
      writable: true,
      configurable: true,
    })
  }

  /** Runs the host's plan for this interpreter (`info`: gears.start's or gears.stage's reply). */
  function runPlan(info, source) {
    const size = typeof info.batchSize === 'number' && info.batchSize >= 1 ? info.batchSize : 1000
    return G.gearsKernel.run(JS_SEMANTICS, info, held, source ?? G.gearsSource(info.reader, held, size))
  }

  // After the top level: the host starts the execution; standalone and async_local runs go on here,
  // in this interpreter; distributed runs go on in per-shard stage executions.
  function runOutcome() {
    const start = hostCall('gears.start', '{}')
    const outcome = { kind: 'run', id: start.id }
    if (start.inPlace !== true) return outcome
    return PromisePrototypeThen(runPlan(start), () => outcome)
  }

  // The entry of a per-shard stage execution (the host evaluated the script again, replaying the top level).
  G.defineEntry('__gearbox_gears_stage', async function __gearbox_gears_stage(stageIndex) {
    await G.drain()
    hostCall('toplevel.done', '[]')
    // The host refuses when this evaluation's top level did not build the initiator's flow.
    const info = hostCall('gears.stage', encodeWire({ stage: stageIndex }))
    await runPlan(info)
    return '{"kind":"stage"}'
  })

  // Ends a session's top level before the host saves the interpreter for its registrations'
  // executions: waits for the runCoroutine work it started and reports the end (the host answers
  // the top level's calls from its first run's recording until then).
  G.defineEntry('__gearbox_gears_toplevel', async function __gearbox_gears_toplevel() {
    await G.drain()
    hostCall('toplevel.done', '[]')
    return '{"kind":"toplevel"}'
  })

  // The entry of one registration execution (the host evaluated the script again, replaying the top
  // level): `kind` 'event' runs registration `index`'s steps over the event's records, 'registered'
  // calls its onRegistered function.
  // `boundary` false: the interpreter was restored from the state saved after the top level (see
  // __gearbox_gears_toplevel), which already waited for the top level's work and reported its end.
  // `event`: what gears.event would answer, as its reply text, when the host sent it along.
  G.defineEntry('__gearbox_gears_registration', async function __gearbox_gears_registration(index, kind, boundary, event) {
    if (boundary !== false) {
      await G.drain()
      hostCall('toplevel.done', '[]')
    }
    const info = typeof event === 'string' ? G.decodeReply(event) : hostCall('gears.event', encodeWire({ registration: index, kind }))
    if (kind === 'registered') {
      const fn = held[info.onRegistered]
      if (typeof fn !== 'function') throw new GearsError('gears: the registration has no onRegistered function')
      await ReflectApply(fn, undefined, [])
      return '{"kind":"registered"}'
    }
    let given = false
    const source = {
      next() {
        if (given) return null
        given = true
        return info.records
      },
    }
    const final = await runPlan({ ...info, reader: null }, source)
    return typeof final === 'string' ? final : '{"kind":"event"}'
  })

  ObjectDefineProperty(globalThis, 'GearsBuilder', { value: GearsBuilder, writable: true, configurable: true })
  ObjectDefineProperty(globalThis, 'GB', { value: GearsBuilder, writable: true, configurable: true })
})(globalThis.__gearbox_internals)
