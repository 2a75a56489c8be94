// `kaio bench` options: parsing and validation. Every problem is a UsageError, which the CLI
// prints as one line and turns into exit code 2.

/** A bad command line: printed as one line on stderr, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}

export type Workload = 'randread' | 'randwrite' | 'read' | 'write'
/**
 * O_DIRECT; buffered on a warm page cache; buffered on a cold one (the page cache is dropped
 * before every engine's run: randread only).
 */
export type Mode = 'direct' | 'buffered' | 'cold'
/**
 * kaio backends (`linux-poll`: the linux backend with busy polling), node:fs/promises, a
 * synchronous fs.readSync/writeSync loop (depth 1 only), fio libaio, fio io_uring and fio psync
 * (depth 1 only).
 */
export type EngineName = 'uring' | 'linux' | 'linux-poll' | 'thread' | 'js' | 'node' | 'sync' | 'fio' | 'fio-uring' | 'fio-psync' | 'kaio'

/** `io`: the disk matrix above; `fs`: kaio/promises against node:fs/promises on small cached files. */
export type Suite = 'io' | 'fs'
export const SUITES: readonly Suite[] = ['io', 'fs']
/**
 * The fs suite's workloads: readFile / writeFile of 4 KiB, stat, open + close, a directory walk
 * (on cached files), and one file streamed whole from a cold page cache, plain and after a
 * POSIX_FADV_SEQUENTIAL on its descriptor (the measurement behind kaio's streams not issuing it).
 */
export type FsWorkload = 'readfile' | 'writefile' | 'stat' | 'open' | 'walk' | StreamWorkload
export type StreamWorkload = 'stream' | 'stream-fadvise'
export const STREAM_WORKLOADS: readonly StreamWorkload[] = ['stream', 'stream-fadvise']
export const FS_WORKLOADS: readonly FsWorkload[] = ['readfile', 'writefile', 'stat', 'open', 'walk', ...STREAM_WORKLOADS]
/**
 * The fs suite's engines: kaio/promises on the default backend (`kaio`) or on one backend
 * (a Context of that implementation passed to it), node:fs/promises and the *Sync loop.
 */
export const FS_ENGINES: readonly EngineName[] = ['kaio', 'uring', 'linux', 'thread', 'js', 'node', 'sync']
export const FS_DEFAULT_ENGINES: readonly EngineName[] = ['kaio', 'node', 'sync']

export const WORKLOADS: readonly Workload[] = ['randread', 'randwrite', 'read', 'write']
export const ENGINES: readonly EngineName[] = ['uring', 'linux', 'linux-poll', 'thread', 'js', 'node', 'sync', 'fio', 'fio-uring', 'fio-psync']
export const MODES: readonly Mode[] = ['direct', 'buffered', 'cold']

export interface BenchOptions {
  suite: Suite
  /** fs suite: workloads, concurrencies and the file count (the walk has 5x as many). */
  fsWorkloads: FsWorkload[]
  concurrency: number[]
  files: number
  /** Test file path; created and removed by the run. */
  file: string | undefined
  /** Directory for the test file when `file` is not given. */
  dir: string
  size: number
  /** Seconds per (cell, engine) run. */
  duration: number
  depths: number[]
  /** Block size of the random workloads. */
  randBs: number
  /** Block size of the sequential workloads. */
  seqBs: number
  workloads: Workload[]
  modes: Mode[]
  /** Queue depths of the cold-cache cells (randread only; each run pays a drop_caches). */
  coldDepths: number[]
  engines: EngineName[]
  /** Whether `--impl` was given (an explicitly asked engine that cannot run is noted louder). */
  enginesExplicit: boolean
  json: boolean
  quick: boolean
  /** Operations per engine of the memory check (0: skipped). */
  memoryOps: number
  plot: string | undefined
  help: boolean
}

export const DEFAULTS = {
  size: 1 << 30,
  duration: 2,
  depths: [1, 8, 32, 128],
  /** Cold runs cost a drop_caches each (~0.7 s here): the depths the targets and RESULTS use. */
  coldDepths: [1, 32],
  randBs: 4096,
  seqBs: 1 << 20,
  memoryOps: 5_000_000,
}

export const QUICK = {
  // Large enough that a cold 1 s run at ~75k IOPS touches under half of its blocks.
  size: 256 << 20,
  duration: 1,
  depths: [1, 32],
  coldDepths: [32],
  workloads: ['randread'] as Workload[],
  memoryOps: 0,
}

