// The cached fast path (crates/kaio-core/src/sys/cached.rs): stat, lstat, open and readFile
// answered on the JavaScript thread, with no thread hop, when the kernel has every directory
// entry and page in memory; otherwise `undefined`, and the caller takes the engine's path.
// The same recipe io_uring runs inline for an open (`RESOLVE_CACHED`, `O_NONBLOCK`) and for a
// buffered read (`RWF_NOWAIT`), without a ring round trip. `KAIO_CACHED=0` turns it off.
import * as fs from 'node:fs'

import { errnoError } from '../errors'
import { binding } from '../native'
import { decodeStatx, STATX_SIZE } from '../statx'
import type { StatxNumbers } from '../statx'

const ENOSYS = 38
const EAGAIN = 11
const EPERM = 1
const EINVAL = 22

/**
 * Errors the fast path reports itself: a lookup that failed from cached entries fails the
 * same way through node:fs. Any other errno (EMFILE: the fast path needs a descriptor that
 * stat does not) goes to node:fs, which gives its own answer.
 */
const REPORTED = new Set([2 /* ENOENT */, 20 /* ENOTDIR */, 40 /* ELOOP */, 36 /* ENAMETOOLONG */, 13 /* EACCES */])

/** The largest file readFile reads on the JavaScript thread (a copy of ~50 µs at most). */
export const CACHED_READ_MAX = 256 * 1024

let native = process.platform === 'linux' && process.env.KAIO_CACHED !== '0' ? binding : null

/** Whether the fast path is on (a native binding on Linux, not turned off, not refused). */
export function cachedEnabled(): boolean {
  return native !== null
}

/** A kernel without openat2 or RESOLVE_CACHED (or a seccomp filter refusing it): off for good. */
function refused(errno: number): boolean {
  if (errno === ENOSYS || errno === EPERM || errno === EINVAL) {
    native = null
    return true
  }
  return false
}

/**
 * How long calls answered on this thread may run back to back in one event-loop turn (as
 * kaio's inline completions, crates/kaio-node: YIELD_AFTER_MS). A loop of `await stat(f)`
 * answered from the caches never leaves the microtask queue otherwise, and timers, sockets
 * and I/O callbacks would wait for the whole loop.
 */
const YIELD_AFTER_MS = 2
let phaseStart = -1

function newPhase(): void {
  phaseStart = -1
}

/**
 * Whether the fast path may answer now: until this turn of the event loop has spent
 * YIELD_AFTER_MS on it. After that, calls take the engine's path (a real asynchronous
 * request, which lets the loop turn) until the loop's next check phase starts a new budget;
 * however many calls are in flight, none waits for the others.
 */
export function fastAllowed(): boolean {
  const now = performance.now()
  if (phaseStart < 0) {
    phaseStart = now
    // Runs once the loop has turned; unref'd, it never keeps a process alive.
    ;(setImmediate(newPhase) as { unref?: () => void }).unref?.()
    return true
  }
  return now - phaseStart < YIELD_AFTER_MS
}

/** `-errno` of the fast path for "a file that is not a local regular file" (kaio-core's NOT_REGULAR). */
const NOT_REGULAR = 1_000_010

/** What cachedOpen and cachedKind say of a file that is there but not a local regular file. */
export const IRREGULAR = 'irregular' as const

/** The struct statx the fast path's stats land in (read at once, so one serves every call). */
const raw = new Uint8Array(STATX_SIZE)

// Node 22 and later give Stats lazy date getters on the prototype and deprecate the
// constructor (DEP0180); Node 20's constructor sets the dates itself. Either way the object
// is what node:fs returns: the same prototype, own fields in the same order.
const lazyDates = Object.getOwnPropertyDescriptor(fs.Stats.prototype, 'atime')?.get !== undefined
type StatsCtor = new (...fields: number[]) => fs.Stats

