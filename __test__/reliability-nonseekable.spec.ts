// Issue 6, item 2: descriptors AIO cannot serve (pipe, FIFO, socket, tty). Each run happens in
// a child process with a timeout, so an op that blocks the event loop fails the test instead
// of hanging the suite; a timer in the child counts ticks while ops are pending.
import test from 'ava'
import type { ExecutionContext } from 'ava'

import { once } from 'node:events'
import * as fs from 'node:fs'
import * as net from 'node:net'

import { Context, implementations, POLLIN } from '../index'
import type { Implementation } from '../index'
import { runFixture } from './fixtures/common'
import { tempFile } from './helpers'

interface Codes { read: string; readInto: string; write: string; readv: string; writev: string; fsync: string; pollOut: string }
interface PollWait { code: string; mask?: number; ticksWhilePending: number; pendingAfter200ms: boolean }
interface PipesOut { fifo: Codes; pipe: Codes; socket: Codes; burst: string[]; pollFifo: PollWait; pollSocket: PollWait }

const runs = new Map<Implementation, Promise<PipesOut>>()
function pipes(t: ExecutionContext, impl: Implementation): Promise<PipesOut> {
  let p = runs.get(impl)
  if (!p) {
    p = runFixture('nonseekable.js', [impl, 'pipes'], { timeoutMs: 20_000 }).then((r) => {
      if (r.timedOut) throw new Error(`child blocked (killed after 20 s); stderr: ${r.stderr}`)
      if (r.code !== 0) throw new Error(`child exited ${r.code} ${r.signal}: ${r.stderr}`)
      return JSON.parse(r.stdout) as PipesOut
    })
    runs.set(impl, p)
  }
  t.timeout(30_000)
  return p
}

