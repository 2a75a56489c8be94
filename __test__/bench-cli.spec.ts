// `kaio bench` from the outside: spawns the built CLI (`npm run build` first). Checks exit
// codes, the one-line errors, the JSON shape and the chart; never timings.
import test from 'ava'
import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { adviseLikeFio, combine } from '../src/bench/engines'
import type { Measured, RunSpec } from '../src/bench/engines'
import { evaluateTargets, failedResult, targetDefs } from '../src/bench/report'
import type { CellResult } from '../src/bench/report'
import { defaultContext } from '../src/fs/sys'

// ava runs specs with the package root as the working directory.
const ROOT = process.cwd()
const BIN = path.join(ROOT, 'bin', 'kaio.js')

interface Ran {
  code: number
  stdout: string
  stderr: string
}

function kaio(args: string[], cwd = os.tmpdir()): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, timeout: 60_000, env: { ...process.env, KAIO_DEBUG: '' } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0
      resolve({ code, stdout: String(stdout), stderr: String(stderr) })
    })
  })
}

function tmpDir(t: { teardown: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kaio-bench-test-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

function assertUsageError(t: import('ava').ExecutionContext, r: Ran): void {
  t.is(r.code, 2, r.stderr)
  const lines = r.stderr.trimEnd().split('\n')
  t.is(lines.length, 1, r.stderr)
  t.regex(lines[0]!, /^kaio: /)
  t.notRegex(r.stderr, /\n\s+at /)
  t.is(r.stdout, '')
}

test.before(() => {
  if (!fs.existsSync(path.join(ROOT, 'src', 'cli.js'))) throw new Error('src/cli.js is missing: run `npm run build` first')
})

test('every in-process engine gets fio\'s access hint, except under O_DIRECT', async (t) => {
  const file = path.join(tmpDir(t), 'f')
  fs.writeFileSync(file, 'x')
  const fd = fs.openSync(file, 'r')
  t.teardown(() => fs.closeSync(fd))
  const spec = (mode: RunSpec['mode'], workload: RunSpec['workload']): RunSpec => ({ path: file, mode, workload, bs: 4096, depth: 1, duration: 1, size: 4096 })
  // The js backend has no posix_fadvise: the bench then runs without the hint.
  const native = defaultContext().implementation !== 'js'
  t.is(await adviseLikeFio(fd, spec('buffered', 'randread')), native)
  t.is(await adviseLikeFio(fd, spec('cold', 'read')), native)
  t.false(await adviseLikeFio(fd, spec('direct', 'randread')))
})

test('kaio --help and kaio bench --help exit 0', async (t) => {
  const [a, b] = await Promise.all([kaio(['--help']), kaio(['bench', '--help'])])
  t.is(a.code, 0)
  t.regex(a.stdout, /bench/)
  t.is(b.code, 0)
  t.regex(b.stdout, /--impl/)
})

for (const args of [
  ['bench', '--depth', '0'],
  ['bench', '--depth', 'x'],
  ['bench', '--size', 'huge'],
  ['bench', '--workload', 'randjump'],
  ['bench', '--impl', 'io_uring'],
  ['bench', '--impl', 'uring,fio-libaio'],
  ['bench', '--cold', '--workload', 'write'],
  ['bench', '--cold=1'],
  ['bench', '--impl', 'sync,fio-psync', '--depth', '32'],
  ['bench', '--duration', '-1'],
  ['bench', '--bs', '1000'],
  ['bench', '--frobnicate'],
  ['bench', '--size'],
  ['bench', '--memory-ops', '-5'],
  ['bench', 'extra'],
  ['bench', '--suite', 'disk'],
  ['bench', '--suite', 'fs', '--concurrency', '0'],
  ['bench', '--suite', 'fs', '--concurrency', 'x'],
  ['bench', '--suite', 'fs', '--impl', 'fio'],
  ['bench', '--suite', 'fs', '--workload', 'randread'],
  ['bench', '--suite', 'fs', '--depth', '1'],
  ['bench', '--suite', 'fs', '--files', '0'],
  ['bench', '--suite', 'fs', '--impl', 'sync', '--concurrency', '64'],
  ['bench', '--concurrency', '1'],
  ['bench', '--impl', 'kaio'],
  ['frobnicate'],
]) {
  test(`bad arguments exit 2 with one line: ${args.join(' ')}`, async (t) => {
    assertUsageError(t, await kaio(args))
  })
}

test('an unwritable --dir exits 2 with one line', async (t) => {
  assertUsageError(t, await kaio(['bench', '--dir', '/proc', '--size', '8M', '--duration', '0.1', '--impl', 'node']))
})

test('a missing --dir exits 2 with one line', async (t) => {
  assertUsageError(t, await kaio(['bench', '--dir', '/nonexistent/kaio', '--impl', 'node']))
})

test('a tiny run prints parseable JSON with the expected fields and removes its file', async (t) => {
  const dir = tmpDir(t)
  const r = await kaio(
    ['bench', '--dir', dir, '--size', '8M', '--duration', '0.3', '--depth', '1', '--workload', 'randread', '--buffered', '--impl', 'linux,node', '--json', '--memory-ops', '1000'],
    dir,
  )
  t.is(r.code, 0, r.stderr)
  const doc = JSON.parse(r.stdout) as {
    version: string
    machine: Record<string, unknown>
    config: { size: number; depths: number[]; engines: string[] }
    results: Record<string, unknown>[]
    targets: { name: string; status: string; value: number | null }[]
    memory: { engine: string; ops: number; rssMb: number[]; rssGrowthMb: number; heapGrowthMb: number; error?: string }[]
    notes: string[]
  }
  t.is(typeof doc.version, 'string')
  t.is(doc.config.size, 8 << 20)
  t.deepEqual(doc.config.depths, [1])
  t.true(Array.isArray(doc.notes))
  const engines = doc.results.map((x) => x.engine)
  t.true(engines.includes('node'))
  for (const res of doc.results) {
    t.is(res.mode, 'buffered')
    t.is(res.workload, 'randread')
    t.is(res.depth, 1)
    t.is(res.bs, 4096)
    if (res.error) continue
    for (const k of ['iops', 'mbps', 'meanLatUs', 'p99LatUs', 'cpuPerOpUs', 'loopDelayP99Ms', 'loopResponseP99Us', 'ops', 'seconds']) {
      t.is(typeof res[k], 'number', k)
      t.true((res[k] as number) > 0, k)
    }
    t.true('vsNode' in res && 'vsFio' in res)
  }
  const node = doc.results.find((x) => x.engine === 'node')!
  t.is(node.vsNode, 1)
  t.true(doc.targets.length > 0)
  for (const tr of doc.targets) t.true(['PASS', 'MISS', 'n/a'].includes(tr.status))
  // The memory check ran per engine in a child process; its target is evaluated.
  t.deepEqual(doc.memory.map((m) => m.engine).sort(), ['linux', 'node'].filter((e) => engines.includes(e)).sort())
  for (const m of doc.memory) {
    t.is(m.error, undefined)
    t.is(m.ops, 1000)
    t.true(m.rssMb.length > 1 && m.rssMb.every((v) => v > 0))
    t.is(typeof m.rssGrowthMb, 'number')
  }
  if (engines.includes('linux')) t.not(doc.targets.find((x) => x.name.startsWith('memory: kaio linux'))?.status, 'n/a')
  t.deepEqual(
    fs.readdirSync(dir).filter((f) => f.startsWith('.kaio-bench')),
    [],
  )
})

// As root, --cold drops the page cache of the whole machine before every run: one engine
// (two runs) keeps that short for whoever else is using the machine.
test('--cold with --impl sync: cold and warm cells, the sync loop, event-loop delay, the targets', async (t) => {
  const dir = tmpDir(t)
  const r = await kaio(
    ['bench', '--dir', dir, '--size', '8M', '--duration', '0.2', '--depth', '1', '--workload', 'randread', '--buffered', '--cold', '--impl', 'sync', '--json', '--memory-ops', '0'],
    dir,
  )
  t.is(r.code, 0, r.stderr)
  const doc = JSON.parse(r.stdout) as {
    config: { modes: string[]; engines: string[]; coldDepths: number[] }
    results: { mode: string; engine: string; label: string; iops: number; loopDelayP99Ms: number | null; loopResponseP99Us: number | null; error?: string }[]
    targets: { name: string; status: string; reason?: string }[]
    notes: string[]
  }
  t.deepEqual(doc.config.modes, ['buffered', 'cold'])
  t.deepEqual(doc.config.coldDepths, [1])
  const engines = doc.config.engines
  t.true(engines.includes('sync'))
  const root = process.getuid?.() === 0
  for (const mode of ['buffered', 'cold']) {
    for (const engine of engines) {
      const res = doc.results.find((x) => x.mode === mode && x.engine === engine)
      t.truthy(res, `${mode} ${engine}`)
      if (mode === 'cold' && !root) {
        // Never silently: a cold cell that cannot drop the page cache says why.
        t.regex(res!.error ?? '', /^not measured: /)
        continue
      }
      t.is(res!.error, undefined, `${mode} ${engine}`)
      t.true(res!.iops > 0)
      t.true(typeof res!.loopDelayP99Ms === 'number' && res!.loopDelayP99Ms > 0, `${mode} ${engine}`)
      t.true(typeof res!.loopResponseP99Us === 'number' && res!.loopResponseP99Us > 0, `${mode} ${engine}`)
    }
  }
  t.is(doc.results.find((x) => x.engine === 'sync')!.label, 'fs.readSync loop')
  const cold = doc.targets.find((x) => x.name === 'cold cache 4k randread d32: kaio uring / node:fs >= 1.5')
  t.is(cold?.status, 'n/a')
  if (!root) t.true(doc.notes.some((n) => n.startsWith('cold-cache cells not measured')))
})

test('--impl uring,fio-uring,sync: fio io_uring ratios and the uring target lines', async (t) => {
  const dir = tmpDir(t)
  const r = await kaio(
    ['bench', '--dir', dir, '--size', '8M', '--duration', '0.2', '--depth', '1', '--workload', 'randread', '--buffered', '--impl', 'uring,fio-uring,sync', '--json', '--memory-ops', '0'],
    dir,
  )
  t.is(r.code, 0, r.stderr)
  const doc = JSON.parse(r.stdout) as {
    config: { engines: string[] }
    results: { engine: string; error?: string; loopDelayP99Ms: number | null; loopResponseP99Us: number | null; vsFioUring: number | null }[]
    targets: { name: string; status: string }[]
  }
  const engines = doc.config.engines
  t.deepEqual(doc.results.map((x) => x.engine), engines)
  for (const res of doc.results) {
    t.is(res.error, undefined, res.engine)
    if (engines.includes('fio-uring')) t.is(typeof res.vsFioUring, 'number')
    // fio runs out of process: no event-loop delay (NaN, null in JSON).
    t.is(res.loopDelayP99Ms === null, res.engine.startsWith('fio'), res.engine)
    t.is(res.loopResponseP99Us === null, res.engine.startsWith('fio'), res.engine)
  }
  const d1 = doc.targets.find((x) => x.name === 'page cache 4k randread d1: kaio uring / fs.readSync loop >= 0.4')
  t.not(d1?.status, 'n/a')
})

test('--plot writes an SVG chart', async (t) => {
  const dir = tmpDir(t)
  const svg = path.join(dir, 'chart.svg')
  const r = await kaio(
    ['bench', '--dir', dir, '--size', '8M', '--duration', '0.2', '--depth', '1,4', '--workload', 'randread', '--buffered', '--impl', 'js,node', '--plot', svg, '--memory-ops', '0'],
    dir,
  )
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /targets/)
  t.regex(r.stdout, /loop p99 ms {2}resp p99 µs/)
  const text = fs.readFileSync(svg, 'utf8')
  t.regex(text, /<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  t.regex(text, /<\/svg>\s*$/)
  t.regex(text, /polyline/)
  t.regex(text, /node:fs\/promises/)
})

test('--suite fs: a tiny run prints the fs cells, ×node and ×sync ratios, the targets and removes its directory', async (t) => {
  const dir = tmpDir(t)
  const r = await kaio(['bench', '--suite', 'fs', '--dir', dir, '--files', '20', '--duration', '0.1', '--concurrency', '1,4', '--impl', 'kaio,js,node,sync', '--json'], dir)
  t.is(r.code, 0, r.stderr)
  const doc = JSON.parse(r.stdout) as {
    config: { suite: string; files: number; concurrency: number[]; engines: string[] }
    results: { mode: string; workload: string; depth: number; engine: string; iops: number; vsNode: number | null; vsSync: number | null; error?: string }[]
    targets: { name: string; status: string }[]
  }
  t.is(doc.config.suite, 'fs')
  t.is(doc.config.files, 20)
  t.deepEqual(doc.config.concurrency, [1, 4])
  for (const w of ['readfile', 'writefile', 'stat', 'open', 'walk']) {
    for (const c of [1, 4]) {
      const cell = doc.results.filter((x) => x.workload === w && x.depth === c)
      t.deepEqual(cell.map((x) => x.engine).sort(), doc.config.engines.filter((e) => e !== 'sync' || c === 1).sort(), `${w} c${c}`)
      for (const res of cell) {
        t.is(res.mode, 'files')
        t.is(res.error, undefined, `${w} c${c} ${res.engine}`)
        t.true(res.iops > 0)
        t.is(typeof res.vsNode, 'number')
        t.is(typeof res.vsSync, 'number')
      }
    }
  }
  t.true(doc.targets.some((x) => x.name === 'readFile 4k c1: kaio/promises / node:fs >= 5' && x.status !== 'n/a'))
  t.true(doc.targets.some((x) => x.name.startsWith('open + close c1') && x.status !== 'n/a'))
  t.false(doc.targets.some((x) => x.name.startsWith('memory')))
  t.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.kaio-bench')), [])
})

test('--suite fs: the stream cells run only when named, at concurrency 1, plain and after POSIX_FADV_SEQUENTIAL', async (t) => {
  const dir = tmpDir(t)
  const r = await kaio(['bench', '--suite', 'fs', '--dir', dir, '--files', '5', '--quick', '--workload', 'stream,stream-fadvise', '--concurrency', '1,4', '--impl', 'kaio,node,sync', '--json'], dir)
  t.is(r.code, 0, r.stderr)
  const doc = JSON.parse(r.stdout) as { results: { workload: string; depth: number; engine: string; bs: number; iops: number; vsNode: number | null; error?: string }[] }
  for (const w of ['stream', 'stream-fadvise']) {
    const cell = doc.results.filter((x) => x.workload === w)
    t.deepEqual(cell.map((x) => `${x.engine} c${x.depth}`).sort(), ['kaio c1', 'node c1'], w)
    for (const res of cell) {
      t.is(res.bs, 64 << 20)
      // Dropping the page cache needs root: without it the cells say why instead.
      if (res.error !== undefined) t.regex(res.error, /not measured/)
      else t.true(res.iops > 0 && typeof res.vsNode === 'number', `${w} ${res.engine}`)
    }
  }
  t.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.kaio-bench')), [])
  const plain = await kaio(['bench', '--suite', 'fs', '--dir', dir, '--files', '5', '--duration', '0.05', '--concurrency', '1', '--impl', 'node', '--json'], dir)
  t.false((JSON.parse(plain.stdout) as { results: { workload: string }[] }).results.some((x) => x.workload.startsWith('stream')))
})

test('--suite fs --plot writes a chart and the text table has ×sync', async (t) => {
  const dir = tmpDir(t)
  const svg = path.join(dir, 'fs.svg')
  const r = await kaio(['bench', '--suite', 'fs', '--dir', dir, '--files', '10', '--duration', '0.1', '--workload', 'stat,walk', '--plot', svg], dir)
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /×sync/)
  t.regex(r.stdout, /loop p99 ms {2}resp p99 µs/)
  t.regex(r.stdout, /cached files · stat/)
  t.regex(r.stdout, /targets/)
  t.regex(fs.readFileSync(svg, 'utf8'), /kaio\/promises/)
})

test('combine: the two half runs of an engine add up; latency and CPU are weighted by operations', (t) => {
  const run = (ops: number, seconds: number, meanLatUs: number, p99LatUs: number, cpuPerOpUs: number) => ({
    ops,
    bytes: ops * 4096,
    seconds,
    iops: ops / seconds,
    mbps: (ops * 4096) / seconds / 1e6,
    meanLatUs,
    p99LatUs,
    cpuPerOpUs,
    loopDelayP99Ms: 2,
    // Weighted by seconds, as the loop delay.
    loopResponseP99Us: seconds * 100,
  })
  const m = combine([run(300, 1, 10, 40, 2), run(100, 3, 30, 80, 6)])
  t.is(m.ops, 400)
  t.is(m.seconds, 4)
  t.is(m.iops, 100)
  t.is(m.bytes, 400 * 4096)
  t.is(m.meanLatUs, 15)
  t.is(m.p99LatUs, 50)
  t.is(m.cpuPerOpUs, 3)
  t.is(m.loopDelayP99Ms, 2)
  t.is(m.loopResponseP99Us, (100 * 1 + 300 * 3) / 4)
  t.true(Number.isNaN(combine([run(0, 1, NaN, NaN, NaN)]).meanLatUs))
})

test('the response probe: a blocked JS thread shows in resp p99, and the pinger never keeps the process alive', async (t) => {
  // A child of its own, so that only the probe could keep it running after the run.
  const script = `require(${JSON.stringify(path.join(ROOT, 'src', 'bench', 'engines.js'))})
    .syncLoop(new (require(${JSON.stringify(path.join(ROOT, 'src', 'bench', 'engines.js'))}).Meter)(null), 0.1, () => {})
    .then((m) => console.log(JSON.stringify(m)))`
  const out = await new Promise<Ran>((resolve) => {
    execFile(process.execPath, ['-e', script], { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? -1 : 0, stdout: String(stdout), stderr: String(stderr) }))
  })
  t.is(out.code, 0, out.stderr)
  const m = JSON.parse(out.stdout) as Measured
  // Pings sent as the 100 ms loop took the thread waited for all of it.
  t.true(m.loopResponseP99Us > 50_000, String(m.loopResponseP99Us))
  // (monitorEventLoopDelay's p99 need not show it: the 100 ms block is one sample among the
  // 1 ms ones taken until the last ping has been handled, which under load can be over 100.)
  t.true(m.loopDelayP99Ms > 0, String(m.loopDelayP99Ms))
})

