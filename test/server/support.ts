/** Helpers of the gearbox serve tests: a served Gearbox, raw sockets, redis-cli. */
import { execFile } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { Gearbox, type GearboxOptions } from '../../host/index.js'
import type { ServeOptions, ServerHandle } from '../../host/server/index.js'

export interface Served {
  readonly gearbox: Gearbox
  readonly handle: ServerHandle
  readonly port: number
  close(): Promise<void>
}

export async function serveGearbox(redis: GearboxOptions['redis'], options: ServeOptions = {}, gearboxOptions: Partial<GearboxOptions> = {}): Promise<Served> {
  const gearbox = await Gearbox.create({ redis, workers: 2, logger: { log: () => {} }, ...gearboxOptions })
  const handle = await gearbox.serve({ port: 0, ...options })
  return {
    gearbox,
    handle,
    port: handle.address.port,
    close: async () => {
      await handle.close()
      await gearbox.close()
    },
  }
}

/** A raw connection: write bytes, read what comes back. */
export class RawClient {
  readonly socket: Socket
  private received = Buffer.alloc(0)
  private waiters: (() => void)[] = []
  closed = false

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk])
      for (const w of this.waiters.splice(0)) w()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      for (const w of this.waiters.splice(0)) w()
    })
  }

  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => resolve(new RawClient(socket)))
      socket.once('error', reject)
    })
  }

  write(data: string | Uint8Array): void {
    this.socket.write(data)
  }

  /** Waits (at most `timeoutMs`) until the received text satisfies `done` or the socket closed; returns the text. */
  async until(done: (text: string) => boolean, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    while (!done(this.text()) && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()))
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return this.text()
  }

  /** Waits for the server to close the connection (at most `timeoutMs`). */
  async closedByServer(timeoutMs = 5000): Promise<boolean> {
    await this.until(() => false, timeoutMs)
    return this.closed
  }

  text(): string {
    return this.received.toString('latin1')
  }

  clear(): void {
    this.received = Buffer.alloc(0)
  }

  close(): void {
    this.socket.destroy()
  }
}

/** Runs redis-cli against the server; resolves with its stdout. */
export function redisCli(port: number, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('redis-cli', ['-p', String(port), ...args], { timeout: 20_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`redis-cli ${args.join(' ')}: ${error.message} ${stderr}`))
      else resolve(stdout)
    })
    if (input !== undefined) child.stdin?.end(input)
  })
}
