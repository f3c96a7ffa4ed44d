/**
 * MicroPython as the main side sees it: its limits' bounds (no engine code here, so the pool and
 * the platforms can read these without loading the MicroPython glue).
 */
import type { EngineTraits } from '../../engine.js'

const KiB = 1024
const MiB = 1024 * KiB

export const MICROPYTHON_TRAITS: EngineTraits = Object.freeze({
  name: 'micropython',
  // The build's initial linear memory (16.2 MB: 64 KiB stack, static data, a 1 MiB GC heap).
  baseMemoryBytes: 16_973_824,
  // wasm32 build with ALLOW_MEMORY_GROWTH up to 2 GiB.
  maxMemoryBytes: 2048 * MiB,
  // MicroPython's C stack is fixed at build time (32 KiB, recursion depth ~155): `stackBytes` is
  // accepted up to the JavaScript engine's ceiling so one Limits serves both languages; the
  // interpreter's own depth limit is reported as the stack limit (ERR_GEARBOX_STACK_LIMIT).
  maxStackBytes: 256 * KiB,
  // The glue loads its .wasm next to itself; platforms need not compile it.
  wasmSpecifier: '@micropython/micropython-webassembly-pyscript/micropython.wasm',
})
