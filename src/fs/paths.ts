// Path functions of node:fs/promises on kaio's engine: stat and lstat (the cached fast path,
// then the engine's statx), unlink, rmdir, rename, mkdir (recursive too), symlink, link and
// truncate. Each takes the engine's path for the arguments node:fs's own checks would pass
// unchanged (string paths without NUL bytes, plain options) and hands anything else to
// node:fs's function captured at load, so that odd input gets node's own answer. Errors from
// the engine are node's: code, errno, syscall, path, dest and message.
import * as fs from 'node:fs'
import * as pathModule from 'node:path'

import type { Context } from '../context'
import { errnoError } from '../errors'
import { decodeStatx, STATX_SIZE, STATX_STATS, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW } from '../statx'
import { cachedStat, fastAllowed, toStats } from './cached'
import { open } from './filehandle'
import { defaultContext, ftruncate } from './sys'
import { NODE_MAJOR, plainMode } from './util'

type Fn = (...args: never[]) => Promise<unknown>
const nodeFsp = fs.promises
/** node:fs/promises' functions as they were at load (kaio/register replaces fs.promises' own). */
const node = {
  stat: nodeFsp.stat,
  lstat: nodeFsp.lstat,
  unlink: nodeFsp.unlink,
  rmdir: nodeFsp.rmdir,
  rename: nodeFsp.rename,
  mkdir: nodeFsp.mkdir,
  symlink: nodeFsp.symlink,
  link: nodeFsp.link,
  truncate: nodeFsp.truncate,
}

/** A path the engine takes as node:fs would: a string without NUL bytes. */
function plain(path: unknown): path is string {
  return typeof path === 'string' && !path.includes('\u0000')
}

function named<F extends Fn>(name: string, fn: F): F {
  Object.defineProperty(fn, 'name', { value: name })
  return fn
}

function ctx(): Context {
  return defaultContext()
}

/** Whether `options` asks stat for BigIntStats (node passes `options.bigint` on as a boolean). */
function wantsBigint(options: unknown): boolean {
  return options === null || (options !== undefined && (options as { bigint?: unknown }).bigint === true)
}

/**
 * `stat` or `lstat`: the cached fast path on this thread, else the engine's statx (an
 * io_uring STATX, or a pool thread); BigIntStats and other paths go to node:fs.
 */
function statCall(name: 'stat' | 'lstat', follow: boolean): typeof fs.promises.stat {
  const fallback = node[name]
  // Node 24's stat takes `throwIfNoEntry: false`: undefined for ENOENT and ENOTDIR.
  const mayBeAbsent = name === 'stat' && NODE_MAJOR >= 24
  const statOf = async (path: string): Promise<fs.Stats> => {
    const st = fastAllowed() ? cachedStat(path, follow) : undefined
    if (st !== undefined) return st
    const out = new Uint8Array(STATX_SIZE)
    await ctx().statx(path, follow ? 0 : AT_SYMLINK_NOFOLLOW, STATX_STATS, out)
    return toStats(decodeStatx(out))
  }
  return named(name, async (path: unknown, options?: unknown): Promise<fs.Stats | undefined> => {
    // null options: node's own TypeError, from node.
    if (!plain(path) || wantsBigint(options)) return fallback(path as string, options as { bigint: false })
    if (!mayBeAbsent || (options as { throwIfNoEntry?: unknown } | undefined)?.throwIfNoEntry !== false) return statOf(path)
    try {
      return await statOf(path)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
      throw e
    }
  }) as unknown as typeof fs.promises.stat
}

export const stat = statCall('stat', true)
export const lstat = statCall('lstat', false)

export const unlink = named('unlink', async (path: fs.PathLike): Promise<void> => {
  if (!plain(path)) return node.unlink(path)
  return ctx().unlinkat(path, 0)
})

export const rmdir = named('rmdir', async (path: fs.PathLike, options?: fs.RmDirOptions): Promise<void> => {
  // Options (recursive, retries) are node's business.
  if (!plain(path) || options !== undefined) return node.rmdir(path, options)
  return ctx().unlinkat(path, AT_REMOVEDIR)
})

export const rename = named('rename', async (oldPath: fs.PathLike, newPath: fs.PathLike): Promise<void> => {
  if (!plain(oldPath) || !plain(newPath)) return node.rename(oldPath, newPath)
  return ctx().renameat(oldPath, newPath)
})

