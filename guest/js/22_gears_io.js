// gearbox guest prelude: the GearsBuilder kernel's input and output. Sources of record batches (the
// host's reader batches through `gears.read`, a generator reader run here, or the records the host
// routed to a stage) and the sink that sends outputs and error texts back in `gears.emit` batches.
;(function (G) {
  'use strict'
  const { ReflectApply, ArrayIsArray, JSONStringify, PromisePrototypeThen, PromiseResolve, uncurryThis } = G.primordials
  const { GearsError, hostCall, encodeWire, isThenable } = G
  const Number_ = Number
  const ArrayPrototypeSlice = uncurryThis(Array.prototype.slice)
  const SymbolIterator = Symbol.iterator
  const SymbolAsyncIterator = Symbol.asyncIterator
  const ArrayPrototype = Array.prototype
  const ObjectPrototype = Object.prototype
  const ObjectPrototypeHasOwnProperty = uncurryThis(Object.prototype.hasOwnProperty)

  /**
   * JSON of an array of strings. The native JSONStringify is the fast path, but it honours a
   * toJSON the script put on Array.prototype or Object.prototype: then the prelude's encodeWire
   * (own data properties only) is used instead.
   */
  function stringsJson(strings) {
    if (ObjectPrototypeHasOwnProperty(ArrayPrototype, 'toJSON') || ObjectPrototypeHasOwnProperty(ObjectPrototype, 'toJSON')) {
      return encodeWire(strings)
    }
    return JSONStringify(strings)
  }

  // ---- the sink ----

  /** Outputs and error texts of one kernel run, batched into gears.emit payloads; `profile()` goes with the last. */
  function gearsOutput(sem, info, profile) {
    // The host's payload limit (limits.maxReplyBytes) in characters, with room for UTF-8.
    const emitSplitChars = typeof info.emitChars === 'number' && info.emitChars >= 1024 ? info.emitChars : 4 * 1024 * 1024
    const size = typeof info.batchSize === 'number' && info.batchSize >= 1 ? info.batchSize : 1000
    let outRecords = []
    let outErrors = []
    const keepFinal = info.keepFinal === true
    // The host reads only the errors of a KeysReader event's execution.
    const dropRecords = info.dropRecords === true

    function recordsJson(records) {
      for (let i = 0; i < records.length; i++) if (typeof records[i] !== 'string') return encodeWire(records)
      return stringsJson(records)
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
        emitRecords(ArrayPrototypeSlice(records, 0, half), [], false)
        emitRecords(ArrayPrototypeSlice(records, half), errors, final)
        return
      }
      let payload = '{"r":' + json + ',"e":' + stringsJson(errors)
      json = null
      if (final) payload += ',"done":true,"profile":' + encodeWire(profile())
      // A registration execution returns its last payload as the entry's result (one host call less).
      if (final && keepFinal) return payload + '}'
      hostCall('gears.emit', payload + '}')
    }

    function flush(final) {
      if (outRecords.length === 0 && outErrors.length === 0 && !final) return
      const records = outRecords
      const errors = outErrors
      outRecords = []
      outErrors = []
      return emitRecords(records, errors, final)
    }

    return {
      flush,
      addError(error) {
        let text
        try {
          text = sem.formatError(error)
        } catch {
          text = 'Error: (unprintable error)'
        }
        outErrors[outErrors.length] = text
        if (outErrors.length >= size) flush(false)
      },
      output(batch) {
        if (dropRecords) return
        for (let i = 0; i < batch.length; i++) outRecords[outRecords.length] = batch[i]
        if (outRecords.length >= size) flush(false)
      },
    }
  }

  // ---- sources ----

  /**
   * The input of a kernel run: `reader` (the host plan's KernelReader) for a stage that reads, or
   * null for the records the host routed here. Opens on the first next(), so an opening failure
   * (a patternGenerator that throws) is the run's error, not the entry's.
   */
  function gearsSource(reader, held, size) {
    if (reader === null) return { next: () => hostCall('gears.read', '{}') }
    let source = null
    return {
      next() {
        if (source === null) source = reader.generator !== null ? generatorReader(held[reader.generator], size) : hostReader(reader, held)
        return source.next()
      },
      close() {
        if (source !== null && source.close !== undefined) source.close()
      },
    }
  }

  function hostReader(reader, held) {
    const open = {}
    const keys = G.primordials.ObjectKeys(reader.open)
    for (let i = 0; i < keys.length; i++) open[keys[i]] = reader.open[keys[i]]
    if (reader.patternGenerator !== null) {
      const generated = ReflectApply(held[reader.patternGenerator], undefined, [])
      if (!ArrayIsArray(generated) || typeof generated[0] !== 'string') {
        throw new GearsError('patternGenerator must return [pattern, noScan]')
      }
      open.pattern = generated[0]
      open.noScan = generated[1] === true
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

  G.gearsOutput = gearsOutput
  G.gearsSource = gearsSource
})(globalThis.__gearbox_internals)
