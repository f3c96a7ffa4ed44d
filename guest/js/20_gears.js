// gearbox guest prelude, part 2: GearsBuilder / GB and the batch engine (see guest/gears.d.ts).
//
// Three layers, in this order:
//   1. the language semantics: a plain object of the few rules where a guest language shows through
//      (how a step's list result explodes, how a group key becomes a string, when an aggregate's
//      accumulator is replaced by its zero, how convertToStr renders a value, how sort compares).
//      JS_SEMANTICS is the JavaScript one; a RedisGears-exact one (reverse flatmap emission, repr keys,
//      falsy-accumulator reset) plugs into the same engine.
//   2. the plan compiler: GearsBuilder operations -> primitive steps (the sugar of RedisGears 1.2:
//      aggregate = accumulate + collect + accumulate, count, countby, avg, distinct, sort, ...), cut
//      into stages at the steps that move records between shards (collect, repartition, groupby).
//   3. the engine: runs one stage's steps over record batches. Records come from the host in
//      batches (`gears.read`, one JSON.parse per batch) or from a generator reader inside the
//      guest; outputs and error texts go back in batches (`gears.emit`). A step that returns a
//      thenable parks its record until it settles; records that fail become error texts and skip
//      the later steps; an accumulator is reset after an error.
//
// The engine is guest code: the host treats everything it sends as untrusted input.
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
    Promise: Promise_,
    PromisePrototypeThen,
    PromiseResolve,
    WeakMap: WeakMap_,
    WeakMapPrototypeGet,
    WeakMapPrototypeSet,
  } = G.primordials
  const { GearsError, hostCall, encodeWire, formatError, isUint8Array } = G
  const Number_ = Number
  const NumberIsNaN = Number.isNaN
  const Map_ = Map
  const MapPrototypeGet = G.primordials.uncurryThis(Map.prototype.get)
  const MapPrototypeSet = G.primordials.uncurryThis(Map.prototype.set)
  const MapPrototypeHas = G.primordials.uncurryThis(Map.prototype.has)
  const MapPrototypeForEach = G.primordials.uncurryThis(Map.prototype.forEach)
  const SetPrototypeForEach = G.primordials.uncurryThis(Set.prototype.forEach)
  const ArrayPrototypeSort = G.primordials.uncurryThis(Array.prototype.sort)
  const DateNow = Date.now
  const PromiseAllFn = Promise.all
  const PromiseAll = (promises) => ReflectApply(PromiseAllFn, Promise_, [promises])
  const SymbolIterator = Symbol.iterator
  const SymbolAsyncIterator = Symbol.asyncIterator
  const ObjectPrototypeToString = G.primordials.uncurryThis(Object.prototype.toString)
  const ObjectGetPrototypeOf = Object.getPrototypeOf
  const ObjectPrototype = Object.prototype

  const { isThenable } = G

  /** `then` for values that may or may not be promises: keeps the synchronous path synchronous. */
  function after(value, fn) {
    return isThenable(value) ? PromisePrototypeThen(PromiseResolve(value), fn) : fn(value)
  }

  // =================================================================================================
  // 1. Semantics
  // =================================================================================================

  function bytesToLatin1(bytes) {
    let out = ''
    const n = TypedArrayPrototypeGetLength(bytes)
    for (let i = 0; i < n; i++) out += String_.fromCharCode(bytes[i])
    return out
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
    if (value instanceof Error) return formatError(value)
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
      const out = new Set()
      SetPrototypeForEach(value, (v) => out.add(jsClone(v)))
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
      const n = Math.min(a.length, b.length)
      for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i]
      return a.length - b.length
    }
    if (ra === 0) return 0
    const ja = displayJson(a)
    const jb = displayJson(b)
    return ja < jb ? -1 : ja > jb ? 1 : 0
  }

  /**
   * The JavaScript rules (documented in guest/gears.d.ts). A RedisGears-exact semantics object has the
   * same members: flatmapReverse true, explode = lists only, keyOf = repr, resetAccumulator = falsy,
   * toStr = str, sortDefaultReverse true, ...
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
    sortDefaultReverse: false,
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

  // =================================================================================================
  // 2. GearsBuilder and the plan compiler
  // =================================================================================================

  const RUN_READERS = ['KeysReader', 'KeysOnlyReader', 'StreamReader', 'PythonReader', 'GeneratorReader', 'ShardsIDReader']
  const ALL_READERS = [...RUN_READERS, 'CommandReader']

  const builders = new WeakMap_() // builder -> {reader, defaultArg, desc, ops}

  function state(builder) {
    const s = WeakMapPrototypeGet(builders, builder)
    if (s === undefined) throw new GearsError('GearsBuilder method called on an object that is not a GearsBuilder')
    return s
  }

  function fnArg(op, value) {
    if (typeof value !== 'function') throw new GearsError(op + ' argument must be a function')
    return value
  }

  function callableName(fn) {
    try {
      const name = fn.name
      return typeof name === 'string' && name !== '' ? name : '<anonymous>'
    } catch {
      return '<anonymous>'
    }
  }

  /**
   * GearsBuilder(reader = 'KeysReader', defaultArg = '*', desc = null): a batch flow. Callable with or
   * without `new`; every operation appends a step and returns the same builder.
   */
  function GearsBuilder(reader = 'KeysReader', defaultArg = '*', desc = null) {
    if (!new.target) return new GearsBuilder(reader, defaultArg, desc)
    if (typeof reader !== 'string') throw new GearsError('reader argument must be a string')
    let known = false
    for (let i = 0; i < ALL_READERS.length; i++) if (ALL_READERS[i] === reader) known = true
    if (!known) throw new GearsError('The given reader does not exists')
    if (desc !== null && desc !== undefined && typeof desc !== 'string') throw new GearsError('desc argument must be a string')
    WeakMapPrototypeSet(builders, this, { reader, defaultArg, desc: desc ?? null, ops: [] })
  }

  function addOp(builder, op) {
    const s = state(builder)
    s.ops[s.ops.length] = op
    return builder
  }

  const methods = {
    map(f) {
      return addOp(this, { op: 'map', f: fnArg('map', f) })
    },
    flatmap(f) {
      return addOp(this, { op: 'flatmap', f: fnArg('flatmap', f) })
    },
    foreach(f) {
      return addOp(this, { op: 'foreach', f: fnArg('foreach', f) })
    },
    filter(f) {
      return addOp(this, { op: 'filter', f: fnArg('filter', f) })
    },
    accumulate(f) {
      return addOp(this, { op: 'accumulate', f: fnArg('accumulate', f) })
    },
    localgroupby(extractor, reducer) {
      return addOp(this, {
        op: 'localgroupby',
        extractor: fnArg('localgroupby', extractor),
        reducer: fnArg('localgroupby', reducer),
      })
    },
    groupby(extractor, reducer) {
      return addOp(this, { op: 'groupby', extractor: fnArg('groupby', extractor), reducer: fnArg('groupby', reducer) })
    },
    batchgroupby(extractor, reducer) {
      return addOp(this, {
        op: 'batchgroupby',
        extractor: fnArg('batchgroupby', extractor),
        reducer: fnArg('batchgroupby', reducer),
      })
    },
    collect() {
      return addOp(this, { op: 'collect' })
    },
    repartition(extractor) {
      return addOp(this, { op: 'repartition', extractor: fnArg('repartition', extractor) })
    },
    limit(length, start = 0) {
      if (typeof length !== 'number' || typeof start !== 'number' || !(length >= 0) || !(start >= 0)) {
        throw new GearsError('limit argument must be a number')
      }
      return addOp(this, { op: 'limit', length: Math.floor(length), start: Math.floor(start) })
    },
    aggregate(zero, seqOp, combOp) {
      return addOp(this, { op: 'aggregate', zero, seqOp: fnArg('aggregate', seqOp), combOp: fnArg('aggregate', combOp) })
    },
    aggregateby(extractor, zero, seqOp, combOp) {
      return addOp(this, {
        op: 'aggregateby',
        extractor: fnArg('aggregateby', extractor),
        zero,
        seqOp: fnArg('aggregateby', seqOp),
        combOp: fnArg('aggregateby', combOp),
      })
    },
    count() {
      return addOp(this, { op: 'count' })
    },
    countby(extractor) {
      return addOp(this, {
        op: 'countby',
        extractor: extractor === undefined ? null : fnArg('countby', extractor),
      })
    },
    avg(extractor) {
      return addOp(this, { op: 'avg', extractor: extractor === undefined ? null : fnArg('avg', extractor) })
    },
    distinct() {
      return addOp(this, { op: 'distinct' })
    },
    sort(reverse) {
      return addOp(this, { op: 'sort', reverse: reverse === undefined ? null : !!reverse })
    },
    run(arg, options) {
      return startRun(this, arg, options)
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

  /**
   * Compiles a builder's operations into primitive steps under `sem`.
   * Returns {steps: display steps [{type, name, arg}], prims: primitive steps, stages: [[prim...], ...],
   * routes: [route of each stage but the last]}.
   */
  function compile(s, sem, convertToStr, collect, readerArg) {
    const display = []
    const prims = []
    const show = (type, fn, arg) => {
      display[display.length] = {
        type,
        name: fn === null ? '' : typeof fn === 'string' ? fn : callableName(fn),
        arg: arg === undefined ? '' : arg,
      }
      return display.length - 1
    }
    const push = (prim) => {
      prims[prims.length] = prim
    }
    show('reader', s.reader, typeof readerArg === 'string' ? readerArg : '')
    const reset = (zero) => (acc) => (sem.resetAccumulator(acc) ? sem.clone(zero) : acc)

    const map = (f, name) => push({ k: 'map', f, d: show('map', name ?? f) })
    const flatmap = (f, name) => push({ k: 'flatmap', f, d: show('flatmap', name ?? f) })
    const accumulate = (f, name) => push({ k: 'accumulate', f, d: show('accumulate', name ?? f) })
    const collectStep = () => push({ k: 'route', to: 'initiator', d: show('collect', null) })
    const localgroupby = (ex, red, exName, redName) =>
      push({ k: 'localgroupby', ex, red, dx: show('extractkey', exName ?? ex), d: show('accumulatebykey', redName ?? red) })
    const groupby = (ex, red, exName, redName) => {
      push({ k: 'extract', ex, d: show('extractkey', exName ?? ex) })
      push({ k: 'route', to: 'key', d: show('repartition', null) })
      push({ k: 'reducebykey', red, d: show('accumulatebykey', redName ?? red) })
    }
    const aggregate = (zero, seqOp, combOp) => {
      const seqReset = reset(zero)
      const combReset = reset(zero)
      accumulate((a, r) => seqOp(seqReset(a), r), seqOp)
      collectStep()
      accumulate((a, r) => combOp(combReset(a), r), combOp)
    }
    const aggregateby = (ex, zero, seqOp, combOp, exName) => {
      const seqReset = reset(zero)
      const combReset = reset(zero)
      localgroupby(ex, (k, a, r) => seqOp(k, seqReset(a), r), exName, seqOp)
      groupby(sem.recordKey, (k, a, r) => combOp(k, combReset(a), sem.recordValue(r)), 'key', combOp)
    }

    for (let i = 0; i < s.ops.length; i++) {
      const op = s.ops[i]
      switch (op.op) {
        case 'map':
          map(op.f)
          break
        case 'flatmap':
          flatmap(op.f)
          break
        case 'foreach':
          push({ k: 'foreach', f: op.f, d: show('foreach', op.f) })
          break
        case 'filter':
          push({ k: 'filter', f: op.f, d: show('filter', op.f) })
          break
        case 'accumulate':
          accumulate(op.f)
          break
        case 'localgroupby':
          localgroupby(op.extractor, op.reducer)
          break
        case 'groupby':
          groupby(op.extractor, op.reducer)
          break
        case 'batchgroupby':
          push({ k: 'extract', ex: op.extractor, d: show('extractkey', op.extractor) })
          push({ k: 'route', to: 'key', d: show('repartition', null) })
          push({ k: 'groupbykey', red: op.reducer, dg: show('group', null), d: show('reduce', op.reducer) })
          break
        case 'collect':
          collectStep()
          break
        case 'repartition':
          push({ k: 'extract', ex: op.extractor, d: show('extractkey', op.extractor) })
          push({ k: 'route', to: 'key', d: show('repartition', null) })
          push({ k: 'unkey', d: -1 })
          break
        case 'limit':
          push({ k: 'limit', length: op.length, start: op.start, d: show('limit', null, String_(op.length) + ',' + String_(op.start)) })
          break
        case 'aggregate':
          aggregate(op.zero, op.seqOp, op.combOp)
          break
        case 'aggregateby':
          aggregateby(op.extractor, op.zero, op.seqOp, op.combOp)
          break
        case 'count':
          accumulate((a, r) => 1 + (sem.truthy(a) ? a : 0), 'count')
          collectStep()
          accumulate((a, r) => r + (sem.truthy(a) ? a : 0), 'count')
          break
        case 'countby':
          aggregateby(
            op.extractor ?? sem.countbyDefaultExtractor,
            0,
            function countby(k, a) {
              return 1 + a
            },
            function countby(k, a, r) {
              return r + a
            },
          )
          break
        case 'avg': {
          map(op.extractor ?? sem.avgDefaultExtractor)
          aggregate(
            [0, 0],
            function avg(a, r) {
              return [a[0] + r, a[1] + 1]
            },
            function avg(a, r) {
              return [a[0] + r[0], a[1] + r[1]]
            },
          )
          map(function avg(x) {
            return x[0] / x[1]
          })
          break
        }
        case 'distinct': {
          // The accumulator is a plain object keyed by sem.distinctKey: it crosses shards as JSON.
          const add = function distinct(a, r) {
            a[sem.distinctKey(r)] = r
            return a
          }
          aggregate({}, add, function distinct(a, r) {
            const keys = ObjectKeys(r)
            for (let j = 0; j < keys.length; j++) if (!(keys[j] in a)) a[keys[j]] = r[keys[j]]
            return a
          })
          flatmap(function distinct(a) {
            const keys = ObjectKeys(a)
            const out = []
            for (let j = 0; j < keys.length; j++) out[j] = a[keys[j]]
            return out
          })
          break
        }
        case 'sort': {
          const reverse = op.reverse === null ? sem.sortDefaultReverse : op.reverse
          aggregate(
            [],
            function sort(a, r) {
              a[a.length] = r
              return a
            },
            function sort(a, r) {
              for (let j = 0; j < r.length; j++) a[a.length] = r[j]
              return a
            },
          )
          map(function sort(list) {
            return sem.sortList(list, reverse)
          })
          flatmap(function sort(list) {
            return list
          })
          break
        }
        default:
          throw new GearsError('unknown GearsBuilder operation ' + op.op)
      }
    }
    if (convertToStr) push({ k: 'tostr', d: show('map', 'convertToStr') })
    if (collect) collectStep()

    // Stages end at routes; a trailing route only sends records to the results.
    const stages = []
    const routes = []
    let current = []
    for (let i = 0; i < prims.length; i++) {
      current[current.length] = prims[i]
      if (prims[i].k === 'route') {
        stages[stages.length] = current
        routes[routes.length] = prims[i].to
        current = []
      }
    }
    if (current.length > 0 || stages.length === 0) {
      stages[stages.length] = current
    } else {
      routes.length = routes.length - 1
    }
    return { steps: display, prims, stages, routes }
  }

  // ---- run() ---------------------------------------------------------------------------------------

  let pendingRun = null // this interpreter's run(): {s: the builder snapshot, sem, mode, convertToStr, collect, readerArgs, readerArg}
  let inPlan = false // true while a plan's steps run (run() there is refused)

  function boolOption(options, name, fallback, message) {
    const value = options[name]
    if (value === undefined || value === null) return fallback
    if (typeof value !== 'boolean') throw new GearsError(message)
    return value
  }

  function startRun(builder, arg, options) {
    const s = state(builder)
    if (s.reader === 'CommandReader') throw new GearsError('Given reader do not support run or not exists')
    if (inPlan) throw new GearsError('run() can only be called at the top level of a script, not inside a step')
    if (options === undefined || options === null) options = {}
    if (typeof options !== 'object') throw new GearsError('run options must be an object')
    const mode = options.mode === undefined ? 'async' : options.mode
    if (typeof mode !== 'string') throw new GearsError('execution mode must be a string')
    if (mode !== 'async' && mode !== 'async_local') throw new GearsError('unknown execution mode')
    if (!arg) arg = s.defaultArg
    const readerArgs = { reader: s.reader }
    switch (s.reader) {
      case 'KeysReader':
        if (typeof arg !== 'string') throw new GearsError('regex argument must be a string')
        readerArgs.pattern = arg
        readerArgs.noScan = boolOption(options, 'noScan', false, 'exactMatch value is not boolean')
        readerArgs.readValue = boolOption(options, 'readValue', true, 'readValue value is not boolean')
        break
      case 'KeysOnlyReader': {
        if (typeof arg !== 'string') throw new GearsError('regex argument must be a string')
        readerArgs.pattern = arg
        readerArgs.noScan = boolOption(options, 'noScan', false, 'exactMatch value is not boolean')
        const count = options.count === undefined || options.count === null ? 1000 : options.count
        if (typeof count !== 'number' || !(count >= 1)) throw new GearsError('count argument must be a positive number')
        readerArgs.count = Math.floor(count)
        const generator = options.patternGenerator
        if (generator !== undefined && generator !== null && typeof generator !== 'function') {
          throw new GearsError('patternGenerator argument must be a function')
        }
        readerArgs.patternGenerator = generator ?? null
        break
      }
      case 'StreamReader': {
        if (typeof arg !== 'string') throw new GearsError('regex argument must be a string')
        readerArgs.stream = arg
        const fromId = options.fromId === undefined || options.fromId === null ? '0-0' : options.fromId
        if (typeof fromId !== 'string') throw new GearsError('fromId argument must be a string')
        readerArgs.fromId = fromId
        break
      }
      case 'PythonReader':
      case 'GeneratorReader':
        if (typeof arg !== 'function') throw new GearsError('pyreader argument must be a function')
        readerArgs.generator = arg
        break
      default:
        break // ShardsIDReader: the argument is ignored
    }
    if (pendingRun !== null) throw new GearsError('Can not run more then 1 executions in a single script')
    const convertToStr = options.convertToStr === undefined ? true : !!options.convertToStr
    const collect = options.collect === undefined ? true : !!options.collect
    // Snapshot the operations: later calls on the same builder do not change this run.
    const snapshot = { reader: s.reader, defaultArg: s.defaultArg, desc: s.desc, ops: [...s.ops] }
    pendingRun = { s: snapshot, sem: JS_SEMANTICS, mode, convertToStr, collect, readerArgs, readerArg: typeof arg === 'string' ? arg : '' }
    G.setOutcomeProvider(runOutcome)
  }

  function compiledRun() {
    const r = pendingRun
    if (r.compiled === undefined) r.compiled = compile(r.s, r.sem, r.convertToStr, r.collect, r.readerArg)
    return r.compiled
  }

  /** What the host needs to drive the run: no functions, only data. */
  function runDescription() {
    const r = pendingRun
    const c = compiledRun()
    return encodeWire({
      reader: r.readerArgs.reader,
      desc: r.s.desc,
      mode: r.mode,
      steps: c.steps,
      routes: c.routes,
    })
  }

  // After the top level: the host registers the execution; standalone and async_local runs go on
  // here, in this interpreter; distributed runs go on in per-shard stage executions.
  async function runOutcome() {
    const start = hostCall('gears.start', runDescription())
    if (start.inPlace !== true) return { kind: 'gears.run', id: start.id }
    const c = compiledRun()
    await runSteps(pendingRun.sem, c.prims, c.steps.length, true, start)
    return { kind: 'gears.run', id: start.id }
  }

  // The entry of a per-shard stage execution (the host evaluated the script again, replaying the top level).
  G.defineEntry('__gearbox_gears_stage', async function __gearbox_gears_stage(stageIndex) {
    await G.drain()
    hostCall('toplevel.done', '[]')
    if (pendingRun === null) {
      throw new GearsError('the script did not call run() when evaluated again for a stage: its top level must build the same flow every time')
    }
    const c = compiledRun()
    const info = hostCall('gears.stage', encodeWire({ stage: stageIndex, steps: c.steps, routes: c.routes }))
    const stage = c.stages[stageIndex]
    if (stage === undefined) throw new GearsError('gears: no stage ' + String_(stageIndex))
    await runSteps(pendingRun.sem, stage, c.steps.length, stageIndex === 0, info)
    return '{"kind":"gears.stage"}'
  })

  // =================================================================================================
  // 3. The engine
  // =================================================================================================

  const PENDING = {} // a placeholder for a record whose step result is still a promise
  const RESET = {} // a group whose accumulator an error reset (kept for the key's first-seen order)
  const STATEFUL = { accumulate: true, localgroupby: true, reducebykey: true, groupbykey: true }

  /**
   * Runs `prims` over this execution's input (the reader when `fromReader`, else the records the host
   * routed to this stage), emitting outputs and error texts to the host. Resolves when done.
   */
  function runSteps(sem, prims, displayCount, fromReader, info) {
    const profile = info.profile === true
    const batchSize = info.batchSize
    // The host's payload limit (limits.maxReplyBytes) in characters, with room for UTF-8.
    const emitSplitChars = typeof info.emitChars === 'number' && info.emitChars >= 1024 ? info.emitChars : 4 * 1024 * 1024
    const size = typeof batchSize === 'number' && batchSize >= 1 ? batchSize : 1000
    const durations = []
    for (let i = 0; i < displayCount; i++) durations[i] = 0
    let readMs = 0
    let outRecords = []
    let outErrors = []

    function recordsJson(records) {
      for (let i = 0; i < records.length; i++) if (typeof records[i] !== 'string') return encodeWire(records)
      return JSONStringify(records)
    }

    // Keeps each gears.emit payload well under limits.maxReplyBytes: big records go in smaller groups.
    function emitRecords(records, errors, final) {
      let json
      try {
        json = recordsJson(records)
      } catch {
        // Some record cannot become JSON (a cycle, a U+0000 key): it turns into an error text.
        const kept = []
        for (let i = 0; i < records.length; i++) {
          try {
            recordsJson([records[i]])
            kept[kept.length] = records[i]
          } catch (error) {
            errors[errors.length] = sem.formatError(error)
          }
        }
        records = kept
        json = recordsJson(records)
      }
      if (json.length > emitSplitChars && records.length > 1) {
        const half = records.length >> 1
        emitRecords(records.slice(0, half), [], false)
        emitRecords(records.slice(half), errors, final)
        return
      }
      let payload = '{"r":' + json + ',"e":' + JSONStringify(errors)
      json = null
      if (final) payload += ',"done":true,"profile":' + JSONStringify({ steps: durations, readMs })
      hostCall('gears.emit', payload + '}')
    }

    function flushOut(final) {
      if (outRecords.length === 0 && outErrors.length === 0 && !final) return
      const records = outRecords
      const errors = outErrors
      outRecords = []
      outErrors = []
      emitRecords(records, errors, final)
    }

    function addError(error) {
      let text
      try {
        text = sem.formatError(error)
      } catch {
        text = 'Error: (unprintable error)'
      }
      outErrors[outErrors.length] = text
      if (outErrors.length >= size) flushOut(false)
    }

    function output(batch) {
      for (let i = 0; i < batch.length; i++) outRecords[outRecords.length] = batch[i]
      if (outRecords.length >= size) flushOut(false)
    }

    // ---- per-record steps ----
    function perRecord(batch, call, emit) {
      let out = []
      let pending = null
      for (let i = 0; i < batch.length; i++) {
        const r = batch[i]
        let v
        try {
          v = call(r)
        } catch (error) {
          addError(error)
          continue
        }
        if (isThenable(v)) {
          if (pending === null) pending = []
          pending[pending.length] = { r, v, ok: false, value: undefined }
          out[out.length] = PENDING
          continue
        }
        emit(out, r, v)
      }
      if (pending === null) return out
      const waits = []
      for (let i = 0; i < pending.length; i++) {
        const p = pending[i]
        waits[i] = PromisePrototypeThen(
          PromiseResolve(p.v),
          (value) => {
            p.ok = true
            p.value = value
          },
          (error) => {
            p.value = error
          },
        )
      }
      return PromisePrototypeThen(PromiseAll(waits), () => {
        const done = []
        let j = 0
        for (let i = 0; i < out.length; i++) {
          if (out[i] !== PENDING) {
            done[done.length] = out[i]
            continue
          }
          const p = pending[j++]
          if (p.ok) emit(done, p.r, p.value)
          else addError(p.value)
        }
        out = null
        return done
      })
    }

    const emitValue = (out, _r, v) => {
      out[out.length] = v
    }
    const emitRecord = (out, r) => {
      out[out.length] = r
    }
    const emitIfTruthy = (out, r, v) => {
      if (sem.truthy(v)) out[out.length] = r
    }
    const emitExploded = (out, _r, v) => {
      const list = sem.explode(v)
      if (list === null) {
        out[out.length] = v
        return
      }
      if (sem.flatmapReverse) for (let i = list.length - 1; i >= 0; i--) out[out.length] = list[i]
      else for (let i = 0; i < list.length; i++) out[out.length] = list[i]
    }

    function syncOnly(batch, call, message) {
      const out = []
      for (let i = 0; i < batch.length; i++) {
        let v
        try {
          v = call(batch[i])
        } catch (error) {
          addError(error)
          continue
        }
        if (isThenable(v)) {
          PromisePrototypeThen(PromiseResolve(v), undefined, () => {}) // nobody awaits it
          addError(new GearsError(message))
          continue
        }
        out[out.length] = v
      }
      return out
    }

    // ---- stateful steps: they absorb records and emit at the end ----
    function accumulateFrom(st, batch, from) {
      for (let i = from; i < batch.length; i++) {
        let v
        try {
          v = st.f(st.acc, batch[i])
        } catch (error) {
          addError(error)
          st.acc = null
          st.has = false
          continue
        }
        if (isThenable(v)) {
          return PromisePrototypeThen(
            PromiseResolve(v),
            (value) => {
              st.acc = value
              st.has = true
              return accumulateFrom(st, batch, i + 1)
            },
            (error) => {
              addError(error)
              st.acc = null
              st.has = false
              return accumulateFrom(st, batch, i + 1)
            },
          )
        }
        st.acc = v
        st.has = true
      }
      return []
    }

    // localgroupby (keyed = false: the key comes from the extractor) and reducebykey (records are [key, record]).
    function groupFrom(st, batch, from, keyed) {
      for (let i = from; i < batch.length; i++) {
        let key
        let record
        if (keyed) {
          key = batch[i][0]
          record = batch[i][1]
        } else {
          record = batch[i]
          let k
          try {
            k = st.ex(record)
          } catch (error) {
            addError(error)
            continue
          }
          if (isThenable(k)) {
            PromisePrototypeThen(PromiseResolve(k), undefined, () => {})
            addError(new GearsError('coroutine are not allow on extractor'))
            continue
          }
          key = sem.keyOf(k)
        }
        let current = MapPrototypeHas(st.groups, key) ? MapPrototypeGet(st.groups, key) : null
        if (current === RESET) current = null
        let v
        try {
          v = st.red(key, current, record)
        } catch (error) {
          addError(error)
          MapPrototypeSet(st.groups, key, RESET)
          continue
        }
        if (isThenable(v)) {
          return PromisePrototypeThen(
            PromiseResolve(v),
            (value) => {
              MapPrototypeSet(st.groups, key, value)
              return groupFrom(st, batch, i + 1, keyed)
            },
            (error) => {
              addError(error)
              MapPrototypeSet(st.groups, key, RESET)
              return groupFrom(st, batch, i + 1, keyed)
            },
          )
        }
        MapPrototypeSet(st.groups, key, v)
      }
      return []
    }

    function groupOutput(groups) {
      const out = []
      MapPrototypeForEach(groups, (value, key) => {
        if (value !== RESET) out[out.length] = sem.keyValue(key, value)
      })
      return out
    }

    // ---- the step table ----
    const steps = []
    for (let i = 0; i < prims.length; i++) {
      const p = prims[i]
      const st = { p, k: p.k, d: p.d }
      switch (p.k) {
        case 'map':
          st.apply = (batch) => perRecord(batch, p.f, emitValue)
          break
        case 'flatmap':
          st.apply = (batch) => perRecord(batch, p.f, emitExploded)
          break
        case 'filter':
          st.apply = (batch) => perRecord(batch, p.f, emitIfTruthy)
          break
        case 'foreach':
          st.apply = (batch) => perRecord(batch, p.f, emitRecord)
          break
        case 'tostr':
          st.apply = (batch) => syncOnly(batch, sem.toStr, 'convertToStr does not support async')
          break
        case 'extract':
          st.apply = (batch) =>
            syncOnly(batch, (r) => {
              const k = p.ex(r)
              return isThenable(k) ? k : [sem.keyOf(k), r]
            }, 'coroutine are not allow on extractor')
          break
        case 'unkey':
          st.apply = (batch) => {
            const out = []
            for (let j = 0; j < batch.length; j++) out[j] = batch[j][1]
            return out
          }
          break
        case 'route':
          st.apply = (batch) => batch
          break
        case 'limit':
          st.seen = 0
          st.apply = (batch) => {
            const out = []
            const end = p.start + p.length
            for (let j = 0; j < batch.length; j++) {
              const index = st.seen++
              if (index >= p.start && index < end) out[out.length] = batch[j]
            }
            return out
          }
          st.full = () => st.seen >= p.start + p.length
          break
        case 'accumulate':
          st.f = p.f
          st.acc = null
          st.has = false
          st.apply = (batch) => accumulateFrom(st, batch, 0)
          st.finish = () => (st.has ? [st.acc] : [])
          break
        case 'localgroupby':
          st.ex = p.ex
          st.red = p.red
          st.groups = new Map_()
          st.apply = (batch) => groupFrom(st, batch, 0, false)
          st.finish = () => groupOutput(st.groups)
          break
        case 'reducebykey':
          st.red = p.red
          st.groups = new Map_()
          st.apply = (batch) => groupFrom(st, batch, 0, true)
          st.finish = () => groupOutput(st.groups)
          break
        case 'groupbykey':
          st.lists = new Map_()
          st.apply = (batch) => {
            for (let j = 0; j < batch.length; j++) {
              const key = batch[j][0]
              let list = MapPrototypeGet(st.lists, key)
              if (list === undefined) {
                list = []
                MapPrototypeSet(st.lists, key, list)
              }
              list[list.length] = batch[j][1]
            }
            return []
          }
          st.finish = () => {
            const out = []
            MapPrototypeForEach(st.lists, (list, key) => {
              let v
              try {
                v = p.red(key, list)
              } catch (error) {
                addError(error)
                return
              }
              if (isThenable(v)) {
                PromisePrototypeThen(PromiseResolve(v), undefined, () => {})
                addError(new GearsError('coroutine are not allow on reduce'))
                return
              }
              out[out.length] = sem.keyValue(key, v)
            })
            return out
          }
          break
        default:
          throw new GearsError('gears: unknown primitive step ' + p.k)
      }
      if (profile && p.d >= 0) {
        const timed = (fn) => (batch) => {
          const t0 = DateNow()
          return after(fn(batch), (out) => {
            durations[p.d] += DateNow() - t0
            return out
          })
        }
        st.apply = timed(st.apply)
        if (st.finish !== undefined) st.finish = timed(st.finish)
      }
      steps[steps.length] = st
    }

    /** Pushes `batch` through steps[from..]; returns undefined or a promise. */
    function push(from, batch) {
      for (let i = from; i < steps.length; i++) {
        if (batch.length === 0) return undefined
        const out = steps[i].apply(batch)
        if (isThenable(out)) return PromisePrototypeThen(out, (next) => push(i + 1, next))
        batch = out
      }
      if (batch.length > 0) output(batch)
      return undefined
    }

    /** At the end of the input: each stateful step emits into the steps after it, in order. */
    function finish(from) {
      for (let i = from; i < steps.length; i++) {
        const st = steps[i]
        if (st.finish === undefined) continue
        const out = st.finish()
        const pushed = after(out, (records) => push(i + 1, records))
        if (isThenable(pushed)) return PromisePrototypeThen(pushed, () => finish(i + 1))
      }
      return undefined
    }

    /** True when a limit has seen its whole window and only stateless steps come before it. */
    function canStopReading() {
      for (let i = 0; i < steps.length; i++) {
        const st = steps[i]
        if (st.full !== undefined && st.full()) return true
        if (STATEFUL[st.k] === true) return false
      }
      return false
    }

    let source = null

    function readNext() {
      const t0 = DateNow()
      let batch
      try {
        if (source === null) source = fromReader ? openReader(size) : hostInput()
        batch = source.next()
      } catch (error) {
        addError(error)
        return null
      }
      if (isThenable(batch)) {
        return PromisePrototypeThen(
          batch,
          (b) => {
            readMs += DateNow() - t0
            return b
          },
          (error) => {
            addError(error)
            return null
          },
        )
      }
      readMs += DateNow() - t0
      return batch
    }

    function loop() {
      for (;;) {
        if (canStopReading()) break
        const batch = readNext()
        if (isThenable(batch)) {
          return PromisePrototypeThen(batch, (b) => (b === null ? end() : after(push(0, b), loop)))
        }
        if (batch === null) break
        const pushed = push(0, batch)
        if (isThenable(pushed)) return PromisePrototypeThen(pushed, loop)
      }
      return end()
    }

    function end() {
      if (source !== null && source.close !== undefined) source.close()
      return after(finish(0), () => flushOut(true))
    }

    G.setAsyncAllowed(true)
    inPlan = true
    return PromisePrototypeThen(
      PromiseResolve(undefined),
      () => loop(),
    )
  }

  // ---- inputs ----

  function hostInput() {
    return {
      next() {
        return hostCall('gears.read', '{}')
      },
    }
  }

  /** The reader of this run on this shard: host readers through gears.read, generators here. */
  function openReader(size) {
    const a = pendingRun.readerArgs
    if (a.reader === 'PythonReader' || a.reader === 'GeneratorReader') return generatorReader(a.generator, size)
    const open = { reader: a.reader }
    switch (a.reader) {
      case 'KeysReader':
        open.pattern = a.pattern
        open.noScan = a.noScan
        open.readValue = a.readValue
        break
      case 'KeysOnlyReader': {
        open.pattern = a.pattern
        open.noScan = a.noScan
        open.count = a.count
        if (a.patternGenerator !== null) {
          const generated = a.patternGenerator()
          if (!ArrayIsArray(generated) || typeof generated[0] !== 'string') {
            throw new GearsError('patternGenerator must return [pattern, noScan]')
          }
          open.pattern = generated[0]
          open.noScan = generated[1] === true
        }
        break
      }
      case 'StreamReader':
        open.stream = a.stream
        open.fromId = a.fromId
        break
      default:
        break
    }
    let first = encodeWire({ open })
    return {
      next() {
        const payload = first
        first = '{}'
        let batch
        try {
          batch = hostCall('gears.read', payload)
        } catch (error) {
          // Reader errors (Redis's text, e.g. a bad stream id) are reported verbatim, as RedisGears does.
          throw G.newFlatError(error.message)
        }
        return readerRecords(batch)
      },
    }
  }

  /** [f1, v1, f2, v2, ...] -> {f1: v1, f2: v2, ...} */
  function pairsObject(flat) {
    const out = {}
    for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = flat[i + 1]
    return out
  }

  function score(text) {
    if (text === 'inf' || text === '+inf') return Infinity
    if (text === '-inf') return -Infinity
    return Number_(text)
  }

  /** A value read inside Redis (a flat reply) in the record's shape. */
  function scriptValue(type, raw) {
    switch (type) {
      case 'string':
      case 'list':
      case 'set':
        return raw
      case 'hash':
        return pairsObject(raw)
      case 'zset': {
        const out = []
        for (let i = 0; i + 1 < raw.length; i += 2) out[out.length] = [raw[i], score(raw[i + 1])]
        return out
      }
      case 'stream': {
        const out = []
        for (let i = 0; i < raw.length; i++) out[i] = { id: raw[i][0], value: pairsObject(raw[i][1]) }
        return out
      }
      default:
        return null
    }
  }

  /**
   * Host reader batches: an array of records, or KeysReader columns the guest turns into records:
   * {n: keys} (readValue false), {k: keys, v: values, t: types or 'string'} (read with plain
   * commands, values already shaped), {s: {k, v, t?}} (a page read by a script inside Redis: t
   * holds Redis TYPE names when not every key is a string, values are flat replies; a key whose
   * type is 'none' vanished and is skipped).
   */
  function readerRecords(batch) {
    if (batch === null || ArrayIsArray(batch)) return batch
    const out = []
    if (batch.n !== undefined) {
      const keys = batch.n
      for (let i = 0; i < keys.length; i++) out[i] = { key: keys[i], event: null }
      return out
    }
    if (batch.s !== undefined) {
      const { k: keys, v: values, t: types } = batch.s
      if (types === undefined) {
        for (let i = 0; i < keys.length; i++) out[i] = { key: keys[i], value: values[i], type: 'string', event: null }
        return out
      }
      for (let i = 0; i < keys.length; i++) {
        const type = types[i]
        if (type === 'none') continue
        const known = type === 'string' || type === 'hash' || type === 'list' || type === 'set' || type === 'zset' || type === 'stream'
        out[out.length] = { key: keys[i], value: scriptValue(type, values[i]), type: known ? type : 'module', event: null }
      }
      return out
    }
    const keys = batch.k
    const values = batch.v
    const types = batch.t
    if (typeof types === 'string') {
      for (let i = 0; i < keys.length; i++) out[i] = { key: keys[i], value: values[i], type: types, event: null }
      return out
    }
    for (let i = 0; i < keys.length; i++) out[i] = { key: keys[i], value: values[i], type: types[i], event: null }
    return out
  }

  function generatorReader(fn, size) {
    let iterator = null
    let isAsync = false
    let done = false
    let failure = null
    function start() {
      const produced = fn()
      if (produced === null || produced === undefined) {
        done = true
        return
      }
      if (typeof produced[SymbolAsyncIterator] === 'function') {
        iterator = produced[SymbolAsyncIterator]()
        isAsync = true
      } else if (typeof produced[SymbolIterator] === 'function') {
        iterator = produced[SymbolIterator]()
      } else {
        throw new GearsError('the generator reader function must return an iterable (e.g. be a generator function)')
      }
    }
    function nextAsync(batch) {
      return PromisePrototypeThen(
        PromiseResolve(iterator.next()),
        (step) => {
          if (step.done) {
            done = true
            return batch.length > 0 ? batch : null
          }
          batch[batch.length] = step.value
          return batch.length >= size ? batch : nextAsync(batch)
        },
        (error) => {
          if (batch.length === 0) throw error
          failure = error
          return batch
        },
      )
    }
    return {
      next() {
        if (iterator === null && !done) start()
        if (done) return null
        if (failure !== null) {
          const error = failure
          failure = null
          done = true
          throw error
        }
        if (isAsync) return nextAsync([])
        const batch = []
        while (batch.length < size) {
          let step
          try {
            step = iterator.next()
          } catch (error) {
            // The records before the failure still count; the error comes with the next read.
            if (batch.length === 0) throw error
            failure = error
            break
          }
          if (step.done) {
            done = true
            break
          }
          batch[batch.length] = step.value
        }
        return batch.length > 0 ? batch : null
      },
      close() {
        if (!done && iterator !== null && typeof iterator.return === 'function') {
          done = true
          try {
            const r = iterator.return()
            if (isThenable(r)) PromisePrototypeThen(PromiseResolve(r), undefined, () => {})
          } catch {}
        }
      },
    }
  }

  ObjectDefineProperty(globalThis, 'GearsBuilder', { value: GearsBuilder, writable: true, configurable: true })
  ObjectDefineProperty(globalThis, 'GB', { value: GearsBuilder, writable: true, configurable: true })
})(globalThis.__gearbox_internals)
