// Metadata operations on descriptors: open, close, fstat and ftruncate on the default
// Context's engine (fstat from the kernel's caches first), the rest (fchmod, fchown,
// futimes) through node:fs's callback API.
// Each rejects with node's own error (code, errno, syscall); a synchronous validation error
// becomes a rejection.
import * as fs from 'node:fs'

import { Context } from '../context'
import { decodeStatx, STATX_SIZE, STATX_STATS } from '../statx'
import { cachedFstat, fastAllowed, toStats } from './cached'
import { plainMode } from './util'

/** A callback-style call as a promise; a synchronous throw becomes a rejection. */
export function call<T>(fn: (cb: (err: Error | null, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      fn((err, value) => (err ? reject(err) : resolve(value as T)))
    } catch (e) {
      reject(e)
    }
  })
}

/**
 * open(2) on `ctx`'s engine (an io_uring OPENAT on io-wq, or a pool thread) for a string path
 * and numeric flags and mode; anything else through node:fs, which checks it.
 */
export function openFd(path: unknown, flags: unknown, mode: unknown, ctx: Context = defaultContext()): Promise<number> {
  if (typeof path === 'string' && !path.includes('\u0000') && typeof flags === 'number' && plainMode(mode)) {
    return ctx.openat(path, flags, mode as number)
  }
  return nodeOpenFd(path, flags, mode)
}

/** node:fs's own open (libuv's pool), as node opens what kaio's engine should not wait on. */
export function nodeOpenFd(path: unknown, flags: unknown, mode: unknown): Promise<number> {
  return call<number>((cb) => fs.open(path as fs.PathLike, flags as fs.OpenMode, mode as fs.Mode, cb))
}

/** close(2) on the default Context's engine (a pool thread; see the README on io_uring's CLOSE). */
export function closeFd(fd: number): Promise<void> {
  return defaultContext().closeFd(fd)
}

/**
 * fstat: from the in-memory inode on this thread where the file system is local
 * (src/fs/cached.ts), else the default Context's statx (io_uring STATX, or a pool thread);
 * BigIntStats from node:fs.
 */
export async function fstat(fd: number, bigint = false): Promise<fs.Stats | fs.BigIntStats> {
  if (bigint) return call((cb) => fs.fstat(fd, { bigint }, cb as (err: NodeJS.ErrnoException | null, s: fs.Stats | fs.BigIntStats) => void))
  const st = fastAllowed() ? cachedFstat(fd) : undefined
  if (st !== undefined) return st
  const out = new Uint8Array(STATX_SIZE)
  await defaultContext().fstatx(fd, STATX_STATS, out)
  return toStats(decodeStatx(out))
}

/** The size of the file behind `fd`. */
export async function fileSize(fd: number): Promise<number> {
  return ((await fstat(fd)) as fs.Stats).size
}

/** ftruncate(2) on the default Context's engine (io_uring FTRUNCATE, or a pool thread); `len` validated by the caller. */
export function ftruncate(fd: number, len: number): Promise<void> {
  return defaultContext().ftruncate(fd, len)
}

export function fchmod(fd: number, mode: unknown): Promise<void> {
  return call<void>((cb) => fs.fchmod(fd, mode as fs.Mode, cb))
}

export function fchown(fd: number, uid: unknown, gid: unknown): Promise<void> {
  return call<void>((cb) => fs.fchown(fd, uid as number, gid as number, cb))
}

export function futimes(fd: number, atime: unknown, mtime: unknown): Promise<void> {
  return call<void>((cb) => fs.futimes(fd, atime as fs.TimeLike, mtime as fs.TimeLike, cb))
}

let shared: Context | null = null

/**
 * The thread's default Context, created on first use with default options. An idle Context
 * does not hold the event loop open; it is closed when the thread exits.
 */
export function defaultContext(): Context {
  if (shared === null) {
    const ctx = new Context()
    shared = ctx
    process.once('exit', () => {
      if (shared === ctx) shared = null
      void ctx.close()
    })
  }
  return shared
}
