// Positional data I/O of one descriptor through a kaio Context: `PlainIO` for ordinary
// descriptors and `DirectIO` for O_DIRECT ones, where any buffer, offset and length work
// through page-aligned bounce buffers and read-modify-write of partial blocks.
import * as fs from 'node:fs'

import type { Context } from '../context'
import { allocAligned, isAligned } from '../aligned'
import { errnoError } from '../errors'
import { call, fileSize, ftruncate } from './sys'
import { alignDown, alignUp } from './util'

/** Block alignment used for O_DIRECT (offsets, lengths and memory). */
export const ALIGN = 4096
/** Most bytes a bounce buffer holds at once. */
const BOUNCE = 4 << 20
/** Most views in one vectored request (IOV_MAX). */
const IOV_MAX = 1024

export interface BlockIO {
  readonly direct: boolean
  /**
   * False for descriptors without a file position to address (FIFO, pipe, socket, character
   * device): there `CURRENT` (-1) as `pos` means node's non-positional read(2)/write(2).
   */
  readonly seekable: boolean
  /** One read at `pos` (a bigint only past 2^53); short only at end of file. */
  pread(view: Uint8Array, pos: number | bigint): Promise<number>
  /** Writes all of `view` at `pos` (loops over short writes); resolves the bytes written. */
  pwrite(view: Uint8Array, pos: number): Promise<number>
  /** Vectored read (the first IOV_MAX views, as libuv); resolves the total read. */
  preadv(views: Uint8Array[], pos: number): Promise<number>
  /** Vectored write of every view (loops); resolves the total written. */
  pwritev(views: Uint8Array[], pos: number): Promise<number>
  /** A buffer suited to this descriptor (page aligned for O_DIRECT). */
  alloc(size: number): Buffer
}

/** A position meaning "the descriptor's own file position" (node:fs's -1), for `FsIO`. */
export const CURRENT = -1

/** The callback functions of node:fs that `FsIO` calls: node:fs itself, or a stream's `fs` option. */
export interface FsCalls {
  read(fd: number, buf: Uint8Array, off: number, len: number, pos: number | null | undefined, cb: (err: Error | null, n: number) => void): void
  write?(fd: number, buf: Uint8Array, off: number, len: number, pos: number | null | undefined, cb: (err: Error | null, n: number) => void): void
  writev?(fd: number, bufs: Uint8Array[], pos: number | null | undefined, cb: (err: Error | null, n: number) => void): void
}

/**
 * Data I/O through node:fs's callback functions (or a stream's `fs` overrides) instead of a
 * kaio Context, for descriptors the Context cannot serve: it is positional only, and a FIFO,
 * pipe, socket or character device needs read(2)/write(2) at the descriptor's own position,
 * which node:fs does with position -1 (here `CURRENT`, passed on as `current`).
 */
export class FsIO implements BlockIO {
  readonly direct = false
  readonly seekable = false

  constructor(
    readonly calls: FsCalls,
    readonly fd: number,
    /** Pass `CURRENT` on as undefined, as node's streams do to an `fs` option (else null, as node:fs). */
    readonly currentUndefined = false,
  ) {}

