// The memory check of `kaio bench` (and of `npm run test:stress`): resident memory over millions
// of operations. Each engine runs in a child process of its own, so what one engine left in the
// allocator does not count against the next, with two V8 flags:
// - --expose-gc: every sample is taken after full collections, so garbage not yet collected
//   does not look like growth;
// - --min-semi-space-size=16 --max-semi-space-size=16: V8's young generation pinned at Node's
//   default maximum. Left to itself V8 enlarges it in steps (12 -> 36 MB of heap here) under any
//   sustained promise workload, node:fs included; that is V8 sizing, not memory an engine keeps.
// The workload cycles read() (a new Buffer per call), readInto, write and writev of 4 KiB at
// random offsets of the first 16 MiB of the file, with 64 operations in flight.
import { execFile } from 'node:child_process'
import * as fsp from 'node:fs/promises'
import * as path from 'node:path'

import { Context } from '../context'
import { packageRoot } from '../native'
import type { Implementation } from '../driver'
import type { EngineName } from './options'

export const MEMORY_NODE_ARGS = ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16']

export interface MemorySpec {
  engine: Extract<EngineName, Implementation | 'node'>
  path: string
  /** Bytes of the file the offsets fall in (at most the first 16 MiB are used). */
  size: number
  ops: number
}

export interface MemoryResult {
  engine: EngineName
  ops: number
  seconds: number
  /** RSS (MB) after the warm-up, then after each twentieth of the run. */
  rssMb: number[]
  /**
   * Growth over the run, MB: the median of the last five samples minus the median of the first
   * five. Medians, because RSS moves a few MB either way with collection timing (a slab of
   * read() results stays resident while any of its Buffers lives); a leak moves both ends.
   */
  rssGrowthMb: number
  /** The same for V8's live heap (heapUsed). */
  heapGrowthMb: number
  error?: string
}

const DEPTH = 64
const BS = 4096
const REGION = 16 << 20
const SAMPLES = 20
/** Samples at each end of the run whose medians give the growth. */
const ENDS = 5

type Op = (kind: number, offset: number) => Promise<unknown>

async function openEngine(spec: MemorySpec): Promise<{ op: Op; close: () => Promise<void> }> {
  const wbuf = Buffer.alloc(BS, 0x5a)
  const rbuf = Buffer.alloc(BS)
  const head = wbuf.subarray(0, 100)
  const tail = wbuf.subarray(100)
  const fh = await fsp.open(spec.path, 'r+')
  if (spec.engine === 'node') {
    const op: Op = (kind, off) => {
      switch (kind) {
        case 0: return fh.read(Buffer.alloc(BS), 0, BS, off)
        case 1: return fh.read(rbuf, 0, BS, off)
        case 2: return fh.write(wbuf, 0, BS, off)
        default: return fh.writev([head, tail], off)
      }
    }
    return { op, close: () => fh.close() }
  }
  const ctx = new Context({ implementation: spec.engine, maxRequests: DEPTH })
  const fd = fh.fd
  const op: Op = (kind, off) => {
    switch (kind) {
      case 0: return ctx.read(BS, fd, off)
      case 1: return ctx.readInto(rbuf, fd, off)
      case 2: return ctx.write(wbuf, fd, off)
      default: return ctx.writev([head, tail], fd, off)
    }
  }
  return { op, close: async () => { await ctx.close(); await fh.close() } }
}

/** The child's side: runs the workload in this process (which needs --expose-gc). */
export async function runMemoryWorkload(spec: MemorySpec): Promise<MemoryResult> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('the memory workload needs node --expose-gc')
  const { op, close } = await openEngine(spec)
  const blocks = Math.max(1, Math.floor(Math.min(REGION, spec.size) / BS))
  let seed = 0x9e3779b9
  let i = 0
  const run = async (count: number): Promise<void> => {
    const end = i + count
    const loop = async (): Promise<void> => {
      while (i < end) {
        const k = i++
        seed ^= seed << 13
        seed ^= seed >>> 17
        seed ^= seed << 5
        await op(k & 3, ((seed >>> 0) % blocks) * BS)
      }
    }
    await Promise.all(Array.from({ length: DEPTH }, loop))
  }
  const sample = async (): Promise<{ rss: number; heap: number }> => {
    gc()
    gc()
    // V8 frees ArrayBuffer memory on a background thread after a collection: give it a moment.
    await new Promise((resolve) => setTimeout(resolve, 20))
    const m = process.memoryUsage()
    return { rss: m.rss / 2 ** 20, heap: m.heapUsed / 2 ** 20 }
  }
  try {
    await run(Math.max(50_000, Math.floor(spec.ops / 10)))
    const samples = [await sample()]
    const t0 = process.hrtime.bigint()
    const step = Math.max(1, Math.floor(spec.ops / SAMPLES))
    for (let done = 0; done < spec.ops; done += step) {
      await run(Math.min(step, spec.ops - done))
      samples.push(await sample())
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    const median = (v: number[]): number => v.sort((a, b) => a - b)[v.length >> 1]!
    const growth = (f: (s: { rss: number; heap: number }) => number): number =>
      median(samples.slice(-ENDS).map(f)) - median(samples.slice(0, ENDS).map(f))
    const round = (v: number): number => Math.round(v * 10) / 10
    return {
      engine: spec.engine,
      ops: spec.ops,
      seconds: round(seconds),
      rssMb: samples.map((s) => round(s.rss)),
      rssGrowthMb: round(growth((s) => s.rss)),
      heapGrowthMb: round(growth((s) => s.heap)),
    }
  } finally {
    await close()
  }
}

/** Runs the workload for one engine in a child process; never rejects (errors are in the result). */
export function measureMemory(spec: MemorySpec): Promise<MemoryResult> {
  const failed = (error: string): MemoryResult => ({ engine: spec.engine, ops: 0, seconds: NaN, rssMb: [], rssGrowthMb: NaN, heapGrowthMb: NaN, error })
  return new Promise((resolve) => {
    // The compiled file, also when this module was loaded from TypeScript source (tests).
    const child = path.join(packageRoot, 'src', 'bench', 'memory.js')
    const args = [...MEMORY_NODE_ARGS, child, JSON.stringify(spec)]
    execFile(process.execPath, args, { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return resolve(failed((stderr.trim().split('\n').pop() ?? '') || err.message))
      try {
        resolve(JSON.parse(stdout) as MemoryResult)
      } catch {
        resolve(failed(`unreadable child output: ${stdout.slice(0, 200)}`))
      }
    })
  })
}

if (require.main === module) {
  runMemoryWorkload(JSON.parse(process.argv[2]!) as MemorySpec).then(
    (r) => process.stdout.write(JSON.stringify(r)),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`)
      process.exitCode = 1
    },
  )
}
