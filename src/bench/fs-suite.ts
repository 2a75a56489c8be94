// `kaio bench --suite fs`: kaio/promises against node:fs/promises and the *Sync calls on small
// cached files: readFile / writeFile of 4 KiB, stat, open + close and a directory walk, each at
// the concurrencies asked for; and createReadStream of one large file from a cold page cache,
// with and without POSIX_FADV_SEQUENTIAL on its descriptor first. kaio/promises runs on the default backend (the thread's default
// Context: AIO_IMPL, the default-implementation file, auto-detection) as `kaio`, and on one
// backend as `uring`, `linux`, ... by passing it a Context of that implementation.
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as path from 'node:path'
import { randomFillSync } from 'node:crypto'

import { Context } from '../context'
import { POSIX_FADV_SEQUENTIAL } from '../constants'
import { promises as kaio } from '../fs-promises'
import { defaultContext } from '../fs/sys'
import type { Implementation } from '../driver'
import { available } from '../select'
import { combine, engineLabel, inFlight, isKaio, Meter, syncLoop } from './engines'
import type { Measured } from './engines'
import { FS_ENGINES, STREAM_WORKLOADS, UsageError } from './options'
import type { BenchOptions, EngineName, FsWorkload, StreamWorkload } from './options'
import { Progress } from './progress'
import { addRatios, addSyncRatios, evaluateTargets, failedResult, FS_LABEL, fsTargetDefs } from './report'
import type { CellResult, TargetResult } from './report'
import { dropCaches, removeTestFile, testDirectory } from './testfile'

const FILE_SIZE = 4096
/** The walk's tree holds this many times --files entries (10,000 by default). */
const WALK_FACTOR = 5
/** The streamed file: large enough that readahead, not the first read, decides (--quick: 64M). */
const STREAM_SIZE = 256 << 20
const QUICK_STREAM_SIZE = 64 << 20
/** Streams per engine per half of the stream cell, per variant (each after a drop_caches). */
const STREAMS_PER_HALF = 3

type CachedWorkload = Exclude<FsWorkload, StreamWorkload>
const isStream = (w: FsWorkload): w is StreamWorkload => (STREAM_WORKLOADS as readonly string[]).includes(w)

/** The tree of one fs run: files to read (and stat, open), files to overwrite, the walk's directory. */
export interface FsTree {
  read: string[]
  write: string[]
  walk: string
}

/** Writes the file the stream cells read: `size` random bytes, synced. */
function makeStreamFile(root: string, size: number): string {
  const p = path.join(root, 'stream')
  const chunk = randomFillSync(Buffer.alloc(8 << 20))
  const fd = fs.openSync(p, 'w')
  try {
    for (let at = 0; at < size; at += chunk.length) fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - at))
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  return p
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
  /** Opens `p`, gives its descriptor POSIX_FADV_SEQUENTIAL if `advise`, streams it whole with createReadStream; the bytes read. */
  stream: (p: string, advise: boolean) => Promise<number>
}

async function consume(stream: AsyncIterable<Buffer>): Promise<number> {
  let n = 0
  for await (const chunk of stream) n += chunk.length
  return n
}

function kaioApi(context: Context | undefined): AsyncApi {
  const o = context === undefined ? undefined : { context }
  return {
    readFile: (p) => kaio.readFile(p, o),
    writeFile: (p, data) => kaio.writeFile(p, data, o),
    stat: (p) => kaio.stat(p),
    openClose: async (p) => (await kaio.open(p, 'r', 0o666, o)).close(),
    readdir: (p) => kaio.readdir(p),
    stream: async (p, advise) => {
      const fh = await kaio.open(p, 'r', 0o666, o)
      if (advise) await (context ?? defaultContext()).fadvise(fh.fd, 0, 0, POSIX_FADV_SEQUENTIAL)
      return consume(fh.createReadStream())
    },
  }
}

const nodeApi: AsyncApi = {
  readFile: (p) => fsp.readFile(p),
  writeFile: (p, data) => fsp.writeFile(p, data),
  stat: (p) => fsp.stat(p),
  openClose: async (p) => (await fsp.open(p, 'r')).close(),
  readdir: (p) => fsp.readdir(p),
  // The advice is the open file's, whoever gives it: kaio's call on node's descriptor.
  stream: async (p, advise) => {
    const fh = await fsp.open(p, 'r')
    if (advise) await defaultContext().fadvise(fh.fd, 0, 0, POSIX_FADV_SEQUENTIAL)
    return consume(fh.createReadStream())
  },
}

