/**
 * Throwaway redis-server processes on free loopback ports, for the CLI's default mode and the
 * test helpers. Node-only (child_process, fs): nothing under sandbox/ or runtime/ imports this.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RedisServerMissingError, RedisServerStartError } from '../errors.js'

export interface RedisServerProcess {
  readonly host: '127.0.0.1'
  readonly port: number
  readonly url: string
  /** Stops the server (SIGTERM, then SIGKILL after 2 s) and removes its directory. Idempotent. */
  stop(): Promise<void>
}

export interface RedisServerOptions {
  /** Extra `redis-server` arguments, e.g. `['--cluster-enabled', 'yes']`. */
  readonly args?: readonly string[]
  /** Path to the binary. Default: `redis-server` from PATH. */
  readonly binary?: string
  /** How long to wait for the server to answer PING. Default 10 000 ms. */
  readonly readyTimeoutMs?: number
  /** A fixed port (e.g. to restart a server where clients expect it). Default: a free one. */
  readonly port?: number
}

/** True when a redis-server binary can be run. */
export function redisServerAvailable(binary = 'redis-server'): boolean {
  const r = spawnSync(binary, ['--version'], { stdio: 'ignore' })
  return r.status === 0
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port })
    let buf = ''
    const done = (ok: boolean): void => {
      sock.destroy()
      resolve(ok)
    }
    sock.setTimeout(500, () => done(false))
    sock.on('error', () => done(false))
    sock.on('connect', () => sock.write('PING\r\n'))
    sock.on('data', (d) => {
      buf += d.toString('latin1')
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'))
    })
  })
}

/** Servers not stopped yet, with their directories: killed and removed when the process exits. */
const live = new Map<ChildProcess, string>()
let exitHookInstalled = false
function killAllOnExit(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const [child, dir] of live) {
      child.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
  })
}

/** Starts a redis-server on a free loopback port (no persistence) and waits until it answers PING. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServerProcess> {
  const binary = options.binary ?? 'redis-server'
  if (!redisServerAvailable(binary)) throw new RedisServerMissingError()
  const deadline = Date.now() + (options.readyTimeoutMs ?? 10_000)
  // A port can be taken between freePort() and bind: retry a few times.
  for (let attempt = 0; ; attempt++) {
    const port = options.port ?? (await freePort())
    const dir = mkdtempSync(join(tmpdir(), 'gearbox-redis-'))
    const child = spawn(
      binary,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
        '--protected-mode', 'yes', '--loglevel', 'warning', ...(options.args ?? [])],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    live.set(child, dir)
    killAllOnExit()
    // A forgotten server must not keep the process alive: the exit hook above cleans it up.
    child.unref()
    ;(child.stderr as { unref?: () => void } | null)?.unref?.()
    let exited = false
    child.once('exit', () => {
      exited = true
      live.delete(child)
    })
    child.stderr?.resume()
    while (!exited && Date.now() < deadline) {
      if (await ping(port)) {
        let stopping: Promise<void> | undefined
        return {
          host: '127.0.0.1',
          port,
          url: `redis://127.0.0.1:${port}`,
          stop: () =>
            (stopping ??= new Promise<void>((resolve) => {
              const finish = (): void => {
                rmSync(dir, { recursive: true, force: true })
                resolve()
              }
              if (exited) return finish()
              const killer = setTimeout(() => child.kill('SIGKILL'), 2000)
              child.once('exit', () => {
                clearTimeout(killer)
                finish()
              })
              child.kill('SIGTERM')
            })),
        }
      }
      await new Promise((r) => setTimeout(r, 20))
    }
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
    if (!exited && Date.now() >= deadline) throw new RedisServerStartError(`redis-server on port ${port} did not answer PING in time`)
    if (attempt >= 3 || options.port !== undefined) {
      throw new RedisServerStartError(`redis-server exited at start (tried ${attempt + 1} port(s), last ${port})`)
    }
  }
}
