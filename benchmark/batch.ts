// (1) Batch size: N reads issued in one tick (one io_submit for all of them) against the same
// N reads issued one at a time, each awaited before the next. Per backend and per workload:
// reads per second and CPU per read.
//   node benchmark/batch.js [--dir DIR] [--size 256M] [--duration 2]
import * as fs from 'node:fs'
import { performance } from 'node:perf_hooks'

import { Context, implementations } from '../index'
import { O_DIRECT, slotBuffers } from '../src/bench/engines'
import type { Implementation } from '../src/driver'
import { args, machine, table, testFile, warm } from './common'

const BS = 4096

async function measure(impl: Implementation, direct: boolean, n: number, batched: boolean, file: string, seconds: number): Promise<{ iops: number; cpu: number }> {
  const fd = fs.openSync(file, fs.constants.O_RDWR | (direct ? O_DIRECT : 0))
  const ctx = new Context({ implementation: impl, maxRequests: Math.max(128, n) })
  const bufs = slotBuffers(n, BS)
  const blocks = Math.floor(fs.fstatSync(fd).size / BS)
  let seed = 0x9e3779b9 | 0
  const next = (): number => {
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return ((seed >>> 0) % blocks) * BS
  }
  if (!direct) warm(file)
  let ops = 0
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  while (performance.now() < end) {
    if (batched) {
      const ps: Promise<number>[] = []
      for (let i = 0; i < n; i++) ps.push(ctx.readInto(bufs[i]!, fd, next()))
      await Promise.all(ps)
    } else {
      for (let i = 0; i < n; i++) await ctx.readInto(bufs[i]!, fd, next())
    }
    ops += n
  }
  const secs = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  await ctx.close()
  fs.closeSync(fd)
  return { iops: ops / secs, cpu: (cpu.user + cpu.system) / ops }
}

async function main(): Promise<void> {
  const a = args({ duration: 1.5 })
  const file = testFile(a)
  console.log(`# batch: N reads in one tick vs one at a time (4 KiB random reads)\n${machine()}; ${a.size >> 20} MiB file, ${a.duration} s per row\n`)
  for (const direct of [false, true]) {
    const rows: (string | number)[][] = [['backend', 'N', 'one tick: IOPS', 'CPU µs/op', 'one at a time: IOPS', 'CPU µs/op', 'speed-up']]
    for (const impl of implementations.filter((i) => i !== 'js')) {
      for (const n of [1, 8, 32, 128]) {
        const b = await measure(impl, direct, n, true, file, a.duration)
        const s = await measure(impl, direct, n, false, file, a.duration)
        rows.push([impl, String(n), b.iops, b.cpu, s.iops, s.cpu, `${(b.iops / s.iops).toFixed(2)}x`])
      }
    }
    console.log(`## ${direct ? 'O_DIRECT' : 'page cache'}\n\n${table(rows)}\n`)
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