/** One async run of `workload`: `concurrency` operations (walk: stats) in flight. */
function runAsync(api: AsyncApi, tree: FsTree, workload: CachedWorkload, concurrency: number, seconds: number): Promise<Measured> {
  const meter = new Meter(null)
  const next = randomIndex(tree.read.length)
  const data = randomFillSync(Buffer.alloc(FILE_SIZE))
  const steps: Record<CachedWorkload, (start: number) => Promise<void>> = {
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
function runSyncFs(tree: FsTree, workload: CachedWorkload, seconds: number): Promise<Measured> {
  const meter = new Meter(null)
  const next = randomIndex(tree.read.length)
  const data = randomFillSync(Buffer.alloc(FILE_SIZE))
  const steps: Record<CachedWorkload, (start: number) => void> = {
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

/** One stream of `file` from a cold page cache (dropped before it, outside the timing). */
async function runStream(api: AsyncApi, file: string, workload: StreamWorkload): Promise<Measured> {
  const problem = dropCaches()
  if (problem !== '') throw new Error(`not measured: ${problem}`)
  const meter = new Meter(null)
  await meter.ready()
  const start = performance.now()
  try {
    meter.record(start, await api.stream(file, workload === 'stream-fadvise'))
  } finally {
    meter.stop()
  }
  return meter.finish()
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
  // A cell measures one or more workloads side by side: the stream workloads share one, so that
  // with and without fadvise alternate run by run (this disk's speed drifts between cells).
  const cells: { workloads: FsWorkload[]; concurrency: number; engines: EngineName[] }[] = []
  const streams = opts.fsWorkloads.filter(isStream)
  for (const workload of opts.fsWorkloads.filter((w) => !isStream(w))) {
    for (const concurrency of opts.concurrency) {
      const es = engines.filter((e) => e !== 'sync' || concurrency === 1)
      if (es.length > 0) cells.push({ workloads: [workload], concurrency, engines: es })
    }
  }
  // A stream is one reader at concurrency 1 (a drop_caches before each); the sync loop has none.
  const streamEngines = engines.filter((e) => e !== 'sync')
  if (streams.length > 0 && !opts.concurrency.includes(1)) notes.push('the stream cells run at concurrency 1 only; no 1 in --concurrency')
  else if (streams.length > 0 && streamEngines.length > 0) cells.push({ workloads: streams, concurrency: 1, engines: streamEngines })
  const streamSize = opts.quick ? QUICK_STREAM_SIZE : STREAM_SIZE
  const streamsPerHalf = opts.quick ? 1 : STREAMS_PER_HALF
  if (cells.length === 0) throw new UsageError('nothing to run: the sync loop runs at concurrency 1 only and --concurrency has no 1')
  const runs = cells.reduce((n, c) => n + 2 * c.engines.length * (isStream(c.workloads[0]!) ? streamsPerHalf * c.workloads.length : 1), 0)
  const progress = new Progress(runs, runs * (opts.duration / 2 + 0.1) + opts.files * 7e-5, false)
  for (const n of notes) progress.note(`note: ${n}`)
  const root = testDirectory(opts.dir)
  const contexts = new Map<EngineName, Context>()
  try {
    progress.note(`kaio bench: creating ${opts.files} + ${opts.files} 4 KiB files and a tree of ${opts.files * WALK_FACTOR} files in ${root}`)
    const tree = makeTree(root, opts.files)
    const streamFile = cells.some((c) => isStream(c.workloads[0]!)) ? makeStreamFile(root, streamSize) : ''
    for (const e of engines) if (isKaio(e)) contexts.set(e, new Context({ implementation: e as Implementation }))
    const results: CellResult[] = []
    for (const c of cells) {
      const stream = isStream(c.workloads[0]!)
      if (!stream) warmTree(tree)
      // A B C C B A, each half the duration, as the io suite; stream variants alternate too.
      const halves = new Map<string, Measured[]>()
      const errors = new Map<string, string>()
      const key = (w: FsWorkload, e: EngineName): string => `${w} ${e}`
      const order = [...c.engines, ...[...c.engines].reverse()]
      for (const [k, engine] of order.entries()) {
        const api = engine === 'node' ? nodeApi : kaioApi(contexts.get(engine))
        for (let i = 0; i < (stream ? streamsPerHalf : 1); i++) {
          for (const w of (k + i) % 2 === 0 ? c.workloads : [...c.workloads].reverse()) {
            progress.start(`${FS_LABEL[w]} c${c.concurrency} ${fsLabel(engine)}`)
            if (!errors.has(key(w, engine))) {
              try {
                const seconds = opts.duration / 2
                const m = isStream(w)
                  ? await runStream(api, streamFile, w)
                  : engine === 'sync'
                    ? await runSyncFs(tree, w, seconds)
                    : await runAsync(api, tree, w, c.concurrency, seconds)
                halves.set(key(w, engine), [...(halves.get(key(w, engine)) ?? []), m])
              } catch (e) {
                errors.set(key(w, engine), e instanceof Error ? e.message.split('\n')[0]!.slice(0, 200) : String(e))
              }
            }
            progress.step()
          }
        }
      }
      for (const w of c.workloads) {
        const cell = c.engines.map((engine): CellResult => {
          const bs = stream ? streamSize : w.endsWith('file') ? FILE_SIZE : 0
          const base = { mode: 'files' as const, workload: w, bs, depth: c.concurrency, engine, label: fsLabel(engine) }
          const error = errors.get(key(w, engine))
          if (error !== undefined) return failedResult(base, error)
          return { ...base, ...combine(halves.get(key(w, engine))!), vsNode: null, vsFio: null, vsFioUring: null }
        })
        addRatios(cell)
        results.push(...cell)
      }
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
