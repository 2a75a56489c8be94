// Results of `kaio bench`: ratios, the targets section, the text table and the JSON document.
import * as os from 'node:os'

import { engineLabel } from './engines'
import type { Measured } from './engines'
import type { MemoryResult } from './memory'
import type { EngineName, FsWorkload, Mode, Workload } from './options'

/** The fs suite's cells have mode 'files' (small files, warm page cache). */
export type CellMode = Mode | 'files'
export type CellWorkload = Workload | FsWorkload

/** One engine on one cell, with its ratios to node:fs/promises, fio libaio and fio io_uring. */
export interface CellResult extends Measured {
  mode: CellMode
  workload: CellWorkload
  bs: number
  depth: number
  engine: EngineName
  label: string
  /** IOPS of this engine / IOPS of node:fs/promises in the same cell (null: not measured). */
  vsNode: number | null
  /** IOPS of this engine / IOPS of fio libaio in the same cell (null: not measured). */
  vsFio: number | null
  /** IOPS of this engine / IOPS of fio io_uring in the same cell (null: not measured). */
  vsFioUring: number | null
  /** fs suite: ops/s of this engine / ops/s of the sync loop on the same workload at concurrency 1. */
  vsSync?: number | null
  /** Set when the run failed or could not be made; the figures are then NaN. */
  error?: string
}

export interface TargetResult {
  name: string
  /** The measured ratio, or null when a side of it was not measured. */
  value: number | null
  /** `value` must be >= this (or <= for 'max'). */
  threshold: number
  kind: 'min' | 'max'
  /** How `value` is shown: a ratio ('x', the default) or megabytes. */
  unit?: 'x' | 'MB'
  status: 'PASS' | 'MISS' | 'n/a'
  /** Why a side was not measured (the failed run's error), when `status` is n/a. */
  reason?: string
  /** The two sides behind `value`, where a ratio alone hides them (the loop response target). */
  detail?: string
}

type Ratios = 'vsNode' | 'vsFio' | 'vsFioUring'

export function failedResult(base: Omit<CellResult, keyof Measured | Ratios>, error: string): CellResult {
  return {
    ...base,
    ops: 0,
    bytes: 0,
    seconds: NaN,
    iops: NaN,
    mbps: NaN,
    meanLatUs: NaN,
    p99LatUs: NaN,
    cpuPerOpUs: NaN,
    loopDelayP99Ms: NaN,
    loopResponseP99Us: NaN,
    vsNode: null,
    vsFio: null,
    vsFioUring: null,
    error,
  }
}

/** Fills vsNode / vsFio / vsFioUring for every result of one cell. */
export function addRatios(cell: CellResult[]): void {
  const ratioTo = (engine: EngineName, r: CellResult): number | null => {
    const ref = cell.find((x) => x.engine === engine && !x.error)
    return ref && !r.error && ref.iops > 0 ? r.iops / ref.iops : null
  }
  for (const r of cell) {
    r.vsNode = ratioTo('node', r)
    r.vsFio = ratioTo('fio', r)
    r.vsFioUring = ratioTo('fio-uring', r)
  }
}

/** fs suite: fills vsSync against the sync loop's concurrency-1 cell of each workload. */
export function addSyncRatios(results: CellResult[]): void {
  for (const r of results) {
    const ref = results.find((x) => x.engine === 'sync' && x.workload === r.workload && x.depth === 1 && !x.error)
    r.vsSync = ref && !r.error && ref.iops > 0 ? r.iops / ref.iops : null
  }
}

function find(results: CellResult[], mode: CellMode, workload: CellWorkload, depth: number, engine: EngineName): CellResult | undefined {
  return results.find((r) => r.mode === mode && r.workload === workload && r.depth === depth && r.engine === engine)
}

export interface TargetDef {
  name: string
  mode: CellMode
  workload: CellWorkload
  depth: number
  /** The kaio engine measured (named in `name` too). */
  engine: EngineName
  ref: EngineName
  /** IOPS ratio (min), CPU per operation ratio (max) or event-loop response p99 ratio (max). */
  metric: 'iops' | 'cpu' | 'loop'
  threshold: number
}

const REF_LABEL: Partial<Record<EngineName, string>> = { node: 'node:fs', sync: 'fs.readSync loop' }

