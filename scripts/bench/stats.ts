/** Small timing helpers shared by the bench sections. */

export interface BenchRow {
  /** What was measured, e.g. "cold execution, gearbox". */
  readonly name: string
  readonly value: number
  readonly unit: string
  readonly note?: string
}

export interface Sample {
  readonly median: number
  readonly p10: number
  readonly p90: number
}

export function summarize(values: readonly number[]): Sample {
  const s = [...values].sort((a, b) => a - b)
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN
  return { median: at(0.5), p10: at(0.1), p90: at(0.9) }
}

/** Times `fn` `n` times after `warmup` runs; returns per-run milliseconds. */
export async function timeEach(n: number, warmup: number, fn: () => Promise<unknown> | unknown): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn()
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await fn()
    out.push(performance.now() - t)
  }
  return out
}

export const fmt = (x: number, digits = 3): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a')
