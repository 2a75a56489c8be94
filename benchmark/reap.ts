// (2) Where completions are reaped: the linux backend reaps on the JS thread right after
// io_submit (buffered I/O completes inside io_submit) and otherwise through its completion
// thread (eventfd -> io_getevents -> mailbox -> JS). This measures the linux backend under
// page cache and O_DIRECT at depth 1 and 32, with the CPU of each thread per operation, so
// the engine's choice can be checked against numbers. The engine decides by itself.
//   node benchmark/reap.js [--dir DIR] [--size 256M] [--duration 2]
import type { RunSpec } from '../src/bench/engines'
import { args, kaioRun, machine, table, testFile, warm } from './common'

async function main(): Promise<void> {
  const a = args()
  const file = testFile(a)
  console.log(`# reap: linux backend, page cache vs O_DIRECT, depth 1 and 32 (4 KiB random reads)\n${machine()}; ${a.size >> 20} MiB file, ${a.duration} s per row, 3 rounds\n`)
  const rows: (string | number)[][] = [['workload', 'depth', 'round', 'IOPS', 'mean µs', 'p99 µs', 'CPU µs/op', 'CPU µs/op by thread']]
  for (const mode of ['buffered', 'direct'] as const) {
    for (const depth of [1, 32]) {
      for (let round = 1; round <= 3; round++) {
        const spec: RunSpec = { path: file, mode, workload: 'randread', bs: 4096, depth, duration: a.duration, size: a.size }
        if (mode === 'buffered') warm(file)
        const { m, split } = await kaioRun('linux', spec)
        rows.push([mode === 'direct' ? 'O_DIRECT' : 'page cache', String(depth), String(round), m.iops, m.meanLatUs, m.p99LatUs, m.cpuPerOpUs, split])
      }
    }
  }
  console.log(table(rows))
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