/** A target line: "<where>: [what ]kaio <engine> / <ref> >= <threshold>". */
function def(where: string, mode: CellMode, workload: CellWorkload, depth: number, engine: EngineName, ref: EngineName, threshold: number, metric: TargetDef['metric'] = 'iops'): TargetDef {
  const what = metric === 'cpu' ? 'CPU/op ' : metric === 'loop' ? 'event-loop response p99 ' : ''
  const op = metric === 'iops' ? '>=' : '<='
  const name = `${where}: ${what}${engineLabel(engine)} / ${REF_LABEL[ref] ?? engineLabel(ref)} ${op} ${threshold}`
  return { name, mode, workload, depth, engine, ref, metric, threshold }
}

export function targetDefs(depths: number[], workloads: readonly Workload[]): TargetDef[] {
  const rand = (mode: Mode, d: number): string => `${modeLabel(mode)} 4k randread d${d}`
  const rr = (mode: Mode, d: number, engine: EngineName, ref: EngineName, threshold: number, metric?: TargetDef['metric']): TargetDef =>
    def(rand(mode, d), mode, 'randread', d, engine, ref, threshold, metric)
  const seq = (engine: EngineName, ref: EngineName, threshold: number): TargetDef[] =>
    (['read', 'write'] as const).flatMap((w) =>
      // One line per depth run; a single 'not measured' line when the workload was not run.
      (workloads.includes(w) ? depths : [0]).map((d) => def(`O_DIRECT 1M seq ${w}${d === 0 ? '' : ` d${d}`}`, 'direct', w, d, engine, ref, threshold)),
    )
  return [
    // The io_uring issue: the default backend (uring) against fio io_uring and node:fs.
    rr('cold', 32, 'uring', 'fio-uring', 0.9),
    rr('cold', 32, 'uring', 'node', 1.5),
    rr('cold', 32, 'linux', 'node', 1.0),
    rr('cold', 32, 'uring', 'node', 1.0, 'loop'),
    rr('cold', 32, 'linux', 'node', 1.0, 'loop'),
    rr('buffered', 1, 'uring', 'sync', 0.4),
    rr('buffered', 32, 'uring', 'node', 5),
    rr('direct', 1, 'uring', 'fio-uring', 0.9),
    rr('direct', 32, 'uring', 'fio-uring', 0.95),
    rr('direct', 128, 'uring', 'fio-uring', 0.95),
    ...seq('uring', 'fio-uring', 0.95),
    rr('direct', 32, 'uring', 'node', 0.25, 'cpu'),
    // The linux (kernel AIO) backend's targets.
    rr('direct', 1, 'linux', 'fio', 0.8),
    // Busy polling is opt-in (it spends the JS thread's idle time); reported beside the default.
    rr('direct', 1, 'linux-poll', 'fio', 0.8),
    rr('direct', 32, 'linux', 'fio', 0.9),
    rr('direct', 128, 'linux', 'fio', 0.9),
    rr('direct', 32, 'linux', 'node', 2.5),
    ...seq('linux', 'fio', 0.95),
    rr('buffered', 1, 'linux', 'node', 5),
    rr('buffered', 32, 'linux', 'node', 5),
    rr('buffered', 32, 'linux', 'fio', 0.8),
    rr('direct', 32, 'linux', 'node', 0.25, 'cpu'),
  ]
}

/** The fs suite's targets (the kaio/promises issue): kaio/promises against node:fs/promises. */
export function fsTargetDefs(): TargetDef[] {
  const t = (w: FsWorkload, c: number, threshold: number): TargetDef => def(`${FS_LABEL[w]} c${c}`, 'files', w, c, 'kaio', 'node', threshold)
  return [t('readfile', 1, 5), t('readfile', 64, 2), t('writefile', 1, 2), t('stat', 64, 1.2), t('stat', 1, 1.0), t('open', 1, 2), t('walk', 1, 1.0), t('walk', 64, 1.0)]
}

export const FS_LABEL: Record<FsWorkload, string> = {
  readfile: 'readFile 4k',
  writefile: 'writeFile 4k',
  stat: 'stat',
  open: 'open + close',
  walk: 'walk (readdir + stat)',
  stream: 'createReadStream, cold cache',
  'stream-fadvise': 'createReadStream after POSIX_FADV_SEQUENTIAL, cold cache',
}

const METRIC: Record<TargetDef['metric'], (r: CellResult) => number> = {
  iops: (r) => r.iops,
  cpu: (r) => r.cpuPerOpUs,
  // The response to a ping, in µs; not monitorEventLoopDelay's p99, whose 1 ms clock cannot
  // tell 2.5 ms from 3 ms apart (it is shown beside it, see `detail`).
  loop: (r) => r.loopResponseP99Us,
}

