/** Command-line parsing for `gearbox`: no I/O here, so it is tested on its own. */
import { InvalidArgumentError } from '../errors.js'

export const USAGE = `Usage:
  gearbox run <file.js> [options]   run a RedisGears function script once and print its reply (file.py: Python)
  gearbox serve [options]           serve RESP: RG.* commands here, every other command to Redis
  gearbox --help                    show this text

Options of run:
  --redis <url>          Redis to run against (redis://host:port)
  --cluster <url>        a Redis Cluster seed node; repeat for more seeds
                         (without --redis/--cluster a throwaway redis-server is started on a
                         free loopback port and stopped afterwards)
  --local-cluster        run against a throwaway 3-master Redis Cluster on loopback ports
                         (started for this run and stopped afterwards)
  --load <file>          write a data file to Redis first; repeat for more files:
                         name.txt -> string keys name:<line> (one per non-empty line),
                         name.csv -> hashes name:<row> with the header's field names
  --profile              measure the run()'s steps and print their durations to stderr
  --language <js|python> the script's language (default: python for a .py file, else js)
  --memory-bytes <n>     guest memory limit in bytes (limits.memoryBytes)
  --cpu-ms <n>           guest CPU time limit in milliseconds (limits.cpuMs)
  --wall-ms <n>          execution wall-time limit in milliseconds (limits.wallMs)
  --workers <n>          sandbox worker threads
  --json                 print the reply as JSON (bigints as decimal strings, bytes as {"base64": ...})

Options of serve (and --redis, --cluster, --memory-bytes, --cpu-ms, --wall-ms, --workers as above):
  --port <n>             TCP port to listen on (default 6380; 0 picks a free one)
  --bind <addr>          address to listen on (default 127.0.0.1)
serve prints one line when it accepts connections; SIGTERM or SIGINT drains it (stops accepting,
lets running executions finish for up to 10 s) and exits.

log() lines go to stderr as "GEARS: <message>"; the reply goes to stdout. A script that calls
run() prints [results, errors]; on a terminal, stderr shows the records read while it runs.
On failure gearbox prints "CODE: message" to stderr and exits with status 1.`

export interface RunArgs {
  readonly command: 'run'
  readonly file: string
  readonly redis: string | undefined
  readonly cluster: readonly string[]
  readonly memoryBytes: number | undefined
  readonly cpuMs: number | undefined
  readonly wallMs: number | undefined
  readonly workers: number | undefined
  readonly json: boolean
  /** --load files, in order (absent when none). */
  readonly load?: readonly string[]
  /** --local-cluster (absent when not given). */
  readonly localCluster?: true
  /** --profile (absent when not given). */
  readonly profile?: true
  /** --language (absent when not given: the file's extension decides). */
  readonly language?: 'js' | 'python'
}

export interface ServeArgs {
  readonly command: 'serve'
  readonly port: number
  readonly bind: string
  readonly redis: string | undefined
  readonly cluster: readonly string[]
  readonly memoryBytes: number | undefined
  readonly cpuMs: number | undefined
  readonly wallMs: number | undefined
  readonly workers: number | undefined
}

export const DEFAULT_SERVE_PORT = 6380

export type CliArgs = RunArgs | ServeArgs | { readonly command: 'help' }

const NUMBER_OPTIONS = {
  '--memory-bytes': 'memoryBytes',
  '--cpu-ms': 'cpuMs',
  '--wall-ms': 'wallMs',
  '--workers': 'workers',
} as const

type NumberOption = keyof typeof NUMBER_OPTIONS

function isNumberOption(name: string): name is NumberOption {
  return Object.prototype.hasOwnProperty.call(NUMBER_OPTIONS, name)
}

function usageError(message: string): InvalidArgumentError {
  return new InvalidArgumentError(message)
}

/** The value of option `rest[i]`: after its `=`, or the next argument (which must not be an option). */
function optionValue(rest: readonly string[], i: number, name: string): string {
  const arg = rest[i]!
  const eq = arg.indexOf('=')
  if (eq !== -1) return arg.slice(eq + 1)
  const next = rest[i + 1]
  if (next === undefined || next.startsWith('--')) throw usageError(`${name} expects a value`)
  return next
}

function positiveInteger(name: string, text: string): number {
  const value = /^[0-9]+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(value) || value <= 0) throw usageError(`${name} expects a positive integer, got '${text}'`)
  return value
}

