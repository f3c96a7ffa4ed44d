// A first gearbox function: writes a few keys, reads them back, and logs what it found.
// Run it with `gearbox run examples/hello.js` (a throwaway Redis) or add `--redis redis://host:port`.
// log() lines are printed as "GEARS: ..." on stderr; the script's reply on stdout: the
// [results, errors] of the batch run at the end, which reads the hashes back.

// Keys tagged with hashtag() live on the shard this execution runs on (any key works standalone).
const prefix = `{${hashtag()}}hello:`

const visitors = ['ada', 'grace', 'linus']
for (const name of visitors) {
  execute('HSET', prefix + name, 'name', name, 'visits', 1)
}

// Count one more visit for ada, atomically: read-modify-write that no concurrent writer can undo.
const visits = atomic(() => {
  const current = Number(execute('HGET', prefix + 'ada', 'visits'))
  execute('HSET', prefix + 'ada', 'visits', current + 1)
  return current + 1
})

for (const name of visitors) {
  const [storedName, storedVisits] = execute('HMGET', prefix + name, 'name', 'visits')
  log(`${storedName} has visited ${storedVisits} time(s)`)
}
log(`ada's visits after the atomic update: ${visits}`)
log(`keys written: ${execute('EXISTS', ...visitors.map((name) => prefix + name))} under ${prefix}*`)

// Read everything back with a batch run over the keys: its [results, errors] is the reply.
GB('KeysReader')
  .map((record) => `${record.value.name}: ${record.value.visits} visit(s)`)
  .sort()
  .run(`${prefix}*`)
