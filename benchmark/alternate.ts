// (6) Is a bench cell's ratio the engine or the host? kaio and fio libaio on the same fresh
// test file, alternating in the order given (k: kaio linux, p: kaio linux busy-poll, f: fio),
// 2 s each, O_DIRECT 4k random reads at one depth, printing IOPS and mean latency per run.
//   node --import @oxc-node/core/register benchmark/alternate.ts [--depth 32] [--order kfkffkkf] [--size 1G] [--dir DIR]
import type { Measured, RunSpec } from '../src/bench/engines'
import { runKaio } from '../src/bench/engines'
import { runFio } from '../src/bench/fio'
import { parseSize } from '../src/bench/options'
import { fillTestFile, openTestFile, removeTestFile, testFilePath } from '../src/bench/testfile'

async function main(): Promise<void> {
  const a = process.argv.slice(2)
  const opt = (name: string, dflt: string): string => {
    const i = a.indexOf(name)
    return i >= 0 && a[i + 1] !== undefined ? a[i + 1]! : dflt
  }
  const size = parseSize(opt('--size', '1G'), '--size')
  const path = testFilePath(undefined, opt('--dir', process.cwd()))
  fillTestFile(openTestFile(path), path, size)
  try {
    const spec: RunSpec = { path, mode: 'direct', workload: 'randread', bs: 4096, depth: Number(opt('--depth', '32')), duration: 2, size }
    for (const e of opt('--order', 'kfkffkkf')) {
      const m: Measured = e === 'f' ? await runFio(spec, 'libaio') : await runKaio(e === 'p' ? 'linux-poll' : 'linux', spec)
      console.log(`${{ k: 'kaio linux', p: 'kaio busy-poll', f: 'fio libaio' }[e] ?? e}  ${Math.round(m.iops)} IOPS  mean ${m.meanLatUs.toFixed(0)} µs`)
    }
  } finally {
    removeTestFile()
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