/** node:fs's Stats from its fields (node's getStatsFromBinding, on any Node version). */
export function toStats(n: StatxNumbers): fs.Stats {
  if (!lazyDates) {
    return new (fs.Stats as unknown as StatsCtor)(n.dev, n.mode, n.nlink, n.uid, n.gid, n.rdev, n.blksize, n.ino, n.size, n.blocks, n.atimeMs, n.mtimeMs, n.ctimeMs, n.birthtimeMs)
  }
  const s = Object.create(fs.Stats.prototype) as Record<string, number>
  s.dev = n.dev
  s.mode = n.mode
  s.nlink = n.nlink
  s.uid = n.uid
  s.gid = n.gid
  s.rdev = n.rdev
  s.blksize = n.blksize
  s.ino = n.ino
  s.size = n.size
  s.blocks = n.blocks
  s.atimeMs = n.atimeMs
  s.mtimeMs = n.mtimeMs
  s.ctimeMs = n.ctimeMs
  s.birthtimeMs = n.birthtimeMs
  return s as unknown as fs.Stats
}

/**
 * `stat` (`follow`) or `lstat` of a string path from the kernel's caches: its Stats, a thrown
 * node-style error (ENOENT, ...), or `undefined` for "ask node:fs / the engine".
 */
export function cachedStat(path: string, follow: boolean): fs.Stats | undefined {
  if (native === null) return undefined
  const r = native.cachedStat(path, follow, raw)
  if (r === 0) return toStats(decodeStatx(raw))
  if (REPORTED.has(-r)) throw errnoError(r, follow ? 'stat' : 'lstat', path)
  refused(-r)
  return undefined
}

/** `fstat` of a descriptor on a local file system (an in-memory inode): its Stats or `undefined`. */
export function cachedFstat(fd: number): fs.Stats | undefined {
  if (native === null) return undefined
  return native.cachedFstat(fd, raw) === 0 ? toStats(decodeStatx(raw)) : undefined
}

/**
 * A regular file opened read-only from the caches: its descriptor, IRREGULAR (a FIFO, a
 * device, a remote file: open it as node:fs does), a thrown error, or `undefined`.
 */
export function cachedOpen(path: string, flags: number): number | typeof IRREGULAR | undefined {
  if (native === null) return undefined
  const r = native.cachedOpen(path, flags)
  if (r >= 0) return r
  if (-r === NOT_REGULAR) return IRREGULAR
  if (REPORTED.has(-r) || -r === 21 /* EISDIR */) throw errnoError(r, 'open', path)
  // EINVAL and EPERM are an open's own answers here (O_DIRECT, O_NOATIME): node:fs reports them.
  if (-r === ENOSYS) native = null
  return undefined
}

/** What cachedKind says of a local regular file. */
export const REGULAR = 'regular' as const
/**
 * What cachedKind says when its lookup answered without finding a FIFO or device to fear: no
 * file there (the open creates a regular one or fails), a lookup error the open will report
 * itself, or no fast path in this process.
 */
export const OTHER = 'other' as const

/**
 * Whether `path` is a local regular file (REGULAR), there and not one (IRREGULAR), or neither
 * (OTHER), from the caches; `undefined` only when the lookup is not cached (the engine can
 * look: see engineType in filehandle.ts). Lookups only: it never throws.
 */
export function cachedKind(path: string, flags: number): typeof REGULAR | typeof IRREGULAR | typeof OTHER | undefined {
  if (native === null) return OTHER
  const r = native.cachedKind(path, flags)
  if (r === 0) return REGULAR
  if (-r === NOT_REGULAR) return IRREGULAR
  return -r === EAGAIN ? undefined : OTHER
}

/**
 * A whole file of 1 byte to CACHED_READ_MAX from the caches, opened read-only: a new Buffer,
 * a thrown error (the open's), or `undefined`.
 */
export function cachedReadFile(path: string): Buffer | undefined {
  if (native === null) return undefined
  const r = native.cachedReadFile(path, fs.constants.O_RDONLY, CACHED_READ_MAX)
  if (typeof r !== 'number') return r
  if (REPORTED.has(-r) || -r === 21) throw errnoError(r, 'open', path)
  refused(-r)
  return undefined
}
