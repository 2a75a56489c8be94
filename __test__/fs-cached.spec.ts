// The cached fast path (src/fs/cached.ts, crates/kaio-core/src/sys/cached.rs): stat, lstat,
// fstat, open and readFile answered on the JavaScript thread from the kernel's caches. Each
// answer equals node:fs's; anything it cannot answer without waiting (a FIFO, a file too big,
// a NUL byte, bigint stats) goes to the slow path, and a long run of fast answers still lets
// the event loop turn.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import * as fs from 'node:fs'
import * as path from 'node:path'

import kp = require('../src/promises')
import { CACHED_READ_MAX, cachedEnabled, cachedKind, cachedOpen, cachedReadFile, cachedStat, IRREGULAR } from '../src/fs/cached'
import { Context } from '../index'
import { backends, heldFifo, tempDir, unmet } from './helpers'

const dir = tempDir()
const file = path.join(dir, 'file')
fs.writeFileSync(file, 'hello cached world\n')
fs.symlinkSync('file', path.join(dir, 'link'))
fs.symlinkSync('nowhere', path.join(dir, 'dangling'))
fs.symlinkSync('loop', path.join(dir, 'loop'))
fs.mkdirSync(path.join(dir, 'sub'))
const big = path.join(dir, 'big')
fs.writeFileSync(big, Buffer.alloc(CACHED_READ_MAX + 1, 7))

async function outcome(fn: () => Promise<unknown>): Promise<{ value?: unknown; error?: unknown }> {
  try {
    return { value: await fn() }
  } catch (error) {
    const e = error as NodeJS.ErrnoException
    return { error: { message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path, proto: Object.getPrototypeOf(e) } }
  }
}

test('the fast path is on here (native binding, Linux, openat2 with RESOLVE_CACHED)', (t) => {
  if (unmet(t, 'native')) return
  t.true(cachedEnabled())
  // A cached lookup is answered here, not by node:fs.
  t.truthy(cachedStat(file, true))
  const buf = cachedReadFile(file)
  t.is(buf?.toString(), 'hello cached world\n')
})

const PATHS = ['file', 'link', 'dangling', 'loop', 'sub', 'missing', 'file/x', 'missing/x', 'n'.repeat(300), '', '/dev/null', '/proc/self/status', '.']

/** A tree of its own for each test (a stat that follows `link` reads it, and moves its atime). */
function tree(): string {
  const d = fs.mkdtempSync(path.join(dir, 'tree-'))
  fs.writeFileSync(path.join(d, 'file'), 'data')
  for (const [target, name] of [['file', 'link'], ['nowhere', 'dangling'], ['loop', 'loop']]) fs.symlinkSync(target!, path.join(d, name!))
  fs.mkdirSync(path.join(d, 'sub'))
  return d
}

for (const name of ['stat', 'lstat'] as const) {
  test(`${name} equals node:fs/promises' ${name} (Stats, prototype, errors) on every kind of path`, async (t) => {
    const d = tree()
    for (const p of PATHS) {
      const full = p.startsWith('/') || p === '' || p === '.' ? p : path.join(d, p)
      const ours = await outcome(() => kp[name](full))
      const theirs = await outcome(() => fs.promises[name](full))
      t.deepEqual(ours, theirs, `${name}(${JSON.stringify(p)})`)
      if (ours.value) t.is(Object.getPrototypeOf(ours.value), fs.Stats.prototype)
      if (ours.value) t.deepEqual(Object.keys(ours.value as object), Object.keys(theirs.value as object))
    }
    // What the fast path leaves to node:fs: bigint stats, URLs, Buffers, bad arguments.
    t.deepEqual(await outcome(() => kp[name](file, { bigint: true })), await outcome(() => fs.promises[name](file, { bigint: true })))
    t.deepEqual(await outcome(() => kp[name](Buffer.from(file))), await outcome(() => fs.promises[name](Buffer.from(file))))
    t.deepEqual(await outcome(() => kp[name]('a\0b')), await outcome(() => fs.promises[name]('a\0b')))
    t.deepEqual(await outcome(() => kp[name](file, null as never)), await outcome(() => fs.promises[name](file, null as never)))
    t.deepEqual(await outcome(() => kp[name](42 as never)), await outcome(() => fs.promises[name](42 as never)))
  })
}

