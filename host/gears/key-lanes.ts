/**
 * The event queue of one KeysReader registration: per-key order, bounded size, and batches.
 *
 * Events go to one of {@link KEY_LANES} lanes by a hash of their key; a lane runs one execution
 * at a time, in arrival order, so the events of one key run in the order they happened while
 * different keys run in parallel. When a lane's execution ends, the next one takes every event
 * queued in that lane since (up to {@link MAX_EVENTS_PER_EXECUTION}, all of one shard) as the
 * records of ONE execution. Nothing waits to fill a batch: at a low event rate every execution has
 * one record, as in RedisGears; under load, batches amortise the cost of an execution (a realm
 * restore, two thread hand-offs) over many records, which is what lets a registration keep up
 * with thousands of events per second.
 *
 * What a batch changes, observably (README "Registrations"): the records of one batch run in one
 * interpreter, in order, so a global a step changes is seen by the next record of the same batch
 * (never by another batch: each starts from the session's saved realm); a limit (CPU, memory, wall)
 * that ends the execution fails every event of the batch; errors of single records stay theirs.
 * Counters stay per event: numTriggered counts events, numFailures the events whose record
 * failed (or all of a failed batch), run durations are per event (a batch's time shared out).
 */
import type { ShardInfo } from '../redis/types.js'
import type { HostOp } from '../runtime/handler.js'
import type { WireValue } from '../runtime/wire.js'

/** Lanes (executions in parallel) of one registration. */
export const KEY_LANES = 4
/** Records one execution takes at most. */
export const MAX_EVENTS_PER_EXECUTION = 128

/** A record read when the event arrived (readValue / keyTypes), or its failure. */
export type RecordRead = { readonly ok: true; readonly value: WireValue } | { readonly ok: false; readonly error: unknown }

export interface QueuedEvent {
  readonly shard: ShardInfo
  /** The record (null: filtered out by keyTypes), or its read in flight. */
  readonly record: WireValue | Promise<RecordRead>
  /**
   * Set when a server client's command caused the event and waits for its execution (gearbox
   * serve's command path): it runs alone, with these ops (override_reply), and `done` is called
   * once it finished (or was dropped).
   */
  readonly linked?: { readonly ops: Readonly<Record<string, HostOp>> | undefined; readonly done: () => void }
}

/** What the lanes run events with (the registry's side). */
export interface LaneSink {
  /** Runs one execution over `records` (all of `shard`; `ops`: a linked event's, which runs alone). */
  run(records: WireValue[], shard: ShardInfo, ops: Readonly<Record<string, HostOp>> | undefined): Promise<void>
  /** A record could not be read: the event failed without an execution. */
  readFailed(error: unknown): void
  /** False once the registration stopped (unregistered, closed): queued events are dropped. */
  active(): boolean
}

class Lane {
  items: QueuedEvent[] = []
  head = 0
  draining: Promise<void> | undefined

  get length(): number {
    return this.items.length - this.head
  }

  /** Up to `max` events from the head, all of the head's shard (stops at another shard); a linked event goes alone. */
  take(max: number): QueuedEvent[] {
    const first = this.items[this.head]
    if (first === undefined) return []
    let end = this.head + 1
    const limit = first.linked !== undefined ? end : Math.min(this.items.length, this.head + max)
    while (end < limit && this.items[end]!.shard.id === first.shard.id && this.items[end]!.linked === undefined) end++
    const batch = this.items.slice(this.head, end)
    this.head = end
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return batch
  }

  clear(): number {
    const dropped = this.length
    this.items = []
    this.head = 0
    return dropped
  }
}

export class KeyLanes {
  readonly #lanes: Lane[]
  /** Events queued or running. */
  #pending = 0

  constructor(private readonly sink: LaneSink) {
    this.#lanes = Array.from({ length: KEY_LANES }, () => new Lane())
  }

  get pending(): number {
    return this.#pending
  }

  /** Queues `event` of `key` (the caller checked the queue bound against {@link pending}). */
  push(key: string, event: QueuedEvent): void {
    const lane = this.#lanes[laneOf(key, this.#lanes.length)]!
    this.#pending++
    lane.items.push(event)
    lane.draining ??= this.#drain(lane)
  }

  /** Resolves once every lane stopped running (after the registration became inactive, its queued events are dropped). */
  async idle(): Promise<void> {
    await Promise.allSettled(this.#lanes.map((lane) => lane.draining))
  }

  async #drain(lane: Lane): Promise<void> {
    // Started from push(): let the caller's loop queue what arrived with this event first.
    await Promise.resolve()
    try {
      while (lane.length > 0) {
        if (!this.sink.active()) {
          for (let i = lane.head; i < lane.items.length; i++) lane.items[i]!.linked?.done()
          this.#pending -= lane.clear()
          return
        }
        const batch = lane.take(MAX_EVENTS_PER_EXECUTION)
        try {
          await this.#run(batch)
        } finally {
          this.#pending -= batch.length
          for (const event of batch) event.linked?.done()
        }
      }
    } finally {
      lane.draining = undefined
    }
  }

  async #run(batch: readonly QueuedEvent[]): Promise<void> {
    const records: WireValue[] = []
    for (const event of batch) {
      let record = event.record
      if (record instanceof Promise) {
        const read = await record
        if (!read.ok) {
          this.sink.readFailed(read.error)
          continue
        }
        record = read.value
      }
      if (record !== null) records.push(record) // null: keyTypes filtered it out
    }
    if (records.length === 0 || !this.sink.active()) return
    await this.sink.run(records, batch[0]!.shard, batch[0]!.linked?.ops)
  }
}

/** The lane of `key` (FNV-1a of its UTF-16 code units). */
function laneOf(key: string, lanes: number): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % lanes
}
