// `open()` and `FileHandle`: node:fs/promises' FileHandle with its data I/O served by a kaio
// Context. Arguments, defaults, results and errors follow node:fs. Opening takes the cached
// fast path or the Context's openat; the other metadata calls go through src/fs/sys.ts.
import { AsyncResource } from 'node:async_hooks'
import { EventEmitter } from 'node:events'
import * as fs from 'node:fs'
import * as readline from 'node:readline'
import { ReadableStream } from 'node:stream/web'

import { Context } from '../context'
import { codedError, errnoError, invalidArgType, outOfRange } from '../errors'
import { binding } from '../native'
import { AT_SYMLINK_NOFOLLOW, decodeStatx, STATX_SIZE, STATX_TYPE } from '../statx'
import { ALIGN, CURRENT, DirectIO, FsIO, PlainIO, totalLength, WriteOnlyIO } from './io'
import type { BlockIO, FsCalls } from './io'
import { kCore } from './internal'
import type { AppendMode, Core } from './internal'
import { ReadStream, WriteStream } from './streams'
import type { ReadStreamOptions, WriteStreamOptions } from './streams'
import { cachedKind, cachedOpen, fastAllowed, IRREGULAR, OTHER, REGULAR } from './cached'
import { closeFd, defaultContext, nodeOpenFd, fchmod, fchown, fstat, ftruncate, futimes, openFd } from './sys'
import {
  alignUp,
  bytesOf,
  checkAborted,
  fileClosedError,
  fileTooLarge,
  flagsToNumber,
  getOptions,
  IO_MAX_LENGTH,
  NODE_MAJOR,
  plainMode,
  positionOrNull,
  readPosition,
  validateAbortSignal,
  validateBoolean,
  validateBuffer,
  validateBufferArray,
  validateInt32,
  validateInteger,
  validateObject,
  validateOffsetLengthRead,
  validateOffsetLengthWrite,
  validateString,
  validateStringAfterArrayBufferView,
  validateStringEncoding,
  writeEncoding,
} from './util'
import type { PathLike } from './util'

const { O_APPEND, O_CREAT, O_DIRECT, O_EXCL, O_NOFOLLOW, O_RDWR, O_WRONLY, S_IFMT, S_IFREG } = fs.constants
/** lseek whence values (the same on Linux and macOS; node:fs does not export them). */
const SEEK_SET = 0
const SEEK_CUR = 1
const SEEK_END = 2
/** Where `#appended` has cachedFstat write the statx it only needs the answer of. */
const statxScratch = new Uint8Array(STATX_SIZE)
const O_ACCMODE = 3

/** Options of `open()` beyond node's: which Context serves the handle, and O_DIRECT. */
export interface OpenOptions {
  /** The Context for this handle's data I/O; default: the thread's default Context. */
  context?: Context
  /** Open with O_DIRECT; every call still accepts any buffer, offset and length. */
  direct?: boolean
}

export interface FileReadResult<T extends ArrayBufferView> {
  bytesRead: number
  buffer: T
}

export interface FileReadOptions<T extends ArrayBufferView = Buffer> {
  buffer?: T
  offset?: number | null
  length?: number | null
  position?: number | bigint | null
}

export interface ReadPositionOptions {
  offset?: number | null
  length?: number | null
  position?: number | bigint | null
}

export interface FileWriteResult<T> {
  bytesWritten: number
  buffer: T
}

export interface ReadFileOptions {
  encoding?: BufferEncoding | null
  flag?: string | number
  signal?: AbortSignal
}

export interface WriteFileOptions {
  encoding?: BufferEncoding | null
  mode?: number | string
  flag?: string | number
  flush?: boolean
  signal?: AbortSignal
}

/** Data `writeFile` accepts: a string, any ArrayBufferView, or an (async) iterable of them. */
export type WriteFileData =
  | string
  | ArrayBufferView
  | Iterable<string | ArrayBufferView>
  | AsyncIterable<string | ArrayBufferView>

/** @internal How a FileHandle made by kaio itself (streams over a descriptor) differs from `open()`'s. */
export interface HandleSetup {
  /** Its data I/O (default: the Context, or node:fs for a descriptor without a position). */
  io?: BlockIO
  /** How it closes its descriptor (default: node:fs's close). */
  close?: (fd: number) => Promise<void>
  /** How it fsyncs (default: the Context). */
  sync?: (fd: number) => Promise<void>
  /** False for a descriptor the caller owns: garbage collection must not close it. */
  owned?: boolean
}

/** Options of `readableWebStream()`: node 22+ takes `autoClose`; node 20 reads `type` only. */
export interface ReadableWebStreamOptions {
  /** 'bytes' for a byte stream; node 20's default is a non-byte stream of ArrayBuffers. */
  type?: 'bytes' | undefined
  /** Node 22+: close the handle when the stream ends or is cancelled. */
  autoClose?: boolean
}

/** node's `readableWebStream()` byte stream: `autoAllocateChunkSize`, one read per pull. */
const WEB_STREAM_CHUNK = 16384
/** node 20's non-byte stream (over the handle's StreamBase) reads 64 KiB at a time. */
const STREAM_BASE_CHUNK = 65536

/** Chunk of the parallel transfers (readFile, writeFile, copyFile). */
export const CHUNK = 1 << 20
/** Chunks in flight at once in those transfers. */
export const DEPTH = 4
/** node:fs's buffer for files of unknown size. */
const UNKNOWN_SIZE_CHUNK = 64 * 1024
const EMPTY = new Uint8Array(0)

let gcDeprecationShown = false

/** node's warnings for a FileHandle closed by the garbage collector (the DEP0137 one once per process). */
const registry = new FinalizationRegistry<number>((fd) => {
  process.emitWarning(`Closing file descriptor ${fd} on garbage collection`)
  if (!gcDeprecationShown) {
    gcDeprecationShown = true
    process.emitWarning(
      'Closing a FileHandle object on garbage collection is deprecated. Please close FileHandle objects explicitly using FileHandle.prototype.close(). In the future, an error will be thrown if a file descriptor is closed during garbage collection.',
      'DeprecationWarning',
      'DEP0137',
    )
  }
  fs.close(fd, () => {})
})

