// The `struct statx` layout (linux/stat.h, 256 bytes) that `ctx.statx()` fills on every
// backend: the kernel writes it on uring/linux/thread, the js backend encodes node:fs's
// BigIntStats into it. One decoder turns it into the numbers node's fs.Stats is made of.
import type { BigIntStats } from 'node:fs'

/** Bytes `ctx.statx()` needs in `out` (`sizeof(struct statx)`). */
export const STATX_SIZE = 256

/** `statx` mask bits (linux/stat.h). */
export const STATX_TYPE = 0x1
export const STATX_BASIC_STATS = 0x7ff
export const STATX_BTIME = 0x800
/** Everything fs.Stats has (what libuv asks for). */
export const STATX_STATS = STATX_BASIC_STATS | STATX_BTIME
/** `AT_*` flags (linux/fcntl.h): `ctx.statx()` as lstat, as fstat; `ctx.unlinkat()` as rmdir. */
export const AT_SYMLINK_NOFOLLOW = 0x100
export const AT_REMOVEDIR = 0x200
export const AT_EMPTY_PATH = 0x1000

// Field offsets in struct statx.
const MASK = 0
const BLKSIZE = 4
const NLINK = 16
const UID = 20
const GID = 24
const MODE = 28
const INO = 32
const SIZE = 40
const BLOCKS = 48
const ATIME = 64
const BTIME = 80
const CTIME = 96
const MTIME = 112
const RDEV_MAJOR = 128
const RDEV_MINOR = 132
const DEV_MAJOR = 136
const DEV_MINOR = 140

/** The fields of node's fs.Stats, as numbers. */
export interface StatxNumbers {
  dev: number
  mode: number
  nlink: number
  uid: number
  gid: number
  rdev: number
  blksize: number
  ino: number
  size: number
  blocks: number
  atimeMs: number
  mtimeMs: number
  ctimeMs: number
  birthtimeMs: number
}

/** The fields of node's fs.BigIntStats: StatxNumbers' as bigints, plus the nanosecond times. */
export type StatxBigInts = { [K in keyof StatxNumbers]: bigint } & {
  atimeNs: bigint
  mtimeNs: bigint
  ctimeNs: bigint
  birthtimeNs: bigint
}

/** glibc's `makedev`: what libuv (and so node:fs) reports as `dev`/`rdev`. */
function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0)
  const mi = BigInt(minor >>> 0)
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n)
}

/** glibc's `major`/`minor` of a `dev_t`. */
function splitdev(dev: bigint): [number, number] {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn)
  return [Number(major & 0xffffffffn), Number(minor & 0xffffffffn)]
}

function view(out: Uint8Array): DataView {
  return new DataView(out.buffer, out.byteOffset, out.byteLength)
}

function timeNs(v: DataView, at: number): bigint {
  return v.getBigInt64(at, true) * 1_000_000_000n + BigInt(v.getUint32(at + 8, true))
}

/** A little-endian u64 as the nearest double (what Number(bigint) gives, without the bigint). */
function u64(v: DataView, at: number): number {
  return v.getUint32(at + 4, true) * 2 ** 32 + v.getUint32(at, true)
}

/** node:fs's milliseconds from a timespec: `sec * 1e3 + nsec / 1e6`. */
function timeMs(v: DataView, at: number): number {
  const sec = v.getInt32(at + 4, true) * 2 ** 32 + v.getUint32(at, true)
  return sec * 1e3 + v.getUint32(at + 8, true) / 1e6
}

/** makedev as a double (exact for every major below 2^21). */
function makedevNumber(major: number, minor: number): number {
  return (major & 0xfff) * 2 ** 8 + Math.floor(major / 2 ** 12) * 2 ** 44 + (minor & 0xff) + Math.floor(minor / 2 ** 8) * 2 ** 20
}

/**
 * Decodes the struct statx in `out` (filled by `ctx.statx()`) into node's Stats fields:
 * numbers as fs.Stats has them, or all bigints (`true`) as fs.BigIntStats.
 */