export const FS_DEFAULTS = { concurrency: [1, 64], files: 2000, duration: 2 }
export const FS_QUICK = { duration: 0.5 }

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }

/** Parses "4k", "1M", "256MiB", "1G", "4096" into bytes. */
export function parseSize(text: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?$/i.exec(text.trim())
  if (!m) throw new UsageError(`invalid ${name} '${text}' (expected a size such as 4k, 256M, 1G)`)
  const v = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!
  if (!Number.isSafeInteger(v) || v <= 0) throw new UsageError(`invalid ${name} '${text}' (must be a positive whole number of bytes)`)
  return v
}

function parseList<T extends string>(text: string, name: string, allowed: readonly T[]): T[] {
  const items = text.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (items.length === 0) throw new UsageError(`${name} needs at least one of: ${allowed.join(', ')}`)
  const out: T[] = []
  for (const it of items) {
    if (!(allowed as readonly string[]).includes(it)) throw new UsageError(`unknown ${name} '${it}' (expected ${allowed.join(', ')})`)
    if (!out.includes(it as T)) out.push(it as T)
  }
  return out
}

function parseDepths(text: string, name = '--depth', example = '1,8,32,128'): number[] {
  const items = text.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (items.length === 0) throw new UsageError(`${name} needs at least one value`)
  const out: number[] = []
  for (const it of items) {
    if (!/^\d+$/.test(it)) throw new UsageError(`invalid ${name} '${it}' (expected whole numbers such as ${example})`)
    const d = Number(it)
    if (d < 1 || d > 4096) throw new UsageError(`invalid ${name} '${it}' (must be 1..4096)`)
    if (!out.includes(d)) out.push(d)
  }
  return out.sort((a, b) => a - b)
}

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(text.trim())
  if (!m) throw new UsageError(`invalid --duration '${text}' (expected seconds, e.g. 2 or 0.5)`)
  const v = Number(m[1]) / (m[2] === 'ms' ? 1000 : 1)
  if (!(v >= 0.05 && v <= 3600)) throw new UsageError(`invalid --duration '${text}' (must be 0.05..3600 seconds)`)
  return v
}

function checkBs(bs: number, text: string): number {
  if (bs % 512 !== 0) throw new UsageError(`invalid --bs '${text}' (must be a multiple of 512)`)
  if (bs > 64 << 20) throw new UsageError(`invalid --bs '${text}' (at most 64M)`)
  return bs
}

const FLAGS = new Set(['--json', '--quick', '--direct', '--buffered', '--cold', '--help', '-h'])
const VALUED = new Set(['--file', '--dir', '--size', '--duration', '--depth', '--bs', '--workload', '--impl', '--plot', '--memory-ops', '--suite', '--concurrency', '--files'])
/** Options of one suite only. */
const IO_ONLY = ['--file', '--size', '--depth', '--bs', '--memory-ops', '--direct', '--buffered', '--cold']
const FS_ONLY = ['--concurrency', '--files']

