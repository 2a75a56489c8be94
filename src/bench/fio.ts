// fio as the reference engine: same file, same block size, same queue depth, JSON output.
// `--invalidate=0` keeps the page cache the bench warmed (fio drops it by default); cold-cache
// cells run with `--invalidate=1` (on top of the bench's own drop_caches before the run).
import { spawn, spawnSync } from 'node:child_process'

import type { Measured, RunSpec } from './engines'

let cached: string | null | undefined

/** fio's version string when `fio` is on PATH, else null. */
export function fioVersion(): string | null {
  if (cached !== undefined) return cached
  try {
    const r = spawnSync('fio', ['--version'], { encoding: 'utf8', timeout: 10_000 })
    cached = r.status === 0 ? r.stdout.trim() : null
  } catch {
    cached = null
  }
  return cached
}

/** fio's `--filename` treats ':' as a separator: escape it. */
function fioPath(p: string): string {
  return p.replace(/\\/g, '\\\\').replace(/:/g, '\\:')
}

/** fio's ioengines the bench runs: libaio and io_uring at the cell's depth, psync at depth 1. */
export type FioEngine = 'libaio' | 'io_uring' | 'psync'

export function fioArgs(spec: RunSpec, ioengine: FioEngine): string[] {
  return [
    '--name=kaio-bench',
    `--filename=${fioPath(spec.path)}`,
    `--size=${spec.size}`,
    `--rw=${spec.workload}`,
    `--bs=${spec.bs}`,
    `--ioengine=${ioengine}`,
    `--iodepth=${ioengine === 'psync' ? 1 : spec.depth}`,
    `--direct=${spec.mode === 'direct' ? 1 : 0}`,
    `--invalidate=${spec.mode === 'cold' ? 1 : 0}`,
    '--time_based',
    `--runtime=${Math.max(1, Math.round(spec.duration * 1000))}ms`,
    '--norandommap',
    '--randrepeat=0',
    // kaio and node:fs write the same buffer every time; fio would otherwise alter its buffers
    // before each write (against deduplication), a CPU cost the other engines do not pay.
    '--scramble_buffers=0',
    '--lat_percentiles=1',
    '--output-format=json',
  ]
}

interface FioStats {
  iops: number
  bw_bytes: number
  io_bytes: number
  total_ios: number
  lat_ns?: { mean?: number; percentile?: Record<string, number> }
  clat_ns?: { mean?: number; percentile?: Record<string, number> }
}

/** Pulls the figures out of fio's JSON (the first job). */
export function parseFio(stdout: string, read: boolean): Measured {
  const start = stdout.indexOf('{')
  if (start < 0) throw new Error('fio printed no JSON')
  const doc = JSON.parse(stdout.slice(start)) as { jobs?: Record<string, unknown>[] }
  const job = doc.jobs?.[0]
  if (!job) throw new Error('fio JSON has no job')
  if (typeof job.error === 'number' && job.error !== 0) throw new Error(`fio job error ${job.error}`)
  const st = job[read ? 'read' : 'write'] as FioStats | undefined
  if (!st) throw new Error('fio JSON has no stats')
  const runtimeMs = Number(job.job_runtime ?? job.elapsed) || NaN
  const cpuPct = Number(job.usr_cpu ?? 0) + Number(job.sys_cpu ?? 0)
  const lat = st.lat_ns?.percentile ? st.lat_ns : st.clat_ns
  const p99 = lat?.percentile?.['99.000000']
  const ops = st.total_ios
  return {
    ops,
    bytes: st.io_bytes,
    seconds: runtimeMs / 1000,
    iops: st.iops,
    mbps: st.bw_bytes / 1e6,
    meanLatUs: (st.lat_ns?.mean ?? st.clat_ns?.mean ?? NaN) / 1000,
    p99LatUs: p99 === undefined ? NaN : p99 / 1000,
    // fio reports its job's CPU as percent of the runtime.
    cpuPerOpUs: ops > 0 ? ((cpuPct / 100) * runtimeMs * 1000) / ops : NaN,
    loopDelayP99Ms: NaN,
    loopResponseP99Us: NaN,
  }
}

/** Runs fio with `ioengine` on the cell; resolves its figures. */
export function runFio(spec: RunSpec, ioengine: FioEngine): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const child = spawn('fio', fioArgs(spec, ioengine), { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
    child.on('error', reject)
    child.on('close', (code) => {
      if (code !== 0) {
        const line = err.trim().split('\n').filter((l) => l.trim() !== '').pop() ?? ''
        reject(new Error(`fio exited with ${code}${line ? `: ${line}` : ''}`))
        return
      }
      try {
        resolve(parseFio(out, spec.workload === 'randread' || spec.workload === 'read'))
      } catch (e) {
        reject(e)
      }
    })
  })
}
