// The core conformance suite: every spec runs once per available backend.
import test from 'ava'
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'

import { Context, DEFAULT_MAX_REQUESTS, implementation, implementations } from '../index'
import { backends, directFile, each, isSystemError, sha, tempDir, tempFile, unmet } from './helpers'

const root = process.cwd()

test('the default backend is the best available one', (t) => {
  t.deepEqual([...implementations].sort(), [...new Set(implementations)].sort())
  t.true(implementations.includes(implementation))
  if (process.platform === 'linux' && !process.env.AIO_IMPL) t.is(implementation, implementations[0]!)
  const ctx = new Context()
  t.is(ctx.implementation, implementation)
  t.is(ctx.maxRequests, DEFAULT_MAX_REQUESTS)
  return ctx.close()
})

each('write then read round trip (string, Buffer, other views)', async (t, ctx, impl) => {
  t.is(ctx.implementation, impl)
  const { fd } = tempFile()
  t.is(await ctx.write('héllo', fd, 0), 6)
  t.is((await ctx.read(6, fd, 0)).toString(), 'héllo')
  t.is(await ctx.write(Buffer.from('BUF'), fd, 6), 3)
  const u16 = new Uint16Array([0x4241, 0x4443])
  t.is(await ctx.write(u16, fd, 9), 4)
  const dv = new DataView(new ArrayBuffer(2))
  dv.setUint8(0, 0x45)
  dv.setUint8(1, 0x46)
  t.is(await ctx.write(dv, fd, 13), 2)
  t.is((await ctx.read(100, fd, 0)).toString(), 'héllo' + 'BUF' + 'ABCD' + 'EF')
  fs.closeSync(fd)
})

each('readInto reads into the caller view without copying', async (t, ctx) => {
  const { fd } = tempFile(undefined, Buffer.from('0123456789'))
  const ab = new ArrayBuffer(16)
  const view = new Uint8Array(ab, 4, 6)
  t.is(await ctx.readInto(view, fd, 2), 6)
  t.is(Buffer.from(ab, 4, 6).toString(), '234567')
  const dv = new DataView(ab, 0, 4)
  t.is(await ctx.readInto(dv, fd, 8), 2, 'short at EOF')
  t.is(dv.getUint8(0), '8'.charCodeAt(0))
  fs.closeSync(fd)
})

each('short reads at EOF, empty past EOF, zero-length reads and writes', async (t, ctx) => {
  const { fd } = tempFile(undefined, Buffer.from('abc'))
  t.is((await ctx.read(10, fd, 1)).toString(), 'bc')
  t.is((await ctx.read(10, fd, 3)).length, 0)
  t.is((await ctx.read(10, fd, 1000)).length, 0)
  t.is((await ctx.read(0, fd, 0)).length, 0)
  t.is(await ctx.write('', fd, 0), 0)
  t.is(await ctx.write(new Uint8Array(0), fd, 10), 0)
  t.is(fs.fstatSync(fd).size, 3, 'a zero-length write does not extend the file')
  t.is(await ctx.readInto(Buffer.alloc(0), fd, 0), 0)
  fs.closeSync(fd)
})

each('4 MiB transfers keep their checksum', async (t, ctx) => {
  const { fd } = tempFile()
  const data = randomBytes(4 << 20)
  t.is(await ctx.write(data, fd, 0), data.length)
  const back = await ctx.read(data.length, fd, 0)
  t.is(back.length, data.length)
  t.is(sha(back), sha(data))
  fs.closeSync(fd)
})

each('a write past EOF leaves a zero-filled hole', async (t, ctx) => {
  const { fd } = tempFile(undefined, Buffer.from('ab'))
  await ctx.write('z', fd, 10000)
  const all = await ctx.read(20000, fd, 0)
  t.is(all.length, 10001)
  t.is(all.subarray(0, 2).toString(), 'ab')
  t.true(all.subarray(2, 10000).every((b) => b === 0))
  t.is(all[10000], 'z'.charCodeAt(0))
  fs.closeSync(fd)
})

each('offsets past 4 GiB, as numbers and bigints', async (t, ctx) => {
  const { fd } = tempFile()
  const off = 5 * 2 ** 30 + 7
  t.is(await ctx.write('far', fd, off), 3)
  t.is((await ctx.read(3, fd, BigInt(off))).toString(), 'far')
  t.is(fs.fstatSync(fd).size, off + 3)
  t.is(await ctx.write('big', fd, 6n * 2n ** 30n), 3)
  t.is((await ctx.read(3, fd, 6 * 2 ** 30)).toString(), 'big')
  fs.closeSync(fd)
})

