// (6) Is a bench cell's ratio the engine or the host? Engines on the same fresh test file,
// alternating in the order given (k: kaio linux, p: kaio linux busy-poll, t: kaio thread,
// j: kaio js, n: node:fs/promises, f: fio libaio), 2 s each, O_DIRECT, printing IOPS and mean
// latency per run. Defaults: 4k random reads at depth 32.
//   node benchmark/alternate.js [--depth 32] [--order kfkffkkf]
//     [--workload randread|randwrite|read|write] [--bs 4k] [--size 1G] [--dir DIR]
import type { Measured, RunSpec } from '../src/bench/engines'
import { runKaio, runNode } from '../src/bench/engines'
import { runFio } from '../src/bench/fio'
import type { Workload } from '../src/bench/options'
import { parseSize } from '../src/bench/options'
import { fillTestFile, openTestFile, removeTestFile, testFilePath } from '../src/bench/testfile'

const ENGINES: Record<string, [string, (spec: RunSpec) => Promise<Measured>]> = {
  k: ['kaio linux', (s) => runKaio('linux', s)],
  p: ['kaio busy-poll', (s) => runKaio('linux-poll', s)],
  t: ['kaio thread', (s) => runKaio('thread', s)],
  j: ['kaio js', (s) => runKaio('js', s)],
  n: ['node:fs/promises', runNode],
  f: ['fio libaio', (s) => runFio(s, 'libaio')],
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
  const workload = opt('--workload', 'randread') as Workload
  if (!['randread', 'randwrite', 'read', 'write'].includes(workload)) throw new Error(`--workload: ${workload}`)
  const size = parseSize(opt('--size', '1G'), '--size')
  const path = testFilePath(undefined, opt('--dir', process.cwd()))
  fillTestFile(openTestFile(path), path, size)
  try {
    const bs = parseSize(opt('--bs', '4k'), '--bs')
    const spec: RunSpec = { path, mode: 'direct', workload, bs, depth: Number(opt('--depth', '32')), duration: 2, size }
    for (const e of order) {
      const [label, run] = ENGINES[e]!
      const m = await run(spec)
      console.log(`${label.padEnd(16)}  ${Math.round(m.iops)} IOPS  mean ${m.meanLatUs.toFixed(0)} µs  cpu ${m.cpuPerOpUs.toFixed(1)} µs/op`)
    }
  } finally {
    removeTestFile()
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