test('readFile equals node:fs/promises readFile: small, empty, big, encodings, missing, directory, procfs', async (t) => {
  const empty = path.join(dir, 'empty')
  fs.writeFileSync(empty, '')
  for (const p of [file, empty, big, path.join(dir, 'link'), path.join(dir, 'missing'), path.join(dir, 'sub'), path.join(dir, 'file/x'), '/proc/self/stat']) {
    for (const opts of [undefined, 'utf8', { encoding: 'base64' as const }, { flag: 'r' }]) {
      const ours = await outcome(() => kp.readFile(p, opts as never))
      const theirs = await outcome(() => fs.promises.readFile(p, opts as never))
      if (p === '/proc/self/stat') {
        t.is(typeof ours.value, typeof theirs.value)
        continue
      }
      t.deepEqual(ours, theirs, `readFile(${p}, ${JSON.stringify(opts)})`)
    }
  }
  // Over CACHED_READ_MAX it is the engine's read, and the same bytes.
  t.is(cachedReadFile(big), undefined)
  // A buffer of its own, as node's allocUnsafeSlow: nothing shared with a pool.
  const b = (await kp.readFile(file)) as Buffer
  t.is(b.byteOffset, 0)
  t.is(b.buffer.byteLength, b.byteLength)
})

test('a FIFO without a writer is never opened blocking on this thread', async (t) => {
  const { path: fifo, keeper } = heldFifo()
  try {
    t.is(cachedOpen(fifo, fs.constants.O_RDONLY), IRREGULAR)
    t.is(cachedKind(fifo, fs.constants.O_WRONLY), IRREGULAR)
    t.is(cachedReadFile(fifo), undefined)
    // Its stat needs no open at all.
    t.true(cachedStat(fifo, true)?.isFIFO())
  } finally {
    fs.closeSync(keeper)
  }
})

test('readFile of a FIFO waits for its writer, as node:fs does, on every backend', async (t) => {
  for (const impl of backends) {
    const fifo = path.join(dir, `wait-${impl}`)
    spawnSync('mkfifo', [fifo])
    fs.statSync(fifo) // a cached lookup: the case io_uring's inline open got wrong
    const context = new Context({ implementation: impl })
    try {
      const reading = kp.readFile(fifo, { encoding: 'utf8', context } as never) as unknown as Promise<string>
      const writer = spawn('sh', ['-c', `sleep 0.2; printf 'from the writer' > '${fifo}'`])
      const exited = once(writer, 'exit')
      t.is(await reading, 'from the writer', impl)
      await exited
    } finally {
      await context.close()
    }
  }
})

/**
 * Drops unused dentries and inodes (root only; their pages go with them): `false` where that
 * is not allowed. The serial tests that call it run before the others, which expect this
 * file's fixtures cached: `warm` brings them back.
 */
function dropDentries(): boolean {
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '2')
    return true
  } catch {
    return false
  }
}

function warm(): void {
  for (const p of [file, big]) fs.readFileSync(p)
  fs.statSync(path.join(dir, 'sub'))
  for (const l of ['link', 'dangling', 'loop']) fs.lstatSync(path.join(dir, l))
  fs.statSync(path.join(dir, 'link'))
}

/** `p`, or 'timed out' after `ms` (a guard against a hang, not a measure of speed). */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timed out'> {
  let timer: NodeJS.Timeout | undefined
  const guard = new Promise<'timed out'>((resolve) => (timer = setTimeout(() => resolve('timed out'), ms)))
  return Promise.race([p, guard]).finally(() => clearTimeout(timer))
}