  #pos(pos: number | bigint): number | null | undefined {
    if (pos !== CURRENT) return Number(pos)
    return this.currentUndefined ? undefined : null
  }

  pread(view: Uint8Array, pos: number | bigint): Promise<number> {
    return call<number>((cb) => this.calls.read(this.fd, view, 0, view.byteLength, this.#pos(pos), cb))
  }

  /** Writes all of `view` (looping over short writes); a zero-length write still reaches the descriptor. */
  async pwrite(view: Uint8Array, pos: number): Promise<number> {
    let done = 0
    do {
      const at = pos === CURRENT ? CURRENT : pos + done
      const n = await call<number>((cb) => this.#write(view, done, at, cb))
      if (n === 0) break
      done += n
    } while (done < view.byteLength)
    return done
  }

  #write(view: Uint8Array, off: number, pos: number, cb: (err: Error | null, n: number) => void): void {
    if (this.calls.write) this.calls.write(this.fd, view, off, view.byteLength - off, this.#pos(pos), cb)
    else this.calls.writev!(this.fd, [view.subarray(off)], this.#pos(pos), cb)
  }

  preadv(views: Uint8Array[], pos: number): Promise<number> {
    const vs = views.length > IOV_MAX ? views.slice(0, IOV_MAX) : views
    return call<number>((cb) => fs.readv(this.fd, vs, this.#pos(pos) ?? null, cb))
  }

  pwritev(views: Uint8Array[], pos: number): Promise<number> {
    return this.pwrite(views.length === 1 ? views[0]! : Buffer.concat(views), pos)
  }

  alloc(size: number): Buffer {
    return Buffer.allocUnsafeSlow(size)
  }
}

/** Writes `view` at `pos` through `ctx`, looping over short writes. */
async function writeAll(ctx: Context, fd: number, view: Uint8Array, pos: number): Promise<number> {
  let done = 0
  while (done < view.byteLength) {
    let n: number
    try {
      n = await ctx.write(done === 0 ? view : view.subarray(done), fd, pos + done)
    } catch (e) {
      if (done > 0) return done
      throw e
    }
    if (n === 0) break
    done += n
  }
  return done
}

/** Drops the first `n` bytes of a list of views. */
function skipBytes(views: Uint8Array[], n: number): Uint8Array[] {
  let i = 0
  while (i < views.length && n >= views[i]!.byteLength) n -= views[i++]!.byteLength
  const rest = views.slice(i)
  if (n > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(n)
  return rest
}

/** The bytes in a list of views. */
export function totalLength(views: readonly ArrayBufferView[]): number {
  let n = 0
  for (const v of views) n += v.byteLength
  return n
}

export class PlainIO implements BlockIO {
  readonly direct = false
  readonly seekable = true

  constructor(
    readonly ctx: Context,
    readonly fd: number,
  ) {}

  pread(view: Uint8Array, pos: number | bigint): Promise<number> {
    if (view.byteLength === 0) return Promise.resolve(0)
    return this.ctx.readInto(view, this.fd, pos).catch((e: unknown) => this.#retry(e, () => this.#fs.pread(view, pos)))
  }

  pwrite(view: Uint8Array, pos: number): Promise<number> {
    return writeAll(this.ctx, this.fd, view, pos).catch((e: unknown) => this.#retry(e, () => this.#fs.pwrite(view, pos)))
  }

  /** node:fs's positional calls on the same descriptor. */
  get #fs(): FsIO {
    return new FsIO(fs as unknown as FsCalls, this.fd)
  }

  /**
   * Kernel AIO refuses files whose driver has no read_iter/write_iter (procfs's
   * /proc/<pid>/cmdline, status, ...) with EINVAL, where pread(2) works: such a request is
   * redone through node:fs, which then fails as node:fs would if it is really invalid.
   */
  #retry(e: unknown, again: () => Promise<number>): Promise<number> {
    if ((e as { code?: unknown } | null)?.code === 'EINVAL') return again()
    return Promise.reject(e)
  }

  preadv(views: Uint8Array[], pos: number): Promise<number> {
    return this.ctx.readv(views.length > IOV_MAX ? views.slice(0, IOV_MAX) : views, this.fd, pos)
  }

  async pwritev(views: Uint8Array[], pos: number): Promise<number> {
    const total = totalLength(views)
    let done = 0
    let rest = views.filter((v) => v.byteLength > 0)
    while (done < total && rest.length > 0) {
      let n: number
      try {
        n = await this.ctx.writev(rest.length > IOV_MAX ? rest.slice(0, IOV_MAX) : rest, this.fd, pos + done)
      } catch (e) {
        if (done > 0) return done
        throw e
      }
      if (n === 0) break
      done += n
      rest = skipBytes(rest, n)
    }
    return done
  }

  alloc(size: number): Buffer {
    return Buffer.allocUnsafeSlow(size)
  }
}

/**
 * A readers-writer lock, first come first served: aligned O_DIRECT transfers share it,
 * read-modify-write of partial blocks (and the size fix after it) holds it alone.
 */
export class RWLock {
  #shared = 0
  #exclusive = false
  #queue: { exclusive: boolean; grant: () => void }[] = []

  acquire(exclusive: boolean): Promise<void> {
    if (this.#queue.length === 0 && this.#canGrant(exclusive)) {
      this.#take(exclusive)
      return Promise.resolve()
    }
    return new Promise<void>((resolve) => this.#queue.push({ exclusive, grant: resolve }))
  }

  release(exclusive: boolean): void {
    if (exclusive) this.#exclusive = false
    else this.#shared--
    while (this.#queue.length > 0 && this.#canGrant(this.#queue[0]!.exclusive)) {
      const next = this.#queue.shift()!
      this.#take(next.exclusive)
      next.grant()
    }
  }

  async with<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    await this.acquire(exclusive)
    try {
      return await fn()
    } finally {
      this.release(exclusive)
    }
  }

  #canGrant(exclusive: boolean): boolean {
    return exclusive ? !this.#exclusive && this.#shared === 0 : !this.#exclusive
  }

  #take(exclusive: boolean): void {
    if (exclusive) this.#exclusive = true
    else this.#shared++
  }
}

/**
 * O_DIRECT: transfers whose memory, offset and length are block aligned go straight to the
 * Context; the others go through aligned bounce buffers. A write covering part of a block
 * reads that block, merges, writes it whole, then trims the file to its exact length.
 */
export class DirectIO implements BlockIO {
  readonly direct = true
  readonly seekable = true
  readonly lock = new RWLock()

  constructor(
    readonly ctx: Context,
    readonly fd: number,
  ) {}

  alloc(size: number): Buffer {
    return allocAligned(size)
  }

  #aligned(view: Uint8Array, pos: number): boolean {
    return pos % ALIGN === 0 && view.byteLength % ALIGN === 0 && isAligned(view, ALIGN)
  }

  pread(view: Uint8Array, pos: number | bigint): Promise<number> {
    if (view.byteLength === 0) return Promise.resolve(0)
    // Past 2^53 (devices that large) the request goes as given: the kernel checks alignment.
    if (typeof pos === 'bigint') return this.lock.with(false, () => this.ctx.readInto(view, this.fd, pos))
    return this.lock.with(false, () => this.#read(view, pos))
  }

  async #read(view: Uint8Array, pos: number): Promise<number> {
    if (this.#aligned(view, pos)) return this.ctx.readInto(view, this.fd, pos)
    const len = view.byteLength
    let total = 0
    let bounce: Buffer | null = null
    while (total < len) {
      const p = pos + total
      const piece = Math.min(len - total, BOUNCE - ALIGN)
      const start = alignDown(p, ALIGN)
      const end = alignUp(p + piece, ALIGN)
      if (bounce === null || bounce.byteLength < end - start) bounce = allocAligned(end - start)
      const n = await this.ctx.readInto(bounce.subarray(0, end - start), this.fd, start)
      const got = Math.max(0, Math.min(n - (p - start), piece))
      view.set(bounce.subarray(p - start, p - start + got), total)
      total += got
      if (got < piece) break
    }
    return total
  }

  async pwrite(view: Uint8Array, pos: number): Promise<number> {
    const len = view.byteLength
    if (len === 0) return 0
    if (this.#aligned(view, pos)) return this.lock.with(false, () => writeAll(this.ctx, this.fd, view, pos))
    const end = pos + len
    const headEnd = Math.min(alignUp(pos, ALIGN), end)
    const tailStart = Math.max(alignDown(end, ALIGN), headEnd)
    // A partial first block, whole middle blocks, a partial last block.
    if (headEnd > pos) await this.#rmw(view.subarray(0, headEnd - pos), pos)
    if (tailStart > headEnd) await this.lock.with(false, () => this.#writeMiddle(view.subarray(headEnd - pos, tailStart - pos), headEnd))
    if (end > tailStart) await this.#rmw(view.subarray(tailStart - pos), tailStart)
    return len
  }

  /** Block-aligned file range `[pos, pos + view.length)`, from memory that may not be aligned. */
  async #writeMiddle(view: Uint8Array, pos: number): Promise<void> {
    if (isAligned(view, ALIGN)) {
      await this.#writeFully(view, pos)
      return
    }
    const bounce = allocAligned(Math.min(view.byteLength, BOUNCE))
    for (let off = 0; off < view.byteLength; off += BOUNCE) {
      const piece = Math.min(BOUNCE, view.byteLength - off)
      bounce.set(view.subarray(off, off + piece))
      await this.#writeFully(bounce.subarray(0, piece), pos + off)
    }
  }

  async #writeFully(view: Uint8Array, pos: number): Promise<void> {
    const n = await writeAll(this.ctx, this.fd, view, pos)
    if (n < view.byteLength) throw errnoError(-5, 'write')
  }

  /** Read-modify-write of the one block holding `[pos, pos + view.length)`. */
  #rmw(view: Uint8Array, pos: number): Promise<void> {
    return this.lock.with(true, () => this.#rmwUnlocked(view, pos))
  }

  async preadv(views: Uint8Array[], pos: number): Promise<number> {
    const vs = views.length > IOV_MAX ? views.slice(0, IOV_MAX) : views
    const total = totalLength(vs)
    if (pos % ALIGN === 0 && vs.every((v) => v.byteLength % ALIGN === 0 && isAligned(v, ALIGN))) {
      return this.lock.with(false, () => this.ctx.readv(vs, this.fd, pos))
    }
    const bounce = allocAligned(total)
    const n = await this.pread(bounce, pos)
    let off = 0
    for (const v of vs) {
      if (off >= n) break
      const k = Math.min(v.byteLength, n - off)
      v.set(bounce.subarray(off, off + k))
      off += k
    }
    return n
  }

  async pwritev(views: Uint8Array[], pos: number): Promise<number> {
    const total = totalLength(views)
    const joined = allocAligned(total)
    let off = 0
    for (const v of views) {
      joined.set(v, off)
      off += v.byteLength
    }
    return this.pwrite(joined, pos)
  }

  /** O_APPEND emulated (the kernel would ignore our aligned offsets): writes at the current end. */
  append(view: Uint8Array): Promise<{ pos: number; n: number }> {
    return this.lock.with(true, async () => {
      const pos = await fileSize(this.fd)
      // The lock is held: write the pieces without taking it again.
      const n = await this.#writeUnlocked(view, pos)
      return { pos, n }
    })
  }

  async #writeUnlocked(view: Uint8Array, pos: number): Promise<number> {
    const len = view.byteLength
    if (len === 0) return 0
    const end = pos + len
    const headEnd = Math.min(alignUp(pos, ALIGN), end)
    const tailStart = Math.max(alignDown(end, ALIGN), headEnd)
    if (headEnd > pos) await this.#rmwUnlocked(view.subarray(0, headEnd - pos), pos)
    if (tailStart > headEnd) await this.#writeMiddle(view.subarray(headEnd - pos, tailStart - pos), headEnd)
    if (end > tailStart) await this.#rmwUnlocked(view.subarray(tailStart - pos), tailStart)
    return len
  }

  async #rmwUnlocked(view: Uint8Array, pos: number): Promise<void> {
    const start = alignDown(pos, ALIGN)
    const block = allocAligned(ALIGN)
    const n = await this.ctx.readInto(block, this.fd, start)
    block.set(view, pos - start)
    await this.#writeFully(block, start)
    // The block was past (or across) the end of file: trim the padding just written.
    if (n < ALIGN) await ftruncate(this.fd, Math.max(start + n, pos + view.byteLength))
  }
}

/**
 * An O_DIRECT descriptor opened read-write only so that partial blocks can be read back:
 * reads through the public API still fail as on the write-only descriptor asked for.
 */
export class WriteOnlyIO implements BlockIO {
  constructor(readonly inner: BlockIO) {}

  get direct(): boolean {
    return this.inner.direct
  }

  get seekable(): boolean {
    return this.inner.seekable
  }

  pread(): Promise<number> {
    return Promise.reject(errnoError(-9, 'read'))
  }

  preadv(): Promise<number> {
    return Promise.reject(errnoError(-9, 'read'))
  }

  pwrite(view: Uint8Array, pos: number): Promise<number> {
    return this.inner.pwrite(view, pos)
  }

  pwritev(views: Uint8Array[], pos: number): Promise<number> {
    return this.inner.pwritev(views, pos)
  }

  alloc(size: number): Buffer {
    return this.inner.alloc(size)
  }
}