/** The loop target's two sides, and their event-loop delay p99s for reference. */
function detail(t: TargetDef, k: CellResult, ref: CellResult): string | undefined {
  if (t.metric !== 'loop') return undefined
  return `${num(k.loopResponseP99Us, 0)} µs vs ${num(ref.loopResponseP99Us, 0)} µs; loop delay p99 ${num(k.loopDelayP99Ms)} ms vs ${num(ref.loopDelayP99Ms)} ms`
}

/** Every target, PASS / MISS against the measurements, or n/a when a side was not run. */
export function evaluateTargets(results: CellResult[], defs: TargetDef[], memory: MemoryResult[] | null = []): TargetResult[] {
  const cells = defs.map((t): TargetResult => {
    const k = find(results, t.mode, t.workload, t.depth, t.engine)
    const ref = find(results, t.mode, t.workload, t.depth, t.ref)
    let value: number | null = null
    let shown: string | undefined
    if (k && ref && !k.error && !ref.error) {
      value = METRIC[t.metric](k) / METRIC[t.metric](ref)
      if (!Number.isFinite(value)) value = null
      shown = detail(t, k, ref)
    }
    const kind = t.metric === 'iops' ? 'min' : 'max'
    const status = value === null ? 'n/a' : (kind === 'min' ? value >= t.threshold : value <= t.threshold) ? 'PASS' : 'MISS'
    const reason = k?.error ?? ref?.error
    return {
      name: t.name,
      value,
      threshold: t.threshold,
      kind,
      status,
      ...(value === null && reason !== undefined ? { reason } : {}),
      ...(shown !== undefined ? { detail: shown } : {}),
    }
  })
  for (const engine of memory === null ? [] : (['uring', 'linux'] as const)) {
    const m = memory!.find((r) => r.engine === engine && !r.error)
    const growth = m && Number.isFinite(m.rssGrowthMb) ? m.rssGrowthMb : null
    const ops = m ? ` over ${si(m.ops)} ops` : ''
    cells.push({
      name: `memory: ${engineLabel(engine)} RSS growth${ops} < 10 MB`,
      value: growth,
      threshold: 10,
      kind: 'max',
      unit: 'MB',
      status: growth === null ? 'n/a' : growth < 10 ? 'PASS' : 'MISS',
    })
  }
  return cells
}

/** The memory check as text: growth per engine and the samples. */
export function formatMemory(memory: MemoryResult[]): string {
  if (memory.length === 0) return ''
  const lines = ['', `memory · RSS over ${si(memory[0]!.ops)} ops per engine (read/readInto/write/writev, 4k, 64 in flight, one child process each)`]
  const w = Math.max(...memory.map((r) => engineLabel(r.engine).length))
  for (const r of memory) {
    const name = engineLabel(r.engine).padEnd(w)
    if (r.error) lines.push(`  ${name}  error: ${r.error}`)
    else {
      const lo = Math.min(...r.rssMb)
      const hi = Math.max(...r.rssMb)
      lines.push(`  ${name}  growth ${r.rssGrowthMb.toFixed(1)} MB (RSS ${lo.toFixed(0)}-${hi.toFixed(0)} MB), live heap ${r.heapGrowthMb.toFixed(1)} MB, ${r.seconds} s`)
    }
  }
  return lines.join('\n')
}


// ---------- text ----------

/** 1234 -> '1.23k', 152000 -> '152k'. */
export function si(v: number): string {
  if (!Number.isFinite(v)) return '-'
  const a = Math.abs(v)
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`
  if (a >= 1e3) return `${(v / 1e3).toPrecision(3)}k`
  return v.toPrecision(3)
}

function num(v: number, digits = 1): string {
  if (!Number.isFinite(v)) return '-'
  if (Math.abs(v) >= 10000) return v.toFixed(0)
  return v.toFixed(digits)
}

function ratio(v: number | null): string {
  return v === null || !Number.isFinite(v) ? '-' : v.toFixed(2)
}

export function sizeLabel(bytes: number): string {
  for (const [unit, n] of [['G', 1024 ** 3], ['M', 1024 ** 2], ['k', 1024]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`
  }
  return `${bytes}`
}

export function modeLabel(m: CellMode): string {
  return m === 'direct' ? 'O_DIRECT' : m === 'buffered' ? 'page cache' : m === 'files' ? 'cached files' : 'cold cache'
}