/** The error node's fsCall asserts with when `this` is not a FileHandle. */
function notAFileHandle(): Error & { code: string } {
  return codedError(
    Error,
    'ERR_INTERNAL_ASSERTION',
    'handle must be an instance of FileHandle\nThis is caused by either a bug in Node.js or incorrect usage of Node.js internals.\nPlease open an issue with this stack trace at https://github.com/nodejs/node/issues\n',
  )
}

/** Reads `[pos, pos + want)` into `buf` with up to DEPTH chunks in flight; resolves the bytes read (short at EOF). */
export async function readRange(io: BlockIO, buf: Uint8Array, want: number, pos: number, signal?: AbortSignal): Promise<number> {
  let next = 0
  let eof = Infinity
  const worker = async (): Promise<void> => {
    for (;;) {
      const off = next
      if (off >= want || off >= eof) return
      next += CHUNK
      const len = Math.min(CHUNK, buf.byteLength - off)
      const n = await io.pread(buf.subarray(off, off + len), pos + off)
      if (n < len) eof = Math.min(eof, off + n)
      checkAborted(signal)
    }
  }
  await settleAll(Array.from({ length: DEPTH }, worker))
  return Math.min(want, eof)
}

/**
 * Writes `view` at `pos` in CHUNK pieces: the bytes written from `pos` on without a gap, short
 * (as one write(2) is) when a piece failed after some were written (ENOSPC), the error when
 * none was. Buffered, one piece at a time: the kernel runs a file's buffered writes one by one
 * anyway (4 in flight measured no faster), and a failure then leaves exactly that prefix, as
 * node's, never a hole with later pieces written past it. O_DIRECT keeps DEPTH in flight.
 */
export async function writeRange(io: BlockIO, view: Uint8Array, pos: number, signal?: AbortSignal): Promise<number> {
  if (view.byteLength <= CHUNK) return io.pwrite(view, pos)
  const pieces = Math.ceil(view.byteLength / CHUNK)
  const written = new Array<number>(pieces).fill(0)
  let next = 0
  let stop = false
  let failure: unknown
  const worker = async (): Promise<void> => {
    while (!stop) {
      const off = next
      if (off >= view.byteLength) return
      next += CHUNK
      // As node's writeFile: the signal is checked between chunks (the caller checked before the first).
      if (off > 0) checkAborted(signal)
      const piece = view.subarray(off, Math.min(off + CHUNK, view.byteLength))
      try {
        written[off / CHUNK] = await io.pwrite(piece, pos + off)
      } catch (e) {
        failure ??= e
        stop = true
        return
      }
      if (written[off / CHUNK]! < piece.byteLength) stop = true
    }
  }
  await settleAll(Array.from({ length: io.direct ? DEPTH : 1 }, worker))
  let done = 0
  for (let i = 0; i < pieces; i++) {
    done += written[i]!
    if (written[i]! < Math.min(CHUNK, view.byteLength - i * CHUNK)) break
  }
  if (done === 0 && failure !== undefined) throw failure
  return done
}

/** `fn()`, a synchronous throw as a rejection. */
function startNow<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn()
  } catch (e) {
    return Promise.reject(e)
  }
}

/** Like Promise.all, but waits for every promise (no request outlives the call) before rejecting. */
export async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises)
  for (const r of results) if (r.status === 'rejected') throw r.reason
}

function isCustomIterable(obj: unknown): obj is Iterable<unknown> | AsyncIterable<unknown> {
  if (obj === null || obj === undefined || typeof obj === 'string' || ArrayBuffer.isView(obj)) return false
  const o = obj as Record<symbol, unknown>
  return typeof o[Symbol.iterator] === 'function' || typeof o[Symbol.asyncIterator] === 'function'
}

/**
 * A file opened by `open()`: node's `fs.promises.FileHandle` (same methods, arguments,
 * results and errors) whose reads, writes and syncs run on a kaio Context.
 */
export class FileHandle extends EventEmitter {
  #fd: number
  #refs = 1
  #closePromise: Promise<void> | null = null
  #closeResolve: (() => void) | null = null
  #closeReject: ((e: unknown) => void) | null = null
  readonly #ctx: Context
  /** The data I/O; a PlainIO becomes node:fs's read(2)/write(2) if the file refuses positions (#positional). */
  #io: BlockIO
  readonly #append: AppendMode
  /** The file position, where the descriptor's own offset does not hold it (see #resolvePos). */
  #pos = 0
  /** After a kernel O_APPEND write without position: the position is the file end, not yet read. */
  #posAtEnd = false
  /** Whether the position is the descriptor's own offset (a real descriptor and the binding to lseek it). */
  readonly #kernelPos: boolean
  /** Whether the file is on a local file system, once an append asked. */
  #localFile: boolean | undefined = undefined
  #chain: Promise<unknown> = Promise.resolve()
  /** Whether nothing waits in #chain (the next #serial call may start at once). */
  #idle = true
  #core: Core | null = null
  /** Set by the first `readableWebStream()`, never cleared (as node). */
  #locked = false
  /** Gives the handle node's async id (a FILEHANDLE resource); destroyed once the descriptor is closed. */
  readonly #resource = new AsyncResource('FILEHANDLE', { requireManualDestroy: true })
  readonly #closeFd: (fd: number) => Promise<void>
  readonly #sync: (fd: number) => Promise<void>

  /** @internal Use `open()`. */
  constructor(fd: number, ctx: Context, direct: boolean, append: AppendMode, writeOnly = false, setup: HandleSetup = {}) {
    super()
    this.#fd = fd
    this.#ctx = ctx
    const io = setup.io ?? (direct ? new DirectIO(ctx, fd) : new PlainIO(ctx, fd))
    this.#io = writeOnly ? new WriteOnlyIO(io) : io
    this.#kernelPos = binding !== null && !(io instanceof FsIO)
    this.#append = append
    this.#closeFd = setup.close ?? closeFd
    this.#sync = setup.sync ?? ((d) => ctx.fsync(d))
    if (setup.owned !== false) registry.register(this, fd, this)
  }

  /** The numeric file descriptor, or -1 once closed. */
  get fd(): number {
    return this.#fd
  }

  /** The Context serving this handle. */
  get context(): Context {
    return this.#ctx
  }

  /** Whether the file is open with O_DIRECT. */
  get direct(): boolean {
    return this.#io.direct
  }

