// The engines measured by `kaio bench`: kaio on a backend, node:fs/promises, and fio.
// A queue depth N means N requests kept in flight: N async loops, each awaiting one operation
// on its own preallocated page-aligned buffer, so a run measures I/O rather than allocation.
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import { randomFillSync } from 'node:crypto'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import type { IntervalHistogram } from 'node:perf_hooks'

import { Context } from '../context'
import { allocAligned, HUGE_PAGE } from '../aligned'
import { POSIX_FADV_RANDOM, POSIX_FADV_SEQUENTIAL } from '../constants'
import { defaultContext } from '../fs/sys'
import type { Implementation } from '../driver'
import { Histogram } from './hist'
import type { EngineName, Mode, Workload } from './options'
import { pingerStarted, ResponseProbe } from './response'

/** One engine run on one cell. */
export interface RunSpec {
  path: string
  mode: Mode
  workload: Workload
  /** Block size in bytes. */
  bs: number
  depth: number
  /** Seconds. */
  duration: number
  /** Bytes of the file the offsets fall in. */
  size: number
}

/** What one engine run measured. Times in microseconds; NaN where not measured. */
export interface Measured {
  ops: number
  bytes: number
  seconds: number
  iops: number
  /** 10^6 bytes per second. */
  mbps: number
  meanLatUs: number
  p99LatUs: number
  /** CPU (user + system) per operation. */
  cpuPerOpUs: number
  /** p99 of the event-loop delay during the run, ms, on libuv's 1 ms clock (in-process engines; NaN for fio). */
  loopDelayP99Ms: number
  /** p99 of the JS thread's response to a ping from another thread every 1 ms, µs (in-process engines; NaN for fio). */
  loopResponseP99Us: number
}

/** The counting part of a measurement, with its rates. */
function totals(ops: number, bytes: number, seconds: number): Pick<Measured, 'ops' | 'bytes' | 'seconds' | 'iops' | 'mbps'> {
  return { ops, bytes, seconds, iops: ops / seconds, mbps: bytes / seconds / 1e6 }
}

/**
 * One measurement from several runs of the same engine on the same cell. Counts and times
 * add up; mean latency and CPU per operation are weighted by operations, exactly. p99 is the
 * operation-weighted mean of the runs' p99s, an approximation: only fio's percentiles, not
 * its histogram, are at hand.
 */
export function combine(runs: Measured[]): Measured {
  const ops = runs.reduce((n, r) => n + r.ops, 0)
  const bytes = runs.reduce((n, r) => n + r.bytes, 0)
  const seconds = runs.reduce((n, r) => n + r.seconds, 0)
  const weighted = (f: (r: Measured) => number, w: (r: Measured) => number = (r) => r.ops): number => {
    const total = runs.reduce((n, r) => n + (w(r) > 0 ? w(r) : 0), 0)
    return total > 0 ? runs.reduce((n, r) => n + (w(r) > 0 ? f(r) * w(r) : 0), 0) / total : NaN
  }
  return {
    ...totals(ops, bytes, seconds),
    meanLatUs: weighted((r) => r.meanLatUs),
    p99LatUs: weighted((r) => r.p99LatUs),
    cpuPerOpUs: weighted((r) => r.cpuPerOpUs),
    // Properties of the run's time rather than of its operations: weighted by seconds.
    loopDelayP99Ms: weighted((r) => r.loopDelayP99Ms, (r) => r.seconds),
    loopResponseP99Us: weighted((r) => r.loopResponseP99Us, (r) => r.seconds),
  }
}

export const O_DIRECT = fs.constants.O_DIRECT ?? 0

/** Cold-cache cells are buffered too: only their page cache is dropped before each run. */
export function openFlags(mode: Mode): number {
  return fs.constants.O_RDWR | (mode === 'direct' ? O_DIRECT : 0)
}

export function isRead(w: Workload): boolean {
  return w === 'randread' || w === 'read'
}

