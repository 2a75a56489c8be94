// Path (metadata) ops through every backend, against node:fs: open, close, statx (stat, lstat,
// fstat), unlink/rmdir, rename, mkdir, symlink, link, ftruncate; results and errors (code,
// errno, syscall, path, dest, message) equal node:fs's. fallocate and fadvise, which node:fs
// lacks, against the kernel's answers.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import * as v8 from 'node:v8'
import * as vm from 'node:vm'

import {
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  decodeStatx,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  POSIX_FADV_DONTNEED,
  POSIX_FADV_NOREUSE,
  POSIX_FADV_NORMAL,
  POSIX_FADV_RANDOM,
  POSIX_FADV_SEQUENTIAL,
  POSIX_FADV_WILLNEED,
  STATX_BASIC_STATS,
  STATX_BTIME,
  STATX_SIZE,
} from '../index'
import { binding } from '../src/native'
import { each, heldFifo, isSystemError, tempDir } from './helpers'

const MASK = STATX_BASIC_STATS | STATX_BTIME
let n = 0
/** A fresh, not yet existing path in the temp directory. */
function fresh(): string {
  return path.join(tempDir(), `m${process.pid}-${n++}`)
}

/** What node:fs's synchronous call throws (the same shape its async forms reject with). */
function nodeError(fn: () => unknown): NodeJS.ErrnoException {
  try {
    fn()
  } catch (e) {
    return e as NodeJS.ErrnoException
  }
  throw new Error('node:fs did not throw')
}

/** Asserts `p` rejects exactly as node:fs's `fn` throws. */
async function sameError(t: ExecutionContext, p: Promise<unknown>, fn: () => unknown): Promise<void> {
  const theirs = nodeError(fn) as unknown as Record<string, unknown>
  const ours = (await t.throwsAsync(p)) as unknown as Record<string, unknown>
  for (const k of ['code', 'errno', 'syscall', 'path', 'dest', 'message'] as const) t.is(ours[k], theirs[k], k)
}

const FIELDS = ['dev', 'mode', 'nlink', 'uid', 'gid', 'rdev', 'blksize', 'ino', 'size', 'blocks', 'atimeMs', 'mtimeMs', 'ctimeMs', 'birthtimeMs'] as const

/** Asserts a statx buffer decodes to node's fs.Stats and fs.BigIntStats of the same file. */
function sameStats(t: ExecutionContext, out: Uint8Array, st: fs.Stats, big: fs.BigIntStats): void {
  const d = decodeStatx(out)
  for (const k of FIELDS) t.is(d[k], st[k], k)
  const b = decodeStatx(out, true)
  for (const k of FIELDS) t.is(b[k], big[k], `bigint ${k}`)
  for (const k of ['atimeNs', 'mtimeNs', 'ctimeNs', 'birthtimeNs'] as const) t.is(b[k], big[k], k)
}

/** A descriptor number never open (a closed one could be reused by a concurrent test). */
const BAD_FD = 2 ** 30

const statBuf = (): Uint8Array => new Uint8Array(STATX_SIZE)

each('open gives a working descriptor; close releases it', async (t, ctx) => {
  const p = fresh()
  const fd = await ctx.openat(p, fs.constants.O_CREAT | fs.constants.O_RDWR | fs.constants.O_EXCL, 0o640)
  t.true(Number.isInteger(fd) && fd >= 0)
  t.is(await ctx.write('hello', fd, 0), 5)
  t.is(fs.readFileSync(p, 'utf8'), 'hello')
  t.is(fs.statSync(p).mode & 0o777, 0o640 & ~process.umask())
  t.is((await ctx.read(5, fd, 0)).toString(), 'hello')
  const ino = fs.fstatSync(fd).ino
  await ctx.closeFd(fd)
  // Closed: EBADF, or the number already reused (other tests run concurrently) for another file.
  try {
    t.not(fs.fstatSync(fd).ino, ino)
  } catch (e) {
    t.is((e as NodeJS.ErrnoException).code, 'EBADF')
  }
  const ro = await ctx.openat(pathToFileURL(p) as unknown as string, fs.constants.O_RDONLY, 0)
  t.is(fs.readSync(ro, Buffer.alloc(5), 0, 5, 0), 5)
  fs.closeSync(ro)
})