  // ---- the node:fs/promises FileHandle API ----

  read(): Promise<FileReadResult<Buffer>>
  read<T extends ArrayBufferView>(buffer: T, offset?: number | null, length?: number | null, position?: number | bigint | null): Promise<FileReadResult<T>>
  read<T extends ArrayBufferView>(buffer: T, options?: ReadPositionOptions): Promise<FileReadResult<T>>
  read<T extends ArrayBufferView = Buffer>(options?: FileReadOptions<T> | null): Promise<FileReadResult<T>>
  read(bufferOrParams?: unknown, offset?: unknown, length?: unknown, position?: unknown): Promise<FileReadResult<ArrayBufferView>> {
    return FileHandle.#invoke(this, 'read', () => this.#read(bufferOrParams, offset, length, position))
  }

  readv<T extends readonly ArrayBufferView[]>(buffers: T, position?: number | null): Promise<{ bytesRead: number; buffers: T }> {
    return FileHandle.#invoke(this, 'readv', async () => {
      const views = validateBufferArray(buffers).map((b) => bytesOf(b))
      const pos = positionOrNull(position)
      // node:fs passes an empty list to preadv(2), which refuses it.
      if (views.length === 0) throw errnoError(-22, 'read')
      const bytesRead = pos === null ? await this.#readNext((p) => this.#io.preadv(views, p), totalLength(views)) : await this.#io.preadv(views, pos)
      return { __proto__: null, bytesRead, buffers } as unknown as { bytesRead: number; buffers: T }
    })
  }

  write<T extends ArrayBufferView>(buffer: T, offset?: number | null, length?: number | null, position?: number | null): Promise<FileWriteResult<T>>
  write<T extends ArrayBufferView>(buffer: T, options?: { offset?: number | null; length?: number | null; position?: number | null }): Promise<FileWriteResult<T>>
  write(data: string, position?: number | null, encoding?: BufferEncoding | null): Promise<FileWriteResult<string>>
  write(buffer: unknown, offsetOrOptions?: unknown, length?: unknown, position?: unknown): Promise<FileWriteResult<unknown>> {
    return FileHandle.#invoke(this, 'write', () => this.#write(buffer, offsetOrOptions, length, position))
  }

  writev<T extends readonly ArrayBufferView[]>(buffers: T, position?: number | null): Promise<{ bytesWritten: number; buffers: T }> {
    return FileHandle.#invoke(this, 'writev', async () => {
      const views = validateBufferArray(buffers).map((b) => bytesOf(b))
      const pos = positionOrNull(position)
      let bytesWritten = 0
      if (views.length > 0) {
        bytesWritten = pos === null ? await this.#writeNextV(views) : await this.#writeAtV(views, pos)
      }
      return { __proto__: null, bytesWritten, buffers } as unknown as { bytesWritten: number; buffers: T }
    })
  }

  readFile(options?: ReadFileOptions & { encoding?: null }): Promise<Buffer>
  readFile(options: (ReadFileOptions & { encoding: BufferEncoding }) | BufferEncoding): Promise<string>
  readFile(options?: ReadFileOptions | BufferEncoding | null): Promise<string | Buffer>
  readFile(options?: unknown): Promise<string | Buffer> {
    return FileHandle.#invoke(this, 'readFile', () => this.readFileInternal(getOptions(options, { flag: 'r' })))
  }

  writeFile(data: WriteFileData, options?: WriteFileOptions | BufferEncoding | null): Promise<void> {
    return FileHandle.#invoke(this, 'writeFile', () => this.writeFileInternal(data, options))
  }

  /** As node: writes at the current position (an append only for files opened with 'a'). */
  appendFile(data: WriteFileData, options?: WriteFileOptions | BufferEncoding | null): Promise<void> {
    return FileHandle.#invoke(this, 'writeFile', () => this.writeFileInternal(data, options))
  }

  stat(options?: { bigint?: false }): Promise<fs.Stats>
  stat(options: { bigint: true }): Promise<fs.BigIntStats>
  stat(options?: { bigint?: boolean }): Promise<fs.Stats | fs.BigIntStats>
  stat(options?: unknown): Promise<fs.Stats | fs.BigIntStats> {
    return FileHandle.#invoke(this, 'fstat', async () => {
      const opts = (options === undefined ? { bigint: false } : options) as { bigint?: unknown }
      await this.#settledBefore()
      return fstat(this.#fd, opts.bigint === true)
    })
  }

  truncate(len: number = 0): Promise<void> {
    return FileHandle.#invoke(this, 'ftruncate', async () => {
      validateInteger(len, 'len')
      const n = Math.max(0, len)
      if (this.#append !== 'kernel') {
        await this.#settledBefore()
        return ftruncate(this.#fd, n)
      }
      return this.#serial(async () => {
        await this.#resolvePos()
        await ftruncate(this.#fd, n)
      })
    })
  }

  /** `fsync(2)` through the Context. */
  sync(): Promise<void> {
    return FileHandle.#invoke(this, 'fsync', () => this.#sync(this.#fd))
  }

  /** `fdatasync(2)` through the Context. */
  datasync(): Promise<void> {
    return FileHandle.#invoke(this, 'fdatasync', () => this.#ctx.fdsync(this.#fd))
  }

  chmod(mode: fs.Mode): Promise<void> {
    return FileHandle.#invoke(this, 'fchmod', () => fchmod(this.#fd, mode))
  }

  chown(uid: number, gid: number): Promise<void> {
    return FileHandle.#invoke(this, 'fchown', () => fchown(this.#fd, uid, gid))
  }

  utimes(atime: fs.TimeLike, mtime: fs.TimeLike): Promise<void> {
    return FileHandle.#invoke(this, 'futimes', () => futimes(this.#fd, atime, mtime))
  }

  /** Lines of the file, from a `createReadStream(options)` (as node's `readLines`). */
  readLines(options?: ReadStreamOptions): readline.Interface {
    return readline.createInterface({ input: this.createReadStream(options), crlfDelay: Infinity })
  }

  /** A Readable over the file with several reads in flight (`readAhead`). */
  createReadStream(options?: ReadStreamOptions): ReadStream {
    return new ReadStream(this, streamOptions(this.#fd, options))
  }

  /**
   * node's `readableWebStream()` for the running Node version, reading through this handle's
   * `read()` (kaio's I/O): a byte stream of 16 KiB reads; on Node 20 without `type: 'bytes'`, a
   * stream of ArrayBuffers of up to 64 KiB. Locks the handle for good; closing the handle ends the stream.
   */
  readableWebStream(options: ReadableWebStreamOptions = {}): ReadableStream<Uint8Array> {
    if (this.#fd === -1) throw invalidState('The FileHandle is closed')
    if (this.#closePromise) throw invalidState('The FileHandle is closing')
    if (this.#locked) throw invalidState('The FileHandle is locked')
    this.#locked = true
    let type: unknown
    let autoClose = false
    if (NODE_MAJOR >= 22) {
      validateObject(options, 'options')
      ;({ type = 'bytes', autoClose = false } = options)
      validateBoolean(autoClose, 'options.autoClose')
      if (type !== 'bytes') {
        process.emitWarning('A non-"bytes" options.type has no effect. A byte-oriented steam is always created.', 'ExperimentalWarning')
      }
    } else {
      type = options.type
      if (type !== undefined) validateString(type, 'options.type')
    }
    let done = false
    /** node's ondone: the stream's reference dropped once, at its end or cancel. */
    const ondone = async (): Promise<void> => {
      if (done) return
      done = true
      this.#unref()
      if (autoClose) await this.close()
    }
    let end: () => void
    let readable: ReadableStream<Uint8Array>
    if (type === 'bytes' || NODE_MAJOR >= 22) {
      let ctl!: ReadableByteStreamController
      readable = new ReadableStream({
        type: 'bytes',
        autoAllocateChunkSize: WEB_STREAM_CHUNK,
        start: (c) => {
          ctl = c
        },
        pull: async (c) => {
          if (done) return
          const view = c.byobRequest!.view!
          const { bytesRead } = await this.read(view, view.byteOffset, view.byteLength)
          if (done) return
          if (bytesRead === 0) {
            c.close()
            await ondone()
          }
          c.byobRequest!.respond(bytesRead)
        },
        cancel: ondone,
      })
      end = () => {
        ctl.close()
        ctl.byobRequest?.respond(0)
      }
    } else {
      let ctl!: ReadableStreamDefaultController<ArrayBuffer>
      readable = new ReadableStream<ArrayBuffer>({
        start: (c) => {
          ctl = c
        },
        pull: async (c) => {
          if (done) return
          const buf = new Uint8Array(STREAM_BASE_CHUNK)
          const { bytesRead } = await this.read(buf, 0, STREAM_BASE_CHUNK, null)
          if (done) return
          if (bytesRead === 0) {
            c.close()
            await ondone()
          } else c.enqueue(bytesRead === STREAM_BASE_CHUNK ? buf.buffer : buf.buffer.slice(0, bytesRead))
        },
        cancel: ondone,
      }) as unknown as ReadableStream<Uint8Array>
      end = () => ctl.close()
    }
    this.#ref()
    // As node's readableStreamCancel on 'close': the stream ends (node 20's non-byte one keeps a queued chunk).
    this.once('close', () => {
      if (done) return
      try {
        end()
      } catch {
        // Already errored by a failed read: it stays so.
      }
      void ondone()
    })
    return readable
  }

  /** The async id of the handle, as node's (a FILEHANDLE resource made when it was opened). */
  getAsyncId(): number {
    return this.#resource.asyncId()
  }

  /** A Writable into the file with several writes in flight (`writeBehind`). */
  createWriteStream(options?: WriteStreamOptions): WriteStream {
    return new WriteStream(this, streamOptions(this.#fd, options))
  }

  /**
   * Closes the descriptor once the operations running on it are done. Emits 'close'.
   * Resolves at once if already closed.
   */
  close = (): Promise<void> => {
    if (this.#fd === -1) return Promise.resolve()
    if (this.#closePromise) return this.#closePromise
    this.#refs--
    if (this.#refs === 0) {
      const fd = this.#fd
      this.#fd = -1
      registry.unregister(this)
      this.#resource.emitDestroy()
      this.#closePromise = this.#closeFd(fd).finally(() => {
        this.#closePromise = null
      })
    } else {
      this.#closePromise = new Promise<void>((resolve, reject) => {
        this.#closeResolve = resolve
        this.#closeReject = reject
      }).finally(() => {
        this.#closePromise = null
        this.#closeResolve = null
        this.#closeReject = null
      })
    }
    this.emit('close')
    return this.#closePromise
  }

  async [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  // ---- internals shared with the streams and module functions ----

  /** @internal */
  [kCore](): Core {
    const self = this
    this.#core ??= {
      ctx: this.#ctx,
      get io() {
        return self.#io
      },
      append: this.#append,
      fd: () => this.#fd,
      ref: () => this.#ref(),
      unref: () => this.#unref(),
      tell: (syscall = 'read') => this.#serial(() => this.#resolvePos(syscall)),
      seek: (pos) => {
        this.#posAtEnd = false
        this.#setPos(pos)
      },
      offset: () => this.#posNow(),
      writeNext: (view) => this.#writeNext(view),
      writeAt: (view, pos) => this.#writeAt(view, pos),
    }
    return this.#core
  }

  #direct(): DirectIO {
    const io = this.#io
    return (io instanceof WriteOnlyIO ? io.inner : io) as DirectIO
  }

  #ref(): void {
    this.#refs++
  }

  #unref(): void {
    if (--this.#refs === 0) {
      const fd = this.#fd
      this.#fd = -1
      registry.unregister(this)
      this.#resource.emitDestroy()
      this.#closeFd(fd).then(
        () => this.#closeResolve?.(),
        (e: unknown) => this.#closeReject?.(e),
      )
    }
  }

  /** node's fsCall on a `this` that may not be a FileHandle (`fh.stat.call({})`): a rejection, as node's. */
  static #invoke<T>(self: unknown, syscall: string, fn: () => Promise<T>): Promise<T> {
    if (typeof self !== 'object' || self === null || !(#fd in self)) return Promise.reject(notAFileHandle())
    return (self as FileHandle).#call(syscall, fn)
  }

  /** node's fsCall: EBADF once closed; keeps the descriptor open while `fn` runs. */
  async #call<T>(syscall: string, fn: () => Promise<T>): Promise<T> {
    if (this.#fd === -1) throw fileClosedError(syscall)
    this.#ref()
    try {
      return await fn()
    } finally {
      this.#unref()
    }
  }

  /**
   * Waits for the reads and writes without a position started before (node's requests start
   * in call order on its pool): a stat (answered from the in-memory inode, on this thread) or
   * truncate right after `write()` sees the write done, as node's.
   */
  async #settledBefore(): Promise<void> {
    if (!this.#idle) await this.#chain
  }

  /** Runs `fn` after the position-ordered operations queued before it. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    // Nothing queued: started now, in call order with the calls that need no queue (a
    // positional read or write, truncate, stat), as node's requests start in call order.
    const p = this.#idle ? startNow(fn) : this.#chain.then(fn)
    this.#idle = false
    const settled = p.then(
      () => {},
      () => {},
    )
    this.#chain = settled
    void settled.then(() => {
      if (this.#chain === settled) this.#idle = true
    })
    return p
  }

  /**
   * The handle's file position. A descriptor on kaio's engine keeps it in its own offset, as
   * node's read(2) and write(2) leave it, so that `fs.readSync(fh.fd)`, a child process given
   * `fh.fd` or a dup of it start where node would leave them: an `lseek` on this thread before
   * and after each read or write without a position (it never waits on a device; `SEEK_END`
   * once after an append). The rest (no binding; a stream's `fs` override, whose descriptor
   * may not be a real one) keep it in `#pos`.
   */
  async #resolvePos(syscall = 'read'): Promise<number> {
    return this.#startPos(syscall)
  }

  /** #resolvePos without a wait where the descriptor holds the position: a stream checking it next sees this call's claim. */
  #startPos(syscall: string): number | Promise<number> {
    return this.#kernelPos ? this.#kernelOffset(syscall) : this.#jsPos()
  }

  /** The descriptor's offset; moved past the next `claim` bytes in the same lseek (see #claimed). */
  #kernelOffset(syscall: string, claim = 0): number {
    const r = binding!.seek(this.#fd, claim, this.#posAtEnd ? SEEK_END : SEEK_CUR)
    if (r < 0) throw errnoError(r, syscall)
    this.#posAtEnd = false
    return r - claim
  }

  async #jsPos(): Promise<number> {
    if (this.#posAtEnd) {
      this.#pos = ((await fstat(this.#fd)) as fs.Stats).size
      this.#posAtEnd = false
    }
    return this.#pos
  }

  /**
   * After an O_APPEND write without position the position is the file end: moved there now
   * on a local file (its size is in memory), on a remote one (whose SEEK_END may ask the
   * server) at the handle's next call that needs it.
   */
  #appended(): void {
    this.#posAtEnd = true
    if (!this.#kernelPos) return
    this.#localFile ??= binding!.cachedFstat(this.#fd, statxScratch) === 0
    if (this.#localFile && binding!.seek(this.#fd, 0, SEEK_END) >= 0) this.#posAtEnd = false
  }

  /**
   * A read or write at the handle's position: `op`, or, where the file refuses positions
   * though fstat calls it regular (ESPIPE: some /proc files), node's read(2)/write(2) through
   * node:fs from here on (`again`), as node:fs does for every call without a position.
   */
  async #positional<T>(op: () => Promise<T>, again: () => Promise<T>, from: number): Promise<T> {
    try {
      return await op()
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESPIPE' || !this.#kernelPos || this.#io.direct || !this.#io.seekable) throw e
      // The offset back where this call starts (its claim moved it), for read(2)/write(2).
      this.#setPos(from)
      const io = new FsIO(fs as unknown as FsCalls, this.#fd)
      this.#io = this.#io instanceof WriteOnlyIO ? new WriteOnlyIO(io) : io
      return again()
    }
  }

  /** Moves the position to `pos` (after a read or write that advanced it). */
  #setPos(pos: number): void {
    if (this.#kernelPos) binding!.seek(this.#fd, pos, SEEK_SET)
    else this.#pos = pos
  }

  /** A read at the handle's position, which advances by the bytes read. */
  #readNext(op: (pos: number) => Promise<number>, len: number): Promise<number> {
    // No position to keep: node's read(2) at the descriptor's own position, in call order.
    if (!this.#io.seekable) return this.#serial(() => op(CURRENT))
    return this.#serial(() => this.#atPosition('read', len, op, () => op(CURRENT)))
  }

  /**
   * A read or write of up to `len` bytes at the handle's position (`op(pos)`): the position
   * taken without a wait where the descriptor holds it, the range claimed (#claimed), and
   * node's read(2)/write(2) (`again`) for a file that refuses positions (#positional).
   */
  async #atPosition(syscall: string, len: number, op: (pos: number) => Promise<number>, again: () => Promise<number>): Promise<number> {
    // Where the descriptor holds the position, taking it and claiming the range is one lseek.
    const p = this.#kernelPos ? this.#kernelOffset(syscall, len) : await this.#jsPos()
    if (!this.#kernelPos) this.#pos = p + len
    return this.#whileClaimed(p, len, () => this.#positional(() => op(p), again, p))
  }

  /**
   * Runs a read or write of up to `len` bytes at position `p` with the range claimed first:
   * the position moves to `p + len` before the I/O (as read(2)/write(2) move the offset in
   * one step), so that a stream sharing the position, checking it meanwhile, goes after this
   * call instead of delivering or overwriting its bytes; then back to where the call ended
   * (a short count, an error) if nobody moved it since.
   */
  async #claimed(p: number, len: number, op: () => Promise<number>): Promise<number> {
    this.#setPos(p + len)
    return this.#whileClaimed(p, len, op)
  }

  /** #claimed once the claim is made: runs `op`, then gives back what it did not use. */
  async #whileClaimed(p: number, len: number, op: () => Promise<number>): Promise<number> {
    let n: number
    try {
      n = await op()
    } catch (e) {
      if (this.#io.seekable && this.#posNow() === p + len) this.#setPos(p)
      throw e
    }
    if (this.#io.seekable && n < len && this.#posNow() === p + len) this.#setPos(p + n)
    return n
  }

  /** The position now, on this thread (see Core.offset). */
  #posNow(): number {
    if (!this.#kernelPos || this.#posAtEnd) return this.#pos
    const r = binding!.seek(this.#fd, 0, SEEK_CUR)
    return r < 0 ? this.#pos : r
  }

  /** A zero-byte write still reaches the kernel (EBADF on a read-only file) but moves nothing. */
  #writeEmpty(pos: number | null): Promise<number> {
    if (!this.#io.seekable) return this.#io.pwrite(EMPTY, pos ?? CURRENT)
    return this.#ctx.write(EMPTY, this.#fd, pos ?? 0)
  }

  #writeNext(view: Uint8Array, signal?: AbortSignal): Promise<number> {
    if (view.byteLength === 0) return this.#writeEmpty(null)
    if (!this.#io.seekable) return this.#serial(() => this.#io.pwrite(view, CURRENT))
    return this.#serial(async () => {
      if (this.#append === 'kernel') {
        // O_APPEND: the kernel writes at the end and leaves the position there.
        const n = await this.#io.pwrite(view, this.#pos)
        this.#appended()
        return n
      }
      if (this.#append === 'emulated') {
        const { pos, n } = await this.#direct().append(view)
        this.#setPos(pos + n)
        return n
      }
      return this.#atPosition(
        'write',
        view.byteLength,
        (p) => writeRange(this.#io, view, p, signal),
        () => this.#io.pwrite(view, CURRENT),
      )
    })
  }

  #writeAt(view: Uint8Array, pos: number): Promise<number> {
    if (view.byteLength === 0) return this.#writeEmpty(pos)
    if (this.#append === 'none' || !this.#io.seekable) return this.#io.pwrite(view, pos)
    return this.#serial(async () => {
      if (this.#append === 'emulated') return (await this.#direct().append(view)).n
      // O_APPEND: Linux appends whatever the position; the file end moves under the position.
      await this.#resolvePos()
      return this.#io.pwrite(view, pos)
    })
  }

  #writeNextV(views: Uint8Array[]): Promise<number> {
    if (views.every((v) => v.byteLength === 0)) return this.#writeEmpty(null)
    if (!this.#io.seekable) return this.#serial(() => this.#io.pwritev(views, CURRENT))
    if (this.#append === 'emulated') return this.#writeNext(Buffer.concat(views))
    return this.#serial(async () => {
      if (this.#append === 'kernel') {
        const n = await this.#io.pwritev(views, this.#pos)
        this.#appended()
        return n
      }
      return this.#atPosition(
        'write',
        totalLength(views),
        (p) => this.#io.pwritev(views, p),
        () => this.#io.pwritev(views, CURRENT),
      )
    })
  }

  #writeAtV(views: Uint8Array[], pos: number): Promise<number> {
    if (views.every((v) => v.byteLength === 0)) return this.#writeEmpty(pos)
    if (this.#append === 'none' || !this.#io.seekable) return this.#io.pwritev(views, pos)
    if (this.#append === 'emulated') return this.#writeAt(Buffer.concat(views), pos)
    return this.#serial(async () => {
      await this.#resolvePos()
      return this.#io.pwritev(views, pos)
    })
  }

  async #read(bufferOrParams: unknown, offsetArg: unknown, lengthArg: unknown, positionArg: unknown): Promise<FileReadResult<ArrayBufferView>> {
    // The argument forms of node's FileHandle.read, resolved in the same order.
    let buffer = bufferOrParams as ArrayBufferView
    let offset = offsetArg as any // eslint-disable-line @typescript-eslint/no-explicit-any
    let length = lengthArg as any // eslint-disable-line @typescript-eslint/no-explicit-any
    let position = positionArg
    if (!ArrayBuffer.isView(buffer)) {
      if (bufferOrParams !== undefined) validateObject(bufferOrParams, 'options', true)
      const params = (bufferOrParams ?? {}) as FileReadOptions<ArrayBufferView>
      buffer = params.buffer === undefined ? Buffer.alloc(16384) : params.buffer
      offset = params.offset === undefined ? 0 : params.offset
      length = params.length === undefined ? buffer.byteLength - offset : params.length
      position = params.position === undefined ? null : params.position
      validateBuffer(buffer)
    }
    if (offset !== null && typeof offset === 'object') {
      const o = offset as ReadPositionOptions
      offset = o.offset === undefined ? 0 : o.offset
      length = o.length === undefined ? buffer.byteLength - offset : o.length
      position = o.position === undefined ? null : o.position
    }
    if (offset === null || offset === undefined) offset = 0
    else validateInteger(offset, 'offset', 0)
    length ??= buffer.byteLength - offset
    // Node 24 checks the position before the length-0 shortcut, 22 after it, 20 not at all.
    const early = NODE_MAJOR >= 24 ? readPosition(position, length as number) : undefined
    if (length === 0) return { __proto__: null, bytesRead: 0, buffer } as FileReadResult<ArrayBufferView>
    if (buffer.byteLength === 0) {
      const e = new TypeError('The argument \'buffer\' is empty and cannot be written.') as TypeError & { code: string }
      e.code = 'ERR_INVALID_ARG_VALUE'
      throw e
    }
    // node's binding would abort the process on a non-int32 length; refuse it as node's JS does others.
    validateInt32(length, 'length', -(2 ** 31))
    validateOffsetLengthRead(offset as number, length as number, buffer.byteLength)
    const pos = early !== undefined ? early : NODE_MAJOR >= 22 ? readPosition(position, length as number) : positionOrNull(position)
    const view = bytesOf(buffer, offset as number, length as number)
    const bytesRead = pos === null ? await this.#readNext((p) => this.#io.pread(view, p), view.byteLength) : await this.#io.pread(view, pos)
    return { __proto__: null, bytesRead, buffer } as FileReadResult<ArrayBufferView>
  }

  async #write(buffer: unknown, offsetOrOptions: unknown, lengthArg: unknown, positionArg: unknown): Promise<FileWriteResult<unknown>> {
    if ((buffer as { byteLength?: unknown } | null | undefined)?.byteLength === 0) {
      return { __proto__: null, bytesWritten: 0, buffer } as FileWriteResult<unknown>
    }
    let offset = offsetOrOptions as any // eslint-disable-line @typescript-eslint/no-explicit-any
    let length = lengthArg
    let position = positionArg
    if (ArrayBuffer.isView(buffer)) {
      if (typeof offset === 'object') {
        const o = (offsetOrOptions ?? {}) as ReadPositionOptions
        offset = o.offset === undefined ? 0 : o.offset
        length = o.length === undefined ? buffer.byteLength - offset : o.length
        position = o.position === undefined ? null : o.position
      }
      if (offset === null || offset === undefined) offset = 0
      else validateInteger(offset, 'offset', 0)
      if (typeof length !== 'number') length = buffer.byteLength - offset
      validateOffsetLengthWrite(offset as number, length as number, buffer.byteLength)
      const pos = positionOrNull(position)
      const view = bytesOf(buffer, offset as number, length as number)
      const bytesWritten = pos === null ? await this.#writeNext(view) : await this.#writeAt(view, pos)
      return { __proto__: null, bytesWritten, buffer } as FileWriteResult<unknown>
    }
    validateStringAfterArrayBufferView(buffer, 'buffer')
    validateStringEncoding(buffer, length)
    const data = Buffer.from(buffer, writeEncoding(length))
    const pos = positionOrNull(offset)
    const bytesWritten = pos === null ? await this.#writeNext(data) : await this.#writeAt(data, pos)
    return { __proto__: null, bytesWritten, buffer } as FileWriteResult<unknown>
  }

  /** @internal readFile on this handle: from the current position to the end of file. */
  async readFileInternal(options: Record<string, unknown>): Promise<string | Buffer> {
    const signal = options.signal as AbortSignal | undefined
    const encoding = options.encoding as BufferEncoding | null | undefined
    // node makes its StringDecoder first: an unknown encoding ('buffer') throws before a read.
    if (encoding && !Buffer.isEncoding(encoding)) throw codedError(TypeError, 'ERR_UNKNOWN_ENCODING', `Unknown encoding: ${encoding}`)
    checkAborted(signal)
    const st = (await fstat(this.#fd)) as fs.Stats
    checkAborted(signal)
    const size = st.isFile() ? st.size : 0
    if (size > IO_MAX_LENGTH) throw fileTooLarge(size)
    const buf = await this.#serial(async () => {
      const start = this.#startPos('read')
      const pos = typeof start === 'number' ? start : await start
      // Each read claims its range in the position first (see #claimed): a stream sharing
      // the handle goes on after what readFile takes.
      if (size > 0) {
        const all = this.#io.alloc(this.#io.direct ? alignUp(size, ALIGN) : size)
        return all.subarray(0, await this.#claimed(pos, size, () => readRange(this.#io, all, size, pos, signal)))
      }
      // Size unknown (not a regular file, or empty): read until end of file.
      const parts: Buffer[] = []
      let total = 0
      for (;;) {
        checkAborted(signal)
        const chunk = this.#io.alloc(UNKNOWN_SIZE_CHUNK)
        const at = pos + total
        const read = () =>
          this.#positional(
            () => this.#io.pread(chunk, this.#io.seekable ? at : CURRENT),
            () => this.#io.pread(chunk, CURRENT),
            at,
          )
        const n = await (this.#io.seekable ? this.#claimed(at, chunk.byteLength, read) : read())
        if (n === 0) break
        parts.push(chunk.subarray(0, n))
        total += n
      }
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts, total)
    })
    return encoding ? buf.toString(encoding) : buf
  }

  /** @internal writeFile on this handle: at the current position (the end in append mode). */
  async writeFileInternal(data: unknown, optionsArg: unknown): Promise<void> {
    const options = getOptions(optionsArg, { encoding: 'utf8', mode: 0o666, flag: 'w', flush: false })
    validateBoolean(options.flush ?? false, 'options.flush')
    let payload = data
    if (!ArrayBuffer.isView(payload) && !isCustomIterable(payload)) {
      validateStringAfterArrayBufferView(payload, 'data')
      payload = Buffer.from(payload, (options.encoding as BufferEncoding | null) || 'utf8')
    }
    const signal = validateAbortSignal(options.signal)
    await this.writeData(payload as ArrayBufferView | Iterable<unknown> | AsyncIterable<unknown>, signal, options.encoding as BufferEncoding | null)
  }

  /** @internal */
  async writeData(data: ArrayBufferView | Iterable<unknown> | AsyncIterable<unknown>, signal: AbortSignal | undefined, encoding: BufferEncoding | null | undefined): Promise<void> {
    checkAborted(signal)
    if (ArrayBuffer.isView(data)) {
      await this.#writeAll(bytesOf(data), signal)
      return
    }
    for await (const chunk of data as AsyncIterable<unknown>) {
      checkAborted(signal)
      const bytes = ArrayBuffer.isView(chunk) ? bytesOf(chunk) : Buffer.from(chunk as string, encoding || 'utf8')
      await this.#writeAll(bytes)
      checkAborted(signal)
    }
  }

  /** All of `view` at the position, as node's writeFile loop: after a short write the rest is written (or fails: ENOSPC). */
  async #writeAll(view: Uint8Array, signal?: AbortSignal): Promise<void> {
    while (view.byteLength > 0) {
      const n = await this.#writeNext(view, signal)
      if (n <= 0) return
      view = view.subarray(n)
    }
  }
}

