/**
 * The RG.* commands as data: what COMMAND INFO and COMMAND DOCS say about them (in Redis 7's
 * shapes, as a module's commands appear), and the `rg` section of INFO.
 */
import { RespMap, type RespValue } from '../resp/encoder.js'

interface RgCommandSpec {
  /** Redis arity: positive = exact argument count (with the name), negative = at least. */
  readonly arity: number
  readonly flags: readonly string[]
  readonly summary: string
  /** The first key's position (RG.TRIGGERONKEY), else 0. */
  readonly firstKey?: number
}

const SPECS: Readonly<Record<string, RgCommandSpec>> = {
  'RG.PYEXECUTE': { arity: -2, flags: ['noscript'], summary: 'Runs a Python function script (answers an error in gearbox until its Python guest exists)' },
  'RG.JSEXECUTE': { arity: -2, flags: ['noscript'], summary: 'Runs a JavaScript function script: its top level, then the run() it starts' },
  'RG.DUMPEXECUTIONS': { arity: 1, flags: ['readonly'], summary: 'Lists the kept executions' },
  'RG.GETEXECUTION': { arity: -2, flags: ['readonly'], summary: "An execution's plan, status, errors and step durations" },
  'RG.GETRESULTS': { arity: 2, flags: ['readonly'], summary: "A finished execution's results and errors" },
  'RG.GETRESULTSBLOCKING': { arity: 2, flags: ['readonly', 'noscript'], summary: "Waits for an execution to finish, then returns its results and errors" },
  'RG.DROPEXECUTION': { arity: 2, flags: [], summary: 'Forgets a finished execution' },
  'RG.ABORTEXECUTION': { arity: 2, flags: [], summary: 'Aborts a running execution' },
  'RG.TRIGGER': { arity: -2, flags: ['noscript'], summary: 'Triggers a CommandReader registration (not built yet in gearbox serve)' },
  'RG.TRIGGERONKEY': { arity: -3, flags: ['noscript'], summary: 'Triggers a CommandReader registration on a key (not built yet in gearbox serve)', firstKey: 2 },
  'RG.DUMPREGISTRATIONS': { arity: 1, flags: ['readonly'], summary: 'Lists the registrations (not built yet in gearbox serve)' },
  'RG.UNREGISTER': { arity: -2, flags: [], summary: 'Removes a registration (not built yet in gearbox serve)' },
  'RG.PAUSEREGISTRATIONS': { arity: -2, flags: [], summary: 'Pauses a registration (not built yet in gearbox serve)' },
  'RG.UNPAUSEREGISTRATIONS': { arity: -2, flags: [], summary: 'Resumes a paused registration (not built yet in gearbox serve)' },
  'RG.CLEARREGISTRATIONSSTATS': { arity: 1, flags: [], summary: "Zeroes the registrations' counters (not built yet in gearbox serve)" },
  'RG.CONFIGGET': { arity: -2, flags: ['readonly'], summary: 'Reads gears settings and the extra config dictionary' },
  'RG.CONFIGSET': { arity: -3, flags: [], summary: 'Sets gears settings and extra config values' },
  'RG.INFOCLUSTER': { arity: 1, flags: ['readonly'], summary: 'The cluster as gears sees it' },
  'RG.REFRESHCLUSTER': { arity: 1, flags: [], summary: 'Reads the cluster topology again' },
  'RG.PYSTATS': { arity: 1, flags: ['readonly'], summary: "The sandboxes' memory: TotalAllocated, PeakAllocated, CurrAllocated (bytes)" },
  'RG.PYDUMPSESSIONS': { arity: -1, flags: ['readonly'], summary: 'Lists the sessions' },
}

export function isRgCommandName(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(SPECS, name.toUpperCase())
}

const bulk = (s: string): Uint8Array => new TextEncoder().encode(s)

function selected(names: readonly string[] | undefined): [string, RgCommandSpec][] {
  const all = Object.entries(SPECS)
  if (names === undefined) return all
  const wanted = new Set(names.map((n) => n.toUpperCase()))
  return all.filter(([name]) => wanted.has(name))
}

/** COMMAND INFO entries (`[name, arity, flags, first, last, step, acl categories, tips, key specs, subcommands]`), by upper-case name. */
export function commandInfoEntries(names: readonly string[] | undefined): Map<string, RespValue> {
  const out = new Map<string, RespValue>()
  for (const [name, spec] of selected(names)) {
    const first = spec.firstKey ?? 0
    out.set(name, [bulk(name.toLowerCase()), spec.arity, [...spec.flags, 'module'], first, first, first === 0 ? 0 : 1, ['@slow'], [], [], []])
  }
  return out
}

/** COMMAND DOCS entries, by upper-case name. */
export function commandDocsEntries(names: readonly string[] | undefined): Map<string, RespValue> {
  const out = new Map<string, RespValue>()
  for (const [name, spec] of selected(names)) {
    out.set(
      name,
      new RespMap([
        [bulk('summary'), bulk(spec.summary)],
        [bulk('since'), bulk('1.2.0')],
        [bulk('group'), bulk('module')],
        [bulk('module'), bulk('rg')],
      ]),
    )
  }
  return out
}

/** INFO's `rg` section (spec §4). The allocation figures are the sandboxes' (see README). */
export function rgInfoSection(executions: number, memory: { readonly total: number; readonly peak: number; readonly current: number }, registrations = 0): string {
  return (
    '# rg\r\n' +
    `rg_TotalAllocated:${memory.total}\r\n` +
    `rg_PeakAllocated:${memory.peak}\r\n` +
    `rg_CurrAllocated:${memory.current}\r\n` +
    `rg_nexecutions:${executions}\r\n` +
    `rg_nregistrations:${registrations}\r\n`
  )
}
