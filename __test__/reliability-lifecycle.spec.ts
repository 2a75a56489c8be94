// Issue 6, item 3: close with thousands of requests pending, GC mid-flight, process.exit,
// idle exit, worker_threads, create/close cycles, fork. Resource counts come from /proc.
// Serial: the counts (fds, threads, aio rings) are per process.
import test from 'ava'
import { fork } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'

import { Context, implementations } from '../index'
import type { Implementation } from '../index'
import { aioNr, aioRingCount, eventfdCount, eventually, fdList, FIXTURES, ioUringWorkers, outcome, runFixture, scratchFile, threadCount } from './fixtures/common'

const BLOCK = 4096

interface Snapshot { fds: number; eventfds: number; threads: number; rings: number }
const snapshot = (): Snapshot => ({ fds: fdList().length, eventfds: eventfdCount(), threads: threadCount(), rings: aioRingCount() })

test.before(async () => {
  // Start libuv's pool threads so baselines include them.
  await Promise.all(Array.from({ length: 8 }, () => fs.promises.stat('.')))
})

for (const impl of implementations) {
  test.serial(`${impl}: close() with thousands of requests in flight and queued settles every promise, then frees everything`, async (t) => {
    const file = scratchFile(Buffer.alloc(256 * BLOCK))
    const fd = fs.openSync(file, 'r+')
    const before = snapshot()
    const iou0 = ioUringWorkers()
    const ctx = new Context({ implementation: impl, maxRequests: 64, poolSize: 8 })
    const during = snapshot()
    if (impl === 'linux') {
      t.is(during.rings, before.rings + 1, 'one aio ring while open')
      // One the event loop watches for completions, one that wakes the completion thread.
      t.is(during.eventfds, before.eventfds + 2, 'two eventfds while open')
    }
    const N = 5000
    const ps: Promise<{ code: string }>[] = []
    for (let i = 0; i < N; i++) {
      const off = (i % 256) * BLOCK
      const k = i % 5
      ps.push(outcome(() => (k === 0 ? ctx.read(BLOCK, fd, off) : k === 1 ? ctx.write(Buffer.alloc(BLOCK, i), fd, off) : k === 2 ? ctx.writev([Buffer.alloc(100), Buffer.alloc(BLOCK - 100)], fd, off) : k === 3 ? ctx.readInto(Buffer.alloc(BLOCK), fd, off) : ctx.fdsync(fd))))
    }
    // Let part of the batch reach the backend, then close with the rest queued.
    await new Promise((r) => setImmediate(r))
    const closing = ctx.close()
    t.is(ctx.close(), closing, 'close() is idempotent')
    const results = await Promise.all(ps)
    await closing
    const codes = new Map<string, number>()
    for (const r of results) codes.set(r.code, (codes.get(r.code) ?? 0) + 1)
    t.log(impl, Object.fromEntries(codes))
    t.deepEqual([...codes.keys()].filter((c) => c !== 'ok' && c !== 'ERR_AIO_CLOSED'), [])
    t.is(results.length, N)
    t.is((await outcome(() => ctx.read(1, fd, 0))).code, 'ERR_AIO_CLOSED', 'a call after close')
    // io_uring's kernel workers (iou-wrk-*) belong to the task's io-wq, not to kaio's ring:
    // they exit when idle for 5 s, except the last one while the task still has a ring, and
    // Node 22+'s own libuv keeps three rings open. So kaio's threads must all go, and the
    // kernel's workers must shrink to at most one more than before (checked within 60 s).
    const own = (): number => snapshot().threads - ioUringWorkers()
    t.true(await eventually(() => own() <= before.threads - iou0, 5_000), `threads: ${before.threads} -> ${snapshot().threads}`)
    if (impl === 'uring') t.true(await eventually(() => ioUringWorkers() <= iou0 + 1, 60_000), `io-wq workers: ${iou0} -> ${ioUringWorkers()}`)
    const after = snapshot()
    t.is(after.rings, before.rings, 'aio ring unmapped (io_destroy)')
    t.is(after.eventfds, before.eventfds, 'eventfd closed')
    t.is(after.fds, before.fds, 'no descriptor leaked')
    fs.closeSync(fd)
  })


  test.serial(`${impl}: a context collected by GC with writes in flight keeps its buffers until done`, async (t) => {
    t.timeout(90_000)
    const r = await runFixture('lifecycle-child.js', ['gc', impl], { nodeArgs: ['--expose-gc'], timeoutMs: 60_000 })
    t.false(r.timedOut, 'writes never settled (context collected mid-flight?)')
    t.is(r.code, 0, r.stderr)
    t.is(r.signal, null)
    const out = JSON.parse(r.stdout) as { gcs: number; bad: number; short: number }
    t.log(impl, out)
    t.true(out.gcs > 1, 'gc() ran while writes were in flight')
    t.is(out.bad, 0, 'blocks with wrong content')
    t.is(out.short, 0)
  })

  for (const mode of ['exit', 'exit-in-callback']) {
    test(`${impl}: process.exit() with requests in flight (${mode}) exits 0 without a signal`, async (t) => {
      const r = await runFixture('lifecycle-child.js', [mode, impl], { timeoutMs: 20_000 })
      t.false(r.timedOut)
      t.is(r.signal, null, r.stderr)
      t.is(r.code, 0, r.stderr)
    })
  }

  for (const mode of ['idle', 'idle-unused', 'idle-many']) {
    test(`${impl}: a process with an open, idle context exits by itself (${mode})`, async (t) => {
      const r = await runFixture('lifecycle-child.js', [mode, impl], { timeoutMs: 15_000 })
      t.false(r.timedOut, 'the idle context kept the process alive')
      t.is(r.code, 0, r.stderr)
      t.is(r.signal, null)
    })
  }

  test.serial(`${impl}: 300 create/use/close cycles leak no descriptor, thread or aio ring`, async (t) => {
    const file = scratchFile()
    const fd = fs.openSync(file, 'r+')
    const before = snapshot()
    const nr0 = aioNr()
    for (let i = 0; i < 300; i++) {
      const ctx = new Context({ implementation: impl, poolSize: 2 })
      t.is(await ctx.write('x', fd, i), 1)
      await ctx.close()
    }
    t.true(await eventually(() => snapshot().threads <= before.threads))
    const after = snapshot()
    fs.closeSync(fd)
    t.deepEqual({ ...after, threads: 0 }, { ...before, threads: 0 })
    // aio-nr is system-wide: other processes move it too, so only log it.
    t.log(`aio-nr ${nr0} -> ${aioNr()} (rings of this process: ${before.rings} -> ${after.rings})`)
  })
}

