#!/usr/bin/env node
/**
 * The `gearbox` command. `gearbox run <file.js>` runs a script once against --redis, --cluster,
 * or a throwaway redis-server, and prints the reply; see {@link USAGE}.
 */
import { readFile } from 'node:fs/promises'
import { extname } from 'node:path'
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { GearboxError, GuestError, InvalidArgumentError } from '../errors.js'
import { Gearbox, type GearboxOptions } from '../gearbox.js'
import { startRedisCluster, type RedisClusterProcess } from '../platform/redis-cluster.js'
import { startRedisServer, type RedisServerProcess } from '../platform/redis-server.js'
import { createRedisBackend } from '../redis/index.js'
import type { Limits } from '../sandbox/types.js'
import { parseArgs, USAGE, type RunArgs, type ServeArgs } from './args.js'
import { loadDataFile } from './load-data.js'
import { renderJson, renderPlain } from './render.js'
import { runScript } from './run-script.js'

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  stdout(text: string): void
  stderr(text: string): void
  /** stderr is a terminal: show progress there. Default false. */
  readonly progress?: boolean
}

const processIo: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  progress: process.stderr.isTTY === true,
}

/** Runs the CLI with `argv` (without node and script paths); resolves with the exit status. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  try {
    const args = parseArgs(argv)
    if (args.command === 'help') {
      io.stdout(`${USAGE}\n`)
      return 0
    }
    if (args.command === 'serve') await serve(args, io)
    else await run(args, io)
    return 0
  } catch (error) {
    io.stderr(`${describeError(error)}\n`)
    if (error instanceof InvalidArgumentError && isUsageError(argv)) io.stderr(`\n${USAGE}\n`)
    return 1
  }
}

async function run(args: RunArgs, io: CliIo): Promise<void> {
  const language = args.language ?? (extname(args.file) === '.py' ? 'python' : 'js')
  let source: string
  try {
    source = await readFile(args.file, 'utf8')
  } catch (error) {
    throw new InvalidArgumentError(`cannot read ${args.file}: ${(error as Error).message}`)
  }
  const limits: Partial<Limits> = {
    ...(args.memoryBytes === undefined ? {} : { memoryBytes: args.memoryBytes }),
    ...(args.cpuMs === undefined ? {} : { cpuMs: args.cpuMs }),
    ...(args.wallMs === undefined ? {} : { wallMs: args.wallMs }),
  }
  let server: RedisServerProcess | undefined
  let cluster: RedisClusterProcess | undefined
  let gearbox: Gearbox | undefined
  try {
    let redis: string | { cluster: readonly string[] }
    if (args.redis !== undefined) redis = args.redis
    else if (args.cluster.length > 0) redis = { cluster: args.cluster }
    else if (args.localCluster === true) {
      cluster = await startRedisCluster()
      redis = { cluster: cluster.urls }
    } else {
      server = await startRedisServer()
      redis = server.url
    }
    gearbox = await Gearbox.create({
      redis,
      limits,
      logger: { log: (_level, message) => io.stderr(`GEARS: ${message}\n`) },
      ...(args.workers === undefined ? {} : { workers: args.workers }),
    })
    if (args.load !== undefined) await loadFiles(redis, args.load, io)
    const reply = await runScript(gearbox, source, { language, profile: args.profile === true, progress: io.progress === true }, io)
    io.stdout(`${args.json ? renderJson(reply) : renderPlain(reply)}\n`)
  } finally {
    await gearbox?.close()
    await server?.stop()
    await cluster?.stop()
  }
}

/**
 * `gearbox serve`: a RESP server until SIGTERM/SIGINT (or `stop` resolves, for tests), then a
 * drain: stop accepting, let running executions finish (10 s at most), close.
 */
export async function serve(args: ServeArgs, io: CliIo, stop?: Promise<void>): Promise<void> {
  const limits: Partial<Limits> = {
    ...(args.memoryBytes === undefined ? {} : { memoryBytes: args.memoryBytes }),
    ...(args.cpuMs === undefined ? {} : { cpuMs: args.cpuMs }),
    ...(args.wallMs === undefined ? {} : { wallMs: args.wallMs }),
  }
  let server: RedisServerProcess | undefined
  let gearbox: Gearbox | undefined
  try {
    let redis: string | { cluster: readonly string[] }
    let backendName: string
    if (args.redis !== undefined) {
      redis = args.redis
      backendName = `redis ${args.redis.replace(/\/\/[^@/]*@/, '//')}`
    } else if (args.cluster.length > 0) {
      redis = { cluster: args.cluster }
      backendName = `cluster ${args.cluster.map((u) => u.replace(/\/\/[^@/]*@/, '//')).join(',')}`
    } else {
      server = await startRedisServer()
      redis = server.url
      backendName = `a throwaway redis-server at ${server.url}`
    }
    gearbox = await Gearbox.create({
      redis,
      limits,
      logger: { log: (_level, message) => io.stderr(`GEARS: ${message}\n`) },
      ...(args.workers === undefined ? {} : { workers: args.workers }),
    })
    const handle = await gearbox.serve({ port: args.port, bind: args.bind, log: (line) => io.stderr(`${line}\n`) })
    io.stdout(`gearbox serve: accepting connections on ${handle.address.host}:${handle.address.port}, backend ${backendName}\n`)
    await (stop ??
      new Promise<void>((resolve) => {
        process.once('SIGTERM', () => resolve())
        process.once('SIGINT', () => resolve())
      }))
    io.stderr('gearbox serve: draining\n')
    await handle.close()
  } finally {
    await gearbox?.close()
    await server?.stop()
  }
}

/** --load: writes each file's keys (see load-data.ts) and says what it wrote on stderr. */
async function loadFiles(redis: GearboxOptions['redis'] & (string | { cluster: readonly string[] }), files: readonly string[], io: CliIo): Promise<void> {
  const backend = createRedisBackend(redis)
  try {
    for (const file of files) {
      const { prefix, keys } = await loadDataFile(backend, file)
      io.stderr(`loaded ${keys} keys from ${file} (${prefix}:*)\n`)
    }
  } finally {
    await backend.close()
  }
}

/** `CODE: message`; for a guest error `CODE: Name: message` and the guest's stack below. */
function describeError(error: unknown): string {
  if (error instanceof GuestError) {
    const stack = error.guestStack?.trimEnd() ?? ''
    return `${error.code}: ${error.guestName}: ${error.message}${stack === '' ? '' : `\n${stack}`}`
  }
  if (error instanceof GearboxError) return `${error.code}: ${error.message}`
  return `ERR_GEARBOX_INTERNAL: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`
}

/** Usage errors come from the argument parser, before a file is read. */
function isUsageError(argv: readonly string[]): boolean {
  try {
    parseArgs(argv)
    return false
  } catch {
    return true
  }
}

// Run when executed as a program (bin link or `node dist/host/cli/main.js`), not when imported.
function invokedAsProgram(): boolean {
  const invoked = process.argv[1]
  if (invoked === undefined) return false
  try {
    return realpathSync(invoked) === fileURLToPath(import.meta.url)
  } catch {
    return false
  }
}
if (invokedAsProgram()) {
  main(process.argv.slice(2)).then((status) => {
    process.exitCode = status
  })
}
