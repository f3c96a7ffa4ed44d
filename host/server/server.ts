/**
 * The RESP front of gearbox (`gearbox serve`, `Gearbox.serve`): a TCP server that speaks RESP2 and
 * RESP3, forwards ordinary commands to the backend Redis (forward.ts) and answers RG.* itself
 * (rg-commands.ts). Close drains: stop accepting, let running commands finish within a deadline,
 * then close every client.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { InvalidArgumentError } from '../errors.js'
import type { RedisBackend } from '../redis/types.js'
import { DEFAULT_MAX_ARRAY_LENGTH, DEFAULT_MAX_BULK_LENGTH, DEFAULT_MAX_INLINE_LENGTH } from '../resp/reader.js'
import { ClientSession } from './client.js'
import { CommandPath } from './command-path.js'
import { Forwarder } from './forward.js'
import type { ServerGears } from './rg-commands.js'

export interface ServerLimits {
  /** The most bytes one command may take (Redis' client-query-buffer-limit). Default 1 GiB. */
  readonly maxQueryBytes: number
  /** The longest bulk argument (proto-max-bulk-len). Default 512 MiB. */
  readonly maxBulkLength: number
  /** The most arguments of one command. Default 1024 × 1024. */
  readonly maxArrayLength: number
  /** The longest inline command. Default 64 KiB. */
  readonly maxInlineLength: number
  /** Replies a client has not read, in bytes, before it is disconnected. Default 64 MiB. */
  readonly maxOutputBytes: number
  /** Connected clients at most; more are answered an error and closed. Default 10 000. */
  readonly maxClients: number
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  maxQueryBytes: 1024 * 1024 * 1024,
  maxBulkLength: DEFAULT_MAX_BULK_LENGTH,
  maxArrayLength: DEFAULT_MAX_ARRAY_LENGTH,
  maxInlineLength: DEFAULT_MAX_INLINE_LENGTH,
  maxOutputBytes: 64 * 1024 * 1024,
  maxClients: 10_000,
}

export interface ServeOptions {
  /** TCP port; 0 (default) picks a free one. */
  readonly port?: number
  /** Address to listen on. Default 127.0.0.1. */
  readonly bind?: string
  /** Client limits; missing ones take {@link DEFAULT_SERVER_LIMITS}. */
  readonly limits?: Partial<ServerLimits>
  /** How long close() lets running commands finish, in ms. Default 10 000. */
  readonly drainMs?: number
  /** Where the server says what it did (a client dropped for its output buffer ...). Default: nowhere. */
  readonly log?: (line: string) => void
}

/** A running server. */
export interface ServerHandle {
  /** Where it listens. */
  readonly address: { readonly host: string; readonly port: number }
  /** Connected clients. */
  readonly clients: number
  /** Commands forwarded on the fast path, as the bytes the client sent (see client.ts); a statistic. */
  readonly forwardedAsBytes: number
  /** Stops accepting, lets running commands finish (up to `drainMs`), then closes every client. Idempotent. */
  close(): Promise<void>
}

/** What a client session needs of its server. */
export interface ServerContext {
  readonly limits: ServerLimits
  readonly gears: ServerGears
  readonly forwarder: Forwarder
  /** Hooks, linked commands and sync registrations; absent when the gears have none to offer. */
  readonly commandPath: CommandPath | undefined
  /** Counters the handle shows. */
  readonly stats: { forwardedAsBytes: number }
  redisVersion(): Promise<string>
  forget(client: ClientSession): void
  log(line: string): void
}

function checkLimits(limits: Partial<ServerLimits> | undefined): ServerLimits {
  const out: Record<string, number> = { ...DEFAULT_SERVER_LIMITS }
  for (const [key, value] of Object.entries(limits ?? {})) {
    if (!(key in DEFAULT_SERVER_LIMITS)) throw new InvalidArgumentError(`unknown server limit '${key}'`)
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      throw new InvalidArgumentError(`server limit ${key} must be a positive integer (got ${String(value)})`)
    }
    out[key] = value
  }
  return out as unknown as ServerLimits
}

/** Starts a RESP server in front of `backend`; resolves once it listens. */
export async function startServer(gears: ServerGears, backend: RedisBackend, options: ServeOptions = {}): Promise<ServerHandle> {
  const limits = checkLimits(options.limits)
  const port = options.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`port must be 0..65535 (got ${String(options.port)})`)
  const drainMs = options.drainMs ?? 10_000
  const forwarder = new Forwarder(backend)
  const commandPath = gears.commandPath === undefined ? undefined : new CommandPath(gears.commandPath, backend)
  const clients = new Set<ClientSession>()
  let nextId = 1
  let version: Promise<string> | undefined
  const context: ServerContext = {
    limits,
    gears,
    forwarder,
    commandPath,
    stats: { forwardedAsBytes: 0 },
    redisVersion: () =>
      (version ??= backend.call(['INFO', 'server'], { internal: true }).then(
        (reply) => /redis_version:([^\r\n]+)/.exec(reply instanceof Uint8Array ? new TextDecoder().decode(reply) : String(reply))?.[1] ?? 'unknown',
        () => 'unknown',
      )),
    forget: (client) => clients.delete(client),
    log: options.log ?? (() => {}),
  }
  const server: Server = createServer((socket: Socket) => {
    if (clients.size >= limits.maxClients) {
      socket.end('-ERR max number of clients reached\r\n')
      return
    }
    clients.add(new ClientSession(socket, context, nextId++))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, options.bind ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  // Hooks, commands= and sync registrations act from now on (the keyspace feed starts if they need it).
  try {
    await commandPath?.attach()
  } catch (error) {
    await new Promise<void>((resolve) => server.close(() => resolve()))
    throw error
  }
  const bound = server.address() as AddressInfo
  let closing: Promise<void> | undefined
  return {
    address: { host: bound.address, port: bound.port },
    get clients() {
      return clients.size
    },
    get forwardedAsBytes() {
      return context.stats.forwardedAsBytes
    },
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()))
        // Drain: commands running (an RG.JSEXECUTE, a blocking read) get until the deadline.
        const deadline = Date.now() + drainMs
        const busy = (): boolean => [...clients].some((c) => c.busy) || gears.executions.list().some((e) => e.status === 'running')
        while (busy() && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
        for (const client of [...clients]) client.end()
        await commandPath?.detach()
        await stopped
        await forwarder.close()
      })()
      return closing
    },
  }
}
