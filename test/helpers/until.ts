/**
 * Polling for tests that wait on something asynchronous (an event's execution, a counter): never a
 * fixed sleep, always bounded in time and in count.
 */
import * as assert from 'uvu/assert'

export type Until = (what: string, check: () => Promise<boolean> | boolean, timeoutMs?: number) => Promise<void>

/** An `until(what, check, timeoutMs?)` polling `check` every `intervalMs`; fails with `timed out waiting for <what>`. */
export function poller(defaultTimeoutMs: number, intervalMs = 20): Until {
  return async (what, check, timeoutMs = defaultTimeoutMs) => {
    const deadline = Date.now() + timeoutMs
    for (let i = 0; i < 100_000; i++) {
      if (await check()) return
      if (Date.now() > deadline) break
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
    assert.unreachable(`timed out waiting for ${what}`)
  }
}
