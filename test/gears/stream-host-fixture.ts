/**
 * A gearbox host process for the stream kill tests (streams-kill.test.ts): creates a Gearbox on
 * the Redis of argv[2] (`redis://...`, or `cluster:<url>,<url>,...`) and registers a stream
 * processor on prefix argv[3] (batch argv[4], claimIdleMs argv[5]) that counts each entry id it
 * processes in the hash `seen:<stream>` (HINCRBY: duplicates show as counts above 1). Prints
 * `ready` once registered, then runs until killed (SIGTERM closes it).
 */
import { Gearbox } from '../../host/gearbox.js'

const [target = '', prefix = '', batch = '1', claimIdleMs = '1000'] = process.argv.slice(2)
const redis = target.startsWith('cluster:') ? { cluster: target.slice('cluster:'.length).split(',') } : target
const gearbox = await Gearbox.create({ redis, workers: 1, logger: { log: () => undefined } })
await gearbox.execute(
  `GB('StreamReader').foreach((r) => execute('HINCRBY', 'seen:' + r.key, r.id, 1)).register(${JSON.stringify(prefix)}, { batch: ${Number(batch)}, claimIdleMs: ${Number(claimIdleMs)} })`,
)
process.stdout.write('ready\n')
process.on('SIGTERM', () => {
  void gearbox.close().then(() => process.exit(0))
})
// Keeps the process alive until it is killed.
setInterval(() => undefined, 60_000)
