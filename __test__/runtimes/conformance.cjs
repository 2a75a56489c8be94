// The conformance subset that runs on every runtime kaio supports: Node (any version), Bun and
// Deno. Plain CommonJS with node:assert and no test framework (ava does not run on Bun or
// Deno), over the built package. Run by scripts/runtimes.sh:
//   node|bun|deno run -A __test__/runtimes/conformance.cjs
// Every backend available in the runtime runs every check; prints one line per check and a
// closing "N passed, N failed"; exits 1 on any failure.
'use strict'
const assert = require('node:assert')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const kaio = require(path.join(__dirname, '..', '..', 'index.js'))
const { Context, implementations, backends, AbortError } = kaio

const runtime = 'Bun' in globalThis ? 'bun' : 'Deno' in globalThis ? 'deno' : 'node'
// Node's event loop watches the completion eventfd; Bun's libuv functions are aborting stubs
// and Deno hands out no libuv loop, so both use the threadsafe function.
const expectedPath = runtime === 'node' && process.env.KAIO_NO_UV_POLL === undefined ? 'uv_poll' : 'threadsafe_function'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kaio-runtime-'))
let n = 0
function tempFd(content) {
  const p = path.join(dir, `f${n++}`)
  fs.writeFileSync(p, content ?? '')
  return fs.openSync(p, 'r+')
}

const checks = []
function check(name, fn) {
  checks.push({ name, fn })
}

function systemError(err, code, syscall) {
  assert.ok(err instanceof Error, `expected an Error, got ${err}`)
  assert.strictEqual(err.code, code)
  if (syscall) {
    assert.strictEqual(err.syscall, syscall)
    assert.ok(typeof err.errno === 'number' && err.errno < 0)
  }
}

check('the backends report the completion path of this runtime', async (ctx, impl) => {
  assert.strictEqual(ctx.completionPath, impl === 'js' ? 'node:fs' : expectedPath)
  assert.strictEqual(backends()[impl].completionPath, ctx.completionPath)
})

check('write then read round trip, short read at EOF, empty past it', async (ctx) => {
  const fd = tempFd()
  assert.strictEqual(await ctx.write('héllo', fd, 0), 6)
  assert.strictEqual((await ctx.read(6, fd, 0)).toString(), 'héllo')
  assert.strictEqual((await ctx.read(100, fd, 3)).length, 3)
  assert.strictEqual((await ctx.read(10, fd, 100)).length, 0)
  fs.closeSync(fd)
})

check('readInto, readv and writev move the bytes they report', async (ctx) => {
  const fd = tempFd()
  assert.strictEqual(await ctx.writev([Buffer.from('abc'), Buffer.from('defg')], fd, 0), 7)
  const a = Buffer.alloc(2)
  const b = Buffer.alloc(10)
  assert.strictEqual(await ctx.readv([a, b], fd, 0), 7)
  assert.strictEqual(a.toString() + b.subarray(0, 5).toString(), 'abcdefg')
  const into = new Uint8Array(4)
  assert.strictEqual(await ctx.readInto(into, fd, 3), 4)
  assert.strictEqual(Buffer.from(into).toString(), 'defg')
  fs.closeSync(fd)
})

check('256 concurrent 4 KiB writes and reads at distinct offsets', async (ctx) => {
  const fd = tempFd()
  const ws = Array.from({ length: 256 }, (_, i) => ctx.write(Buffer.alloc(4096, i & 0xff), fd, i * 4096))
  assert.deepStrictEqual(await Promise.all(ws), ws.map(() => 4096))
  const rs = await Promise.all(Array.from({ length: 256 }, (_, i) => ctx.read(4096, fd, i * 4096)))
  rs.forEach((b, i) => assert.ok(b.equals(Buffer.alloc(4096, i & 0xff)), `block ${i}`))
  fs.closeSync(fd)
})

check('fsync and fdsync resolve undefined', async (ctx) => {
  const fd = tempFd('x')
  assert.strictEqual(await ctx.fsync(fd), undefined)
  assert.strictEqual(await ctx.fdsync(fd), undefined)
  fs.closeSync(fd)
})

check('a bad descriptor rejects like node:fs (EBADF, errno, syscall)', async (ctx) => {
  const fd = tempFd()
  fs.closeSync(fd)
  await assert.rejects(ctx.read(10, fd, 0), (e) => (systemError(e, 'EBADF', 'read'), true))
  await assert.rejects(ctx.write('x', fd, 0), (e) => (systemError(e, 'EBADF', 'write'), true))
})

