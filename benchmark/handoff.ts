// (3) Completion hand-off cost at depth 1: the thread backend (a pool thread does pread, then
// wakes the JS thread) against the linux backend (kernel AIO; buffered reads complete inside
// io_submit and are reaped on the JS thread). On page cache the read itself costs ~1 µs, so
// the latency is almost all hand-off; O_DIRECT shows the same on top of the device.
// node:fs/promises and kaio's js backend (node:fs callbacks) are the reference.
//   node benchmark/handoff.js [--dir DIR] [--size 256M] [--duration 2]
import type { Measured, RunSpec } from '../src/bench/engines'
import { implementations } from '../index'
import { args, kaioRun, machine, nodeRun, table, testFile, warm } from './common'

async function main(): Promise<void> {
  const a = args()
  const file = testFile(a)
  console.log(`# hand-off: completion path cost at depth 1 (4 KiB random reads)\n${machine()}; ${a.size >> 20} MiB file, ${a.duration} s per row, best of 3 rounds (by IOPS)\n`)
  const rows: (string | number)[][] = [['workload', 'engine', 'IOPS', 'mean µs', 'p99 µs', 'CPU µs/op', 'CPU µs/op by thread']]
  const engines = [...implementations, 'node'] as const
  for (const mode of ['buffered', 'direct'] as const) {
    const best = new Map<string, { m: Measured; split: string }>()
    for (let round = 0; round < 3; round++) {
      for (const e of engines) {
        const spec: RunSpec = { path: file, mode, workload: 'randread', bs: 4096, depth: 1, duration: a.duration, size: a.size }
        if (mode === 'buffered') warm(file)
        const { m, split } = e === 'node' ? await nodeRun(spec) : await kaioRun(e, spec)
        const prev = best.get(e)
        if (!prev || m.iops > prev.m.iops) best.set(e, { m, split })
      }
    }
    for (const e of engines) {
      const b = best.get(e)!
      const label = e === 'node' ? 'node:fs/promises' : `kaio ${e}`
      rows.push([mode === 'direct' ? 'O_DIRECT' : 'page cache', label, b.m.iops, b.m.meanLatUs, b.m.p99LatUs, b.m.cpuPerOpUs, b.split])
    }
  }
  console.log(table(rows))
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