export function decodeStatx(out: Uint8Array): StatxNumbers
export function decodeStatx(out: Uint8Array, bigint: true): StatxBigInts
export function decodeStatx(out: Uint8Array, bigint = false): StatxNumbers | StatxBigInts {
  if (out.byteLength < STATX_SIZE) throw new RangeError(`decodeStatx needs ${STATX_SIZE} bytes, got ${out.byteLength}`)
  const v = view(out)
  if (bigint) {
    const ns = {
      atimeNs: timeNs(v, ATIME),
      mtimeNs: timeNs(v, MTIME),
      ctimeNs: timeNs(v, CTIME),
      birthtimeNs: timeNs(v, BTIME),
    }
    return {
      dev: makedev(v.getUint32(DEV_MAJOR, true), v.getUint32(DEV_MINOR, true)),
      mode: BigInt(v.getUint16(MODE, true)),
      nlink: BigInt(v.getUint32(NLINK, true)),
      uid: BigInt(v.getUint32(UID, true)),
      gid: BigInt(v.getUint32(GID, true)),
      rdev: makedev(v.getUint32(RDEV_MAJOR, true), v.getUint32(RDEV_MINOR, true)),
      blksize: BigInt(v.getUint32(BLKSIZE, true)),
      ino: v.getBigUint64(INO, true),
      size: v.getBigUint64(SIZE, true),
      blocks: v.getBigUint64(BLOCKS, true),
      atimeMs: ns.atimeNs / 1_000_000n,
      mtimeMs: ns.mtimeNs / 1_000_000n,
      ctimeMs: ns.ctimeNs / 1_000_000n,
      birthtimeMs: ns.birthtimeNs / 1_000_000n,
      ...ns,
    }
  }
  // No bigints on this path: it serves every stat kaio answers (a few µs each).
  return {
    dev: makedevNumber(v.getUint32(DEV_MAJOR, true), v.getUint32(DEV_MINOR, true)),
    mode: v.getUint16(MODE, true),
    nlink: v.getUint32(NLINK, true),
    uid: v.getUint32(UID, true),
    gid: v.getUint32(GID, true),
    rdev: makedevNumber(v.getUint32(RDEV_MAJOR, true), v.getUint32(RDEV_MINOR, true)),
    blksize: v.getUint32(BLKSIZE, true),
    ino: u64(v, INO),
    size: u64(v, SIZE),
    blocks: u64(v, BLOCKS),
    atimeMs: timeMs(v, ATIME),
    mtimeMs: timeMs(v, MTIME),
    ctimeMs: timeMs(v, CTIME),
    birthtimeMs: timeMs(v, BTIME),
  }
}

function putTime(v: DataView, at: number, ns: bigint): void {
  // Floor division, so a time before 1970 keeps 0 <= nsec < 1e9 as the kernel's does.
  let sec = ns / 1_000_000_000n
  let nsec = ns % 1_000_000_000n
  if (nsec < 0n) {
    sec -= 1n
    nsec += 1_000_000_000n
  }
  v.setBigInt64(at, sec, true)
  v.setUint32(at + 8, Number(nsec), true)
}

/** Writes node:fs's BigIntStats into `out` in the struct statx layout (the js backend). */
export function encodeStatx(st: BigIntStats, out: Uint8Array): void {
  out.fill(0, 0, STATX_SIZE)
  const v = view(out)
  v.setUint32(MASK, STATX_STATS, true)
  v.setUint32(BLKSIZE, Number(st.blksize), true)
  v.setUint32(NLINK, Number(st.nlink), true)
  v.setUint32(UID, Number(st.uid), true)
  v.setUint32(GID, Number(st.gid), true)
  v.setUint16(MODE, Number(st.mode), true)
  v.setBigUint64(INO, st.ino, true)
  v.setBigUint64(SIZE, st.size, true)
  v.setBigUint64(BLOCKS, st.blocks, true)
  putTime(v, ATIME, st.atimeNs)
  putTime(v, BTIME, st.birthtimeNs)
  putTime(v, CTIME, st.ctimeNs)
  putTime(v, MTIME, st.mtimeNs)
  const [rma, rmi] = splitdev(st.rdev)
  v.setUint32(RDEV_MAJOR, rma, true)
  v.setUint32(RDEV_MINOR, rmi, true)
  const [dma, dmi] = splitdev(st.dev)
  v.setUint32(DEV_MAJOR, dma, true)
  v.setUint32(DEV_MINOR, dmi, true)
}
