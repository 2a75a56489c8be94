// Issue 6, item 3: 10,000 create/use/close cycles per backend exhaust neither aio-max-nr nor
// descriptors. io_destroy waits for an RCU grace period (~35 ms here) on the closing thread,
// so the linux cycles run in 8 worker threads at once. KAIO_CYCLES sets the count.
import test from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Worker } from 'node:worker_threads'

import { Context } from '../../index'
import type { Implementation } from '../../index'
import { aioNr, aioRingCount, eventfdCount, eventually, fdList, ROOT, scratchFile, threadCount } from '../fixtures/common'

const CYCLES = Number(process.env.KAIO_CYCLES ?? 10_000)
const WORKERS = 8

function snapshot(): { fds: number; eventfds: number; rings: number } {
  return { fds: fdList().length, eventfds: eventfdCount(), rings: aioRingCount() }
}

async function cyclesHere(impl: Implementation, n: number, fd: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const ctx = new Context({ implementation: impl, poolSize: 2 })
    await ctx.write('x', fd, i % 4096)
    await ctx.close()
  }
}

const workerSource = `
const { parentPort, workerData } = require('node:worker_threads')
const { Context } = require(workerData.index)
;(async () => {
  for (let i = 0; i < workerData.n; i++) {
    const ctx = new Context({ implementation: workerData.impl })
    await ctx.write('x', workerData.fd, i % 4096)
    await ctx.close()
  }
  parentPort.postMessage('done')
})()
`

for (const impl of ['uring', 'linux', 'thread', 'js'] as const) {
  test(`${impl}: ${CYCLES} create/use/close cycles leak nothing`, async (t) => {
    t.timeout(5 * 60_000)
    const fd = fs.openSync(scratchFile(), 'r+')
    await fs.promises.stat('.')
    const before = snapshot()
    const threads0 = threadCount()
    const nr0 = aioNr()
    const t0 = performance.now()
    if (impl === 'linux') {
      const per = Math.ceil(CYCLES / WORKERS)
      await Promise.all(Array.from({ length: WORKERS }, () => new Promise<void>((resolve, reject) => {
        const w = new Worker(workerSource, { eval: true, workerData: { n: per, impl, fd, index: path.join(ROOT, 'index.js') } })
        w.once('message', () => void w.terminate().then(() => resolve()))
        w.once('error', reject)
      })))
    } else {
      await cyclesHere(impl, CYCLES, fd)
    }
    const secs = (performance.now() - t0) / 1000
    t.true(await eventually(() => threadCount() <= threads0, 10_000), `threads ${threads0} -> ${threadCount()}`)
    const after = snapshot()
    fs.closeSync(fd)
    t.deepEqual(after, before)
    // aio-nr is system-wide (other processes move it); ours must be back to where it was.
    const back = await eventually(() => aioNr() <= nr0, 10_000)
    t.log(`${impl}: ${CYCLES} cycles in ${secs.toFixed(1)} s (${((secs * 1000) / CYCLES).toFixed(2)} ms each); aio-nr ${nr0} -> ${aioNr()}; max ${fs.readFileSync('/proc/sys/fs/aio-max-nr', 'utf8').trim()}`)
    t.true(back || after.rings === 0, 'aio-nr did not return to its start')
  })
}