test.serial('linux: contexts collected without close() are destroyed as fast as they are dropped (no aio-max-nr exhaustion)', async (t) => {
  if (!implementations.includes('linux')) return t.pass('no linux backend here')
  t.timeout(90_000)
  const r = await runFixture('lifecycle-child.js', ['gc-many', 'linux'], { nodeArgs: ['--expose-gc'], timeoutMs: 60_000 })
  t.false(r.timedOut)
  t.is(r.code, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), { fellBack: 0 }, r.stderr)
})

test.serial('worker_threads: 4 workers with their own contexts at once, then workers terminated mid-flight: no crash, no leak', async (t) => {
  t.timeout(90_000)
  const r = await runFixture('lifecycle-child.js', ['workers', 'linux'], { timeoutMs: 60_000 })
  t.false(r.timedOut)
  t.is(r.code, 0, r.stderr)
  t.is(r.signal, null)
  const out = JSON.parse(r.stdout) as { io: { ok: boolean; exit: number }[]; terminated: number[]; base: Snapshot; after: Snapshot }
  t.log(out)
  t.deepEqual(out.io, Array.from({ length: 4 }, () => ({ ok: true, exit: 0 })))
  t.is(out.terminated.length, 6)
  t.true(out.after.fds <= out.base.fds, 'descriptors leaked by terminated workers')
  t.true(out.after.threads <= out.base.threads, 'threads leaked by terminated workers')
  t.true(out.after.eventfds <= out.base.eventfds)
})

test.serial('child_process.fork: the child gets working contexts of its own while the parent has some open', async (t) => {
  const parentCtxs = implementations.map((impl) => new Context({ implementation: impl }))
  const file = scratchFile(Buffer.alloc(BLOCK, 5))
  const fd = fs.openSync(file, 'r+')
  // The parent is mid-I/O when it forks.
  const pending = parentCtxs.map((c) => c.read(BLOCK, fd, 0))
  const child = fork(path.join(FIXTURES, 'lifecycle-child.js'), ['fork-child', 'linux'], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  })
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const msg = new Promise<unknown>((r) => child.once('message', r))
  const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.on('exit', (c, s) => r([c, s])))
  t.is(code, 0, stderr)
  t.is(signal, null)
  t.deepEqual(await msg, { uring: true, linux: true, thread: true, js: true })
  for (const b of await Promise.all(pending)) t.true(b.equals(Buffer.alloc(BLOCK, 5)))
  // The parent's contexts still work after the fork.
  for (const c of parentCtxs) t.is(await c.write('z', fd, 0), 1)
  await Promise.all(parentCtxs.map((c) => c.close()))
  fs.closeSync(fd)
})

test('the Implementation type covers the backends tested here', (t) => {
  const all: Implementation[] = ['uring', 'linux', 'thread', 'js']
  t.true(implementations.every((i) => all.includes(i)))
})
