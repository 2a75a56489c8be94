// Issue 6, item 4: 1,000,000 random-offset writes of random sizes, 256 in flight, over a
// 256 MiB file, checked against an in-memory model. In-flight writes never overlap (their
// ranges are tracked), so the final content is unambiguous: any lost, torn or misplaced
// write shows up as a mismatch. KAIO_STRESS_WRITES sets the count (per backend);
// KAIO_STRESS_WRITES_JS the js backend's (default: the same).
import test from 'ava'
import * as fs from 'node:fs'

import { Context, implementations } from '../../index'
import { rng, scratchFile } from '../fixtures/common'

const FILE_SIZE = 256 << 20
const IN_FLIGHT = 256
const MAX_WRITE = 16 * 1024
const COUNT = Number(process.env.KAIO_STRESS_WRITES ?? 1_000_000)
const COUNT_JS = Number(process.env.KAIO_STRESS_WRITES_JS ?? COUNT)

for (const impl of implementations) {
  const count = impl === 'js' ? COUNT_JS : COUNT
  test(`${impl}: ${count} random writes, ${IN_FLIGHT} in flight, over 256 MiB match the model`, async (t) => {
    t.timeout(8 * 60_000)
    const r = rng(0xc0ffee ^ impl.length)
    // Random source: writes are zero-copy views into it at random places.
    const pool = Buffer.alloc(4 << 20)
    for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE((r() * 2 ** 32) >>> 0, i)
    const model = Buffer.alloc(FILE_SIZE)
    const path = scratchFile()
    const fd = fs.openSync(path, 'r+')
    fs.ftruncateSync(fd, FILE_SIZE)
    const ctx = new Context({ implementation: impl, maxRequests: IN_FLIGHT })
    const starts = new Float64Array(IN_FLIGHT)
    const ends = new Float64Array(IN_FLIGHT)
    const free: number[] = Array.from({ length: IN_FLIGHT }, (_, i) => i)
    let issued = 0
    let done = 0
    let collisions = 0
    let bytes = 0
    const errors: string[] = []
    const t0 = performance.now()
    await new Promise<void>((resolve) => {
      const overlaps = (s: number, e: number): boolean => {
        for (let k = 0; k < IN_FLIGHT; k++) if (ends[k]! > s && starts[k]! < e) return true
        return false
      }
      const issue = (): void => {
        if (issued >= count) {
          if (done === count) resolve()
          return
        }
        issued++
        const len = 1 + Math.floor(r() * MAX_WRITE)
        let off = Math.floor(r() * (FILE_SIZE - len))
        while (overlaps(off, off + len)) {
          collisions++
          off = Math.floor(r() * (FILE_SIZE - len))
        }
        const slot = free.pop()!
        starts[slot] = off
        ends[slot] = off + len
        const src = Math.floor(r() * (pool.length - len))
        const data = pool.subarray(src, src + len)
        model.set(data, off)
        bytes += len
        ctx.write(data, fd, off).then(
          (n) => {
            if (n !== len && errors.length < 10) errors.push(`short write ${n}/${len} at ${off}`)
            finish(slot)
          },
          (e: unknown) => {
            if (errors.length < 10) errors.push(`write at ${off}: ${String(e)}`)
            finish(slot)
          },
        )
      }
      const finish = (slot: number): void => {
        starts[slot] = 0
        ends[slot] = 0
        free.push(slot)
        done++
        issue()
      }
      for (let k = 0; k < IN_FLIGHT; k++) issue()
    })
    const secs = (performance.now() - t0) / 1000
    await ctx.close()
    fs.closeSync(fd)
    t.deepEqual(errors, [])
    const file = fs.readFileSync(path)
    t.is(file.length, FILE_SIZE)
    let bad = 0
    let firstBad = -1
    const CHUNK = 1 << 20
    for (let o = 0; o < FILE_SIZE; o += CHUNK) {
      if (!file.subarray(o, o + CHUNK).equals(model.subarray(o, o + CHUNK))) {
        bad++
        if (firstBad < 0) firstBad = o
      }
    }
    fs.rmSync(path)
    t.log(`${impl}: ${count} writes (${(bytes / 2 ** 30).toFixed(2)} GiB) in ${secs.toFixed(1)} s = ${Math.round(count / secs)} writes/s; ${collisions} overlap re-draws`)
    t.is(bad, 0, `mismatching MiB chunks, first at ${firstBad}`)
  })
}