/** Parses the arguments after `bench`. Throws UsageError. */
export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const raw = new Map<string, string>()
  const flags = new Set<string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1
    const key = eq > 0 ? arg.slice(0, eq) : arg
    if (FLAGS.has(key)) {
      if (eq > 0) throw new UsageError(`option ${key} takes no value`)
      flags.add(key === '-h' ? '--help' : key)
    } else if (VALUED.has(key)) {
      let value: string | undefined
      if (eq > 0) value = arg.slice(eq + 1)
      else {
        value = argv[++i]
        if (value === undefined || (value.startsWith('--') && value.length > 2)) throw new UsageError(`option ${key} needs a value`)
      }
      if (value === '') throw new UsageError(`option ${key} needs a value`)
      raw.set(key, value)
    } else if (arg.startsWith('-')) {
      throw new UsageError(`unknown option '${arg}' (see 'kaio bench --help')`)
    } else {
      throw new UsageError(`unexpected argument '${arg}' (see 'kaio bench --help')`)
    }
  }
  const quick = flags.has('--quick')
  const suiteText = raw.get('--suite') ?? 'io'
  if (!(SUITES as readonly string[]).includes(suiteText)) throw new UsageError(`unknown --suite '${suiteText}' (expected ${SUITES.join(', ')})`)
  const suite = suiteText as Suite
  const opts: BenchOptions = {
    suite,
    fsWorkloads: [...FS_WORKLOADS],
    concurrency: [...FS_DEFAULTS.concurrency],
    files: FS_DEFAULTS.files,
    file: raw.get('--file'),
    dir: raw.get('--dir') ?? process.cwd(),
    size: quick ? QUICK.size : DEFAULTS.size,
    duration: quick ? QUICK.duration : DEFAULTS.duration,
    depths: quick ? [...QUICK.depths] : [...DEFAULTS.depths],
    randBs: DEFAULTS.randBs,
    seqBs: DEFAULTS.seqBs,
    workloads: quick ? [...QUICK.workloads] : [...WORKLOADS],
    modes: [...MODES],
    coldDepths: quick ? [...QUICK.coldDepths] : [...DEFAULTS.coldDepths],
    engines: [...ENGINES],
    enginesExplicit: raw.has('--impl'),
    json: flags.has('--json'),
    quick,
    memoryOps: quick ? QUICK.memoryOps : DEFAULTS.memoryOps,
    plot: raw.get('--plot'),
    help: flags.has('--help'),
  }
  if (opts.help) return opts
  for (const key of suite === 'fs' ? IO_ONLY : FS_ONLY) {
    if (raw.has(key) || flags.has(key)) throw new UsageError(`${key} is not an option of --suite ${suite}`)
  }
  if (suite === 'fs') return fsOptions(opts, raw)
  if (raw.has('--file') && raw.has('--dir')) throw new UsageError('give --file or --dir, not both')
  const size = raw.get('--size')
  if (size !== undefined) opts.size = parseSize(size, '--size')
  const duration = raw.get('--duration')
  if (duration !== undefined) opts.duration = parseDuration(duration)
  const depth = raw.get('--depth')
  if (depth !== undefined) opts.depths = opts.coldDepths = parseDepths(depth)
  const bs = raw.get('--bs')
  if (bs !== undefined) {
    const parts = bs.split(',')
    if (parts.length > 2) throw new UsageError(`invalid --bs '${bs}' (one size, or RANDOM,SEQUENTIAL)`)
    opts.randBs = checkBs(parseSize(parts[0]!, '--bs'), bs)
    opts.seqBs = parts.length === 2 ? checkBs(parseSize(parts[1]!, '--bs'), bs) : opts.randBs
  }
  const memoryOps = raw.get('--memory-ops')
  if (memoryOps !== undefined) {
    if (!/^\d+$/.test(memoryOps) || Number(memoryOps) > 1e9) throw new UsageError(`invalid --memory-ops '${memoryOps}' (a whole number up to 1000000000; 0 skips the memory check)`)
    opts.memoryOps = Number(memoryOps)
  }
  const workload = raw.get('--workload')
  if (workload !== undefined) opts.workloads = parseList(workload, '--workload', WORKLOADS)
  const impl = raw.get('--impl')
  if (impl !== undefined) opts.engines = parseList(impl, '--impl', ENGINES)
  // --direct, --buffered and --cold pick modes (any combination); none of them: all three.
  const picked = MODES.filter((m) => flags.has(`--${m}`))
  if (picked.length > 0) opts.modes = picked
  if (!opts.workloads.includes('randread')) {
    if (picked.length === 1 && picked[0] === 'cold') throw new UsageError('--cold measures randread only: add randread to --workload')
    opts.modes = opts.modes.filter((m) => m !== 'cold')
  }
  const maxBs = Math.max(...opts.workloads.map((w) => (w.startsWith('rand') ? opts.randBs : opts.seqBs)))
  if (opts.size < maxBs) throw new UsageError(`--size ${opts.size} is smaller than the block size ${maxBs}`)
  if (opts.size % 4096 !== 0) throw new UsageError('--size must be a multiple of 4k')
  if (opts.size > 2 ** 40) throw new UsageError('--size must be at most 1T')
  return opts
}