/**
 * A handle's stream options as node makes them (`{ ...options, fd: this }`): anything but an
 * object adds nothing (a string is not an encoding here); a closed handle's fd of -1 is out
 * of range, thrown at once.
 */
function streamOptions<T extends object>(fd: number, options: T | undefined): T {
  if (fd === -1) throw outOfRange('fd', '>= 0 && <= 2147483647', fd)
  return { ...options } as T
}

function invalidState(message: string): Error & { code: string } {
  return codedError(Error, 'ERR_INVALID_STATE', `Invalid state: ${message}`)
}

function validateOpenOptions(options: unknown): { ctx: Context; direct: boolean } {
  if (options === undefined || options === null) return { ctx: defaultContext(), direct: false }
  if (typeof options !== 'object') throw invalidArgType('options', 'of type object', options)
  const { context, direct = false } = options as OpenOptions
  const ctx = contextOf(context)
  validateBoolean(direct, 'options.direct')
  return { ctx, direct }
}

/** `options.context`, checked, or the default Context. */
export function contextOf(context: unknown): Context {
  if (context !== undefined && !(context instanceof Context)) throw invalidArgType('options.context', 'an instance of Context', context)
  return (context as Context | undefined) ?? defaultContext()
}

/**
 * Opens a file like `fs.promises.open(path, flags, mode)`; resolves a FileHandle whose data
 * I/O runs on `options.context` (default: the thread's Context). `options.direct` adds O_DIRECT.
 */
