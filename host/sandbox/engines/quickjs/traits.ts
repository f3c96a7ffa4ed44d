/**
 * QuickJS as the main side sees it: its limits' bounds and its .wasm (no engine code here, so the
 * pool and the platforms can read these without loading quickjs-emscripten).
 */
import type { EngineTraits } from '../../engine.js'

const KiB = 1024
const MiB = 1024 * KiB

export const QUICKJS_TRAITS: EngineTraits = Object.freeze({
  name: 'quickjs',
  // The build's INITIAL_MEMORY: shadow stack, static data and an empty heap.
  baseMemoryBytes: 16 * MiB,
  // wasm32 build: the heap cannot grow past 2 GiB, base included.
  maxMemoryBytes: 2048 * MiB,
  // QuickJS frames also use the worker's native stack: above 256 KiB the host overflows first.
  maxStackBytes: 256 * KiB,
  wasmSpecifier: '@jitl/quickjs-wasmfile-release-sync/wasm',
})