/** The rest of an fs suite's options. */
function fsOptions(opts: BenchOptions, raw: Map<string, string>): BenchOptions {
  opts.duration = opts.quick ? FS_QUICK.duration : FS_DEFAULTS.duration
  opts.memoryOps = 0
  opts.engines = [...FS_DEFAULT_ENGINES]
  const duration = raw.get('--duration')
  if (duration !== undefined) opts.duration = parseDuration(duration)
  const concurrency = raw.get('--concurrency')
  if (concurrency !== undefined) opts.concurrency = parseDepths(concurrency, '--concurrency', '1,64')
  const files = raw.get('--files')
  if (files !== undefined) {
    if (!/^\d+$/.test(files) || Number(files) < 1 || Number(files) > 100_000) throw new UsageError(`invalid --files '${files}' (a whole number 1..100000)`)
    opts.files = Number(files)
  }
  const workload = raw.get('--workload')
  if (workload !== undefined) opts.fsWorkloads = parseList(workload, '--workload', FS_WORKLOADS)
  // Each stream run pays a drop_caches (the whole machine's) and a disk read: only when named.
  else opts.fsWorkloads = opts.fsWorkloads.filter((w) => !(STREAM_WORKLOADS as readonly string[]).includes(w))
  const impl = raw.get('--impl')
  if (impl !== undefined) opts.engines = parseList(impl, '--impl', FS_ENGINES)
  return opts
}

export const BENCH_HELP = `Usage: kaio bench [options]

Benchmarks the disk under the test file: kaio on each available backend side by side with
node:fs/promises, a sync loop and fio (when on PATH), O_DIRECT, warm and cold page cache, by
queue depth.

Besides IOPS, MB/s, latency and CPU per operation, each in-process engine's run reports how
its JS thread answered meanwhile: loop p99 ms, the event-loop delay p99 (monitorEventLoopDelay,
on libuv's 1 ms clock), and resp p99 µs, the p99 of the time from a ping (a message a worker
thread posts every 1 ms, stamped with process.hrtime) to its handler on the JS thread; the
ping thread's CPU is left out of CPU µs/op. The event-loop targets compare resp p99 µs.

Options:
  --suite SUITE         io (default: the disk matrix below) or fs (kaio/promises against
                        node:fs/promises and *Sync calls on small cached files; see below)
  --dir DIR             directory for the test file (default: the current directory)
  --file PATH           test file path instead (must not exist; created and removed)
  --size SIZE           test file size (default 1G; e.g. 256M)
  --duration SECONDS    seconds per engine per cell (default 2)
  --depth LIST          queue depths (default 1,8,32,128)
  --bs SIZE[,SIZE]      block size for all workloads, or RANDOM,SEQUENTIAL (default 4k,1M)
  --workload LIST       randread,randwrite,read,write (default all)
  --direct              O_DIRECT cells      --buffered   warm page cache cells
  --cold                cold page cache cells: randread at depths 1,32 (or --depth), the
                        cache dropped before every run (needs root) (default: all three)
  --impl LIST           engines: uring,linux,thread,js (kaio backends), linux-poll (linux with
                        busyPoll 200 µs; 4k O_DIRECT and cold cells), node (node:fs/promises),
                        sync (fs.readSync/writeSync loop, depth 1 only), fio (libaio),
                        fio-uring (io_uring), fio-psync (depth 1 only) (default all available)
  --memory-ops N        operations per engine of the memory check (uring, linux; every backend
                        and node with --impl), each in a child process (default 5000000; 0
                        skips it; --quick skips it)
  --json                machine-readable results on stdout
  --plot FILE           write a chart (SVG, or HTML with inline SVG if FILE ends in .html)
  --quick               a run of about a minute: 256M file, depths 1,32 (cold: 32), randread, 1 s
  -h, --help            this help

fs suite (--suite fs): readFile and writeFile of 4 KiB files (2,000, random order), stat,
open + close, and a walk of 10,000 files (readdir + stat of each entry), in a temporary
directory under --dir, at each concurrency; and stream: a 256M file read whole through
open() + filehandle.createReadStream(), the page cache dropped before each stream (needs
root), 3 streams per engine per half, concurrency 1 only, plain (stream) and after
POSIX_FADV_SEQUENTIAL on the descriptor (stream-fadvise; kaio's ctx.fadvise, for node's
descriptor too), alternating; only when named in --workload. Takes --dir, --duration
(default 2), --workload readfile,writefile,stat,open,walk,stream,stream-fadvise (default the
first five), --impl kaio (kaio/promises, default backend),uring,linux,thread,js (kaio/promises
on that backend),node,sync (default kaio,node,sync; sync skips the streams), --json, --plot,
--quick (0.5 s runs, about 30 s; stream cells: a 64M file, 1 stream per half) and:
  --concurrency LIST    operations in flight (walk: entries statted at once) (default 1,64)

Exit codes: 0 done (missed targets are reported, not fatal), 2 bad arguments or unusable
directory, 1 unexpected failure.
`
