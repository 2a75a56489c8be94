// `kaio bench --suite fs`: kaio/promises against node:fs/promises and the *Sync calls on small
// cached files: readFile / writeFile of 4 KiB, stat, open + close and a directory walk, each at
// the concurrencies asked for. kaio/promises runs on the default backend (the thread's default
// Context: AIO_IMPL, the default-implementation file, auto-detection) as `kaio`, and on one
// backend as `uring`, `linux`, ... by passing it a Context of that implementation.
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as path from 'node:path'
import { randomFillSync } from 'node:crypto'

import { Context } from '../context'
import { promises as kaio } from '../fs-promises'
import type { Implementation } from '../driver'
import { available } from '../select'
import { combine, engineLabel, inFlight, isKaio, Meter, syncLoop } from './engines'
import type { Measured } from './engines'
import { FS_ENGINES, UsageError } from './options'
import type { BenchOptions, EngineName, FsWorkload } from './options'
import { Progress } from './progress'
import { addRatios, addSyncRatios, evaluateTargets, failedResult, FS_LABEL, fsTargetDefs } from './report'
import type { CellResult, TargetResult } from './report'
import { removeTestFile, testDirectory } from './testfile'

const FILE_SIZE = 4096
/** The walk's tree holds this many times --files entries (10,000 by default). */
const WALK_FACTOR = 5

/** The tree of one fs run: files to read (and stat, open), files to overwrite, the walk's directory. */
export interface FsTree {
  read: string[]
  write: string[]
  walk: string
}

/** Creates the tree under `root`: `n` 4 KiB files to read, `n` to write, `5n` empty files to walk. */
export function makeTree(root: string, n: number): FsTree {
  const data = randomFillSync(Buffer.alloc(FILE_SIZE))
  const make = (dir: string, count: number, content: Buffer): string[] => {
    fs.mkdirSync(dir)
    return Array.from({ length: count }, (_, i) => {
      const p = path.join(dir, `f${i}`)
      fs.writeFileSync(p, content)
      return p
    })
  }
  const tree = { read: make(path.join(root, 'read'), n, data), write: make(path.join(root, 'write'), n, data), walk: path.join(root, 'walk') }
  make(tree.walk, n * WALK_FACTOR, Buffer.alloc(0))
  return tree
}

/** Brings the tree's data and inodes into the cache before a cell. */
function warmTree(tree: FsTree): void {
  for (const p of tree.read) fs.readFileSync(p)
  for (const p of tree.write) fs.statSync(p)
  for (const name of fs.readdirSync(tree.walk)) fs.statSync(path.join(tree.walk, name))
}

/** Random file indices in [0, n): xorshift32, as the io suite's offsets. */
function randomIndex(n: number): () => number {
  let seed = (Math.random() * 0xffffffff) | 1
  return () => {
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return (seed >>> 0) % n
  }
}

/** The calls of one engine: kaio/promises (with a Context or not), node:fs/promises. */
interface AsyncApi {
  readFile: (p: string) => Promise<Buffer>
  writeFile: (p: string, data: Buffer) => Promise<void>
  stat: (p: string) => Promise<fs.Stats>
  openClose: (p: string) => Promise<void>
  readdir: (p: string) => Promise<string[]>
}

function kaioApi(context: Context | undefined): AsyncApi {
  const o = context === undefined ? undefined : { context }
  return {
    readFile: (p) => kaio.readFile(p, o),
    writeFile: (p, data) => kaio.writeFile(p, data, o),
    stat: (p) => kaio.stat(p),
    openClose: async (p) => (await kaio.open(p, 'r', 0o666, o)).close(),
    readdir: (p) => kaio.readdir(p),
  }
}

const nodeApi: AsyncApi = {
  readFile: (p) => fsp.readFile(p),
  writeFile: (p, data) => fsp.writeFile(p, data),
  stat: (p) => fsp.stat(p),
  openClose: async (p) => (await fsp.open(p, 'r')).close(),
  readdir: (p) => fsp.readdir(p),
}

/** One async run of `workload`: `concurrency` operations (walk: stats) in flight. */
function runAsync(api: AsyncApi, tree: FsTree, workload: FsWorkload, concurrency: number, seconds: number): Promise<Measured> {
  const meter = new Meter(null)
  const next = randomIndex(tree.read.length)
  const data = randomFillSync(Buffer.alloc(FILE_SIZE))
  const steps: Record<FsWorkload, (start: number) => Promise<void>> = {
    readfile: async (start) => meter.record(start, (await api.readFile(tree.read[next()]!)).length),
    writefile: async (start) => {
      await api.writeFile(tree.write[next()]!, data)
      meter.record(start, FILE_SIZE)
    },
    stat: async (start) => {
      await api.stat(tree.read[next()]!)
      meter.record(start, 0)
    },
    open: async (start) => {
      await api.openClose(tree.read[next()]!)
      meter.record(start, 0)
    },
    // One operation is a whole walk: readdir, then `concurrency` stats in flight over its entries.
    walk: async (start) => {
      const names = await api.readdir(tree.walk)
      let i = 0
      const statter = async (): Promise<void> => {
        while (i < names.length) await api.stat(path.join(tree.walk, names[i++]!))
      }
      await Promise.all(Array.from({ length: Math.min(concurrency, names.length) }, statter))
      meter.record(start, 0)
    },
  }
  return inFlight(meter, workload === 'walk' ? 1 : concurrency, seconds, (_slot, start) => steps[workload](start))
}

