// Shared pieces of the micro-benchmarks: a test file, per-thread CPU accounting from
// /proc/self/task, and a plain table printer. Run a benchmark with
//   node benchmark/<name>.js [--dir DIR] [--size 256M] [--duration 2]
import * as fs from 'node:fs'
import * as os from 'node:os'

import { Context } from '../index'
import type { Implementation } from '../index'
import { drive, openFlags, runNode, slotBuffers } from '../src/bench/engines'
import type { Measured, RunSpec } from '../src/bench/engines'
import { fillTestFile, openTestFile, removeTestFile, testFilePath, warm } from '../src/bench/testfile'
import { parseSize } from '../src/bench/options'

export interface Args {
  dir: string
  size: number
  duration: number
}

export function args(defaults: Partial<Args> = {}): Args {
  const out: Args = { dir: process.cwd(), size: 256 << 20, duration: 2, ...defaults }
  const a = process.argv.slice(2)
  for (let i = 0; i < a.length; i += 2) {
    const v = a[i + 1]
    if (v === undefined) throw new Error(`${a[i]} needs a value`)
    if (a[i] === '--dir') out.dir = v
    else if (a[i] === '--size') out.size = parseSize(v, '--size')
    else if (a[i] === '--duration') out.duration = Number(v)
    else throw new Error(`unknown option ${a[i]}`)
  }
  return out
}

/** Creates the test file (random data, synced); removed at exit. */
export function testFile(a: Args): string {
  const p = testFilePath(undefined, a.dir)
  fillTestFile(openTestFile(p), p, a.size)
  return p
}

export { removeTestFile, warm }

const TICK_US = 1e6 / 100 // USER_HZ is 100 on Linux

/** CPU time (µs) per thread of this process, keyed by thread name (summed over same names). */
export function threadCpu(): Map<string, number> {
  const out = new Map<string, number>()
  for (const tid of fs.readdirSync('/proc/self/task')) {
    let stat: string
    try {
      stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    } catch {
      continue
    }
    const open = stat.indexOf('(')
    const close = stat.lastIndexOf(')')
    let name = stat.slice(open + 1, close)
    if (tid === String(process.pid)) name = 'main (JS)'
    else if (/^kaio-worker-\d+$/.test(name)) name = 'kaio pool'
    else if (/^node$|^libuv-worker$/.test(name)) name = 'libuv pool'
    const f = stat.slice(close + 2).split(' ')
    const us = (Number(f[11]) + Number(f[12])) * TICK_US // utime, stime (fields 14, 15)
    out.set(name, (out.get(name) ?? 0) + us)
  }
  return out
}

/** CPU µs per thread name spent between two `threadCpu()` samples. */
export function cpuDelta(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>()
  for (const [k, v] of b) {
    const d = v - (a.get(k) ?? 0)
    if (d > 0) out.set(k, d)
  }
  return out
}

/** "main (JS) 6.1, kaio-reaper 2.0" µs per op, biggest first, threads under 0.1 µs/op dropped. */
export function cpuSplit(delta: Map<string, number>, ops: number): string {
  return [...delta]
    .map(([k, v]) => [k, v / ops] as const)
    .filter(([, v]) => v >= 0.1)
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(', ')
}

export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  return cells.map((r) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`).join('\n').replace(/\n/, `\n| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |\n`)
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '-'
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US')
  return v.toFixed(1)
}

export function machine(): string {
  return `${os.cpus()[0]?.model ?? '?'} ×${os.cpus().length}, ${os.type()} ${os.release()}, node ${process.version}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`
}

/**
 * `runKaio` with the CPU of each thread sampled before the context closes (its completion
 * thread and pool threads are gone after `close()`).
 */
export async function kaioRun(impl: Implementation, spec: RunSpec): Promise<{ m: Measured; split: string }> {
  const fd = fs.openSync(spec.path, openFlags(spec.mode))
  const ctx = new Context({ implementation: impl, maxRequests: Math.max(128, spec.depth) })
  try {
    const bufs = slotBuffers(spec.depth, spec.bs)
    const before = threadCpu()
    const m = await drive(spec, (slot, off) => ctx.readInto(bufs[slot]!, fd, off))
    return { m, split: cpuSplit(cpuDelta(before, threadCpu()), m.ops) }
  } finally {
    await ctx.close()
    fs.closeSync(fd)
  }
}

/** node:fs/promises with the per-thread CPU split (libuv's pool outlives the run). */
export async function nodeRun(spec: RunSpec): Promise<{ m: Measured; split: string }> {
  const before = threadCpu()
  const m = await runNode(spec)
  return { m, split: cpuSplit(cpuDelta(before, threadCpu()), m.ops) }
}
