// gearbox guest prelude: the GearsBuilder kernel. Runs one stage's primitive steps (the host's plan,
// host/gears/flow.ts KernelStep) over record batches, calling the user's callbacks (held by the
// builder, named by index) and the built-in reducers, under a language semantics object (20_gears.js).
//
// Records come from a source (22_gears_io.js: host batches or a generator); outputs and error
// texts go back in batches (`gears.emit`). A step that returns a thenable parks its record until it
// settles; records that fail become error texts and skip the later steps; an accumulator is reset
// after an error. Every builtin used here is captured before user code runs.
;(function (G) {
  'use strict'
  const { ReflectApply, String: String_, Promise: Promise_, PromisePrototypeThen, PromiseResolve, uncurryThis } = G.primordials
  const { GearsError, isThenable } = G
  const Map_ = Map
  const MapPrototypeGet = uncurryThis(Map.prototype.get)
  const MapPrototypeSet = uncurryThis(Map.prototype.set)
  const MapPrototypeHas = uncurryThis(Map.prototype.has)
  const MapPrototypeForEach = uncurryThis(Map.prototype.forEach)
  const DateNow = Date.now
  const PromiseAllFn = Promise.all
  const PromiseAll = (promises) => ReflectApply(PromiseAllFn, Promise_, [promises])

  /** `then` for values that may or may not be promises (keeps the synchronous path synchronous). */
  function after(value, fn) {
    return isThenable(value) ? PromisePrototypeThen(PromiseResolve(value), fn) : fn(value)
  }

  const PENDING = {} // a record whose step result is still a promise
  const RESET = {} // a group whose accumulator an error reset (kept for the key's first-seen order)
  const STATEFUL = { accumulate: true, localgroupby: true, reducebykey: true, groupbykey: true }

  /**
   * Runs `info.steps` over `source` ({next(): batch | null | a promise of either, close?()}), sending
   * outputs and error texts to the host; `held`: the builder's values. Resolves when done.
   */
  function runKernel(sem, info, held, source) {
    const prims = info.steps
    const profile = info.profile === true
    const durations = []
    for (let i = 0; i < info.displayCount; i++) durations[i] = 0
    let readMs = 0
    const named = sem.builtins

    function fnOf(ref) {
      if (ref.b === 'sortList') return (list) => sem.sortList(list, ref.reverse === true)
      const fn = ref.b !== undefined ? named[ref.b] : held[ref.i]
      if (typeof fn !== 'function') throw new GearsError('gears: the plan names no function at ' + String_(ref.b ?? ref.i))
      return fn
    }
    /** The accumulator `a`, or a copy of the zero when the semantics says to replace it. */
    function resetter(zero) {
      if (zero === undefined) return (a) => a
      const value = zero.i !== undefined ? held[zero.i] : zero.v
      return (a) => (sem.resetAccumulator(a) ? sem.clone(value) : a)
    }

    const sink = G.gearsOutput(sem, info, () => ({ steps: durations, readMs }))
    const { addError, output } = sink

    /** A promise whose failure nobody awaits: marked handled, its record becomes `message`. */
    function refuseAsync(value, message) {
      PromisePrototypeThen(PromiseResolve(value), undefined, () => {}) // nobody awaits it
      return addError(new GearsError(message))
    }

    /** map, flatmap, filter, foreach: `emit` puts what the callback gave into the output. */
    function perRecord(batch, call, emit) {
      const out = []
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
        waits[i] = PromisePrototypeThen(PromiseResolve(p.v), (value) => void ((p.ok = true), (p.value = value)), (error) => void (p.value = error))
      }
      return PromisePrototypeThen(PromiseAll(waits), () => {
        const done = []
        for (let i = 0, j = 0; i < out.length; i++) {
          const p = out[i] === PENDING ? pending[j++] : null
          if (p === null) done[done.length] = out[i]
          else if (p.ok) emit(done, p.r, p.value)
          else addError(p.value)
        }
        return done
      })
    }

    const emitValue = (out, _r, v) => void (out[out.length] = v)
    const emitRecord = (out, r) => void (out[out.length] = r)
    const emitIfTruthy = (out, r, v) => void (sem.truthy(v) && (out[out.length] = r))
    const emitExploded = (out, _r, v) => {
      const list = sem.explode(v)
      if (list === null) out[out.length] = v
      else if (sem.flatmapReverse) for (let i = list.length - 1; i >= 0; i--) out[out.length] = list[i]
      else for (let i = 0; i < list.length; i++) out[out.length] = list[i]
    }
    const EMIT = { map: emitValue, flatmap: emitExploded, filter: emitIfTruthy, foreach: emitRecord }
    /** [key, record] -> record */
    function unkey(batch) {
      const out = []
      for (let j = 0; j < batch.length; j++) out[j] = batch[j][1]
      return out
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
        if (isThenable(v)) refuseAsync(v, message)
        else out[out.length] = v
      }
      return out
    }

    // Stateful steps absorb records and emit at the end.
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
          const next = (ok) => (value) => {
            if (!ok) addError(value)
            st.acc = ok ? value : null
            st.has = ok
            return accumulateFrom(st, batch, i + 1)
          }
          return PromisePrototypeThen(PromiseResolve(v), next(true), next(false))
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
            refuseAsync(k, 'coroutine are not allow on extractor')
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
          const next = (ok) => (value) => {
            if (!ok) addError(value)
            MapPrototypeSet(st.groups, key, ok ? value : RESET)
            return groupFrom(st, batch, i + 1, keyed)
          }
          return PromisePrototypeThen(PromiseResolve(v), next(true), next(false))
        }
        MapPrototypeSet(st.groups, key, v)
      }
      return []
    }

    function groupOutput(groups) {
      const out = []
      MapPrototypeForEach(groups, (value, key) => void (value !== RESET && (out[out.length] = sem.keyValue(key, value))))
      return out
    }

    function reduceLists(st) {
      const out = []
      MapPrototypeForEach(st.lists, (list, key) => {
        let v
        try {
          v = st.red(key, list)
        } catch (error) {
          addError(error)
          return
        }
        if (isThenable(v)) refuseAsync(v, 'coroutine are not allow on reduce')
        else out[out.length] = sem.keyValue(key, v)
      })
      return out
    }

    const steps = []
    for (let i = 0; i < prims.length; i++) {
      const p = prims[i]
      const st = { k: p.k }
      switch (p.k) {
        case 'map':
        case 'flatmap':
        case 'filter':
        case 'foreach': {
          const f = fnOf(p.f)
          const emit = EMIT[p.k]
          st.apply = (batch) => perRecord(batch, f, emit)
          break
        }
        case 'tostr':
          st.apply = (batch) => syncOnly(batch, sem.toStr, 'convertToStr does not support async')
          break
        case 'extract': {
          const ex = fnOf(p.ex)
          const keyed = (r) => {
            const k = ex(r)
            return isThenable(k) ? k : [sem.keyOf(k), r]
          }
          st.apply = (batch) => syncOnly(batch, keyed, 'coroutine are not allow on extractor')
          break
        }
        case 'unkey':
          st.apply = unkey
          break
        case 'route': // in place, a route passes records on; in a stage it is the last step
          st.apply = (batch) => batch
          break
        case 'limit': {
          const end = p.end === null ? Infinity : p.end
          st.seen = 0
          st.apply = (batch) => {
            const out = []
            for (let j = 0; j < batch.length; j++, st.seen++) if (st.seen >= p.start && st.seen < end) out[out.length] = batch[j]
            return out
          }
          st.full = () => st.seen >= end
          break
        }
        case 'accumulate': {
          const f = fnOf(p.f)
          const reset = resetter(p.zero)
          st.f = p.zero === undefined ? f : (a, r) => f(reset(a), r)
          st.acc = null
          st.has = false
          st.apply = (batch) => accumulateFrom(st, batch, 0)
          st.finish = () => (st.has ? [st.acc] : [])
          break
        }
        case 'localgroupby':
        case 'reducebykey': {
          const red = fnOf(p.red)
          const reset = resetter(p.zero)
          const valueOf = p.value === true ? sem.recordValue : (r) => r
          const keyed = p.k === 'reducebykey'
          if (!keyed) st.ex = fnOf(p.ex)
          st.red = p.zero === undefined && p.value !== true ? red : (k, a, r) => red(k, reset(a), valueOf(r))
          st.groups = new Map_()
          st.apply = (batch) => groupFrom(st, batch, 0, keyed)
          st.finish = () => groupOutput(st.groups)
          break
        }
        case 'groupbykey':
          st.red = fnOf(p.red)
          st.lists = new Map_()
          st.apply = (batch) => {
            for (let j = 0; j < batch.length; j++) {
              const key = batch[j][0]
              let list = MapPrototypeGet(st.lists, key)
              if (list === undefined) MapPrototypeSet(st.lists, key, (list = []))
              list[list.length] = batch[j][1]
            }
            return []
          }
          st.finish = () => reduceLists(st)
          break
        default:
          throw new GearsError('gears: unknown primitive step ' + String_(p.k))
      }
      if (profile && p.d >= 0) {
        const timed = (fn) => (batch) => {
          const t0 = DateNow()
          return after(fn(batch), (out) => ((durations[p.d] += DateNow() - t0), out))
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
        const pushed = after(st.finish(), (records) => push(i + 1, records))
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

    function readNext() {
      const t0 = DateNow()
      const counted = (b) => ((readMs += DateNow() - t0), b)
      let batch
      try {
        batch = source.next()
      } catch (error) {
        addError(error)
        return null
      }
      if (!isThenable(batch)) return counted(batch)
      return PromisePrototypeThen(batch, counted, (error) => {
        addError(error)
        return null
      })
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
      if (source.close !== undefined) source.close()
      return after(finish(0), () => sink.flush(true))
    }

    G.setAsyncAllowed(true)
    return PromisePrototypeThen(PromiseResolve(undefined), loop)
  }

  G.gearsKernel = { run: runKernel }
})(globalThis.__gearbox_internals)