export const link = named('link', async (existingPath: fs.PathLike, newPath: fs.PathLike): Promise<void> => {
  if (!plain(existingPath) || !plain(newPath)) return node.link(existingPath, newPath)
  return ctx().linkat(existingPath, newPath)
})

const SYMLINK_TYPES = new Set(['dir', 'file', 'junction'])

export const symlink = named('symlink', async (target: fs.PathLike, path: fs.PathLike, type?: string | null): Promise<void> => {
  // A type node:fs refuses (a string it does not know; on Node 24 anything but a string, null
  // or undefined) is refused by node:fs; Linux ignores the rest.
  if (!plain(target) || !plain(path) || (type !== undefined && type !== null && !(typeof type === 'string' && SYMLINK_TYPES.has(type)))) return node.symlink(target, path, type)
  return ctx().symlinkat(target, path)
})

/** mkdir's options as node reads them, or undefined for "node:fs checks these". */
function mkdirOptions(options: unknown): { recursive: boolean; mode: number } | undefined {
  if (options === undefined || options === null) return { recursive: false, mode: 0o777 }
  if (typeof options === 'number') return plainMode(options) ? { recursive: false, mode: options } : undefined
  if (typeof options !== 'object') return undefined
  const { recursive = false, mode = 0o777 } = options as { recursive?: unknown; mode?: unknown }
  if (typeof recursive !== 'boolean' || !plainMode(mode)) return undefined
  return { recursive, mode: mode as number }
}

/**
 * node's MKDirpAsync: makes each missing directory from the first that exists down; resolves
 * the first directory it made, or undefined when `path` already was a directory.
 */
async function mkdirp(c: Context, path: string, mode: number, below = false): Promise<string | undefined> {
  try {
    await c.mkdirat(path, mode)
    return path
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    if (err.code === 'EEXIST') return existing(c, path, err, below)
    const parent = pathModule.dirname(path)
    if (err.code !== 'ENOENT' || parent === path) throw err
    const first = await mkdirp(c, parent, mode, true)
    try {
      await c.mkdirat(path, mode)
    } catch (again) {
      // Made meanwhile by someone else: as node, fine if it is a directory.
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST') throw again
      await existing(c, path, again as NodeJS.ErrnoException, below)
    }
    return first ?? path
  }
}

/**
 * mkdir -p met `path` already there: as node's MKDirpAsync, a directory (or a link to one)
 * is done, anything else is EEXIST, and a stat that fails (a dangling link) fails the mkdir
 * with the stat's errno. With directories still to make `below` it, either is ENOTDIR, as
 * node's.
 */
async function existing(c: Context, path: string, eexist: NodeJS.ErrnoException, below: boolean): Promise<undefined> {
  const out = new Uint8Array(STATX_SIZE)
  try {
    await c.statx(path, 0, STATX_STATS, out)
  } catch (e) {
    throw errnoError(below ? -20 : ((e as NodeJS.ErrnoException).errno ?? -2), 'mkdir', path)
  }
  if ((decodeStatx(out).mode & fs.constants.S_IFMT) !== fs.constants.S_IFDIR) throw below ? errnoError(-20, 'mkdir', path) : eexist
  return undefined
}

export const mkdir = named('mkdir', async (path: fs.PathLike, options?: fs.Mode | fs.MakeDirectoryOptions | null): Promise<string | undefined> => {
  const opts = mkdirOptions(options)
  if (!plain(path) || opts === undefined) return node.mkdir(path, options as fs.MakeDirectoryOptions)
  const c = ctx()
  if (opts.recursive) return mkdirp(c, path, opts.mode)
  await c.mkdirat(path, opts.mode)
  return undefined
})

export const truncate = named('truncate', async (path: fs.PathLike, len?: number): Promise<void> => {
  // As node: open 'r+', ftruncate (a bad len fails after the open, from node:fs's check), close.
  if (!plain(path) || !(len === undefined || Number.isSafeInteger(len))) return node.truncate(path, len)
  const fh = await open(path, 'r+')
  try {
    await ftruncate(fh.fd, Math.max(0, len ?? 0))
  } catch (e) {
    await fh.close().catch(() => {})
    throw e
  }
  await fh.close()
})