each(
  '1000+ concurrent requests through maxRequests: 2 all complete',
  async (t, ctx) => {
    t.is(ctx.maxRequests, 2)
    const { fd } = tempFile()
    const n = 1500
    const writes = Array.from({ length: n }, (_, i) => ctx.write(Buffer.from(i.toString().padStart(8, '0')), fd, i * 8))
    t.deepEqual(new Set(await Promise.all(writes)), new Set([8]))
    const reads = await Promise.all(Array.from({ length: n }, (_, i) => ctx.read(8, fd, i * 8)))
    reads.forEach((b, i) => t.is(b.toString(), i.toString().padStart(8, '0')))
    fs.closeSync(fd)
  },
  { maxRequests: 2 },
)

each('fsync and fdsync resolve with nothing', async (t, ctx) => {
  const { fd } = tempFile()
  await ctx.write('x', fd, 0)
  t.is(await ctx.fsync(fd), undefined)
  t.is(await ctx.fdsync(fd), undefined)
  fs.closeSync(fd)
})

each('system errors look like node:fs errors', async (t, ctx) => {
  const { fd, path: p } = tempFile()
  fs.closeSync(fd)
  // Specs run concurrently, so a freshly closed number could be reused: use one never opened.
  const bad = 2 ** 30
  isSystemError(t, await t.throwsAsync(ctx.read(1, bad, 0)), 'EBADF', 'read')
  isSystemError(t, await t.throwsAsync(ctx.write('x', bad, 0)), 'EBADF', 'write')
  isSystemError(t, await t.throwsAsync(ctx.fsync(bad)), 'EBADF', 'fsync')
  isSystemError(t, await t.throwsAsync(ctx.fdsync(bad)), 'EBADF', 'fdatasync')
  const ro = fs.openSync(p, 'r')
  isSystemError(t, await t.throwsAsync(ctx.write('x', ro, 0)), 'EBADF', 'write')
  fs.closeSync(ro)
  const wo = fs.openSync(p, 'w')
  isSystemError(t, await t.throwsAsync(ctx.read(1, wo, 0)), 'EBADF', 'read')
  fs.closeSync(wo)
  const dir = fs.openSync(tempDir(), 'r')
  isSystemError(t, await t.throwsAsync(ctx.read(1, dir, 0)), 'EISDIR', 'read')
  fs.closeSync(dir)
  const e = (await t.throwsAsync(ctx.read(1, bad, 0))) as NodeJS.ErrnoException
  t.is(e.errno, -9)
  // The message is node:fs's for the same failure (compared with node's own, not a copy).
  const nodeErr = await new Promise<NodeJS.ErrnoException | null>((resolve) => fs.read(bad, Buffer.alloc(1), 0, 1, 0, (err) => resolve(err)))
  isSystemError(t, nodeErr, 'EBADF', 'read')
  t.is(e.message, nodeErr?.message ?? '(node:fs did not fail)')
})

