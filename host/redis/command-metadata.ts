/**
 * Command metadata from @ioredis/commands (flags, key positions), resolved down to subcommands
 * (`CONFIG SET`, `CLIENT KILL`), which the package's `hasFlag` does not do.
 */
import { getKeyIndexes } from '@ioredis/commands'
// A JSON module import (not createRequire) keeps this file free of Node built-ins: the runtime
// layer imports it, and that layer must also run in edge runtimes.
import COMMANDS_JSON from '@ioredis/commands/built/commands.json' with { type: 'json' }
import type { RedisArg } from './types.js'

interface CommandMeta {
  readonly flags: readonly string[]
  readonly subcommands?: Readonly<Record<string, CommandMeta>>
}

const METADATA = COMMANDS_JSON as unknown as Readonly<Record<string, CommandMeta>>

const decoder = new TextDecoder()

/** An argument as text (bytes decode as UTF-8), for comparing names and tokens. */
export function argText(arg: RedisArg | undefined): string {
  if (arg === undefined) return ''
  return typeof arg === 'string' ? arg : decoder.decode(arg)
}

/** A command as the policy and key lookups see it. */
export interface ResolvedCommand {
  /** Lowercase command name, e.g. `config`. */
  readonly name: string
  /** Lowercase subcommand when the command has one and it is known, e.g. `set`. */
  readonly subcommand: string | undefined
  /** For messages: `CONFIG SET`, `GET`, or the name as given when unknown. */
  readonly display: string
  /** Flags of the subcommand when known, else of the command; undefined for unknown commands. */
  readonly flags: readonly string[] | undefined
}

/** Looks up `args[0]` (and `args[1]` for container commands) in the command table. */
export function resolveCommand(args: readonly RedisArg[]): ResolvedCommand {
  const given = argText(args[0])
  const name = given.toLowerCase()
  const meta = Object.hasOwn(METADATA, name) ? METADATA[name] : undefined
  if (!meta) return { name, subcommand: undefined, display: given, flags: undefined }
  if (meta.subcommands && args.length > 1) {
    const sub = argText(args[1]).toLowerCase()
    const subMeta = Object.hasOwn(meta.subcommands, sub) ? meta.subcommands[sub] : undefined
    if (subMeta) return { name, subcommand: sub, display: `${name} ${sub}`.toUpperCase(), flags: subMeta.flags }
  }
  return { name, subcommand: undefined, display: name.toUpperCase(), flags: meta.flags }
}

/** True when the command (or its subcommand) carries `flag` (`readonly`, `noscript`, `blocking`, ...). */
export function hasCommandFlag(command: ResolvedCommand, flag: string): boolean {
  return command.flags?.includes(flag) ?? false
}

/**
 * Positions of the key arguments in `args` (`args[0]` being the command name), from the
 * command table; [] for keyless and unknown commands.
 */
export function commandKeyIndexes(args: readonly RedisArg[]): number[] {
  const name = argText(args[0]).toLowerCase()
  if (!Object.hasOwn(METADATA, name)) return []
  // Only positions are wanted, so bytes may be read as text (option names are ASCII).
  const rest = args.slice(1).map(argText)
  const out: number[] = []
  for (const i of getKeyIndexes(name, rest)) {
    if (i < rest.length) out.push(i + 1)
  }
  return out
}

/** The key arguments of a command (see {@link commandKeyIndexes}). */
export function commandKeys(args: readonly RedisArg[]): RedisArg[] {
  return commandKeyIndexes(args).map((i) => args[i]!)
}

/**
 * True when Redis flags the command `readonly` (reads only; for `atomic()`, which runs reads at
 * once and queues writes). Accepts the arguments, or just a name (`'GET'`, `'CONFIG GET'`).
 */
export function isReadOnly(command: string | readonly RedisArg[]): boolean {
  const args = typeof command === 'string' ? command.trim().split(/\s+/) : command
  return hasCommandFlag(resolveCommand(args), 'readonly')
}