export async function open(path: PathLike, flags: string | number = 'r', mode: fs.Mode = 0o666, options?: OpenOptions): Promise<FileHandle> {
  const { ctx, direct: wantDirect } = validateOpenOptions(options)
  const num = flagsToNumber(flags)
  // Flags we cannot read go to node:fs unchanged, so that it reports them (after the path).
  if (num === undefined) return handleFor(await nodeOpenFd(path, flags, mode), ctx, false)
  const direct = wantDirect || (num & O_DIRECT) !== 0
  return openWith(path, num, mode, ctx, direct, (num & O_APPEND) !== 0)
}

/** Whether `fd` has no file position to address (FIFO, pipe, socket, character device): one fstat. */
export async function positionless(fd: number): Promise<boolean> {
  const st = (await fstat(fd)) as fs.Stats
  return st.isFIFO() || st.isSocket() || st.isCharacterDevice()
}

/**
 * A FileHandle over `fd`, whose type is looked up once: the Context serves files and block
 * devices; the others get node:fs's non-positional I/O (`FsIO`), as node:fs gives them.
 */
export async function handleFor(fd: number, ctx: Context, append: boolean, setup: HandleSetup = {}, calls: FsCalls = fs as unknown as FsCalls): Promise<FileHandle> {
  let stream: boolean
  try {
    stream = await positionless(fd)
  } catch (e) {
    // A descriptor someone gave us (a stream's `fd`) that is not open: as node's, the first
    // read or write reports it (EBADF, syscall read/write), then the close.
    if (setup.owned === false && (e as NodeJS.ErrnoException).code === 'EBADF') stream = false
    else {
      if (setup.owned !== false) await (setup.close ?? closeFd)(fd).catch(() => {})
      throw e
    }
  }
  const io = stream ? new FsIO(calls, fd) : undefined
  return new FileHandle(fd, ctx, false, append ? 'kernel' : 'none', false, { ...setup, ...(io ? { io } : {}) })
}

