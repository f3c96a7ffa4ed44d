/**
 * A MicroPython instance's state, saved right after its prelude and put back after every run
 * (the wizer idea, DESIGN.md §3; engines/quickjs/memory-snapshot.ts for QuickJS).
 *
 * Emscripten's layout in this build: the 64 KiB stack first (growing down from 64 KiB), then
 * static data (allocator and sbrk state, MicroPython's VM state, the 1 MiB GC heap allocated at
 * init), then the malloc heap. Everything up to the highest non-zero byte at snapshot time is
 * copied; above it nothing was ever written when the snapshot was taken, and the restored
 * allocator state treats it as free space (MicroPython's GC clears the blocks it hands out), so
 * what a run leaves there does not matter. The stack pointer is a WebAssembly global, not
 * memory: it is saved and restored through the instance's exports. The glue's JS-side tables
 * of JS objects referenced from Python are saved and restored with it (glue.ts GlueGlobals).
 */
import { GlueGlobals, type MicroPythonExports } from './glue.js'

const MARGIN_BYTES = 64 * 1024

export class MemorySnapshot {
  private constructor(
    private readonly bytes: Uint8Array,
    private readonly stackPointer: number,
    private readonly glue: GlueGlobals,
  ) {}

  /** Copies the instance's state (call between calls into the module). */
  static take(exports: MicroPythonExports): MemorySnapshot {
    const buffer = exports.memory.buffer
    const words = new Uint32Array(buffer)
    let high = words.length - 1
    while (high > 0 && words[high] === 0) high--
    const end = Math.min(buffer.byteLength, (high + 1) * 4 + MARGIN_BYTES)
    return new MemorySnapshot(new Uint8Array(buffer).slice(0, end), exports.emscripten_stack_get_current(), GlueGlobals.save())
  }

  /** Bytes copied per restore. */
  get size(): number {
    return this.bytes.length
  }

  /** Puts the state back. Only valid between calls into the module. */
  restore(exports: MicroPythonExports): void {
    new Uint8Array(exports.memory.buffer).set(this.bytes, 0)
    exports._emscripten_stack_restore(this.stackPointer)
    this.glue.restore()
  }
}
