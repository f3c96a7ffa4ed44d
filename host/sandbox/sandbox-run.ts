/** Main side: the pool's record of one sandbox run, from start() until its result settles. */
import type { GearboxError } from '../errors.js'
import type { HostHandler, SandboxJob } from './types.js'

export class SandboxRun {
  readonly result: Promise<string>
  private resolveResult!: (value: string) => void
  private rejectResult!: (error: GearboxError) => void
  private done = false
  /** Epoch ms when a worker started it (the wall limit counts from here). */
  startedAtMs = 0
  /** Set while a worker runs it: ends it from the main side (abort). */
  stopRunning: ((error: GearboxError) => void) | undefined

  constructor(
    readonly id: number,
    readonly job: SandboxJob,
    readonly host: HostHandler,
    private readonly onSettled: () => void,
  ) {
    this.result = new Promise<string>((resolve, reject) => {
      this.resolveResult = resolve
      this.rejectResult = reject
    })
  }

  get settled(): boolean {
    return this.done
  }

  resolve(value: string): void {
    if (this.done) return
    this.done = true
    this.resolveResult(value)
    this.onSettled()
  }

  reject(error: GearboxError): void {
    if (this.done) return
    this.done = true
    this.rejectResult(error)
    this.onSettled()
  }
}