/**
 * The cached fast path of open (src/fs/cached.ts): a local regular file opened read-only
 * whose lookup is cached opens on this thread (it closes on the Context's engine, like every
 * handle: a last close can free an unlinked file's blocks or start a rewritten file's
 * writeback). A FIFO, device or remote file opens through node:fs, as node opens it (a FIFO
 * waits for its other end on libuv's pool), not on kaio's engine: there a blocked open would
 * hold up `ctx.close()`, and io_uring's inline OPENAT would open a FIFO non-blocking without
 * waiting for its writer should its lookup be cached by the time it runs.
 * `undefined`: the engine's open.
 */
async function openCached(path: unknown, flags: unknown, mode: unknown, ctx: Context, append: boolean): Promise<FileHandle | undefined> {
  if (typeof path !== 'string' || typeof flags !== 'number' || !plainMode(mode)) return undefined
  let got = fastAllowed() ? cachedOpen(path, flags) : undefined
  if (got === undefined) {
    // Not opened here: still look for a FIFO or device first, on the engine when the lookup
    // is not cached (for any access mode: a write open of a FIFO waits for a reader too).
    // An exclusive create cannot open one (EEXIST).
    const { kind, looked } = await kindOf(path, flags, ctx)
    if (kind === IRREGULAR) got = IRREGULAR
    // Looked up now, a read-only open of a regular file may open from the caches.
    else if (looked && kind === REGULAR && fastAllowed()) got = cachedOpen(path, flags)
  }
  if (got === undefined) return undefined
  if (got === IRREGULAR) return handleFor(await nodeOpenFd(path, flags, mode), ctx, append)
  return new FileHandle(got, ctx, false, append ? 'kernel' : 'none', false)
}