check('bad arguments throw node codes', async (ctx) => {
  await assert.rejects(ctx.read(-1, 0, 0), (e) => e.code === 'ERR_OUT_OF_RANGE')
  await assert.rejects(ctx.read(1, 'x', 0), (e) => e.code === 'ERR_INVALID_ARG_TYPE')
})

check('an aborted signal rejects with AbortError and the write never lands', async (ctx) => {
  const fd = tempFd('old')
  const ac = new AbortController()
  ac.abort()
  await assert.rejects(ctx.write('new', fd, 0, { signal: ac.signal }), (e) => e instanceof AbortError && e.code === 'ABORT_ERR')
  assert.strictEqual(fs.readFileSync(path.join(dir, `f${n - 1}`), 'utf8'), 'old')
  fs.closeSync(fd)
})

check('poll on a regular file resolves POLLIN at once (js: ENOTSUP)', async (ctx, impl) => {
  // A regular file is always readable; pipes and sockets are covered by the ava specs (kernel
  // AIO refuses to poll a FIFO, and Bun and Deno expose no socket descriptors).
  const fd = tempFd('data')
  try {
    if (impl === 'js') {
      await assert.rejects(ctx.poll(fd, 1), (e) => (systemError(e, 'ENOTSUP', 'poll'), true))
      return
    }
    assert.strictEqual((await ctx.poll(fd, 1)) & 1, 1)
  } finally {
    fs.closeSync(fd)
  }
})

check('fallocate grows a file and fadvise takes advice (js: fallocate ENOTSUP, fadvise checks the fd)', async (ctx, impl) => {
  const fd = tempFd()
  try {
    if (impl === 'js') {
      await assert.rejects(ctx.fallocate(fd, 0, 0, 65536), (e) => (systemError(e, 'ENOTSUP', 'fallocate'), true))
    } else {
      await ctx.fallocate(fd, 0, 0, 65536)
      assert.strictEqual(fs.fstatSync(fd).size, 65536)
      await ctx.fallocate(fd, kaio.FALLOC_FL_KEEP_SIZE, 65536, 65536)
      assert.strictEqual(fs.fstatSync(fd).size, 65536)
    }
    await ctx.fadvise(fd, 0, 0, kaio.POSIX_FADV_SEQUENTIAL)
    await assert.rejects(ctx.fadvise(2 ** 30, 0, 0, kaio.POSIX_FADV_NORMAL), (e) => (systemError(e, 'EBADF', 'fadvise'), true))
    await assert.rejects(ctx.fadvise(fd, 0, 0, 6), (e) => e.code === 'ERR_OUT_OF_RANGE')
  } finally {
    fs.closeSync(fd)
  }
})

check('close() in the same tick as writes: every write lands, later ones are refused', async (_ctx, impl) => {
  const fd = tempFd()
  const c = new Context({ implementation: impl, maxRequests: 4 })
  const ws = Array.from({ length: 100 }, (_, i) => c.write(Buffer.alloc(512, i), fd, i * 512))
  const closed = c.close()
  await assert.rejects(c.write('x', fd, 0), (e) => e.code === 'ERR_AIO_CLOSED')
  assert.deepStrictEqual(await Promise.all(ws), ws.map(() => 512))
  await closed
  const data = fs.readFileSync(`/proc/self/fd/${fd}`)
  for (let i = 0; i < 100; i++) assert.strictEqual(data[i * 512 + 511], i & 0xff)
  fs.closeSync(fd)
})

check('path ops, a whole-file write and copy: results and node-style errors', async (ctx) => {
  const sub = path.join(dir, `sub${n++}`)
  await ctx.mkdirat(sub, 0o755)
  const f = path.join(sub, 'f')
  assert.strictEqual(await ctx.writeFile(f, 'whole'), 5)
  assert.strictEqual(fs.readFileSync(f, 'utf8'), 'whole')
  const out = new Uint8Array(kaio.STATX_SIZE)
  await ctx.statx(f, 0, kaio.STATX_BASIC_STATS | kaio.STATX_BTIME, out)
  assert.strictEqual(kaio.decodeStatx(out).size, 5)
  await ctx.copyFile(f, `${f}c`)
  assert.strictEqual(fs.readFileSync(`${f}c`, 'utf8'), 'whole')
  await assert.rejects(ctx.copyFile(f, `${f}c`, fs.constants.COPYFILE_EXCL), (e) => (systemError(e, 'EEXIST', 'copyfile'), true))
  await ctx.unlinkat(`${f}c`)
  await ctx.renameat(f, `${f}2`)
  await assert.rejects(ctx.unlinkat(f), (e) => {
    systemError(e, 'ENOENT', 'unlink')
    assert.strictEqual(e.path, f)
    return true
  })
  await assert.rejects(ctx.writeFile(path.join(sub, 'no', 'x'), 'x'), (e) => (systemError(e, 'ENOENT', 'open'), true))
  await ctx.unlinkat(`${f}2`)
  await ctx.unlinkat(sub, kaio.AT_REMOVEDIR)
})