/** The *Sync loop: readFileSync, writeFileSync, statSync, openSync + closeSync, readdirSync + statSync. */
function runSyncFs(tree: FsTree, workload: FsWorkload, seconds: number): Promise<Measured> {
  const meter = new Meter(null)
  const next = randomIndex(tree.read.length)
  const data = randomFillSync(Buffer.alloc(FILE_SIZE))
  const steps: Record<FsWorkload, (start: number) => void> = {
    readfile: (start) => meter.record(start, fs.readFileSync(tree.read[next()]!).length),
    writefile: (start) => {
      fs.writeFileSync(tree.write[next()]!, data)
      meter.record(start, FILE_SIZE)
    },
    stat: (start) => {
      fs.statSync(tree.read[next()]!)
      meter.record(start, 0)
    },
    open: (start) => {
      fs.closeSync(fs.openSync(tree.read[next()]!, 'r'))
      meter.record(start, 0)
    },
    walk: (start) => {
      for (const name of fs.readdirSync(tree.walk)) fs.statSync(path.join(tree.walk, name))
      meter.record(start, 0)
    },
  }
  return syncLoop(meter, seconds, steps[workload])
}

/** An engine's label in the fs suite (its sync engine is more than readSync). */
export const fsLabel = (e: EngineName): string => (e === 'sync' ? 'fs *Sync loop' : engineLabel(e))

/** The engines of this fs run, and notes on the ones that cannot run. */
function resolveFsEngines(opts: BenchOptions, notes: string[]): EngineName[] {
  const usable = available()
  const out: EngineName[] = []
  for (const e of FS_ENGINES) {
    if (!opts.engines.includes(e)) continue
    if (isKaio(e) && !usable.includes(e as Implementation)) {
      notes.push(`kaio ${e} backend is not available here; skipped`)
      continue
    }
    out.push(e)
  }
  if (out.includes('sync') && !opts.concurrency.includes(1)) notes.push('the sync loop runs at concurrency 1 only; no 1 in --concurrency')
  return out
}

export interface FsRun {
  results: CellResult[]
  targets: TargetResult[]
  engines: EngineName[]
  root: string
  files: number
}

/** Runs the fs suite; notes go to `notes`. */
export async function runFsSuite(opts: BenchOptions, notes: string[]): Promise<FsRun> {
  const engines = resolveFsEngines(opts, notes)
  if (engines.length === 0) throw new UsageError(`none of the engines asked for can run here (${notes.join('; ')})`)
  const cells: { workload: FsWorkload; concurrency: number; engines: EngineName[] }[] = []
  for (const workload of opts.fsWorkloads) {
    for (const concurrency of opts.concurrency) {
      const es = engines.filter((e) => e !== 'sync' || concurrency === 1)
      if (es.length > 0) cells.push({ workload, concurrency, engines: es })
    }
  }
  if (cells.length === 0) throw new UsageError('nothing to run: the sync loop runs at concurrency 1 only and --concurrency has no 1')
  const runs = cells.reduce((n, c) => n + 2 * c.engines.length, 0)
  const progress = new Progress(runs, runs * (opts.duration / 2 + 0.1) + opts.files * 7e-5, false)
  for (const n of notes) progress.note(`note: ${n}`)
  const root = testDirectory(opts.dir)
  const contexts = new Map<EngineName, Context>()
  try {
    progress.note(`kaio bench: creating ${opts.files} + ${opts.files} 4 KiB files and a tree of ${opts.files * WALK_FACTOR} files in ${root}`)
    const tree = makeTree(root, opts.files)
    for (const e of engines) if (isKaio(e)) contexts.set(e, new Context({ implementation: e as Implementation }))
    const results: CellResult[] = []
    for (const c of cells) {
      warmTree(tree)
      // A B C C B A, each half the duration, as the io suite.
      const halves = new Map<EngineName, Measured[]>()
      const errors = new Map<EngineName, string>()
      for (const engine of [...c.engines, ...[...c.engines].reverse()]) {
        progress.start(`${FS_LABEL[c.workload]} c${c.concurrency} ${fsLabel(engine)}`)
        if (!errors.has(engine)) {
          try {
            const seconds = opts.duration / 2
            const m =
              engine === 'sync'
                ? await runSyncFs(tree, c.workload, seconds)
                : await runAsync(engine === 'node' ? nodeApi : kaioApi(contexts.get(engine)), tree, c.workload, c.concurrency, seconds)
            halves.set(engine, [...(halves.get(engine) ?? []), m])
          } catch (e) {
            errors.set(engine, e instanceof Error ? e.message.split('\n')[0]!.slice(0, 200) : String(e))
          }
        }
        progress.step()
      }
      const cell = c.engines.map((engine): CellResult => {
        const base = { mode: 'files' as const, workload: c.workload, bs: c.workload.endsWith('file') ? FILE_SIZE : 0, depth: c.concurrency, engine, label: fsLabel(engine) }
        const error = errors.get(engine)
        if (error !== undefined) return failedResult(base, error)
        return { ...base, ...combine(halves.get(engine)!), vsNode: null, vsFio: null, vsFioUring: null }
      })
      addRatios(cell)
      results.push(...cell)
    }
    addSyncRatios(results)
    progress.clear()
    return { results, targets: evaluateTargets(results, fsTargetDefs(), null), engines, root, files: opts.files }
  } finally {
    progress.clear()
    for (const ctx of contexts.values()) await ctx.close()
    removeTestFile()
  }
}