each('open and close errors match node:fs', async (t, ctx) => {
  const p = fresh()
  fs.writeFileSync(p, 'x')
  const excl = fs.constants.O_CREAT | fs.constants.O_RDWR | fs.constants.O_EXCL
  await sameError(t, ctx.openat(p, excl, 0o644), () => fs.openSync(p, excl, 0o644))
  const gone = fresh()
  await sameError(t, ctx.openat(gone, 0, 0), () => fs.openSync(gone, 0))
  await sameError(t, ctx.openat(path.join(p, 'x'), 0, 0), () => fs.openSync(path.join(p, 'x'), 0))
  await sameError(t, ctx.openat(tempDir(), fs.constants.O_WRONLY, 0), () => fs.openSync(tempDir(), fs.constants.O_WRONLY))
  await sameError(t, ctx.closeFd(BAD_FD), () => fs.closeSync(BAD_FD))
})

each('stat, lstat and fstat fill what fs.statSync reports', async (t, ctx) => {
  const p = fresh()
  fs.writeFileSync(p, Buffer.alloc(12345, 1))
  const out = statBuf()
  await ctx.statx(p, 0, MASK, out)
  sameStats(t, out, fs.statSync(p), fs.statSync(p, { bigint: true }))
  const l = fresh()
  fs.symlinkSync(p, l)
  await ctx.statx(l, AT_SYMLINK_NOFOLLOW, MASK, out)
  sameStats(t, out, fs.lstatSync(l), fs.lstatSync(l, { bigint: true }))
  t.true((decodeStatx(out).mode & fs.constants.S_IFMT) === fs.constants.S_IFLNK)
  await ctx.statx(l, 0, MASK, out)
  t.is(decodeStatx(out).ino, fs.statSync(p).ino)
  const fd = fs.openSync(p, 'r')
  await ctx.fstatx(fd, MASK, out)
  sameStats(t, out, fs.fstatSync(fd), fs.fstatSync(fd, { bigint: true }))
  fs.closeSync(fd)
  await ctx.statx(tempDir(), 0, MASK, out)
  t.true(fs.statSync(tempDir()).isDirectory())
  t.is(decodeStatx(out).mode, fs.statSync(tempDir()).mode)
  // A view at an aligned offset inside a larger buffer works too.
  const big = new Uint8Array(STATX_SIZE + 64)
  await ctx.statx(p, 0, MASK, big.subarray(8))
  t.is(decodeStatx(big.subarray(8)).size, 12345)
})

each('stat errors match node:fs', async (t, ctx) => {
  const gone = fresh()
  await sameError(t, ctx.statx(gone, 0, MASK, statBuf()), () => fs.statSync(gone))
  await sameError(t, ctx.statx(gone, AT_SYMLINK_NOFOLLOW, MASK, statBuf()), () => fs.lstatSync(gone))
  const p = fresh()
  fs.writeFileSync(p, 'x')
  await sameError(t, ctx.statx(path.join(p, 'y'), 0, MASK, statBuf()), () => fs.statSync(path.join(p, 'y')))
  await sameError(t, ctx.fstatx(BAD_FD, MASK, statBuf()), () => fs.fstatSync(BAD_FD))
})

each('mkdir, rmdir and unlink, with their errors', async (t, ctx) => {
  const d = fresh()
  await ctx.mkdirat(d, 0o750)
  t.true(fs.statSync(d).isDirectory())
  t.is(fs.statSync(d).mode & 0o777, 0o750 & ~process.umask())
  await sameError(t, ctx.mkdirat(d, 0o755), () => fs.mkdirSync(d))
  const orphan = path.join(fresh(), 'x')
  await sameError(t, ctx.mkdirat(orphan, 0o755), () => fs.mkdirSync(orphan))
  fs.writeFileSync(path.join(d, 'inner'), 'x')
  await sameError(t, ctx.unlinkat(d, AT_REMOVEDIR), () => fs.rmdirSync(d))
  await sameError(t, ctx.unlinkat(d), () => fs.unlinkSync(d))
  const inner = path.join(d, 'inner')
  await sameError(t, ctx.unlinkat(inner, AT_REMOVEDIR), () => fs.rmdirSync(inner))
  await ctx.unlinkat(inner)
  t.false(fs.existsSync(inner))
  await sameError(t, ctx.unlinkat(inner), () => fs.unlinkSync(inner))
  await ctx.unlinkat(d, AT_REMOVEDIR)
  t.false(fs.existsSync(d))
  await sameError(t, ctx.unlinkat(d, AT_REMOVEDIR), () => fs.rmdirSync(d))
})

