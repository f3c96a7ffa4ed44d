/**
 * The anchors gearbox is compared with, measured in the same process run: a bare
 * quickjs-emscripten runtime+context+eval, @sebastianwessel/quickjs's runSandboxed, and raw ioredis.
 */
import { newQuickJSWASMModuleFromVariant, type QuickJSSyncVariant } from 'quickjs-emscripten-core'
import { loadQuickJs } from '@sebastianwessel/quickjs'
import type { Redis } from 'ioredis'

/** The release-sync variant gearbox runs on. Its types describe the CJS build; at run time the ESM default export is the variant. */
async function releaseSyncVariant(): Promise<QuickJSSyncVariant> {
  const m = (await import('@jitl/quickjs-wasmfile-release-sync')) as unknown as { default: unknown }
  const d = m.default as { default?: QuickJSSyncVariant } & QuickJSSyncVariant
  return d.default ?? d
}

/** One fresh runtime + context + evalCode + dispose in an already loaded module (the cheapest fresh interpreter). */
export async function bareQuickJS(): Promise<() => void> {
  const mod = await newQuickJSWASMModuleFromVariant(await releaseSyncVariant())
  return () => {
    const rt = mod.newRuntime()
    rt.setMaxStackSize(256 * 1024)
    const ctx = rt.newContext()
    const r = ctx.evalCode('1 + 1')
    if (r.error) {
      r.error.dispose()
      throw new Error('bare quickjs eval failed')
    }
    if (ctx.getNumber(r.value) !== 2) throw new Error('bare quickjs returned a wrong value')
    r.value.dispose()
    ctx.dispose()
    rt.dispose()
  }
}

/** @sebastianwessel/quickjs 3.1.0: one runSandboxed call per execution, on the same QuickJS build as gearbox. */
export async function wesselQuickJS(): Promise<() => Promise<void>> {
  const { runSandboxed } = await loadQuickJs(await releaseSyncVariant())
  return async () => {
    const r = await runSandboxed(async ({ evalCode }) => evalCode('export default 1 + 1'), {
      executionTimeout: 5000,
    })
    if (!r.ok || r.data !== 2) throw new Error(`wessel quickjs failed: ${JSON.stringify(r)}`)
  }
}

/** `n` sequential awaited GETs on one ioredis connection. */
export function rawGets(redis: Redis, key: string, n: number): () => Promise<void> {
  return async () => {
    for (let i = 0; i < n; i++) await redis.get(key)
  }
}

/** The same GETs done server-side in one Lua EVAL: the floor no client-side runtime can reach. */
export function luaGets(redis: Redis, key: string, n: number): () => Promise<void> {
  const script = `local v for i = 1, ${n} do v = redis.call('GET', KEYS[1]) end return v`
  return async () => {
    await redis.eval(script, 1, key)
  }
}
