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
  static take(memory: WebAssembly.Memory, heapStart: number, heapEnd?: number): MemorySnapshot | undefined {
    const dataEnd = heapStart - EMSCRIPTEN_STACK_BYTES + MARGIN_BYTES
    const heapFrom = heapStart - MARGIN_BYTES
    if (dataEnd <= 0 || heapFrom <= dataEnd) return undefined
    // The heap's highest non-zero byte bounds what it holds (free memory above it is all zero in
    // a fresh module, and the allocator treats it as free): scanned down from the heap's end when
    // known (see probeBreakAddress), else from the end of memory.
    const words = new Uint32Array(memory.buffer)
    let high = heapEnd === undefined ? words.length - 1 : Math.min(words.length, heapEnd >>> 2) - 1
    while (high > 0 && words[high] === 0) high--
    const heapTo = Math.min(memory.buffer.byteLength, (high + 1) * 4 + MARGIN_BYTES)
    if (heapTo <= heapFrom) return undefined
    const bytes = new Uint8Array(memory.buffer)
    return new MemorySnapshot(bytes.slice(0, dataEnd), heapFrom, bytes.slice(heapFrom, heapTo))
  }

  /** The copy of `[0, data end)`. */
  get dataBytes(): Uint8Array {
    return this.data
  }

  /** The copy of the heap, from {@link heapOffset}. */
  get heapBytes(): Uint8Array {
    return this.heap
  }

  get heapOffset(): number {
    return this.heapFrom
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

const PAGE_BYTES = 4096

/**
 * What a parked execution changed in its module's memory, relative to the snapshot it started
 * from: the 4 KiB pages of the snapshot's regions that differ, plus the heap past the snapshot up
 * to the heap's end (emscripten's break). Applied on top of that snapshot it gives back the
 * execution's memory exactly (the stack holds nothing live between calls into the module).
 * Measured here: 1,000 executions parked on a 2-worker pool added ~160 MiB of host RSS.
 */
export class MemoryDiff {
  private constructor(
    private readonly offsets: readonly number[],
    private readonly pages: readonly Uint8Array[],
    readonly bytes: number,
    private readonly zeroFrom: readonly number[],
    private readonly zeroTo: readonly number[],
  ) {}

  /** The pages of `memory` that differ from `base`, and `[base heap end, heapEnd)` whole. */
  static take(memory: WebAssembly.Memory, base: MemorySnapshot, heapEnd: number): MemoryDiff {
    const offsets: number[] = []
    const pages: Uint8Array[] = []
    let bytes = 0
    const now = new Uint8Array(memory.buffer)
    const keep = (from: number, to: number): void => {
      offsets.push(from)
      const page = now.slice(from, to)
      pages.push(page)
      bytes += page.length
    }
    const compare = (saved: Uint8Array, at: number): void => {
      const savedWords = new Uint32Array(saved.buffer, saved.byteOffset, saved.length >>> 2)
      const nowWords = new Uint32Array(memory.buffer, at, saved.length >>> 2)
      const wordsPerPage = PAGE_BYTES >>> 2
      for (let w = 0; w < savedWords.length; w += wordsPerPage) {
        const end = Math.min(savedWords.length, w + wordsPerPage)
        for (let i = w; i < end; i++) {
          if (savedWords[i] !== nowWords[i]) {
            keep(at + w * 4, at + end * 4)
            break
          }
        }
      }
      // A length that is not a multiple of 4: the tail bytes, whole.
      if (saved.length % 4 !== 0) keep(at + (saved.length & ~3), at + saved.length)
    }
    compare(base.dataBytes, 0)
    compare(base.heapBytes, base.heapOffset)
    // Past the base's heap: pages of zeros are noted (filled again on apply), others copied.
    const pastBase = base.heapOffset + base.heapBytes.length
    const end = Math.min(heapEnd, memory.buffer.byteLength) & ~3
    const zeroFrom: number[] = []
    const zeroTo: number[] = []
    if (end > pastBase) {
      const words = new Uint32Array(memory.buffer, pastBase & ~3, (end - (pastBase & ~3)) >>> 2)
      const wordsPerPage = PAGE_BYTES >>> 2
      for (let w = 0; w < words.length; w += wordsPerPage) {
        const stop = Math.min(words.length, w + wordsPerPage)
        let zero = true
        for (let i = w; i < stop; i++) {
          if (words[i] !== 0) {
            zero = false
            break
          }
        }
        const from = (pastBase & ~3) + w * 4
        const to = (pastBase & ~3) + stop * 4
        if (!zero) keep(from, to)
        else if (zeroTo.length > 0 && zeroTo[zeroTo.length - 1] === from) zeroTo[zeroTo.length - 1] = to
        else {
          zeroFrom.push(from)
          zeroTo.push(to)
        }
      }
    }
    return new MemoryDiff(offsets, pages, bytes, zeroFrom, zeroTo)
  }

  /** Writes the pages back (after the base snapshot was restored). */
  apply(memory: WebAssembly.Memory): void {
    const bytes = new Uint8Array(memory.buffer)
    for (let i = 0; i < this.zeroFrom.length; i++) bytes.fill(0, this.zeroFrom[i], this.zeroTo[i])
    for (let i = 0; i < this.offsets.length; i++) bytes.set(this.pages[i]!, this.offsets[i])
  }
}

/** The break probe allocates blocks of this size (under dlmalloc's mmap threshold) until the break moves. */
const PROBE_BLOCK_BYTES = 64 * 1024
const PROBE_MAX_BLOCKS = 128

/**
 * The address of emscripten's break (the end of the malloc heap, kept by sbrk in static data), or
 * undefined when it cannot be told apart. Found once per fresh module: blocks are allocated from
 * the top of the heap until one word of static data that pointed into the heap moves up by at
 * least a block (the heap grew once, by sbrk's increment); it must be the only one. The blocks are
 * then freed (back into the top) and their headers cleared, so the heap's top reads as unused.
 */
export function probeBreakAddress(
  memory: WebAssembly.Memory,
  allocator: { malloc(n: number): number; free(p: number): void },
  heapStart: number,
): number | undefined {
  const dataEnd = heapStart - EMSCRIPTEN_STACK_BYTES
  if (dataEnd <= 0) return undefined
  const before = new Uint32Array(memory.buffer, 0, dataEnd >>> 2).slice()
  const top = memory.buffer.byteLength
  const candidates: number[] = []
  for (let i = 0; i < before.length; i++) if (before[i]! >= heapStart && before[i]! <= top) candidates.push(i)
  const blocks: number[] = []
  let found: number | undefined
  try {
    for (let n = 0; n < PROBE_MAX_BLOCKS; n++) {
      const block = allocator.malloc(PROBE_BLOCK_BYTES)
      if (block === 0) return undefined
      blocks.push(block)
      const now = new Uint32Array(memory.buffer, 0, dataEnd >>> 2)
      const moved = candidates.filter((i) => now[i]! >= before[i]! + PROBE_BLOCK_BYTES && now[i]! <= memory.buffer.byteLength)
      if (moved.length > 1) return undefined
      if (moved.length === 1) return (found = moved[0]! * 4)
    }
    return undefined
  } finally {
    for (let i = blocks.length - 1; i >= 0; i--) allocator.free(blocks[i]!)
    const first = blocks[0]
    if (first !== undefined && found !== undefined) {
      // Up to the heap's end, short of the allocator's footer there.
      const heapEnd = new Uint32Array(memory.buffer, found, 1)[0]!
      const end = Math.min(heapEnd - 64, first + blocks.length * (PROBE_BLOCK_BYTES + 64))
      if (end > first + 8) new Uint8Array(memory.buffer).fill(0, first + 8, end)
    }
  }
}