each('invalid arguments reject with TypeError or RangeError codes', async (t, ctx) => {
  const { fd } = tempFile()
  const rejects = async (p: Promise<unknown>, Ctor: typeof TypeError | typeof RangeError, code: string): Promise<void> => {
    const e = await t.throwsAsync(p)
    t.true(e instanceof Ctor, `${String(e)}`)
    t.is((e as NodeJS.ErrnoException).code, code)
  }
  await rejects(ctx.read(1, 'x' as never, 0), TypeError, 'ERR_INVALID_ARG_TYPE')
  await rejects(ctx.read(1, -1, 0), RangeError, 'ERR_OUT_OF_RANGE')
  await rejects(ctx.read(1, 1.5, 0), RangeError, 'ERR_OUT_OF_RANGE')
  await rejects(ctx.read(1, fd, -1), RangeError, 'ERR_OUT_OF_RANGE')
  await rejects(ctx.read(1, fd, 0.5), RangeError, 'ERR_OUT_OF_RANGE')
  await rejects(ctx.read(1, fd, Number.NaN), RangeError, 'ERR_OUT_OF_RANGE')
  await rejects(ctx.read(1, fd, 2n ** 63n), RangeError, 'ERR_OUT_OF_RANGE')
  await rejects(ctx.read(1, fd, '0' as never), TypeError, 'ERR_INVALID_ARG_TYPE')
  await rejects(ctx.read(-1, fd, 0), RangeError, 'ERR_OUT_OF_RANGE')
  await rejects(ctx.read(2 ** 31, fd, 0), RangeError, 'ERR_OUT_OF_RANGE')
  await rejects(ctx.read('1' as never, fd, 0), TypeError, 'ERR_INVALID_ARG_TYPE')
  await rejects(ctx.write(42 as never, fd, 0), TypeError, 'ERR_INVALID_ARG_TYPE')
  await rejects(ctx.readInto([1, 2] as never, fd, 0), TypeError, 'ERR_INVALID_ARG_TYPE')
  await rejects(ctx.fsync(null as never), TypeError, 'ERR_INVALID_ARG_TYPE')
  t.throws(() => new Context({ maxRequests: 0 }), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => new Context({ maxRequests: '8' as never }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => new Context({ implementation: 'io_uring' as never }), { code: 'ERR_INVALID_ARG_VALUE' })
  fs.closeSync(fd)
})

each('requests after close reject with ERR_AIO_CLOSED; close is idempotent', async (t, ctx) => {
  const { fd } = tempFile()
  await ctx.close()
  await ctx.close()
  await t.throwsAsync(ctx.read(1, fd, 0), { code: 'ERR_AIO_CLOSED' })
  await t.throwsAsync(ctx.write('x', fd, 0), { code: 'ERR_AIO_CLOSED' })
  await t.throwsAsync(ctx.fsync(fd), { code: 'ERR_AIO_CLOSED' })
  fs.closeSync(fd)
})

// close() with requests in flight and queued: see lifetime.spec.ts.

test('Symbol.asyncDispose closes the context', async (t) => {
  const ctx = new Context()
  await ctx[Symbol.asyncDispose]()
  await t.throwsAsync(ctx.read(1, 0, 0), { code: 'ERR_AIO_CLOSED' })
})

test('an explicit but unavailable backend throws ERR_AIO_UNAVAILABLE', (t) => {
  const missing = (['linux', 'thread'] as const).find((i) => !implementations.includes(i))
  if (!missing) {
    // Every backend exists here: prove the path in a child with kernel AIO switched off.
    const script = `const k = require('./index.js'); const reason = k.backends().linux.reason
      try { new k.Context({ implementation: 'linux' }); console.log('{}') }
      catch (e) { console.log(JSON.stringify({ code: e.code, available: k.backends().linux.available, saysWhy: reason !== '' && e.message.includes(reason) })) }`
    const out = execFileSync(process.execPath, ['-e', script], {
      cwd: root,
      env: { ...process.env, KAIO_DISABLE_LINUX_AIO: '1', AIO_IMPL: '' },
      encoding: 'utf8',
    })
    // The message says why: it carries backends()'s reason (compared with the child's own).
    t.deepEqual(JSON.parse(out), { code: 'ERR_AIO_UNAVAILABLE', available: false, saysWhy: true })
    return
  }
  t.throws(() => new Context({ implementation: missing }), { code: 'ERR_AIO_UNAVAILABLE' })
})

for (const impl of backends) {
  test(`${impl}: an idle process exits by itself; a busy one stays until its requests finish`, (t) => {
    const file = path.join(tempDir(), `idle-${impl}`)
    const script = `
      const { Context } = require('./index.js')
      const fs = require('fs')
      const fd = fs.openSync(${JSON.stringify(file)}, 'w+')
      const ctx = new Context({ implementation: '${impl}' })
      ctx.write('x'.repeat(65536), fd, 0).then((n) => ctx.fsync(fd).then(() => console.log('wrote', n)))
    `
    const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 20000 })
    t.is(r.signal, null, 'did not hang until the timeout')
    t.is(r.status, 0, r.stderr)
    t.is(r.stdout.trim(), 'wrote 65536')
  })
}

test('CommonJS require and ESM import both work', (t) => {
  const cjs = execFileSync(process.execPath, ['-e', "console.log(typeof require('./index.js').Context)"], { cwd: root, encoding: 'utf8' })
  t.is(cjs.trim(), 'function')
  const esm = execFileSync(process.execPath, ['--input-type=module', '-e', "import { Context, implementation } from './index.js'; console.log(typeof Context, implementation)"], {
    cwd: root,
    encoding: 'utf8',
  })
  t.is(esm.trim(), `function ${implementation}`)
})

each('reads on an O_DIRECT descriptor work with block-multiple sizes', async (t, ctx) => {
  if (unmet(t, 'direct')) return
  const data = randomBytes(64 * 1024)
  const { fd } = directFile(data)
  const got = await ctx.read(16384, fd, 8192)
  t.is(sha(got), sha(data.subarray(8192, 8192 + 16384)))
  const many = await Promise.all([0, 4096, 12288].map((o) => ctx.read(4096, fd, o)))
  many.forEach((b, i) => t.is(sha(b), sha(data.subarray([0, 4096, 12288][i]!, [0, 4096, 12288][i]! + 4096))))
  fs.closeSync(fd)
})