each('rename, link and symlink, with errors naming both paths', async (t, ctx) => {
  const a = fresh()
  const b = fresh()
  fs.writeFileSync(a, 'data')
  await ctx.renameat(a, b)
  t.false(fs.existsSync(a))
  t.is(fs.readFileSync(b, 'utf8'), 'data')
  await sameError(t, ctx.renameat(a, b), () => fs.renameSync(a, b))
  const full = fresh()
  fs.mkdirSync(full)
  fs.writeFileSync(path.join(full, 'x'), '')
  const empty = fresh()
  fs.mkdirSync(empty)
  await sameError(t, ctx.renameat(empty, full), () => fs.renameSync(empty, full))
  await sameError(t, ctx.renameat(empty, b), () => fs.renameSync(empty, b))

  const h = fresh()
  await ctx.linkat(b, h)
  t.is(fs.statSync(b).nlink, 2)
  t.is(fs.statSync(h).ino, fs.statSync(b).ino)
  await sameError(t, ctx.linkat(b, h), () => fs.linkSync(b, h))
  const never = fresh()
  await sameError(t, ctx.linkat(a, never), () => fs.linkSync(a, never))

  const s = fresh()
  await ctx.symlinkat('relative-target', s)
  t.is(fs.readlinkSync(s), 'relative-target')
  await sameError(t, ctx.symlinkat('other', s), () => fs.symlinkSync('other', s))
  const inFile = path.join(b, 'x')
  await sameError(t, ctx.symlinkat('t', inFile), () => fs.symlinkSync('t', inFile))
})

each('ftruncate grows and shrinks; bad descriptors fail as node:fs', async (t, ctx) => {
  const p = fresh()
  fs.writeFileSync(p, 'hello world')
  const fd = fs.openSync(p, 'r+')
  await ctx.ftruncate(fd, 5)
  t.is(fs.readFileSync(p, 'utf8'), 'hello')
  await ctx.ftruncate(fd, 2 ** 20)
  t.is(fs.statSync(p).size, 2 ** 20)
  fs.closeSync(fd)
  await sameError(t, ctx.ftruncate(BAD_FD, 0), () => fs.ftruncateSync(BAD_FD, 0))
  const ro = fs.openSync(p, 'r')
  await sameError(t, ctx.ftruncate(ro, 0), () => fs.ftruncateSync(ro, 0))
  fs.closeSync(ro)
})

const MIB = 2 ** 20

each('fallocate allocates, keeps the size, punches and zeroes; js refuses it (ENOTSUP)', async (t, ctx, impl) => {
  const p = fresh()
  const fd = fs.openSync(p, 'w+')
  try {
    if (impl === 'js') {
      // node:fs has no fallocate: refused as poll is, whatever the descriptor.
      isSystemError(t, await t.throwsAsync(ctx.fallocate(fd, 0, 0, MIB)), 'ENOTSUP', 'fallocate')
      isSystemError(t, await t.throwsAsync(ctx.fallocate(BAD_FD, 0, 0, MIB)), 'ENOTSUP', 'fallocate')
      return
    }
    await ctx.fallocate(fd, 0, 0, MIB)
    let st = fs.fstatSync(fd)
    t.is(st.size, MIB)
    t.true(st.blocks * 512 >= MIB, `${st.blocks} blocks`)
    await ctx.fallocate(fd, FALLOC_FL_KEEP_SIZE, MIB, MIB)
    st = fs.fstatSync(fd)
    t.is(st.size, MIB)
    t.true(st.blocks * 512 >= 2 * MIB, `${st.blocks} blocks past the end`)
    fs.writeSync(fd, Buffer.alloc(8192, 7), 0, 8192, 0)
    await ctx.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)
    const back = Buffer.alloc(8192)
    fs.readSync(fd, back, 0, 8192, 0)
    t.true(back.subarray(0, 4096).every((b) => b === 0), 'the hole reads as zeros')
    t.true(back.subarray(4096).every((b) => b === 7), 'past the hole')
    await ctx.fallocate(fd, FALLOC_FL_ZERO_RANGE, 4096, 4096)
    fs.readSync(fd, back, 0, 8192, 0)
    t.true(back.every((b) => b === 0), 'the zeroed range')
    isSystemError(t, await t.throwsAsync(ctx.fallocate(BAD_FD, 0, 0, 1)), 'EBADF', 'fallocate')
    const ro = fs.openSync(p, 'r')
    isSystemError(t, await t.throwsAsync(ctx.fallocate(ro, 0, 0, 1)), 'EBADF', 'fallocate')
    fs.closeSync(ro)
    // PUNCH_HOLE without KEEP_SIZE is refused by every file system.
    isSystemError(t, await t.throwsAsync(ctx.fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 1)), 'ENOTSUP', 'fallocate')
  } finally {
    fs.closeSync(fd)
  }
})

