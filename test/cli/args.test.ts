import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseArgs, USAGE } from '../../host/cli/args.js'
import { InvalidArgumentError } from '../../host/errors.js'

function usageError(argv: string[]): InvalidArgumentError {
  try {
    parseArgs(argv)
  } catch (error) {
    assert.instance(error, InvalidArgumentError)
    return error as InvalidArgumentError
  }
  throw new Error(`parseArgs(${JSON.stringify(argv)}) did not throw`)
}

test('run with a file and defaults', () => {
  assert.equal(parseArgs(['run', 'f.js']), {
    command: 'run',
    file: 'f.js',
    redis: undefined,
    cluster: [],
    memoryBytes: undefined,
    cpuMs: undefined,
    wallMs: undefined,
    workers: undefined,
    json: false,
  })
})

test('run with every option, in both --name value and --name=value forms', () => {
  const args = parseArgs([
    'run', '--redis', 'redis://127.0.0.1:7000', 'f.js', '--memory-bytes=1048576', '--cpu-ms', '100',
    '--wall-ms=2000', '--workers', '3', '--json',
  ])
  assert.equal(args, {
    command: 'run',
    file: 'f.js',
    redis: 'redis://127.0.0.1:7000',
    cluster: [],
    memoryBytes: 1048576,
    cpuMs: 100,
    wallMs: 2000,
    workers: 3,
    json: true,
  })
})

test('--cluster repeats into a seed list', () => {
  const args = parseArgs(['run', 'f.js', '--cluster', 'redis://a:1', '--cluster=redis://b:2'])
  assert.ok(args.command === 'run')
  assert.equal(args.cluster, ['redis://a:1', 'redis://b:2'])
})

test('help forms', () => {
  assert.equal(parseArgs(['--help']), { command: 'help' })
  assert.equal(parseArgs(['-h']), { command: 'help' })
  assert.equal(parseArgs(['help']), { command: 'help' })
  assert.equal(parseArgs(['run', 'f.js', '--help']), { command: 'help' })
  assert.match(USAGE, 'gearbox run <file.js>')
})

test('usage errors name what is wrong', () => {
  assert.is(usageError([]).message, 'missing command')
  assert.is(usageError(['deploy']).message, "unknown command 'deploy'")
  assert.is(usageError(['run']).message, 'run expects a script file: gearbox run <file.js>')
  assert.is(usageError(['run', 'a.js', 'b.js']).message, "unexpected argument 'b.js' (one script file per run)")
  assert.is(usageError(['run', 'a.js', '--redis']).message, '--redis expects a value')
  assert.is(usageError(['run', 'a.js', '--redis', '--json']).message, '--redis expects a value')
  assert.is(usageError(['run', 'a.js', '--cpu-ms', '0']).message, "--cpu-ms expects a positive integer, got '0'")
  assert.is(usageError(['run', 'a.js', '--wall-ms', '1.5']).message, "--wall-ms expects a positive integer, got '1.5'")
  assert.is(usageError(['run', 'a.js', '--workers=x']).message, "--workers expects a positive integer, got 'x'")
  assert.is(usageError(['run', 'a.js', '--json=1']).message, '--json takes no value')
  assert.is(usageError(['run', 'a.js', '--nope', '1']).message, "unknown option '--nope'")
  assert.is(usageError(['run', 'a.js', '--redis', 'r', '--redis', 's']).message, '--redis given twice')
  assert.is(
    usageError(['run', 'a.js', '--redis', 'redis://x:1', '--cluster', 'redis://y:2']).message,
    'give either --redis or --cluster, not both',
  )
  assert.is(usageError(['run', 'a.js', '--x']).code, 'ERR_GEARBOX_INVALID_ARGUMENT')
})

test('serve: defaults, every option, and its usage errors', () => {
  assert.equal(parseArgs(['serve']), {
    command: 'serve', port: 6380, bind: '127.0.0.1', redis: undefined, cluster: [],
    memoryBytes: undefined, cpuMs: undefined, wallMs: undefined, workers: undefined,
  })
  assert.equal(parseArgs(['serve', '--port=0', '--bind', '0.0.0.0', '--cluster', 'redis://a:1', '--cluster', 'redis://b:2', '--workers', '3', '--cpu-ms=100']), {
    command: 'serve', port: 0, bind: '0.0.0.0', redis: undefined, cluster: ['redis://a:1', 'redis://b:2'],
    memoryBytes: undefined, cpuMs: 100, wallMs: undefined, workers: 3,
  })
  assert.match(usageError(['serve', '--port', '70000']).message, /--port expects a port number/)
  assert.match(usageError(['serve', 'file.js']).message, /serve takes options only/)
  assert.match(usageError(['serve', '--redis', 'redis://a', '--cluster', 'redis://b']).message, /either --redis or --cluster/)
  assert.match(usageError(['serve', '--json']).message, /--json expects a value|unknown option/)
  assert.match(USAGE, /gearbox serve/)
})

test.run()
