/**
 * `gearbox run --load <file>`: puts a data file into Redis before the script runs, so the examples
 * work against a throwaway server or cluster.
 *
 * - `name.txt`: one string key `name:<line number>` per non-empty line (the line's text).
 * - `name.csv`: one hash `name:<row number>` per data row, fields named by the header row
 *   (RFC 4180 quoting: "a, b" and "say ""hi""" work).
 *
 * Keys are written with one pipeline per master, so a cluster loads as fast as a single server.
 */
import { readFile } from 'node:fs/promises'
import { basename, extname } from 'node:path'
import { keySlot } from '../cluster/slots.js'
import { shardOwningSlot } from '../cluster/topology.js'
import { InvalidArgumentError, RedisReplyError } from '../errors.js'
import type { RedisArg, RedisBackend } from '../redis/types.js'

export interface LoadedData {
  /** The key prefix: the file name without its extension, e.g. `weather` for weather.csv. */
  readonly prefix: string
  readonly keys: number
}

/** Splits CSV text into rows of fields. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let field = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"'
        i++
      } else if (c === '"') quoted = false
      else field += c
    } else if (c === '"' && field === '') quoted = true
    else if (c === ',') {
      row.push(field)
      field = ''
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++
      row.push(field)
      field = ''
      if (row.length > 1 || row[0] !== '') rows.push(row)
      row = []
    } else field += c
  }
  if (field !== '' || row.length > 0) {
    row.push(field)
    rows.push(row)
  }
  return rows
}

/** The commands that load `text` (the content of a file named `fileName`). */
export function dataCommands(fileName: string, text: string): { prefix: string; commands: RedisArg[][] } {
  const extension = extname(fileName).toLowerCase()
  const prefix = basename(fileName, extname(fileName))
  if (extension === '.txt') {
    const commands: RedisArg[][] = []
    text.split(/\r?\n/).forEach((line, i) => {
      if (line.trim() !== '') commands.push(['SET', `${prefix}:${i + 1}`, line])
    })
    return { prefix, commands }
  }
  if (extension === '.csv') {
    const [header, ...rows] = parseCsv(text)
    if (header === undefined) return { prefix, commands: [] }
    const commands = rows.map((row, i): RedisArg[] => {
      if (row.length !== header.length) {
        throw new InvalidArgumentError(`${fileName}: row ${i + 2} has ${row.length} fields, the header has ${header.length}`)
      }
      return ['HSET', `${prefix}:${i + 1}`, ...header.flatMap((name, j) => [name, row[j]!])]
    })
    return { prefix, commands }
  }
  throw new InvalidArgumentError(`--load supports .txt (one key per line) and .csv (one hash per row) files, not ${fileName}`)
}

/** Loads a .txt or .csv file into Redis (see the module comment). */
export async function loadDataFile(backend: RedisBackend, path: string): Promise<LoadedData> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new InvalidArgumentError(`cannot read ${path}: ${(error as Error).message}`)
  }
  const { prefix, commands } = dataCommands(path, text)
  const shards = await backend.shards()
  const byShard = new Map<string, RedisArg[][]>()
  for (const command of commands) {
    const owner = shardOwningSlot(shards, keySlot(command[1]!)) ?? shards[0]
    if (owner === undefined) throw new InvalidArgumentError('the Redis backend reports no masters')
    const list = byShard.get(owner.id) ?? []
    list.push(command)
    byShard.set(owner.id, list)
  }
  for (const [shardId, list] of byShard) {
    for (let i = 0; i < list.length; i += 1000) {
      const replies = await backend.pipeline(shardId, list.slice(i, i + 1000), { internal: true })
      const failed = replies.find((r) => r instanceof RedisReplyError)
      if (failed !== undefined) throw failed
    }
  }
  return { prefix, keys: commands.length }
}
