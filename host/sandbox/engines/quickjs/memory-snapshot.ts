/**
 * Execution starts from a snapshot of linear memory (the wizer idea, DESIGN.md §3).
 *
 * A realm is built once per module: runtime, context, host functions, and the preloaded guest
 * prelude (~69 KiB of JS, 5.6–7.3 ms to evaluate). Right after that, the parts of linear memory
 * that hold state are copied; after every execution they are copied back, which returns the
 * interpreter to exactly its post-prelude state: nothing the previous execution did (globals,
 * prototype pollution, leaked objects, a half-collected heap after an OOM) survives. Measured:
 * 0.02–0.04 ms per restore of ~0.7 MiB, against ~6 ms to rebuild and re-evaluate a realm.
 *
 * Emscripten's layout in this build: static data first, then the 5 MiB stack (growing down),
 * then the malloc heap. Between calls nothing on the stack is live, so the stack is skipped:
 *   [0, heapStart − STACK + 64 KiB)         static data (allocator state, sbrk pointer, ...)
 *   [heapStart − 64 KiB, highest non-zero]  the heap up to its highest byte ever written
 * Everything above the highest non-zero byte was never written when the snapshot was taken, and
 * the restored allocator state treats it as free space, so its contents do not matter.
 * Both bounds are taken with margins on the safe side (copying unused stack bytes is harmless).
 */

/** Emscripten STACK_SIZE of @jitl/quickjs-wasmfile-release-sync 0.32.0 ("5MB"). */
export const EMSCRIPTEN_STACK_BYTES = 5 * 1024 * 1024

const MARGIN_BYTES = 64 * 1024

export class MemorySnapshot {
  private constructor(
    private readonly data: Uint8Array,
    private readonly heapFrom: number,
    private readonly heap: Uint8Array,
  ) {}

  /**
   * Copies the stateful regions of `memory`. `heapStart` is the address of the first malloc in
   * the fresh module (the heap begins right there). Undefined when the layout is not the
   * expected one (the engine then falls back to a fresh realm per execution).
   */
  static take(memory: WebAssembly.Memory, heapStart: number): MemorySnapshot | undefined {
    const dataEnd = heapStart - EMSCRIPTEN_STACK_BYTES + MARGIN_BYTES
    const heapFrom = heapStart - MARGIN_BYTES
    if (dataEnd <= 0 || heapFrom <= dataEnd) return undefined
    const words = new Uint32Array(memory.buffer)
    let high = words.length - 1
    while (high > 0 && words[high] === 0) high--
    const heapTo = Math.min(memory.buffer.byteLength, (high + 1) * 4 + MARGIN_BYTES)
    if (heapTo <= heapFrom) return undefined
    const bytes = new Uint8Array(memory.buffer)
    return new MemorySnapshot(bytes.slice(0, dataEnd), heapFrom, bytes.slice(heapFrom, heapTo))
  }

  /** Bytes copied per restore. */
  get bytes(): number {
    return this.data.length + this.heap.length
  }

  /** Puts the snapshot back. Only valid between calls into the module (nothing on its stack). */
  restore(memory: WebAssembly.Memory): void {
    const bytes = new Uint8Array(memory.buffer)
    bytes.set(this.data, 0)
    bytes.set(this.heap, this.heapFrom)
  }
}