test.serial('a FIFO whose lookup is not cached opens through node:fs on every backend: it waits for its writer, and ctx.close() does not wait for it', async (t) => {
  if (!dropDentries()) {
    t.log('skipped: dropping the dentry cache needs root')
    t.pass()
    return
  }
  for (const impl of backends) {
    const fifo = path.join(dir, `uncached-${impl}`)
    spawnSync('mkfifo', [fifo])
    dropDentries()
    if (cachedKind(fifo, fs.constants.O_RDONLY) !== undefined) t.log(`${impl}: the FIFO's lookup stayed cached`)
    const context = new Context({ implementation: impl })
    const opening = kp.open(fifo, 'r', 0o666, { context })
    // Blocked in open(2) with no writer: a kaio worker in that call would hold up close().
    t.not(await within(context.close(), 5000), 'timed out', `${impl}: ctx.close() waited for the FIFO's open`)
    const writer = spawn('sh', ['-c', `printf 'from the writer' > '${fifo}'`])
    const exited = once(writer, 'exit')
    const fh = await within(
      opening.catch((e: unknown) => e as Error),
      5000,
    )
    if (fh === 'timed out' || fh instanceof Error) {
      t.fail(`${impl}: the open gave ${String(fh)}`)
      continue
    }
    const { bytesRead, buffer } = await fh.read(Buffer.alloc(64), 0, 64, null)
    t.is(buffer.toString('utf8', 0, bytesRead), 'from the writer', impl)
    await exited
    await fh.close()
  }
  warm()
})

test.serial('a FIFO whose lookup is not cached, opened for writing or given to writeFile, goes through node:fs on every backend: it waits for its reader, and ctx.close() does not wait for it', async (t) => {
  if (!dropDentries()) {
    t.log('skipped: dropping the dentry cache needs root')
    t.pass()
    return
  }
  for (const impl of backends) {
    for (const how of ['open', 'writeFile'] as const) {
      const fifo = path.join(dir, `uncached-w-${how}-${impl}`)
      spawnSync('mkfifo', [fifo])
      dropDentries()
      const context = new Context({ implementation: impl })
      const writing =
        how === 'open'
          ? kp.open(fifo, 'w', 0o666, { context }).then(async (fh) => {
              await fh.write('to the reader')
              await fh.close()
            })
          : kp.writeFile(fifo, 'to the reader', { context } as never)
      // Blocked in open(2) with no reader: a kaio worker in that call would hold up close().
      t.not(await within(context.close(), 5000), 'timed out', `${impl} ${how}: ctx.close() waited for the FIFO's open`)
      const reader = spawn('cat', [fifo])
      let got = ''
      reader.stdout.on('data', (d: Buffer) => (got += d.toString()))
      const exited = once(reader, 'exit')
      const r = await within(
        writing.then(
          () => 'ok',
          (e: unknown) => String(e),
        ),
        5000,
      )
      t.is(r, 'ok', `${impl} ${how}`)
      await within(exited, 5000)
      t.is(got, 'to the reader', `${impl} ${how}`)
    }
  }
  warm()
})

test.serial('a regular file whose lookup is not cached still opens and reads, on every backend', async (t) => {
  const f = path.join(dir, 'uncached-regular')
  fs.writeFileSync(f, 'cold file')
  for (const impl of backends) {
    dropDentries()
    const context = new Context({ implementation: impl })
    try {
      t.is((await kp.readFile(f, { encoding: 'utf8', context } as never)) as unknown as string, 'cold file', impl)
      dropDentries()
      const fh = await kp.open(f, 'r', 0o666, { context })
      t.true(fh.fd >= 0)
      await fh.close()
      dropDentries()
      await t.throwsAsync(kp.open(path.join(dir, 'uncached-missing'), 'r', 0o666, { context }), { code: 'ENOENT' })
    } finally {
      await context.close()
    }
  }
  warm()
})