test('the event-loop target is judged on the response p99 and shows the delay p99 beside it', (t) => {
  const cell = (engine: CellResult['engine'], loopResponseP99Us: number, loopDelayP99Ms: number): CellResult => ({
    ...failedResult({ mode: 'cold', workload: 'randread', bs: 4096, depth: 32, engine, label: engine }, ''),
    error: undefined,
    ops: 1000,
    seconds: 1,
    iops: 1000,
    loopResponseP99Us,
    loopDelayP99Ms,
  })
  const defs = targetDefs([32], ['randread']).filter((d) => d.metric === 'loop')
  t.true(defs.length > 0)
  // 1 ms apart on the delay's clock would say nothing; the response says 0.5x.
  const [uring] = evaluateTargets([cell('uring', 150, 3), cell('linux', 450, 2), cell('node', 300, 2.5)], defs, null)
  t.regex(uring!.name, /event-loop response p99 kaio uring \/ node:fs <= 1/)
  t.is(uring!.value, 0.5)
  t.is(uring!.status, 'PASS')
  t.is(uring!.detail, '150 µs vs 300 µs; loop delay p99 3.0 ms vs 2.5 ms')
  const linux = evaluateTargets([cell('linux', 450, 2), cell('node', 300, 2.5)], defs, null).find((x) => x.name.includes('kaio linux'))
  t.is(linux!.status, 'MISS')
})
