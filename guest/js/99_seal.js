// gearbox guest prelude, last part: runs after every other prelude file and before the user's
// script. Defines the entry points as non-writable, non-configurable globals (user code cannot
// replace what the host calls at the end) and removes the internals object from the global scope.
;(function () {
  'use strict'
  const internals = globalThis.__gearbox_internals
  const names = Object.keys(internals.entries)
  for (let i = 0; i < names.length; i++) {
    Object.defineProperty(globalThis, names[i], { value: internals.entries[names[i]] })
  }
  delete globalThis.__gearbox_internals
})()