/** Parses `argv` (without the node and script paths). Throws InvalidArgumentError on bad usage. */
export function parseArgs(argv: readonly string[]): CliArgs {
  if (argv.length === 0) throw usageError('missing command')
  if (argv.includes('--help') || argv.includes('-h') || argv[0] === 'help') return { command: 'help' }
  const [command, ...rest] = argv
  if (command === 'serve') return parseServeArgs(rest)
  if (command !== 'run') throw usageError(`unknown command '${command}'`)

  let file: string | undefined
  let redis: string | undefined
  const cluster: string[] = []
  const numbers: Partial<Record<(typeof NUMBER_OPTIONS)[NumberOption], number>> = {}
  let json = false
  const load: string[] = []
  let language: 'js' | 'python' | undefined
  const flags = { localCluster: false, profile: false }

  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    if (!arg.startsWith('--')) {
      if (file !== undefined) throw usageError(`unexpected argument '${arg}' (one script file per run)`)
      file = arg
      continue
    }
    const eq = arg.indexOf('=')
    const name = eq === -1 ? arg : arg.slice(0, eq)
    if (name === '--json') {
      if (eq !== -1) throw usageError('--json takes no value')
      json = true
      continue
    }
    if (name === '--local-cluster' || name === '--profile') {
      if (eq !== -1) throw usageError(`${name} takes no value`)
      flags[name === '--profile' ? 'profile' : 'localCluster'] = true
      continue
    }
    const value = optionValue(rest, i, name)
    if (eq === -1) i++
    if (name === '--redis') {
      if (redis !== undefined) throw usageError('--redis given twice')
      redis = value
    } else if (name === '--cluster') {
      cluster.push(value)
    } else if (name === '--load') {
      load.push(value)
    } else if (name === '--language') {
      if (value !== 'js' && value !== 'python') throw usageError(`--language expects js or python, got '${value}'`)
      language = value
    } else if (isNumberOption(name)) {
      numbers[NUMBER_OPTIONS[name]] = positiveInteger(name, value)
    } else {
      throw usageError(`unknown option '${name}'`)
    }
  }
  if (file === undefined) throw usageError('run expects a script file: gearbox run <file.js>')
  if (redis !== undefined && cluster.length > 0) throw usageError('give either --redis or --cluster, not both')
  if (flags.localCluster && (redis !== undefined || cluster.length > 0)) {
    throw usageError('--local-cluster starts its own cluster: leave out --redis and --cluster')
  }
  return {
    command: 'run',
    file,
    redis,
    cluster,
    memoryBytes: numbers.memoryBytes,
    cpuMs: numbers.cpuMs,
    wallMs: numbers.wallMs,
    workers: numbers.workers,
    json,
    ...(load.length > 0 ? { load } : {}),
    ...(flags.localCluster ? { localCluster: true as const } : {}),
    ...(flags.profile ? { profile: true as const } : {}),
    ...(language === undefined ? {} : { language }),
  }
}

function parseServeArgs(rest: readonly string[]): ServeArgs {
  let redis: string | undefined
  let port = DEFAULT_SERVE_PORT
  let bind = '127.0.0.1'
  const cluster: string[] = []
  const numbers: Partial<Record<(typeof NUMBER_OPTIONS)[NumberOption], number>> = {}
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    if (!arg.startsWith('--')) throw usageError(`unexpected argument '${arg}' (serve takes options only)`)
    const eq = arg.indexOf('=')
    const name = eq === -1 ? arg : arg.slice(0, eq)
    const value = optionValue(rest, i, name)
    if (eq === -1) i++
    if (name === '--redis') {
      if (redis !== undefined) throw usageError('--redis given twice')
      redis = value
    } else if (name === '--cluster') cluster.push(value)
    else if (name === '--port') {
      const n = /^[0-9]+$/.test(value) ? Number(value) : NaN
      if (!Number.isInteger(n) || n > 65535) throw usageError(`--port expects a port number 0..65535, got '${value}'`)
      port = n
    } else if (name === '--bind') bind = value
    else if (isNumberOption(name)) numbers[NUMBER_OPTIONS[name]] = positiveInteger(name, value)
    else throw usageError(`unknown option '${name}' for serve`)
  }
  if (redis !== undefined && cluster.length > 0) throw usageError('give either --redis or --cluster, not both')
  return {
    command: 'serve',
    port,
    bind,
    redis,
    cluster,
    memoryBytes: numbers.memoryBytes,
    cpuMs: numbers.cpuMs,
    wallMs: numbers.wallMs,
    workers: numbers.workers,
  }
}
