// (5) The smallest kaio workload: N concurrent `readInto` loops of 4 KiB random reads on one
// descriptor, printing reads/s and CPU per read. Used for A/B runs of two builds (run them
// alternately: this VM drifts ±10%) and under `perf record -g node --perf-basic-prof`.
//   node benchmark/loop.js [--direct] [--depth 32] [--ops 1000000] [--impl linux] [--busy-poll US] [--dir DIR]
import * as fs from 'node:fs'

import { allocAligned, Context } from '../index'
import type { Implementation } from '../index'
import { fillTestFile, openTestFile, removeTestFile, testFilePath, warm } from '../src/bench/testfile'

async function main(): Promise<void> {
  const a = process.argv.slice(2)
  const opt = (name: string, dflt: string): string => {
    const i = a.indexOf(name)
    return i >= 0 && a[i + 1] !== undefined ? a[i + 1]! : dflt
  }
  const direct = a.includes('--direct')
  const depth = Number(opt('--depth', '32'))
  const ops = Number(opt('--ops', direct ? '200000' : '1000000'))
  const impl = opt('--impl', 'linux') as Implementation
  const busyPoll = Number(opt('--busy-poll', '0'))
  const size = 64 << 20
  const path = testFilePath(undefined, opt('--dir', process.cwd()))
  fillTestFile(openTestFile(path), path, size)
  try {
    const fd = fs.openSync(path, fs.constants.O_RDONLY | (direct ? fs.constants.O_DIRECT : 0))
    const ctx = new Context({ implementation: impl, maxRequests: depth, busyPoll })
    if (!direct) warm(path)
    let done = 0
    const t0 = process.hrtime.bigint()
    const c0 = process.cpuUsage()
    await Promise.all(
      Array.from({ length: depth }, async (_, w) => {
        const buf = allocAligned(4096)
        let s = (w + 1) * 0x9e3779b1
        while (done < ops) {
          done++
          s ^= s << 13
          s ^= s >>> 17
          s ^= s << 5
          await ctx.readInto(buf, fd, ((s >>> 0) % (size / 4096)) * 4096)
        }
      }),
    )
    const us = Number(process.hrtime.bigint() - t0) / 1000 / done
    const cpu = process.cpuUsage(c0)
    console.log(`${impl}${busyPoll ? ` busyPoll ${busyPoll}` : ''} ${direct ? 'O_DIRECT' : 'page cache'} d${depth}: ${Math.round(1e6 / us)} reads/s, ${us.toFixed(2)} µs/read, CPU ${((cpu.user + cpu.system) / done).toFixed(2)} µs/read`)
    await ctx.close()
    fs.closeSync(fd)
  } finally {
    removeTestFile()
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