test('open takes the fast path for a cached regular file; its handle reads, stats and closes as node', async (t) => {
  const got = cachedOpen(file, fs.constants.O_RDONLY)
  t.is(typeof got, 'number')
  fs.closeSync(got as number)
  // Read-only only: a write open runs the file system's ->open for writing (overlayfs copies up).
  t.is(cachedOpen(file, fs.constants.O_RDWR), undefined)
  const fh = await kp.open(file, 'r')
  t.deepEqual(await fh.stat(), fs.fstatSync(fh.fd))
  t.is((await fh.readFile('utf8')) as string, 'hello cached world\n')
  const fd = fh.fd
  const { ino } = fs.fstatSync(fd)
  await fh.close()
  t.is(fh.fd, -1)
  // Closed: EBADF, unless a test running alongside already got the number for another file.
  try {
    t.not(fs.fstatSync(fd).ino, ino)
  } catch (e) {
    t.is((e as NodeJS.ErrnoException).code, 'EBADF')
  }
  // Writing flags without O_CREAT/O_TRUNC open here too, and write through the Context.
  const own = path.join(dir, 'rw')
  fs.writeFileSync(own, 'hello')
  const rw = await kp.open(own, 'r+')
  await rw.write('J', 0)
  await rw.close()
  t.is(fs.readFileSync(own, 'utf8'), 'Jello')
  // O_CREAT and O_TRUNC are never the fast path's; errors are node's.
  t.is(cachedOpen(file, fs.constants.O_WRONLY | fs.constants.O_TRUNC), undefined)
  t.deepEqual(await outcome(() => kp.open(path.join(dir, 'missing'))), await outcome(() => fs.promises.open(path.join(dir, 'missing'))))
  t.deepEqual(await outcome(() => kp.open(path.join(dir, 'sub'), 'w')), await outcome(() => fs.promises.open(path.join(dir, 'sub'), 'w')))
  t.deepEqual(await outcome(() => kp.open(file, 'r', 'bad' as never)), await outcome(() => fs.promises.open(file, 'r', 'bad' as never)))
})

test('a long run of cached answers lets the event loop turn', async (t) => {
  let turns = 0
  const tick = (): void => {
    turns++
    if (!done) setImmediate(tick)
  }
  let done = false
  setImmediate(tick)
  const start = performance.now()
  let n = 0
  // At least 50 ms of back-to-back stats (each about 5 µs): node's loop would turn many times.
  while (performance.now() - start < 50 || n < 1000) {
    await kp.stat(file)
    n++
  }
  done = true
  t.true(turns >= 5, `${turns} loop turns during ${n} stats`)
})

test('many cached calls in flight together still let the loop turn every 2 ms', async (t) => {
  let turns = 0
  let done = false
  const tick = (): void => {
    turns++
    if (!done) setImmediate(tick)
  }
  setImmediate(tick)
  const start = performance.now()
  await Promise.all(Array.from({ length: 20_000 }, () => kp.stat(file)))
  done = true
  const ms = performance.now() - start
  // One turn for every 2 ms of stats at least (less a few): not one turn for all waiters.
  t.true(turns >= Math.max(3, Math.floor(ms / 2) - 5), `${turns} loop turns during ${ms.toFixed(1)} ms of 20,000 stats`)
})

test('KAIO_CACHED=0 turns the fast path off; the calls still answer as node:fs', (t) => {
  const script = `
    const c = require(${JSON.stringify(path.resolve('src/fs/cached.js'))})
    const kp = require(${JSON.stringify(path.resolve('src/promises.js'))})
    kp.stat(${JSON.stringify(file)}).then((s) => console.log(JSON.stringify({ on: c.cachedEnabled(), size: s.size })))`
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, KAIO_CACHED: '0' }, encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), { on: false, size: fs.statSync(file).size })
})

test("under node's permission model kaio/promises is node:fs/promises itself (its checks are node's)", (t) => {
  const flag = Number(process.versions.node.split('.')[0]) >= 22 ? '--permission' : '--experimental-permission'
  const script = `
    const kp = require(${JSON.stringify(path.resolve('src/promises.js'))})
    const fsp = require('node:fs/promises')
    const names = ['stat', 'readFile', 'writeFile', 'open', 'mkdir', 'copyFile']
    console.log(JSON.stringify(names.map((n) => kp[n] === fsp[n])))`
  const r = spawnSync(process.execPath, [flag, '--allow-fs-read=*', '--allow-addons', '-e', script], { encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), [true, true, true, true, true, true])
})
