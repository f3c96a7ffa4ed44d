/**
 * The layering rules of DESIGN.md §2, checked on the source: imports flow one way, and the code
 * edge runtimes use (host/sandbox, host/runtime, and everything they import) needs no Node
 * built-ins and no Node-only package. Type-only imports are erased and do not count.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'uvu'
import * as assert from 'uvu/assert'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const hostDir = join(root, 'host')

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return sourceFiles(path)
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : []
  })
}

/** Runtime (not type-only) import specifiers of a TypeScript file. */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const out: string[] = []
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?([^'"]*?)\s*from\s+['"]([^'"]+)['"]/gms)) {
    if (m[2] !== undefined) continue
    out.push(m[4]!)
  }
  for (const m of text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) out.push(m[1]!)
  return out
}

/** A relative specifier resolved to its .ts source; undefined for packages and built-ins. */
function resolveLocal(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined
  return resolve(dirname(from), spec.replace(/\.js$/, '.ts'))
}

const files = sourceFiles(hostDir)
const layerOf = (file: string): string => relative(hostDir, file).split('/')[0]!.replace(/\.ts$/, '')

test('imports flow one way: cli/server → gears → runtime → sandbox, runtime → redis → cluster, redis/server → resp', () => {
  // What each folder may import (besides itself, host/errors.ts and the generated guest bundle).
  const allowed: Record<string, readonly string[]> = {
    sandbox: [],
    cluster: [],
    redis: ['cluster', 'resp'],
    resp: [],
    server: ['gears', 'runtime', 'sandbox', 'redis', 'cluster', 'resp'],
    runtime: ['sandbox', 'redis', 'cluster'],
    gears: ['runtime', 'sandbox', 'redis', 'cluster', 'generated'],
    // The Node platform's worker side answers direct calls (platform/direct-redis.ts) as the runtime would.
    platform: ['sandbox', 'runtime', 'redis', 'resp', 'cluster'],
  }
  const violations: string[] = []
  for (const file of files) {
    const layer = layerOf(file)
    const may = allowed[layer]
    if (may === undefined) continue
    for (const spec of runtimeImports(file)) {
      const target = resolveLocal(file, spec)
      if (target === undefined) continue
      const to = layerOf(target)
      if (to === layer || to === 'errors' || may.includes(to)) continue
      violations.push(`${relative(root, file)} imports ${relative(root, target)}`)
    }
  }
  assert.equal(violations, [])
})

test('host/sandbox and host/runtime need no Node built-ins or Node-only packages, transitively', () => {
  const nodeOnly = (spec: string): boolean => spec.startsWith('node:') || spec === 'ioredis' || /^(fs|net|os|path|worker_threads|child_process|module)$/.test(spec)
  const seen = new Set<string>()
  const violations: string[] = []
  const visit = (file: string, via: string): void => {
    if (seen.has(file)) return
    seen.add(file)
    for (const spec of runtimeImports(file)) {
      if (nodeOnly(spec)) violations.push(`${relative(root, file)} imports ${spec} (reached from ${via})`)
      const target = resolveLocal(file, spec)
      if (target !== undefined) visit(target, via)
    }
  }
  for (const file of files) {
    const layer = layerOf(file)
    if (layer === 'sandbox' || layer === 'runtime') visit(file, relative(root, file))
  }
  assert.ok(seen.size > 20, `walked ${seen.size} files`)
  assert.equal(violations, [])
})

test('only host/sandbox/engines/quickjs/ knows QuickJS: no other host file imports or names its packages', () => {
  const engineDir = join(hostDir, 'sandbox', 'engines', 'quickjs')
  const quickjsPackage = /^(quickjs-emscripten|quickjs-emscripten-core|@jitl\/.*)$/
  // Any import or string literal naming the packages (a require.resolve of the .wasm counts too).
  const named = /['"](?:quickjs-emscripten(?:-core)?|@jitl\/[^'"]*)['"]/
  const inside: string[] = []
  const violations: string[] = []
  for (const file of files) {
    const text = readFileSync(file, 'utf8')
    const imports = [...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gms)].map((m) => m[1]!)
    const uses = imports.some((spec) => quickjsPackage.test(spec)) || named.test(text)
    if (file.startsWith(engineDir + '/')) {
      if (uses) inside.push(relative(root, file))
      continue
    }
    if (uses) violations.push(relative(root, file))
  }
  assert.equal(violations, [])
  // The check is live: the engine folder itself does use the packages.
  assert.ok(inside.includes('host/sandbox/engines/quickjs/engine.ts'), `QuickJS users inside the folder: ${inside.join(', ')}`)
})

test('the checks see real imports (a guard against a parser that finds nothing)', () => {
  const handler = join(hostDir, 'runtime', 'handler.ts')
  assert.ok(runtimeImports(handler).includes('../cluster/hashtags.js'))
  assert.not.ok(runtimeImports(handler).includes('../sandbox/types.js'), 'type-only imports are skipped')
})

test.run()
