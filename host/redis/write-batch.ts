/**
 * Coalesces the commands issued in one tick into one socket write per connection: each socket
 * is corked at its first command of the tick and uncorked on the next tick, so Node hands all
 * of them to the kernel in one writev. This is what ioredis's auto-pipelining buys, for the
 * commands gearbox sends itself with `sendCommand` (which auto-pipelining does not cover).
 */
import type { Duplex } from 'node:stream'

export class WriteBatcher {
  private readonly corked = new Set<Duplex>()
  private scheduled = false

  /** Corks `stream` until the next tick (no-op for a missing or destroyed stream). */
  hold(stream: Duplex | undefined): void {
    if (!stream || stream.destroyed || this.corked.has(stream)) return
    stream.cork()
    this.corked.add(stream)
    if (!this.scheduled) {
      this.scheduled = true
      process.nextTick(this.flush)
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false
    for (const stream of this.corked) stream.uncork()
    this.corked.clear()
  }
}