each('fadvise takes every advice; bad descriptors and pipes fail as posix_fadvise', async (t, ctx) => {
  const p = fresh()
  fs.writeFileSync(p, Buffer.alloc(65536, 1))
  const fd = fs.openSync(p, 'r')
  for (const advice of [POSIX_FADV_NORMAL, POSIX_FADV_SEQUENTIAL, POSIX_FADV_RANDOM, POSIX_FADV_NOREUSE, POSIX_FADV_WILLNEED, POSIX_FADV_DONTNEED]) {
    await ctx.fadvise(fd, 0, 0, advice)
  }
  await ctx.fadvise(fd, 4096, 2 ** 33, POSIX_FADV_WILLNEED)
  t.is(fs.readFileSync(p).length, 65536, 'advice changes no data')
  fs.closeSync(fd)
  isSystemError(t, await t.throwsAsync(ctx.fadvise(BAD_FD, 0, 0, POSIX_FADV_NORMAL)), 'EBADF', 'fadvise')
  const { keeper } = heldFifo()
  isSystemError(t, await t.throwsAsync(ctx.fadvise(keeper, 0, 0, POSIX_FADV_SEQUENTIAL)), 'ESPIPE', 'fadvise')
  fs.closeSync(keeper)
})

each('many path ops at once each settle once, with their own buffers', async (t, ctx) => {
  const files = Array.from({ length: 64 }, (_, i) => {
    const p = fresh()
    fs.writeFileSync(p, Buffer.alloc(i))
    return p
  })
  const outs = files.map(() => statBuf())
  await Promise.all(files.map((p, i) => ctx.statx(p, 0, MASK, outs[i]!)))
  files.forEach((p, i) => t.is(decodeStatx(outs[i]!).size, i, p))
  await Promise.all(files.map((p) => ctx.unlinkat(p)))
  t.true(files.every((p) => !fs.existsSync(p)))
})

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

each('a statx buffer nobody references is held until its completion', async (t, ctx) => {
  const p = fresh()
  fs.writeFileSync(p, 'x')
  // Only WeakRefs survive here: the binding's pin (or node:fs, on js) is what keeps each
  // buffer alive while the kernel or a worker may still write into it.
  let wrong = 0
  const done = Array.from({ length: 128 }, () => {
    const ref = new WeakRef(statBuf())
    return ctx.statx(p, 0, MASK, ref.deref()!).then(() => {
      // Usually still alive: then it holds what the kernel wrote.
      const out = ref.deref()
      if (out && decodeStatx(out).size !== 1) wrong++
    })
  })
  for (let i = 0; i < 5; i++) gc()
  await Promise.all(done)
  t.is(wrong, 0)
  for (let i = 0; i < 5; i++) gc()
  const out = statBuf()
  await ctx.statx(p, 0, MASK, out)
  t.is(decodeStatx(out).size, 1)
})