/** A section's title: mode, workload and block size (fs suite: the workload alone). */
export function sectionLabel(s: { mode: CellMode; workload: CellWorkload; bs: number }, sep = ' · '): string {
  // (The stream cells read one large file, not the cached small ones: their size is shown.)
  if (s.mode === 'files' && s.workload.startsWith('stream')) return ['one file', FS_LABEL[s.workload as FsWorkload], sizeLabel(s.bs)].join(sep)
  if (s.mode === 'files') return `${modeLabel(s.mode)}${sep}${FS_LABEL[s.workload as FsWorkload]}`
  return [modeLabel(s.mode), s.workload, sizeLabel(s.bs)].join(sep)
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padEnd(n) : s.padStart(n)
}

const COLUMNS = ['depth', 'engine', 'IOPS', 'MB/s', 'mean µs', 'p99 µs', 'CPU µs/op', 'loop p99 ms', 'resp p99 µs', '×node', '×fio', '×fio-uring'] as const
const FS_COLUMNS = ['concurrency', 'engine', 'ops/s', 'mean µs', 'p99 µs', 'CPU µs/op', 'loop p99 ms', 'resp p99 µs', '×node', '×sync'] as const

/** The 'loop p99 ms' and 'resp p99 µs' cells (the response's histogram resolves ~3%: whole µs). */
const loop = (r: CellResult): string[] => [num(r.loopDelayP99Ms), num(r.loopResponseP99Us, 0)]

/** The results as text tables, one per (mode, workload), rows by depth then engine. */
export function formatTables(results: CellResult[]): string {
  const out: string[] = []
  const sections: { mode: CellMode; workload: CellWorkload; bs: number }[] = []
  for (const r of results) {
    if (!sections.some((s) => s.mode === r.mode && s.workload === r.workload)) sections.push({ mode: r.mode, workload: r.workload, bs: r.bs })
  }
  for (const s of sections) {
    out.push('', sectionLabel(s))
    const fsSuite = s.mode === 'files'
    const columns: readonly string[] = fsSuite ? FS_COLUMNS : COLUMNS
    const rows: string[][] = [columns.slice()]
    let lastDepth = -1
    for (const r of results) {
      if (r.mode !== s.mode || r.workload !== s.workload) continue
      const depth = r.depth === lastDepth ? '' : String(r.depth)
      lastDepth = r.depth
      if (r.error) rows.push([depth, r.label, `error: ${r.error}`])
      else if (fsSuite) rows.push([depth, r.label, si(r.iops), num(r.meanLatUs), num(r.p99LatUs), num(r.cpuPerOpUs), ...loop(r), ratio(r.vsNode), ratio(r.vsSync ?? null)])
      else rows.push([depth, r.label, si(r.iops), num(r.mbps), num(r.meanLatUs), num(r.p99LatUs), num(r.cpuPerOpUs), ...loop(r), ratio(r.vsNode), ratio(r.vsFio), ratio(r.vsFioUring)])
    }
    const widths = columns.map((_, i) => Math.max(...rows.filter((row) => !(row[2] ?? '').startsWith('error')).map((row) => (row[i] ?? '').length)))
    for (const row of rows) {
      out.push(
        row
          .map((c, i) => (i === 1 ? pad(c, widths[i]!, true) : i === 2 && c.startsWith('error') ? c : pad(c, widths[i]!)))
          .join('  ')
          .trimEnd(),
      )
    }
  }
  return out.join('\n')
}

export function formatTargets(targets: TargetResult[]): string {
  const lines = ['', 'targets (reported, never fatal)']
  const w = Math.max(...targets.map((t) => t.name.length))
  for (const t of targets) {
    const v = t.value === null ? `not measured${t.reason ? ` (${t.reason})` : ''}` : t.unit === 'MB' ? `${t.value.toFixed(1)} MB` : `${t.value.toFixed(2)}x`
    lines.push(`  ${t.status.padEnd(4)}  ${t.name.padEnd(w)}  ${v}${t.detail ? ` (${t.detail})` : ''}`)
  }
  const pass = targets.filter((t) => t.status === 'PASS').length
  const miss = targets.filter((t) => t.status === 'MISS').length
  lines.push(`  ${pass} pass, ${miss} miss, ${targets.length - pass - miss} not measured`)
  return lines.join('\n')
}

/** What the machine is, for the header and the JSON. */
export function machineInfo(fio: string | null): Record<string, string | number> {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memory: `${Math.round(os.totalmem() / 1024 ** 3)} GiB`,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    fio: fio ?? 'fio not found',
  }
}
