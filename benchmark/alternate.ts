// (6) Is a bench cell's ratio the engine or the host? Engines on the same fresh test file,
// alternating in the order given, one run each, printing IOPS and mean latency per run, then
// for each engine the median (and range) of its ratio to the reference engine's run next to it
// (the run before or after), so that a disk that drifts between runs weighs on both sides of
// each ratio alike. Letters: u kaio uring, k kaio linux, p kaio linux busy-poll, t kaio thread,
// j kaio js, n node:fs/promises, f fio libaio, g fio io_uring. Modes: direct (O_DIRECT),
// cold (the page cache dropped before every run, needs root), buffered (warm page cache).
// In-process runs get fio's default access hint, as in `kaio bench`.
//   node benchmark/alternate.js [--mode direct|cold|buffered] [--depth 32] [--order ugugugug]
//     [--vs g] [--duration 2] [--workload randread|randwrite|read|write] [--bs 4k]
//     [--size 1G] [--dir DIR]
import type { Measured, RunSpec } from '../src/bench/engines'
import { runKaio, runNode } from '../src/bench/engines'
import { runFio } from '../src/bench/fio'
import type { Mode, Workload } from '../src/bench/options'
import { parseSize } from '../src/bench/options'
import { dropCaches, fillTestFile, openTestFile, removeTestFile, testFilePath, warm } from '../src/bench/testfile'

const ENGINES: Record<string, [string, (spec: RunSpec) => Promise<Measured>]> = {
  u: ['kaio uring', (s) => runKaio('uring', s)],
  k: ['kaio linux', (s) => runKaio('linux', s)],
  p: ['kaio busy-poll', (s) => runKaio('linux-poll', s)],
  t: ['kaio thread', (s) => runKaio('thread', s)],
  j: ['kaio js', (s) => runKaio('js', s)],
  n: ['node:fs/promises', runNode],
  f: ['fio libaio', (s) => runFio(s, 'libaio')],
  g: ['fio io_uring', (s) => runFio(s, 'io_uring')],
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** For each run not of engine `vs`: its IOPS over the `vs` run next to it (the nearer in order). */
function pairedRatios(runs: { e: string; iops: number }[], vs: string): Map<string, number[]> {
  const out = new Map<string, number[]>()
  runs.forEach((r, i) => {
    if (r.e === vs) return
    const near = [runs[i - 1], runs[i + 1]].filter((x) => x?.e === vs)
    if (near.length === 0) return
    const ref = near.reduce((a, x) => a + x!.iops, 0) / near.length
    out.set(r.e, [...(out.get(r.e) ?? []), r.iops / ref])
  })
  return out
}

async function main(): Promise<void> {
  const a = process.argv.slice(2)
  const opt = (name: string, dflt: string): string => {
    const i = a.indexOf(name)
    return i >= 0 && a[i + 1] !== undefined ? a[i + 1]! : dflt
  }
  const order = opt('--order', 'kfkffkkf')
  const unknown = [...order].filter((e) => !(e in ENGINES))
  if (unknown.length > 0) throw new Error(`--order: unknown engine letter(s) ${unknown.join('')}`)
  const vs = opt('--vs', [...order].find((e) => e === 'g' || e === 'f') ?? order[0]!)
  const workload = opt('--workload', 'randread') as Workload
  if (!['randread', 'randwrite', 'read', 'write'].includes(workload)) throw new Error(`--workload: ${workload}`)
  const mode = opt('--mode', 'direct') as Mode
  if (!['direct', 'cold', 'buffered'].includes(mode)) throw new Error(`--mode: ${mode}`)
  if (mode === 'cold') {
    const why = dropCaches()
    if (why !== '') throw new Error(`--mode cold: ${why}`)
  }
  const size = parseSize(opt('--size', '1G'), '--size')
  const path = testFilePath(undefined, opt('--dir', process.cwd()))
  fillTestFile(openTestFile(path), path, size)
  try {
    const bs = parseSize(opt('--bs', '4k'), '--bs')
    const duration = Number(opt('--duration', '2'))
    const spec: RunSpec = { path, mode, workload, bs, depth: Number(opt('--depth', '32')), duration, size }
    const runs: { e: string; iops: number }[] = []
    for (const e of order) {
      const [label, run] = ENGINES[e]!
      if (mode === 'cold') dropCaches()
      if (mode === 'buffered') warm(path)
      const m = await run(spec)
      runs.push({ e, iops: m.iops })
      console.log(`${label.padEnd(16)}  ${Math.round(m.iops)} IOPS  mean ${m.meanLatUs.toFixed(0)} µs  cpu ${m.cpuPerOpUs.toFixed(1)} µs/op`)
    }
    for (const [e, rs] of pairedRatios(runs, vs)) {
      const f = (x: number): string => x.toFixed(2)
      console.log(`${ENGINES[e]![0]} / ${ENGINES[vs]![0]}: median ${f(median(rs))}x (${rs.map(f).join(', ')})`)
    }
  } finally {
    removeTestFile()
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
