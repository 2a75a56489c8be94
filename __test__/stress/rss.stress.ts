// Issue 6, item 5 (and the memory target of issue 7): resident memory stays flat over a long
// run. The workload of `kaio bench`'s memory check (src/bench/memory.ts: read() with a new
// Buffer per call, readInto, write and writev, 64 in flight, each backend in a child process
// of its own with V8's young generation pinned, samples after full collections), for
// KAIO_RSS_OPS operations (default 1,000,000) per backend: RSS and V8's live heap each grow
// under 10 MB (median of the last samples minus median of the first).
import test from 'ava'

import { implementations } from '../../index'
import { measureMemory } from '../../src/bench/memory'
import { scratchFile } from '../fixtures/common'

const OPS = Number(process.env.KAIO_RSS_OPS ?? 1_000_000)
const SIZE = 16 << 20

for (const impl of implementations) {
  test(`${impl}: RSS stays flat over ${OPS} ops of read/readInto/write/writev`, async (t) => {
    t.timeout(4 * 60_000)
    const path = scratchFile(Buffer.alloc(SIZE))
    const r = await measureMemory({ engine: impl, path, size: SIZE, ops: OPS })
    t.is(r.error, undefined)
    t.log(`${impl}: RSS MB ${r.rssMb.join(' ')}; growth ${r.rssGrowthMb} MB, live heap ${r.heapGrowthMb} MB, ${r.seconds} s`)
    t.true(r.rssGrowthMb < 10, `RSS grew ${r.rssGrowthMb} MB`)
    t.true(r.heapGrowthMb < 10, `V8's live heap grew ${r.heapGrowthMb} MB`)
  })
}