check('kaio/promises: stat, readFile, open and mkdir answer as node:fs/promises', async () => {
  const kp = require(path.join(__dirname, '..', '..', 'src', 'promises.js'))
  const f = path.join(dir, `p${n++}`)
  fs.writeFileSync(f, 'cached')
  const ours = await kp.stat(f)
  const theirs = fs.statSync(f)
  for (const k of ['dev', 'ino', 'mode', 'size']) assert.strictEqual(ours[k], theirs[k], k)
  // Deno's node:fs gives whole milliseconds; kaio gives Node's (sec * 1e3 + nsec / 1e6).
  assert.strictEqual(Math.floor(ours.mtimeMs), Math.floor(theirs.mtimeMs))
  assert.ok(ours.isFile())
  assert.strictEqual(await kp.readFile(f, 'utf8'), 'cached')
  await assert.rejects(kp.stat(path.join(dir, 'missing')), (e) => (systemError(e, 'ENOENT', 'stat'), true))
  const fh = await kp.open(f)
  assert.strictEqual((await fh.readFile('utf8')), 'cached')
  await fh.close()
  const deep = path.join(dir, `d${n++}`, 'a', 'b')
  assert.strictEqual(await kp.mkdir(deep, { recursive: true }), path.dirname(path.dirname(deep)))
  assert.ok(fs.statSync(deep).isDirectory())
})

check("kaio/promises' Stats dates: Dates from the *Ms fields, as this runtime's node:fs gives them", async () => {
  const kp = require(path.join(__dirname, '..', '..', 'src', 'promises.js'))
  const f = path.join(dir, `t${n++}`)
  fs.writeFileSync(f, 'dated')
  const fh = await kp.open(f)
  const stats = { stat: await kp.stat(f), lstat: await kp.lstat(f), fstat: await fh.stat() }
  await fh.close()
  const theirs = fs.statSync(f)
  for (const [call, ours] of Object.entries(stats)) {
    assert.strictEqual(Object.getPrototypeOf(ours), Object.getPrototypeOf(theirs), `${call}: prototype`)
    for (const k of ['atime', 'mtime', 'ctime', 'birthtime']) {
      const date = ours[k]
      assert.ok(date instanceof Date, `${call}: ${k} is ${date}`)
      // Node rounds the milliseconds (dateFromMs); Bun's getters truncate them.
      const ms = ours[`${k}Ms`]
      assert.ok(Math.abs(date.getTime() - ms) < 1, `${call}: ${k} ${date.getTime()} for ${k}Ms ${ms}`)
      // This runtime's own stat of the same file: Deno's node:fs gives whole milliseconds,
      // and its ctime whole seconds.
      const own = theirs[k].getTime()
      const slack = runtime === 'deno' && k === 'ctime' ? 1000 : 1
      assert.ok(Math.abs(date.getTime() - own) <= slack, `${call}: ${k} ${date.getTime()}, node:fs ${own}`)
    }
  }
})

async function main() {
  let passed = 0
  let failed = 0
  console.log(`kaio on ${runtime} ${runtime === 'node' ? process.version : runtime === 'bun' ? globalThis.Bun.version : globalThis.Deno.version.deno}: backends ${implementations.join(', ')}`)
  for (const impl of implementations) {
    for (const { name, fn } of checks) {
      const ctx = new Context({ implementation: impl })
      try {
        await fn(ctx, impl)
        passed++
        console.log(`ok ${impl}: ${name}`)
      } catch (e) {
        failed++
        console.log(`FAIL ${impl}: ${name}\n  ${e && e.stack ? e.stack.split('\n').slice(0, 4).join('\n  ') : e}`)
      } finally {
        await ctx.close()
      }
    }
  }
  fs.rmSync(dir, { recursive: true, force: true })
  console.log(`${passed} passed, ${failed} failed`)
  process.exitCode = failed === 0 && passed > 0 ? 0 : 1
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
