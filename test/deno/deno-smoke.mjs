// Runs under Deno (spawned by deno.test.ts): the library API end to end, through Deno's
// worker threads and its Node compatibility layer. Prints one JSON line with what it saw.
import { Gearbox } from '../../dist/host/index.js'

const url = Deno.args[0]
const gearbox = await Gearbox.create({ redis: url, workers: 1 })
try {
  const ok = await gearbox.execute("execute('SET', 'deno:k', 'from deno'); execute('INCR', 'deno:n')")
  // A refused command reaches the guest as a GearsError carrying the host's code.
  await gearbox.execute("try { execute('FLUSHALL') } catch (e) { execute('SET', 'deno:denied', e.code) }")
  let cpu = ''
  try {
    await gearbox.execute('for (;;) {}', {})
  } catch (err) {
    cpu = err.code
  }
  console.log(JSON.stringify({ runtime: typeof Deno.version === 'object' ? 'deno' : 'other', ok, cpu }))
} finally {
  await gearbox.close()
}