each('bad arguments reject with node codes and never reach the engine', async (t, ctx) => {
  const out = statBuf()
  const nul = path.join(tempDir(), 'a\u0000b')
  const calls: [string, () => Promise<unknown>][] = [
    ['openat', () => ctx.openat(nul, 0, 0)],
    ['statx', () => ctx.statx(nul, 0, MASK, out)],
    ['unlinkat', () => ctx.unlinkat(nul)],
    ['renameat', () => ctx.renameat(tempDir(), nul)],
    ['mkdirat', () => ctx.mkdirat(nul, 0o755)],
    ['symlinkat', () => ctx.symlinkat(nul, fresh())],
    ['linkat', () => ctx.linkat(fresh(), nul)],
  ]
  for (const [name, call] of calls) await t.throwsAsync(call(), { code: 'ERR_INVALID_ARG_VALUE' }, name)
  const notString = 123 as unknown as string
  await t.throwsAsync(ctx.openat(notString, 0, 0), { code: 'ERR_INVALID_ARG_TYPE' })
  await t.throwsAsync(ctx.statx(notString, 0, MASK, out), { code: 'ERR_INVALID_ARG_TYPE' })
  await t.throwsAsync(ctx.renameat(fresh(), null as unknown as string), { code: 'ERR_INVALID_ARG_TYPE' })
  await t.throwsAsync(ctx.statx(tempDir(), 0, MASK, new Uint8Array(100)), { code: 'ERR_INVALID_ARG_VALUE' })
  await t.throwsAsync(ctx.statx(tempDir(), 0, MASK, new Uint8Array(300).subarray(1)), { code: 'ERR_INVALID_ARG_VALUE' })
  await t.throwsAsync(ctx.statx(tempDir(), 0, MASK, 'x' as unknown as Uint8Array), { code: 'ERR_INVALID_ARG_TYPE' })
  await t.throwsAsync(ctx.unlinkat(fresh(), 1), { code: 'ERR_OUT_OF_RANGE' })
  await t.throwsAsync(ctx.ftruncate(-1, 0), { code: 'ERR_OUT_OF_RANGE' })
  await t.throwsAsync(ctx.ftruncate(0, -1), { code: 'ERR_OUT_OF_RANGE' })
  for (const [args, code] of [
    [[-1, 0, 0, 1], 'ERR_OUT_OF_RANGE'],
    [[0, -1, 0, 1], 'ERR_OUT_OF_RANGE'],
    [[0, 0, -1, 1], 'ERR_OUT_OF_RANGE'],
    [[0, 0, 0, 0], 'ERR_OUT_OF_RANGE'],
    [[0, 0, 0, 0.5], 'ERR_OUT_OF_RANGE'],
    [[0, '1', 0, 1], 'ERR_INVALID_ARG_TYPE'],
    [[0, 0, 1n, 1], 'ERR_INVALID_ARG_TYPE'],
  ] as const) {
    const [fd, mode, offset, len] = args as unknown as number[]
    await t.throwsAsync(ctx.fallocate(fd!, mode!, offset!, len!), { code }, `fallocate(${String(args)})`)
  }
  for (const [args, code] of [
    [[-1, 0, 0, 0], 'ERR_OUT_OF_RANGE'],
    [[0, -1, 0, 0], 'ERR_OUT_OF_RANGE'],
    [[0, 0, -1, 0], 'ERR_OUT_OF_RANGE'],
    [[0, 0, 0, 6], 'ERR_OUT_OF_RANGE'],
    [[0, 0, 0, -1], 'ERR_OUT_OF_RANGE'],
    [[0, 0, 0, '2'], 'ERR_INVALID_ARG_TYPE'],
    [[0, null, 0, 0], 'ERR_INVALID_ARG_TYPE'],
  ] as const) {
    const [fd, offset, len, advice] = args as unknown as number[]
    await t.throwsAsync(ctx.fadvise(fd!, offset!, len!, advice!), { code }, `fadvise(${String(args)})`)
  }
  await t.throwsAsync(ctx.openat(fresh(), 0.5, 0), { code: 'ERR_OUT_OF_RANGE' })
  // The context still works.
  await ctx.statx(tempDir(), 0, MASK, out)
  t.true(decodeStatx(out).ino > 0)
})

each('close lets started path ops finish', async (t, ctx) => {
  const d = fresh()
  const made = ctx.mkdirat(d, 0o755)
  const closing = ctx.close()
  await made
  await closing
  t.true(fs.statSync(d).isDirectory())
  await t.throwsAsync(ctx.mkdirat(fresh(), 0o755), { code: 'ERR_AIO_CLOSED' })
})

each(
  'close() in the same tick as 300 mkdirs through a ring of 4: every one lands',
  async (t, ctx) => {
    const dirs = Array.from({ length: 300 }, () => fresh())
    const made = dirs.map((d) => ctx.mkdirat(d, 0o755))
    const closed = ctx.close()
    await Promise.all(made)
    await closed
    t.true(dirs.every((d) => fs.statSync(d).isDirectory()))
  },
  { maxRequests: 4 },
)

test('the binding refuses a path with a NUL byte with a coded error', (t) => {
  if (!binding) return t.pass('no native binding')
  t.throws(() => binding!.ctxPath(0, 0, 0, -1, 'a\u0000b', undefined, 0, 0, undefined), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => binding!.ctxPath(0, 0, 4, -1, 'a', 'b\u0000', 0, 0, undefined), { code: 'ERR_INVALID_ARG_VALUE' })
  // A sound path on no context: the closed-context error, not a crash.
  t.throws(() => binding!.ctxPath(0, 0, 0, -1, 'a', undefined, 0, 0, undefined), { code: 'ERR_AIO_CLOSED' })
  t.throws(() => binding!.ctxPath(0, 0, 99, -1, 'a', undefined, 0, 0, undefined), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => binding!.ctxFd(0, 0, 99, -1, 0, 0, 0), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => binding!.ctxFd(0, 0, 1, -1, 0, 0, 0), { code: 'ERR_AIO_CLOSED' })
})
