// Word count: the 20 most frequent words of a text, one line of it per key.
//
//   gearbox run examples/wordcount.js --load examples/data/pride-and-prejudice.txt
//   gearbox run examples/wordcount.js --load examples/data/pride-and-prejudice.txt --local-cluster
//
// --load writes every non-empty line of the file as a string key pride-and-prejudice:<line>.
// On a cluster each master reads its own keys and counts its words (countby counts per master
// first, then moves one record per word and master to the word's shard); the answer is the same.

/** The 20 records with the highest counts; ties by word, so the answer is the same wherever it runs. */
function top20(records) {
  return records.sort((a, b) => b.value - a.value || (a.key < b.key ? -1 : 1)).slice(0, 20)
}

GB('KeysReader')
  .flatmap((record) => record.value.toLowerCase().match(/[a-z]+(?:'[a-z]+)?/g) ?? [])
  .countby()
  .aggregate([], (top, record) => top20([...top, record]), (top, other) => top20([...top, ...other]))
  .flatmap((top) => top.map((record) => `${record.key} ${record.value}`))
  .run('pride-and-prejudice:*')
