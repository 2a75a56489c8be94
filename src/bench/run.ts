// `kaio bench`: plans the matrix, runs every engine on each (mode, workload, depth) cell in
// turn, and prints the tables, the targets, JSON and the chart.
import * as fs from 'node:fs'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'

import { available } from '../select'
import { combine, depthOneOnly, engineLabel, implementationOf, isKaio, isRead, runKaio, runNode, runSync } from './engines'
import type { Measured, RunSpec } from './engines'
import { fioVersion, runFio } from './fio'
import { fsLabel, runFsSuite } from './fs-suite'
import { ENGINES, UsageError } from './options'
import type { BenchOptions, EngineName, Mode, Workload } from './options'
import { renderPlot } from './plot'
import { measureMemory } from './memory'
import type { MemoryResult, MemorySpec } from './memory'
import { Progress } from './progress'
import { addRatios, evaluateTargets, failedResult, formatMemory, formatTables, formatTargets, machineInfo, targetDefs, modeLabel, sizeLabel } from './report'
import type { CellResult } from './report'
import { directProblem, dropCaches, fillTestFile, openTestFile, removeTestFile, sync, testFilePath, warm } from './testfile'

export function kaioVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

function shortError(e: unknown): string {
  const err = e as NodeJS.ErrnoException
  if (typeof err?.code === 'string' && typeof err.syscall === 'string') return `${err.code} (${err.syscall})`
  const msg = e instanceof Error ? e.message : String(e)
  return msg.split('\n')[0]!.slice(0, 200)
}

/** The engines this run can use, and notes on the ones it cannot. */
function resolveEngines(opts: BenchOptions, notes: string[]): EngineName[] {
  const usable = available()
  const fio = fioVersion()
  const out: EngineName[] = []
  for (const e of ENGINES) {
    if (!opts.engines.includes(e)) continue
    if (isKaio(e) && !usable.includes(implementationOf(e))) {
      notes.push(`kaio ${e} backend is not available here; skipped`)
      continue
    }
    if (e.startsWith('fio') && fio === null) {
      if (!notes.some((n) => n.startsWith('fio'))) notes.push('fio is not on PATH; fio columns skipped (install it, e.g. apt-get install fio)')
      continue
    }
    out.push(e)
  }
  for (const e of out.filter(depthOneOnly)) {
    if (!opts.depths.includes(1)) notes.push(`${engineLabel(e)} runs at depth 1 only; no depth 1 in this run`)
  }
  const thp = thpMode()
  if (out.includes('fio') && opts.modes.includes('direct') && thp !== null && thp !== 'always' && thp !== 'never') {
    notes.push(
      `kaio and node:fs use one allocAligned region (transparent huge pages); fio's malloc'd buffers get 4 KiB pages under THP mode '${thp}': large O_DIRECT transfers favour kaio and node:fs over fio (see benchmark/RESULTS.md)`,
    )
  }
  return out
}

/** The system's transparent huge page mode (`always`, `madvise`, `never`), or null if unknown. */
function thpMode(): string | null {
  try {
    return /\[(\w+)\]/.exec(fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? null
  } catch {
    return null
  }
}

function checkPlotPath(file: string): void {
  const dir = path.dirname(path.resolve(file))
  try {
    fs.accessSync(dir, fs.constants.W_OK)
  } catch (e) {
    throw new UsageError(`cannot write --plot ${file}: ${(e as NodeJS.ErrnoException).code ?? 'not writable'}`)
  }
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) throw new UsageError(`cannot write --plot ${file}: is a directory`)
}

interface Cell {
  mode: Mode
  workload: Workload
  depth: number
  bs: number
  engines: EngineName[]
}

async function runOne(engine: EngineName, spec: RunSpec): Promise<Measured> {
  if (isKaio(engine)) return runKaio(engine, spec)
  if (engine === 'node') return runNode(spec)
  if (engine === 'sync') return runSync(spec)
  return runFio(spec, engine === 'fio' ? 'libaio' : engine === 'fio-uring' ? 'io_uring' : 'psync')
}