/**
 * The type of `path` from a statx on `ctx`'s engine, which also brings its lookup into the
 * caches: REGULAR, IRREGULAR (anything but a regular file), or OTHER when the statx fails
 * (the open then reports its own error, or creates the file).
 */
async function engineType(path: string, flags: number, ctx: Context): Promise<typeof REGULAR | typeof IRREGULAR | typeof OTHER> {
  const out = new Uint8Array(STATX_SIZE)
  try {
    await ctx.statx(path, flags & O_NOFOLLOW ? AT_SYMLINK_NOFOLLOW : 0, STATX_TYPE, out)
  } catch {
    return OTHER
  }
  return (decodeStatx(out).mode & S_IFMT) === S_IFREG ? REGULAR : IRREGULAR
}

/**
 * What an open of `path` with `flags` would meet: cachedKind, or when the lookup is not
 * cached, the engine's look (engineType; `looked`), except for an exclusive create
 * (`O_CREAT | O_EXCL`: an existing FIFO is EEXIST, so there is nothing to fear).
 */
export async function kindOf(path: string, flags: number, ctx: Context): Promise<{ kind: ReturnType<typeof cachedKind>; looked: boolean }> {
  const kind = cachedKind(path, flags)
  if (kind !== undefined || (flags & (O_CREAT | O_EXCL)) === (O_CREAT | O_EXCL)) return { kind, looked: false }
  return { kind: await engineType(path, flags, ctx), looked: true }
}

async function openWith(path: unknown, flags: unknown, mode: unknown, ctx: Context, direct: boolean, append: boolean): Promise<FileHandle> {
  if (!direct) return (await openCached(path, flags, mode, ctx, append)) ?? handleFor(await openFd(path, flags, mode, ctx), ctx, append)
  // With O_APPEND the kernel would ignore the aligned offsets of read-modify-write: emulate it.
  const f = ((flags as number) | O_DIRECT) & ~(append ? O_APPEND : 0)
  const appendMode: AppendMode = append ? 'emulated' : 'none'
  if ((f & O_ACCMODE) === O_WRONLY) {
    // Partial blocks are read back, so ask for read access too (write-only if refused).
    try {
      return new FileHandle(await openFd(path, (f & ~O_ACCMODE) | O_RDWR, mode, ctx), ctx, true, appendMode, true)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EACCES') throw e
    }
  }
  return new FileHandle(await openFd(path, f, mode, ctx), ctx, true, appendMode)
}