/**
 * Per-slot page-aligned buffers, filled with random bytes (what writes store), cut from one
 * allocation of at least 2 MiB so that it gets transparent huge pages (see `allocAligned`).
 */
export function slotBuffers(depth: number, bs: number): Buffer[] {
  const region = randomFillSync(allocAligned(Math.max(depth * bs, HUGE_PAGE)))
  return Array.from({ length: depth }, (_, i) => region.subarray(i * bs, (i + 1) * bs))
}

/** An operation on slot `slot`'s buffer at `offset`; resolves bytes transferred. */
export type Op = (slot: number, offset: number) => Promise<number>

/**
 * The offsets of a run: block aligned and uniform (xorshift32) for the random workloads;
 * sequential ones share a cursor, as fio's do at a queue depth above 1, and wrap at the end
 * of the file.
 */
function offsets(spec: RunSpec): () => number {
  const { bs } = spec
  const nblocks = Math.floor(spec.size / bs)
  let seed = (Math.random() * 0xffffffff) | 1
  let cursor = 0
  if (spec.workload === 'randread' || spec.workload === 'randwrite') {
    return () => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return ((seed >>> 0) % nblocks) * bs
    }
  }
  return () => {
    const off = cursor * bs
    cursor = cursor + 1 === nblocks ? 0 : cursor + 1
    return off
  }
}

/**
 * What every in-process run measures around its operations: latency histogram, wall time,
 * process CPU, the event-loop delay (`monitorEventLoopDelay` at 1 ms resolution) and the JS
 * thread's response to a ping every 1 ms (see `ResponseProbe`). The same timer and pings run
 * in every in-process engine's run, so their cost on the JS thread weighs on all alike; the
 * pinging thread's own CPU is taken out of the process's.
 */
export class Meter {
  readonly hist = new Histogram()
  ops = 0
  bytes = 0
  readonly #loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 1 })
  readonly #response = new ResponseProbe()
  #cpu0 = process.cpuUsage()
  t0 = performance.now()

  /** `spec`: what `done` checks each transfer against (null: operations without a size). */
  constructor(readonly spec: Pick<RunSpec, 'bs' | 'workload'> | null) {
    this.#loop.enable()
    this.begin()
  }

  /** Restarts the clocks and the response probe (the event-loop monitor keeps running). */
  begin(): void {
    // The probe first: starting its thread (the first run's) is no part of the run.
    this.#response.start()
    this.#cpu0 = process.cpuUsage()
    this.t0 = performance.now()
  }

  /** Waits for the pinging thread's start (the first run's), then restarts the clocks. */
  async ready(): Promise<void> {
    await pingerStarted()
    this.begin()
  }

  /** Records one operation that started at `start` (performance.now()) and moved `n` bytes. */
  done(start: number, n: number, off: number): void {
    const spec = this.spec
    if (spec !== null && n !== spec.bs) throw new Error(`short ${isRead(spec.workload) ? 'read' : 'write'}: ${n} of ${spec.bs} bytes at offset ${off}`)
    this.record(start, n)
  }

  /** Records one operation that started at `start` and moved `n` bytes, unchecked. */
  record(start: number, n: number): void {
    this.hist.record((performance.now() - start) * 1e6)
    this.ops++
    this.bytes += n
  }

  /** Wall time and CPU (the process's, less the pinging thread's) of the timed part. */
  #stopped: { seconds: number; cpuUs: number } | null = null