for (const impl of implementations) {
  test(`${impl}: positional ops on a pipe, a FIFO and a socket reject with ESPIPE, never block`, async (t) => {
    const out = await pipes(t, impl)
    for (const kind of ['fifo', 'pipe', 'socket'] as const) {
      const c = out[kind]
      for (const op of ['read', 'readInto', 'write', 'readv', 'writev'] as const) t.is(c[op], 'ESPIPE', `${kind} ${op}`)
      t.is(c.fsync, 'EINVAL', `${kind} fsync`)
      t.is(c.pollOut, impl === 'js' ? 'ENOTSUP' : 'ok', `${kind} poll(POLLOUT)`)
    }
    t.deepEqual(out.burst, ['ESPIPE'])
  })

  if (impl !== 'js') {
    // "Timers tick" means the loop is not blocked: a blocked loop runs the 5 ms timer at most
    // once in the 200 ms, a free one ~40 times; 3 leaves room for a machine loaded by the
    // other spec files (5 was seen in CI) without becoming a speed assertion.
    test(`${impl}: poll(POLLIN) on an empty socket stays pending while timers tick, then resolves`, async (t) => {
      const p = (await pipes(t, impl)).pollSocket
      t.true(p.pendingAfter200ms)
      t.true(p.ticksWhilePending >= 3, `only ${p.ticksWhilePending} ticks in 200 ms`)
      t.is(p.code, 'ok')
      t.true(((p.mask ?? 0) & 1) !== 0)
    })

    // linux: IOCB_CMD_POLL refuses files that wait on two queues (a FIFO opened read-write,
    // pipes since Linux 5.5) with EINVAL unless already ready; the engine relays such a poll
    // through an epoll instance (crates/kaio-core/src/aio/relay.rs). thread uses poll(2).
    test(`${impl}: poll(POLLIN) on an empty FIFO stays pending while timers tick, then resolves POLLIN`, async (t) => {
      const p = (await pipes(t, impl)).pollFifo
      t.is(p.code, 'ok')
      t.true(p.pendingAfter200ms)
      t.true(p.ticksWhilePending >= 3, `only ${p.ticksWhilePending} ticks in 200 ms`)
      t.is(p.mask, 1)
    })

    // linux: IOCB_CMD_POLL resolves the kernel's raw ready mask (POLLIN|POLLPRI|POLLRDNORM|
    // POLLRDBAND = 195 for TCP), as issue #4 asks (0x41 on a pipe); poll(2) masks it.
    test(`${impl}: poll resolves a mask that contains the requested events`, async (t) => {
      const p = (await pipes(t, impl)).pollSocket
      t.is((p.mask ?? 0) & 1, 1, `mask ${p.mask}`)
      if (impl === 'thread') t.is((p.mask ?? 0) & ~(1 | 8 | 16 | 32), 0, `mask ${p.mask}`)
    })
  } else {
    test('js: poll is ENOTSUP', async (t) => {
      const out = await pipes(t, impl)
      t.is(out.pollFifo.code, 'ENOTSUP')
      t.is(out.pollSocket.code, 'ENOTSUP')
    })
  }

  // Kernel AIO would run a blocking tty read inside io_submit on the JS thread; the linux
  // engine checks isatty() for character devices and answers ESPIPE, as pread does.
  test(`${impl}: read on a tty (/dev/ptmx) does not block the event loop`, async (t) => {
    t.timeout(30_000)
    const r = await runFixture('nonseekable.js', [impl, 'tty'], { timeoutMs: 8_000 })
    t.false(r.timedOut, 'the child blocked and was killed')
    t.is(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { tty: { code: string } }
    // A tty is not seekable: pread answers ESPIPE (thread, js), and so does the linux engine's
    // own check. The child's 300 ms abort is only a backstop against a read that blocks.
    t.is(out.tty.code, 'ESPIPE')
  })
}

// Files of pseudo file systems (procfs, sysfs) keep pread/pwrite's semantics on every
// backend: the kernel engines send their positional ops to the context's pool
// (crates/kaio-core/src/classify.rs). Before, io_uring wrote /proc/self/comm at its own
// position where pwrite says ESPIPE, and kernel AIO answered EINVAL to /proc reads.
for (const impl of implementations) {
  test(`${impl}: /proc and /sys files read and write as pread and pwrite do`, async (t) => {
    const ctx = new Context({ implementation: impl })
    const errorOf = async (p: Promise<unknown>): Promise<unknown> => p.then(() => 'ok', (e: NodeJS.ErrnoException) => ({ code: e.code, syscall: e.syscall }))
    const syncError = (f: () => unknown): unknown => {
      try {
        f()
        return 'ok'
      } catch (e) {
        return { code: (e as NodeJS.ErrnoException).code, syscall: (e as NodeJS.ErrnoException).syscall }
      }
    }
    try {
      for (const file of ['/proc/self/status', '/proc/self/comm', '/sys/kernel/mm/transparent_hugepage/enabled']) {
        if (!fs.existsSync(file)) continue
        const fd = fs.openSync(file, 'r')
        try {
          for (const off of [0, 5, 0, 100_000]) {
            const want = Buffer.alloc(64)
            const n = fs.readSync(fd, want, 0, 64, off)
            const got = await ctx.read(64, fd, off)
            // /proc/self/status changes as the process runs: compare only the first line.
            const head = (b: Buffer): string => b.toString('latin1').split('\n')[0]!
            if (!file.endsWith('status')) t.is(got.length, n, `${file} @${off} length`)
            if (off !== 100_000) t.is(head(got), head(want.subarray(0, n)), `${file} @${off}`)
            else t.is(got.length, 0, `${file} past its end`)
          }
        } finally {
          fs.closeSync(fd)
        }
      }
      const comm = fs.readFileSync('/proc/self/comm', 'latin1')
      const fd = fs.openSync('/proc/self/comm', 'r+')
      try {
        const want = syncError(() => fs.writeSync(fd, Buffer.from('abc'), 0, 3, 5))
        t.deepEqual(await errorOf(ctx.write(Buffer.from('abc'), fd, 5)), want)
        t.deepEqual(await errorOf(ctx.writev([Buffer.from('abc')], fd, 5)), want)
        t.is(fs.readFileSync('/proc/self/comm', 'latin1'), comm, 'the process name is unchanged')
      } finally {
        fs.closeSync(fd)
      }
    } finally {
      await ctx.close()
    }
  })
}

// A poll may wait for hours: polls hold at most half of a context's slots (ring entries,
// iocbs, pool workers; crates/kaio-core/src/request.rs `poll_limit`), so reads and writes
// queued behind waiting polls still run. Before, polls that filled every slot left them
// pending until close().
for (const impl of implementations.filter((i) => i !== 'js')) {
  for (const options of [{ maxRequests: 4 }, { poolSize: 4 }, {}]) {
    if ('poolSize' in options && impl !== 'thread') continue
    test(`${impl} ${JSON.stringify(options)}: reads and writes run while polls that never end wait`, async (t) => {
      t.timeout(20_000)
      const srv = net.createServer(() => {}).listen(0)
      await once(srv, 'listening')
      const socks: net.Socket[] = []
      const ctx = new Context({ implementation: impl, ...options })
      try {
        for (let i = 0; i < 20; i++) {
          const s = net.connect((srv.address() as net.AddressInfo).port)
          await once(s, 'connect')
          socks.push(s)
        }
        const polls = socks.map((s) => ctx.poll((s as unknown as { _handle: { fd: number } })._handle.fd, POLLIN))
        for (const p of polls) p.catch(() => {})
        const { fd } = tempFile()
        try {
          t.is(await ctx.write('hello', fd, 0), 5)
          await ctx.fsync(fd)
          t.is((await ctx.read(5, fd, 0)).toString(), 'hello')
        } finally {
          fs.closeSync(fd)
        }
      } finally {
        await ctx.close()
        for (const s of socks) s.destroy()
        srv.close()
      }
    })
  }
}
