// Issue 6, item 4: queue overflow. 100,000 requests issued at once on a context that takes
// 8 at a time all complete, with memory bounded; RSS is reported.
import test from 'ava'
import * as fs from 'node:fs'

import { Context, implementations } from '../../index'
import { scratchFile } from '../fixtures/common'

declare const gc: (() => void) | undefined
const N = Number(process.env.KAIO_OVERFLOW_REQUESTS ?? 100_000)
const mb = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MB`

for (const impl of implementations) {
  test(`${impl}: ${N} requests at once with maxRequests 8 all complete, memory bounded`, async (t) => {
    t.timeout(4 * 60_000)
    const path = scratchFile(Buffer.alloc(1 << 20))
    const fd = fs.openSync(path, 'r+')
    const data = Buffer.alloc(512, 0x5a)
    const into = Buffer.alloc(512)
    gc?.()
    const rss0 = process.memoryUsage().rss
    let peak = rss0
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20)
    const ctx = new Context({ implementation: impl, maxRequests: 8 })
    const t0 = performance.now()
    const ps: Promise<number>[] = []
    for (let i = 0; i < N; i++) {
      const off = (i % 2048) * 512
      ps.push(i % 2 ? ctx.write(data, fd, off) : ctx.readInto(into, fd, off))
    }
    peak = Math.max(peak, process.memoryUsage().rss)
    const res = await Promise.all(ps)
    const secs = (performance.now() - t0) / 1000
    clearInterval(sampler)
    await ctx.close()
    gc?.()
    const rss1 = process.memoryUsage().rss
    fs.closeSync(fd)
    t.is(res.length, N)
    t.true(res.every((n) => n === 512))
    t.log(`${impl}: ${N} requests in ${secs.toFixed(1)} s; RSS ${mb(rss0)} -> peak ${mb(peak)} (+${mb(peak - rss0)}) -> ${mb(rss1)} after`)
    // About 1 KB of JS state per queued request is expected; a leak or an unbounded copy is not.
    t.true(peak - rss0 < 400 * 2 ** 20, `peak growth ${mb(peak - rss0)}`)
  })
}