  /**
   * Ends the timed part of the run and the pings (the event-loop monitor goes on until
   * `finish`, and so do the responses to pings already sent). A run that fails stops too:
   * a probe left open would ping through every later run.
   */
  stop(): void {
    if (this.#stopped !== null) return
    this.#response.stop()
    const cpu = process.cpuUsage(this.#cpu0)
    this.#stopped = { seconds: (performance.now() - this.t0) / 1000, cpuUs: cpu.user + cpu.system - this.#response.cpuUs }
  }

  async finish(): Promise<Measured> {
    this.stop()
    await this.#response.settled()
    const { seconds, cpuUs } = this.#stopped!
    this.#loop.disable()
    const { ops, hist } = this
    return {
      ...totals(ops, this.bytes, seconds),
      meanLatUs: hist.mean() / 1000,
      p99LatUs: hist.quantile(0.99) / 1000,
      cpuPerOpUs: ops > 0 ? cpuUs / ops : NaN,
      loopDelayP99Ms: this.#loop.count > 0 ? this.#loop.percentile(99) / 1e6 : NaN,
      loopResponseP99Us: this.#response.p99Us(),
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Keeps `spec.depth` operations in flight for `spec.duration` seconds and measures them. */
export function drive(spec: RunSpec, op: Op): Promise<Measured> {
  const next = offsets(spec)
  const meter = new Meter(spec)
  return inFlight(meter, spec.depth, spec.duration, async (slot, start) => {
    const off = next()
    meter.done(start, await op(slot, off), off)
  })
}

/**
 * `depth` async loops, each calling `step(slot, start)` (one measured operation, recorded on
 * `meter` by the step) until `seconds` have passed; the first failure stops them all.
 */
export async function inFlight(meter: Meter, depth: number, seconds: number, step: (slot: number, start: number) => Promise<void>): Promise<Measured> {
  await meter.ready()
  let failure: unknown = null
  let end = meter.t0 + seconds * 1000
  const worker = async (slot: number): Promise<void> => {
    try {
      for (;;) {
        const start = performance.now()
        if (start >= end) return
        await step(slot, start)
      }
    } catch (e) {
      failure ??= e
      end = 0
    }
  }
  const workers: Promise<void>[] = []
  for (let i = 0; i < depth; i++) workers.push(worker(i))
  await Promise.all(workers)
  const m = await meter.finish()
  if (failure !== null) throw failure
  return m
}

/**
 * Runs `step(start)` back to back on the JS thread for `seconds` (a synchronous engine: the
 * event loop is blocked for the whole run, and its delay shows it).
 */
export async function syncLoop(meter: Meter, seconds: number, step: (start: number) => void): Promise<Measured> {
  // The monitor records intervals between its timer's firings: let it fire before the loop
  // takes the thread, and again after (the pings queued meanwhile are handled then too).
  await sleep(3)
  await meter.ready()
  const end = meter.t0 + seconds * 1000
  try {
    for (let start = performance.now(); start < end; start = performance.now()) step(start)
  } finally {
    meter.stop()
  }
  await sleep(3)
  return meter.finish()
}

/**
 * fio's access hint, given to every in-process engine's descriptor too, so that no cell
 * compares hints instead of engines: fio (`fadvise_hint=1`, its default) advises
 * `POSIX_FADV_RANDOM` for random workloads and `POSIX_FADV_SEQUENTIAL` for sequential ones,
 * and without it a cold random read here can bring in more than its own block (fio io_uring,
 * cold 4k randread d32: 75-77k reads/s with the hint, 63-70k without). Through kaio's
 * `fadvise` (node:fs has none); not for O_DIRECT, which bypasses the page cache. Returns
 * whether the advice was taken (the `js` backend has no `posix_fadvise`).
 */
export async function adviseLikeFio(fd: number, spec: RunSpec): Promise<boolean> {
  if (spec.mode === 'direct') return false
  const advice = spec.workload.startsWith('rand') ? POSIX_FADV_RANDOM : POSIX_FADV_SEQUENTIAL
  try {
    await defaultContext().fadvise(fd, 0, 0, advice)
    return true
  } catch {
    return false
  }
}

/**
 * The synchronous limit: one `fs.readSync` / `fs.writeSync` after the other on the JS thread,
 * over the same offsets, at depth 1 (the event loop is blocked for the whole run, and its
 * delay shows it).
 */
export async function runSync(spec: RunSpec): Promise<Measured> {
  if (spec.depth !== 1) throw new Error('the sync engine runs at depth 1 only')
  const fd = fs.openSync(spec.path, openFlags(spec.mode))
  try {
    await adviseLikeFio(fd, spec)
    const buf = slotBuffers(1, spec.bs)[0]!
    const bs = spec.bs
    const io = isRead(spec.workload) ? (off: number) => fs.readSync(fd, buf, 0, bs, off) : (off: number) => fs.writeSync(fd, buf, 0, bs, off)
    const next = offsets(spec)
    const meter = new Meter(spec)
    return await syncLoop(meter, spec.duration, (start) => {
      const off = next()
      meter.done(start, io(off), off)
    })
  } finally {
    fs.closeSync(fd)
  }
}

/** The busy-poll budget of the `linux-poll` engine: above a 4k O_DIRECT read's latency here. */
export const BENCH_BUSY_POLL = 200

/** kaio engine `name`: `ctx.readInto` / `ctx.write` on an fd opened with `fs.openSync`. */
export async function runKaio(name: KaioEngine, spec: RunSpec): Promise<Measured> {
  const fd = fs.openSync(spec.path, openFlags(spec.mode))
  let ctx: Context | undefined
  try {
    await adviseLikeFio(fd, spec)
    ctx = new Context({
      implementation: implementationOf(name),
      maxRequests: Math.max(128, spec.depth),
      busyPoll: name === 'linux-poll' ? BENCH_BUSY_POLL : 0,
    })
    const c = ctx
    const bufs = slotBuffers(spec.depth, spec.bs)
    const op: Op = isRead(spec.workload)
      ? (slot, off) => c.readInto(bufs[slot]!, fd, off)
      : (slot, off) => c.write(bufs[slot]!, fd, off)
    return await drive(spec, op)
  } finally {
    await ctx?.close()
    fs.closeSync(fd)
  }
}

const bytesRead = (r: { bytesRead: number }): number => r.bytesRead
const bytesWritten = (r: { bytesWritten: number }): number => r.bytesWritten

/** node:fs/promises: FileHandle.read / FileHandle.write, N concurrent workers. */
export async function runNode(spec: RunSpec): Promise<Measured> {
  const fh = await fsp.open(spec.path, openFlags(spec.mode))
  try {
    await adviseLikeFio(fh.fd, spec)
    const bufs = slotBuffers(spec.depth, spec.bs)
    const bs = spec.bs
    const op: Op = isRead(spec.workload)
      ? (slot, off) => fh.read(bufs[slot]!, 0, bs, off).then(bytesRead)
      : (slot, off) => fh.write(bufs[slot]!, 0, bs, off).then(bytesWritten)
    return await drive(spec, op)
  } finally {
    await fh.close()
  }
}

export type KaioEngine = Implementation | 'linux-poll'

/** The engines that run in this process (all but fio): they have an event-loop delay. */
export function inProcess(name: EngineName): boolean {
  return isKaio(name) || name === 'node' || name === 'sync'
}

/** Engines that run at depth 1 only. */
export function depthOneOnly(name: EngineName): boolean {
  return name === 'fio-psync' || name === 'sync'
}

/** Whether `name` measures kaio itself. */
export function isKaio(name: EngineName): name is KaioEngine {
  return name === 'uring' || name === 'linux' || name === 'linux-poll' || name === 'thread' || name === 'js'
}

/** The backend a kaio engine runs on. */
export function implementationOf(name: KaioEngine): Implementation {
  return name === 'linux-poll' ? 'linux' : name
}

/** A human label for an engine. */
export function engineLabel(name: EngineName): string {
  switch (name) {
    case 'uring':
    case 'linux':
    case 'thread':
    case 'js':
      return `kaio ${name}`
    case 'linux-poll':
      return 'kaio linux busy-poll'
    case 'kaio':
      return 'kaio/promises'
    case 'node':
      return 'node:fs/promises'
    case 'sync':
      return 'fs.readSync loop'
    case 'fio':
      return 'fio libaio'
    case 'fio-uring':
      return 'fio io_uring'
    case 'fio-psync':
      return 'fio psync'
  }
}
