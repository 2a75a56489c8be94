// Issue 6, item 4: differential soak against node:fs. The same seeded sequence of
// reads/writes/readv/writev/fsync/fdsync (and an occasional truncate) runs on twin files:
// through kaio (batches issued concurrently, ranges within a batch never overlap) and
// through node:fs (the same batch applied in order). Every result and, at each checkpoint,
// the whole file must match. Concurrent reads past EOF would race with writes that extend
// the file, so a batch either only writes (and may grow the file) or keeps its writes below
// the size the file had when the batch started. KAIO_SOAK_SECONDS sets the duration per backend (default 60).
import test from 'ava'
import * as fs from 'node:fs'

import { Context, implementations } from '../../index'
import { rng, scratchFile } from '../fixtures/common'

const SECONDS = Number(process.env.KAIO_SOAK_SECONDS ?? 60)
const SPAN = 16 << 20
const BATCH = 64

type Op =
  | { kind: 'write' | 'read'; off: number; len: number; src: number }
  | { kind: 'writev' | 'readv'; off: number; lens: number[]; src: number }
  | { kind: 'fsync' | 'fdsync' }

for (const impl of implementations) {
  test(`${impl}: ${SECONDS} s differential soak against node:fs`, async (t) => {
    t.timeout((SECONDS + 120) * 1000)
    const r = rng(0x50a4 ^ impl.length)
    const pool = Buffer.alloc(1 << 20)
    for (let i = 0; i < pool.length; i++) pool[i] = (r() * 256) | 0
    const pa = scratchFile()
    const pb = scratchFile()
    const a = fs.openSync(pa, 'r+')
    const b = fs.openSync(pb, 'r+')
    const ctx = new Context({ implementation: impl, maxRequests: 32 })
    const mismatches: string[] = []
    const stats = { batches: 0, ops: 0, checks: 0, truncates: 0 }
    const end = Date.now() + SECONDS * 1000
    let size = 0
    const pickRange = (used: [number, number][], len: number, limit = SPAN + len): number => {
      for (let tries = 0; tries < 100; tries++) {
        const off = Math.floor(r() * (limit - len + 1))
        if (off >= 0 && !used.some(([s, e]) => off < e && off + len > s)) {
          used.push([off, off + len])
          return off
        }
      }
      return -1
    }
    while (Date.now() < end) {
      // Occasionally move EOF so reads cross it, then compare sizes.
      if (r() < 0.02) {
        size = Math.floor(r() * SPAN)
        fs.ftruncateSync(a, size)
        fs.ftruncateSync(b, size)
        stats.truncates++
      }
      const used: [number, number][] = []
      const ops: Op[] = []
      const growing = size < 8 << 20 || r() < 0.1
      const wlimit = (len: number): number => (growing ? SPAN + len : size)
      for (let k = 0; k < BATCH; k++) {
        const x = r()
        const rand = (): number => 1 + Math.floor(r() * (r() < 0.1 ? 256 * 1024 : 8192))
        if (x < 0.4 || (growing && x < 0.95)) {
          const len = rand()
          const off = pickRange(used, len, wlimit(len))
          if (off < 0) continue
          size = Math.max(size, off + len)
          ops.push({ kind: 'write', off, len, src: Math.floor(r() * (pool.length - len)) })
        } else if (x < 0.75) {
          const len = rand()
          const off = pickRange(used, len)
          if (off >= 0) ops.push({ kind: 'read', off, len, src: 0 })
        } else if (x < 0.85) {
          const lens = Array.from({ length: 1 + Math.floor(r() * 8) }, () => 1 + Math.floor(r() * 4096))
          const total = lens.reduce((p, c) => p + c, 0)
          const off = pickRange(used, total, wlimit(total))
          if (off < 0) continue
          size = Math.max(size, off + total)
          ops.push({ kind: 'writev', off, lens, src: Math.floor(r() * (pool.length - total)) })
        } else if (x < 0.95) {
          const lens = Array.from({ length: 1 + Math.floor(r() * 8) }, () => 1 + Math.floor(r() * 4096))
          const total = lens.reduce((p, c) => p + c, 0)
          const off = pickRange(used, total)
          if (off >= 0) ops.push({ kind: 'readv', off, lens, src: 0 })
        } else ops.push({ kind: r() < 0.5 ? 'fsync' : 'fdsync' })
      }
      const slices = (src: number, lens: number[]): Buffer[] => {
        let p = src
        return lens.map((l) => pool.subarray(p, (p += l)))
      }
      // kaio: the whole batch at once.
      const got = await Promise.all(ops.map(async (op): Promise<string> => {
        try {
          switch (op.kind) {
            case 'write': return `w${await ctx.write(pool.subarray(op.src, op.src + op.len), a, op.off)}`
            case 'read': return `r${(await ctx.read(op.len, a, op.off)).toString('base64')}`
            case 'writev': return `wv${await ctx.writev(slices(op.src, op.lens), a, op.off)}`
            case 'readv': {
              const bufs = op.lens.map((l) => Buffer.alloc(l))
              const n = await ctx.readv(bufs, a, op.off)
              return `rv${n}:${Buffer.concat(bufs).subarray(0, n).toString('base64')}`
            }
            case 'fsync': await ctx.fsync(a); return 's'
            case 'fdsync': await ctx.fdsync(a); return 's'
          }
        } catch (e) {
          return `E${(e as NodeJS.ErrnoException).code}`
        }
      }))
      // node:fs: the same batch, in order.
      const want = ops.map((op): string => {
        try {
          switch (op.kind) {
            case 'write': return `w${fs.writeSync(b, pool, op.src, op.len, op.off)}`
            case 'read': {
              const buf = Buffer.alloc(op.len)
              return `r${buf.subarray(0, fs.readSync(b, buf, 0, op.len, op.off)).toString('base64')}`
            }
            case 'writev': return `wv${fs.writevSync(b, slices(op.src, op.lens), op.off)}`
            case 'readv': {
              const bufs = op.lens.map((l) => Buffer.alloc(l))
              const n = fs.readvSync(b, bufs, op.off)
              return `rv${n}:${Buffer.concat(bufs).subarray(0, n).toString('base64')}`
            }
            case 'fsync': fs.fsyncSync(b); return 's'
            case 'fdsync': fs.fdatasyncSync(b); return 's'
          }
        } catch (e) {
          return `E${(e as NodeJS.ErrnoException).code}`
        }
      })
      for (let k = 0; k < ops.length; k++) {
        if (got[k] !== want[k] && mismatches.length < 10) mismatches.push(`batch ${stats.batches} op ${k} ${JSON.stringify(ops[k])}: kaio ${got[k]!.slice(0, 40)} node ${want[k]!.slice(0, 40)}`)
      }
      stats.batches++
      stats.ops += ops.length
      if (stats.batches % 200 === 0) {
        stats.checks++
        if (!fs.readFileSync(pa).equals(fs.readFileSync(pb)) && mismatches.length < 10) mismatches.push(`contents differ after batch ${stats.batches}`)
      }
      if (mismatches.length >= 10) break
    }
    await ctx.close()
    stats.checks++
    const same = fs.readFileSync(pa).equals(fs.readFileSync(pb))
    fs.closeSync(a)
    fs.closeSync(b)
    fs.rmSync(pa)
    fs.rmSync(pb)
    t.log(impl, stats)
    t.deepEqual(mismatches, [])
    t.true(same, 'final contents differ')
  })
}
