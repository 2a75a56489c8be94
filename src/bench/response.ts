// How fast the JS thread answers an outside event. While a probe is open, a worker thread posts
// a message every millisecond carrying its send time, and the handler on the JS thread records
// how late it runs. `monitorEventLoopDelay` times its own timer on libuv's millisecond clock,
// so two engines 0.5 ms apart read the same; this resolves microseconds, and it takes the path
// that every completion from another thread takes: a wake-up of the loop, then a callback.
//
// The send time is `process.hrtime.bigint()`: CLOCK_MONOTONIC, one clock for every thread of
// the process, in integer nanoseconds. `performance.now()` is per thread: a worker's reading of
// an instant and the main thread's differ by 10-16 µs here (node 20), with or without
// `performance.timeOrigin` added, which is the size of what is measured.
import * as fs from 'node:fs'
import { Worker } from 'node:worker_threads'

import { Histogram } from './hist'

/** The pinger's shared words: 1 in STATE while a probe is open; its thread id in TID (Linux). */
const STATE = 0
const TID = 1

/**
 * The pinger: while STATE is 1, posts `process.hrtime.bigint()` every millisecond, paced by
 * Atomics.wait to deadlines (a late one is skipped, not made up); when STATE is 0, posts once
 * more (the fence: once it has been handled, so has every ping before it) and waits to be woken.
 */
const PINGER = `
const { parentPort, workerData } = require('node:worker_threads')
const ctl = new Int32Array(workerData)
const PERIOD = 1000000n
try {
  Atomics.store(ctl, ${TID}, Number(/\\/task\\/(\\d+)$/.exec(require('node:fs').readlinkSync('/proc/thread-self'))[1]))
} catch {}
for (;;) {
  parentPort.postMessage(process.hrtime.bigint())
  Atomics.wait(ctl, ${STATE}, 0)
  for (let next = process.hrtime.bigint(); Atomics.load(ctl, ${STATE}) === 1; ) {
    const now = process.hrtime.bigint()
    parentPort.postMessage(now)
    next = next + PERIOD > now ? next + PERIOD : now + PERIOD
    Atomics.wait(ctl, ${STATE}, 1, Number(next - now) / 1e6)
  }
}
`

interface Pinger {
  worker: Worker
  ctl: Int32Array
  /** Whether its first message has arrived; `started` resolves then (or when it exits). */
  running: boolean
  started: Promise<void>
}

/** The pinger, started by the first probe (null: it could not start, or it has exited). */
let pinger: Pinger | null | undefined
/** Probes from `start()` until their fence has arrived. */
const open = new Set<ResponseProbe>()

function startPinger(): Pinger | null {
  try {
    const ctl = new Int32Array(new SharedArrayBuffer(8))
    const worker = new Worker(PINGER, { eval: true, workerData: ctl.buffer })
    let markStarted = (): void => {}
    const p: Pinger = { worker, ctl, running: false, started: new Promise((resolve) => (markStarted = resolve)) }
    // (A 'message' listener refs the worker's port again: `update` unrefs it after this.)
    worker.on('message', (sent: bigint) => {
      const received = process.hrtime.bigint()
      for (const probe of open) probe.take(sent, received)
      if (!p.running) {
        p.running = true
        markStarted()
        update()
      }
    })
    // Without a pinger the probes measure nothing (NaN) and wait for no fence.
    worker.on('error', () => {})
    worker.on('exit', () => {
      pinger = null
      markStarted()
      for (const probe of open) probe.close()
    })
    return p
  } catch {
    return null
  }
}

/** The pinger, started on first use (once per process). */
function thePinger(): Pinger | null {
  if (pinger === undefined) pinger = startPinger()
  return pinger
}

/**
 * Resolves once the pinger runs (at once if it cannot): a window opened before then misses
 * the pings of its first tens of milliseconds.
 */
export function pingerStarted(): Promise<void> {
  return thePinger()?.started ?? Promise.resolve()
}

/**
 * Pings while a probe is between start() and stop(). Holds the loop open only until the
 * pinger's first message and while a stopped probe awaits its fence (a run's own I/O keeps
 * the loop open while it pings; an idle pinger never does).
 */
function update(): void {
  if (!pinger) return
  const probes = [...open]
  const state = probes.some((p) => p.pinging) ? 1 : 0
  if (Atomics.exchange(pinger.ctl, STATE, state) !== state) Atomics.notify(pinger.ctl, STATE)
  if (!pinger.running || probes.some((p) => !p.pinging)) pinger.worker.ref()
  else pinger.worker.unref()
}

/** The pinger thread's CPU time so far, µs (NaN where unknown: no thread id yet, no /proc). */
function pingerCpuUs(): number {
  const tid = pinger ? Atomics.load(pinger.ctl, TID) : 0
  if (tid === 0) return NaN
  try {
    // The first field: nanoseconds on a CPU, what getrusage's user + system add up to.
    return Number(fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1000
  } catch {
    return NaN
  }
}

/** The JS thread's response to the pings sent between `start()` and `stop()`. */
export class ResponseProbe {
  #hist = new Histogram()
  #from = 0n
  /** When stop() was called (null: still pinging). */
  #until: bigint | null = null
  #cpu0 = NaN
  #cpuUs = 0
  #settled = Promise.resolve()
  #settle = (): void => {}

  get pinging(): boolean {
    return this.#until === null
  }

  /** Opens the window, or restarts it (the samples so far are dropped). */
  start(): void {
    this.#hist = new Histogram()
    this.#until = null
    this.#settled = new Promise((resolve) => (this.#settle = resolve))
    if (!thePinger()) return this.close()
    open.add(this)
    this.#cpu0 = pingerCpuUs()
    this.#from = process.hrtime.bigint()
    update()
  }

  /** Closes the window; pings sent before now are still counted when they arrive. */
  stop(): void {
    if (!open.has(this) || this.#until !== null) return
    this.#until = process.hrtime.bigint()
    // Before the pinger's first run it has no thread id: then its CPU so far is all in here.
    const cpu = pingerCpuUs() - (Number.isNaN(this.#cpu0) ? 0 : this.#cpu0)
    this.#cpuUs = cpu > 0 ? cpu : 0
    update()
  }

  /** Records one ping; one sent after the window closed is the fence. */
  take(sent: bigint, received: bigint): void {
    if (sent < this.#from) return
    if (this.#until === null || sent <= this.#until) this.#hist.record(Number(received - sent))
    else this.close()
  }

  /** Ends the probe: no more samples, no fence to wait for. */
  close(): void {
    open.delete(this)
    this.#settle()
    update()
  }

  /** Resolves once every ping sent in the window has been handled (call after stop()). */
  settled(): Promise<void> {
    return this.#settled
  }

  /** The pinger thread's CPU time in the window, µs: the probe's, not the engine's. */
  get cpuUs(): number {
    return this.#cpuUs
  }

  /** p99 of the responses, µs (NaN: none). */
  p99Us(): number {
    return this.#hist.quantile(0.99) / 1000
  }
}
