// gearbox guest prelude, part 1: the RedisGears runtime API as globals (see guest/gears.d.ts).
//
// Argument checks happen here, before anything crosses to the host, with RedisGears 1.2's error
// texts; the host (host/runtime/) does the Redis work and is the authority on atomic blocks.
;(function (G) {
  'use strict'
  const {
    ReflectApply,
    ObjectDefineProperty,
    String: String_,
    Error: Error_,
    Promise: Promise_,
    PromisePrototypeThen,
    WeakMap: WeakMap_,
    WeakMapPrototypeGet,
    WeakMapPrototypeSet,
    WeakMapPrototypeHas,
    Set: Set_,
    SetPrototypeHas,
  } = G.primordials
  const { GearsError, hostCall, hostStart, encodeArgs, isThenable } = G

  function defineGlobal(name, fn) {
    ObjectDefineProperty(globalThis, name, { value: fn, writable: true, configurable: true })
  }


  // ---- execute / atomic -------------------------------------------------------------------------
  function execute(...argv) {
    if (argv.length === 0) return []
    if (typeof argv[0] !== 'string') throw new GearsError('the given command must be a string')
    return hostCall('execute', encodeArgs(argv, 0))
  }

  function atomic(fn) {
    if (typeof fn !== 'function') throw new GearsError('atomic expects a function: atomic(() => { ... })')
    // Re-runs fn while the commit reports a conflict; the host gives up after `atomicRetries`.
    for (;;) {
      hostCall('atomic.begin', '[]')
      let value
      try {
        value = fn()
      } catch (error) {
        hostCall('atomic.abort', '[]')
        throw error
      }
      if (isThenable(value)) {
        hostCall('atomic.abort', '[]')
        // The block already ran up to its first await; its writes were discarded with the
        // transaction. Mark the promise handled: the guest gets the GearsError instead.
        try {
          ReflectApply(value.then, value, [undefined, () => {}])
        } catch {}
        throw new GearsError('await is not allow inside atomic block')
      }
      if (hostCall('atomic.commit', '[]') === true) return value
    }
  }

  // ---- configuration, hashtag, log --------------------------------------------------------------
  function configGet(...args) {
    if (args.length !== 1) throw new GearsError('get_config function must get a single key input')
    if (typeof args[0] !== 'string') throw new GearsError('get_config key must be a string')
    return hostCall('configGet', encodeArgs(args, 0))
  }

  function gearsConfigGet(key, ...fallback) {
    const value = configGet(key)
    if (value !== null) return value
    return fallback.length > 0 ? fallback[0] : null
  }

  function hashtag() {
    return hostCall('hashtag', '[]')
  }

  const LEVELS = new Set_(['debug', 'verbose', 'notice', 'warning'])
  const isLevel = (value) => typeof value === 'string' && SetPrototypeHas(LEVELS, value)

  function log(...args) {
    if (args.length === 0 || args.length > 2) throw new GearsError('log function must get a log message as input')
    let message = args[0]
    let level = args.length === 2 && args[1] !== undefined ? args[1] : 'notice'
    if (args.length === 2 && isLevel(message) && typeof level === 'string' && !isLevel(level)) {
      // RedisGears' legacy form log(level, message): accepted, with a deprecation warning.
      const legacyLevel = message
      message = level
      level = legacyLevel
      hostCall('log', encodeArgs(['warning', 'log(level, message) is deprecated, use log(message, level)'], 0))
    }
    if (typeof message !== 'string') throw new GearsError('Log message must be a string')
    if (typeof level !== 'string') throw new GearsError('Log level must be a sting (debug/verbose/notice/warning)')
    if (!isLevel(level)) throw new GearsError('Log level should be one of the following : debug,verbose,notice,warning')
    hostCall('log', encodeArgs([level, message], 0))
  }

  // ---- futures and coroutines -------------------------------------------------------------------
  const futures = new WeakMap_() // future -> {resolve, reject}

  function isFuture(value) {
    return value !== null && typeof value === 'object' && WeakMapPrototypeHas(futures, value)
  }

  function settleFuture(future, ok, value) {
    const { resolve, reject } = WeakMapPrototypeGet(futures, future)
    if (ok) resolve(value)
    else reject(value)
  }

  function createFuture() {
    let resolve, reject
    const future = new Promise_((res, rej) => {
      resolve = res
      reject = rej
    })
    WeakMapPrototypeSet(futures, future, { resolve, reject })
    ObjectDefineProperty(future, 'resolve', { __proto__: null, value: (value) => settleFuture(future, true, value) })
    ObjectDefineProperty(future, 'reject', { __proto__: null, value: (error) => settleFuture(future, false, error) })
    return future
  }

  // A second settle, or a value that is not a future, is silently ignored (as in RedisGears,
  // where the failure happens on the event loop and never reaches the caller).
  function setFutureResults(future, result) {
    if (isFuture(future)) settleFuture(future, true, result)
  }

  function setFutureException(future, exception) {
    if (isFuture(future)) {
      settleFuture(future, false, exception instanceof Error_ ? exception : new Error_(String_(exception)))
    }
  }

  // runCoroutine work the execution waits for before it finishes. The promises never reject.
  const pending = []
  let drained = 0
  async function drain() {
    while (drained < pending.length) {
      await pending[drained]
      drained++
    }
  }
  G.drain = drain

  function hasContinuation(value) {
    try {
      return typeof value.continueRun === 'function' && typeof value.continueFailed === 'function'
    } catch {
      return false
    }
  }

  function continueWith(target, ok, value) {
    if (target === null || target === undefined) return
    if (isFuture(target)) {
      settleFuture(target, ok, value)
      return
    }
    try {
      if (ok) target.continueRun(value)
      else target.continueFailed(value)
    } catch (error) {
      hostCall('log', encodeArgs(['warning', 'runCoroutine: continuing the future failed: ' + G.formatError(error)], 0))
    }
  }

  function runCoroutine(coroutine, future = null, delaySeconds = null) {
    if (typeof coroutine !== 'function' && !isThenable(coroutine)) {
      throw new GearsError('runCoroutine expects a promise or an async function')
    }
    if (future !== null && future !== undefined && !isFuture(future) && !hasContinuation(future)) {
      throw new GearsError('runCoroutine future must be a future from createFuture(), or null')
    }
    if (delaySeconds === null || delaySeconds === undefined) delaySeconds = 0
    else if (typeof delaySeconds !== 'number' || !(delaySeconds >= 0 && delaySeconds < Infinity)) {
      throw new GearsError('runCoroutine delay must be a non-negative number of seconds')
    }
    const delayMs = delaySeconds * 1000
    // Scheduled, as in RedisGears: the coroutine starts after the current synchronous code
    // (an atomic block that calls runCoroutine does not get the coroutine's commands).
    const task = async () => {
      if (delayMs > 0) await hostStart('sleep', '[' + delayMs + ']')
      else await undefined
      return typeof coroutine === 'function' ? await coroutine() : await coroutine
    }
    pending[pending.length] = PromisePrototypeThen(
      task(),
      (value) => continueWith(future, true, value),
      (error) => continueWith(future, false, error),
    )
  }

  function isAsyncAllow() {
    return G.isAsyncAllowed()
  }

  // ---- errors and contexts that do not exist here -----------------------------------------------
  function flat_error(...args) {
    if (args.length !== 1) throw new GearsError('not enough arguments for time flat error')
    throw G.newFlatError(String_(args[0]))
  }

  // Command hooks and command-linked executions exist where gearbox serve runs the function in a
  // client's command path: the host answers these calls there, and RedisGears' "no ctx" errors
  // everywhere else.
  function call_next(...argv) {
    return hostCall('command.callNext', encodeArgs(argv, 0))
  }

  function override_reply(...args) {
    if (args.length !== 1) throw new GearsError('Override reply must get a single argument')
    return hostCall('command.overrideReply', '[' + G.encodeWire(args[0]) + ']')
  }

  defineGlobal('execute', execute)
  defineGlobal('atomic', atomic)
  defineGlobal('configGet', configGet)
  defineGlobal('gearsConfigGet', gearsConfigGet)
  defineGlobal('hashtag', hashtag)
  defineGlobal('log', log)
  defineGlobal('createFuture', createFuture)
  defineGlobal('setFutureResults', setFutureResults)
  defineGlobal('setFutureException', setFutureException)
  defineGlobal('runCoroutine', runCoroutine)
  defineGlobal('isAsyncAllow', isAsyncAllow)
  defineGlobal('flat_error', flat_error)
  defineGlobal('call_next', call_next)
  defineGlobal('override_reply', override_reply)

  // ---- the entry point of a script execution ------------------------------------------------------
  // Waits for the runCoroutine work the top level started, tells the host the top level is done
  // (the replay facility needs that boundary; a host that records nothing passes boundary=false),
  // then reports the outcome as wire JSON. Without pending work and without a run() it answers
  // synchronously: most executions are short, and a round of promise jobs costs more than they do.
  async function finishAsync(boundary) {
    await drain()
    if (boundary) hostCall('toplevel.done', '[]')
    return G.encodeWire(await G.outcome())
  }
  G.defineEntry('__gearbox_main', function __gearbox_main(boundary = true) {
    if (drained < pending.length || G.hasOutcomeProvider()) return finishAsync(boundary)
    if (boundary) hostCall('toplevel.done', '[]')
    return G.encodeWire(G.outcome())
  })
})(globalThis.__gearbox_internals)