/** A warm-up keeps the file cached for this long: well under the VM's ~1 min idle eviction. */
const WARM_VALID_MS = 15_000

/** The footnote on the columns both suites' tables have; `fio`: how fio's CPU is counted. */
const cpuAndLoop = (fio = ''): string =>
  `CPU µs/op: process user+system time / ops, less the ping thread's (below)${fio}; loop p99 ms: event-loop delay p99 (monitorEventLoopDelay, on libuv's 1 ms clock); ` +
  'resp p99 µs: p99 of the time from a ping (a message a worker thread posts every 1 ms, stamped with process.hrtime) to its handler on the JS thread; both in-process engines only'

/** Whether `engine` runs in a cell of `mode` and `workload` at `depth`. */
function runsIn(engine: EngineName, mode: Mode, workload: Workload, depth: number): boolean {
  if (depthOneOnly(engine) && depth !== 1) return false
  // Busy polling is for 4k random latency: on a warm page cache every read completes inline,
  // and a 1 MiB transfer is long enough that the poll only burns the core.
  return engine !== 'linux-poll' || (mode !== 'buffered' && workload.startsWith('rand'))
}

/** `--suite fs`: runs it and prints the table, the targets, JSON and the chart. */
async function runFsBench(opts: BenchOptions): Promise<number> {
  if (opts.plot !== undefined) checkPlotPath(opts.plot)
  const notes: string[] = []
  const started = new Date()
  const run = await runFsSuite(opts, notes)
  const machine = machineInfo(null)
  const date = started.toISOString().slice(0, 16).replace('T', ' ')
  if (opts.plot !== undefined) {
    fs.writeFileSync(opts.plot, renderPlot(opts.plot, run.results, `${date} · ${machine.cpu} ×${machine.cores} · ${machine.kernel} · node ${machine.node} · fs suite`))
  }
  if (opts.json) {
    const config = { suite: 'fs', dir: run.root, files: run.files, walkFiles: run.files * 5, duration: opts.duration, concurrency: opts.concurrency, workloads: opts.fsWorkloads, engines: run.engines }
    const doc = { tool: 'kaio bench', version: kaioVersion(), date: started.toISOString(), machine, config, notes, results: run.results, targets: run.targets, plot: opts.plot ?? null }
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`)
    return 0
  }
  const head = [
    `kaio bench --suite fs ${kaioVersion()} · ${date} UTC`,
    `machine: ${machine.cpu} ×${machine.cores}, ${machine.memory}, ${machine.kernel}, node ${machine.node}`,
    `files: ${run.files} 4 KiB files (random order) and a tree of ${run.files * 5} files in ${run.root}, warmed before every cell; ${opts.duration} s per engine per cell; concurrency ${opts.concurrency.join(',')}`,
    `engines: ${run.engines.map(fsLabel).join(', ')}`,
    'ops/s: calls per second (walk: whole walks, readdir + a stat of every entry, concurrency = stats in flight)',
    cpuAndLoop(),
    '×node: ops/s ratio to node:fs/promises in the same cell; ×sync: to the *Sync loop on the same workload at concurrency 1',
  ]
  for (const n of notes) head.push(`note: ${n}`)
  const text = [head.join('\n'), formatTables(run.results), formatTargets(run.targets)]
  if (opts.plot !== undefined) text.push('', `chart written to ${opts.plot}`)
  process.stdout.write(`${text.join('\n')}\n`)
  return 0
}

/** Runs the bench; resolves the exit code. Throws UsageError for exit code 2. */
export async function runBench(opts: BenchOptions): Promise<number> {
  if (opts.suite === 'fs') return runFsBench(opts)
  const notes: string[] = []
  const say = (text: string): void => {
    notes.push(text)
    progress.note(`note: ${text}`)
  }
  const engines = resolveEngines(opts, notes)
  if (engines.length === 0) throw new UsageError(`none of the engines asked for can run here (${notes.join('; ')})`)
  if (opts.plot !== undefined) checkPlotPath(opts.plot)
  const file = testFilePath(opts.file, opts.dir)

  // Plan the matrix: engines alternate inside each (mode, workload, depth) cell. Cold cells are
  // randread only (writes land in the page cache whatever it holds).
  const cells: Cell[] = []
  const plan = (modes: Mode[]): void => {
    cells.length = 0
    for (const mode of modes) {
      for (const workload of mode === 'cold' ? (['randread'] as const) : opts.workloads) {
        const bs = workload.startsWith('rand') ? opts.randBs : opts.seqBs
        for (const depth of mode === 'cold' ? opts.coldDepths : opts.depths) {
          const es = engines.filter((e) => runsIn(e, mode, workload, depth))
          if (es.length > 0) cells.push({ mode, workload, depth, bs, engines: es })
        }
      }
    }
  }
  plan(opts.modes)
  if (cells.length === 0) throw new UsageError(`nothing to run: ${engines.map(engineLabel).join(', ')} run at depth 1 only and --depth has no 1`)
  // The memory check, each engine in a child process of its own: the default backend and
  // linux (the targets); every kaio backend and node:fs when --impl names them (node:fs takes
  // ~160 s for 5M operations here).
  const memoryEngines =
    opts.memoryOps > 0
      ? engines.filter((e): e is MemorySpec['engine'] => (isKaio(e) && e !== 'linux-poll') || e === 'node').filter((e) => opts.enginesExplicit || e === 'uring' || e === 'linux')
      : []
  const memorySeconds = memoryEngines.length * opts.memoryOps * 6e-6
  const runs = (): number => cells.reduce((n, c) => n + 2 * c.engines.length, 0) + memoryEngines.length
  // A cold run also pays for the drop_caches (~0.7 s here).
  const estimate = (): number => cells.reduce((n, c) => n + 2 * c.engines.length * (opts.duration / 2 + (c.mode === 'cold' ? 1 : 0.3)), 0) + memorySeconds
  let progress = new Progress(runs(), estimate(), false)
  for (const n of notes) progress.note(`note: ${n}`)

  const fd = openTestFile(file)
  try {
    progress.note(`kaio bench: writing the ${sizeLabel(opts.size)} test file ${file}`)
    fillTestFile(fd, file, opts.size)
    let modes = opts.modes
    if (modes.includes('direct')) {
      const problem = directProblem(file)
      if (problem !== '') {
        if (modes.length === 1) throw new UsageError(`O_DIRECT is unusable in ${path.dirname(file)}: ${problem}`)
        modes = modes.filter((m) => m !== 'direct')
        say(`O_DIRECT is unusable in ${path.dirname(file)} (${problem}); O_DIRECT cells skipped`)
        plan(modes)
        progress = new Progress(runs(), estimate(), false)
      }
    }
    // Cold cells need the page cache dropped before every run; without root they are reported
    // as not measured, with the reason.
    let coldProblem = modes.includes('cold') ? dropCaches() : ''
    if (coldProblem !== '') say(`cold-cache cells not measured: ${coldProblem}`)

    const results: CellResult[] = []
    const started = new Date()
    let lastWarm = -Infinity
    for (const c of cells) {
      // Each engine runs twice for half the duration, in the order A B C C B A, so that drift
      // inside the cell (host cache, write-back) weighs on every engine alike.
      const halves = new Map<EngineName, Measured[]>()
      const errors = new Map<EngineName, string>()
      for (const engine of [...c.engines, ...[...c.engines].reverse()]) {
        const spec: RunSpec = { path: file, mode: c.mode, workload: c.workload, bs: c.bs, depth: c.depth, duration: opts.duration / 2, size: opts.size }
        progress.start(`${modeLabel(c.mode)} ${c.workload} ${sizeLabel(c.bs)} d${c.depth} ${engineLabel(engine)}`)
        // The VM evicts idle page cache within a minute: warm before a buffered run unless the
        // last warm-up is under WARM_VALID_MS old (reading 1G costs 0.2-0.5 s here).
        if (c.mode === 'buffered' && performance.now() - lastWarm > WARM_VALID_MS) {
          warm(file)
          lastWarm = performance.now()
        }
        if (c.mode === 'cold' && !errors.has(engine)) {
          coldProblem ||= dropCaches()
          if (coldProblem !== '') errors.set(engine, `not measured: ${coldProblem}`)
        }
        if (!errors.has(engine)) {
          try {
            const m = await runOne(engine, spec)
            halves.set(engine, [...(halves.get(engine) ?? []), m])
          } catch (e) {
            errors.set(engine, shortError(e))
          }
        }
        // Dirty pages of a write run must not be flushed during the next engine's run.
        if (!isRead(c.workload)) sync(file)
        progress.step()
      }
      const cell = c.engines.map((engine): CellResult => {
        const base = { mode: c.mode, workload: c.workload, bs: c.bs, depth: c.depth, engine, label: engineLabel(engine) }
        const error = errors.get(engine)
        if (error !== undefined) return failedResult(base, error)
        return { ...base, ...combine(halves.get(engine)!), vsNode: null, vsFio: null, vsFioUring: null }
      })
      addRatios(cell)
      results.push(...cell)
    }
    const memory: MemoryResult[] = []
    for (const engine of memoryEngines) {
      progress.start(`memory ${engineLabel(engine)} ${opts.memoryOps} ops`)
      memory.push(await measureMemory({ engine, path: file, size: opts.size, ops: opts.memoryOps }))
      progress.step()
    }
    progress.clear()

    const targets = evaluateTargets(results, targetDefs(opts.depths, opts.workloads), memory)
    const fio = fioVersion()
    const machine = machineInfo(fio)
    if (opts.plot !== undefined) {
      const subtitle = `${started.toISOString().slice(0, 16).replace('T', ' ')} · ${machine.cpu} ×${machine.cores} · ${machine.kernel} · node ${machine.node} · ${sizeLabel(opts.size)} file`
      fs.writeFileSync(opts.plot, renderPlot(opts.plot, results, subtitle))
    }
    if (opts.json) {
      const doc = {
        tool: 'kaio bench',
        version: kaioVersion(),
        date: started.toISOString(),
        machine,
        config: {
          file,
          size: opts.size,
          duration: opts.duration,
          depths: opts.depths,
          randBs: opts.randBs,
          seqBs: opts.seqBs,
          workloads: opts.workloads,
          modes,
          coldDepths: modes.includes('cold') ? opts.coldDepths : [],
          engines,
          memoryOps: opts.memoryOps,
        },
        notes,
        results,
        memory,
        targets,
        plot: opts.plot ?? null,
      }
      process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`)
    } else {
      const head = [
        `kaio bench ${kaioVersion()} · ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
        `machine: ${machine.cpu} ×${machine.cores}, ${machine.memory}, ${machine.kernel}, node ${machine.node}, ${machine.fio}`,
        `file: ${file} (${sizeLabel(opts.size)}), ${opts.duration} s per run, depths ${opts.depths.join(',')}${modes.includes('cold') ? `, cold-cache randread at depths ${opts.coldDepths.join(',')} (page cache dropped before every run)` : ''}`,
        `engines: ${engines.map(engineLabel).join(', ')}`,
        cpuAndLoop(' (fio: its usr_cpu+sys_cpu × runtime / ops)'),
        '×node, ×fio, ×fio-uring: IOPS ratios to node:fs/promises, fio libaio, fio io_uring in the same cell',
        'page cache and cold cells: every engine\'s descriptor gets fio\'s default access hint (POSIX_FADV_RANDOM for random workloads, SEQUENTIAL for sequential ones; through kaio\'s fadvise for node:fs and the sync loop)',
      ]
      for (const n of notes) head.push(`note: ${n}`)
      const text = [head.join('\n'), formatTables(results), formatMemory(memory), formatTargets(targets)]
      if (opts.plot !== undefined) text.push('', `chart written to ${opts.plot}`)
      process.stdout.write(`${text.join('\n')}\n`)
    }
    return 0
  } finally {
    progress.clear()
    removeTestFile()
  }
}
