// Module functions of node:fs/promises on kaio: readFile, writeFile, appendFile, copyFile,
// and path-based streams.
import * as fs from 'node:fs'

import { Context } from '../context'
import { codedError, errnoError, invalidArgType, outOfRange } from '../errors'
import type { SystemError } from '../errors'
import { CHUNK, contextOf, DEPTH, FileHandle, handleFor, kindOf, open, settleAll } from './filehandle'
import type { OpenOptions, ReadFileOptions, WriteFileData, WriteFileOptions } from './filehandle'
import { ReadStream, WriteStream } from './streams'
import type { Opening, ReadStreamOptions, Source, WriteStreamOptions } from './streams'
import { cachedKind, cachedReadFile, fastAllowed, IRREGULAR } from './cached'
import { call, closeFd, defaultContext, fchmod, fstat, ftruncate, openFd } from './sys'
import { DirectIO, FsIO, PlainIO } from './io'
import type { BlockIO, FsCalls } from './io'
import { checkAborted, flagsToNumber, getOptions, NODE_MAJOR, plainMode, validateBoolean, validateInt32, validatePath } from './util'
import type { PathLike } from './util'

const { O_RDONLY, O_RDWR, O_WRONLY, O_CREAT, O_EXCL, O_DIRECT, COPYFILE_EXCL, COPYFILE_FICLONE_FORCE } = fs.constants

/**
 * node:fs's own functions, captured at load: `kaio/register` replaces fs.promises' properties
 * with kaio's, and kaio must never call itself through them.
 */
const node = { copyFile: fs.promises.copyFile, unlink: fs.promises.unlink }

/** Options every module function takes besides node's. */
export interface KaioOptions {
  context?: Context
  direct?: boolean
}

function kaioOptions(options: Record<string, unknown>): OpenOptions {
  const { context, direct } = options
  const out: OpenOptions = {}
  if (context !== undefined) out.context = context as Context
  if (direct !== undefined) out.direct = direct as boolean
  return out
}

/** Runs `op`, then closes `handle` either way (node's handleFdClose). */
async function withClose<T>(handle: FileHandle, op: Promise<T>): Promise<T> {
  let result: T
  try {
    result = await op
  } catch (e) {
    await handle.close().catch(() => {})
    throw e
  }
  await handle.close()
  return result
}

/** `fs.promises.readFile`: a path (opened with `options.flag`, default 'r') or a FileHandle. */
export function readFile(path: PathLike | FileHandle, options?: (ReadFileOptions & KaioOptions & { encoding?: null }) | null): Promise<Buffer>
export function readFile(path: PathLike | FileHandle, options: (ReadFileOptions & KaioOptions & { encoding: BufferEncoding }) | BufferEncoding): Promise<string>
export function readFile(path: PathLike | FileHandle, options?: (ReadFileOptions & KaioOptions) | BufferEncoding | null): Promise<string | Buffer>
export async function readFile(path: unknown, optionsArg?: unknown): Promise<string | Buffer> {
  const options = getOptions(optionsArg, { flag: 'r' })
  const flag = options.flag || 'r'
  // As node: a FileHandle is read from its position, without the closed-handle check of its method.
  if (path instanceof FileHandle) return path.readFileInternal(options)
  checkAborted(options.signal as AbortSignal | undefined)
  // The cached fast path: a small file read whole on this thread when nothing would wait.
  // Not with a signal: node's readFile sees an abort made just after the call (its checks
  // come after each of its steps), which a read done in the call itself could not.
  if (typeof path === 'string' && (flag === 'r' || (flag as unknown) === O_RDONLY) && options.direct === undefined && options.signal === undefined && fastAllowed()) {
    const buf = cachedReadFile(path)
    if (buf !== undefined) {
      const encoding = options.encoding as BufferEncoding | null | undefined
      return encoding ? buf.toString(encoding) : buf
    }
  }
  const handle = await open(path as PathLike, flag as string, 0o666, kaioOptions(options))
  return withClose(handle, handle.readFileInternal(options))
}

/** `fs.promises.writeFile`: `options.flag` default 'w', `mode` 0o666, `flush` fsyncs before closing. */
export async function writeFile(path: PathLike | FileHandle, data: WriteFileData, optionsArg?: (WriteFileOptions & KaioOptions) | BufferEncoding | null): Promise<void> {
  const options = getOptions(optionsArg, { encoding: 'utf8', mode: 0o666, flag: 'w', flush: false })
  const flag = options.flag || 'w'
  const flush = options.flush ?? false
  validateBoolean(flush, 'options.flush')
  // As node, before anything is opened: a string becomes bytes here, so that a bad encoding
  // ('buffer') throws before the file is truncated.
  if (!ArrayBuffer.isView(data) && (typeof data === 'string' || !isIterable(data))) {
    if (typeof data !== 'string') throw invalidArgType('data', 'of type string or an instance of Buffer, TypedArray, or DataView', data)
    data = Buffer.from(data, (options.encoding as BufferEncoding | null) || 'utf8')
  }
  if (path instanceof FileHandle) {
    // Node 22 on: a closed handle's fd (-1) is refused as out of range, before any write.
    if (NODE_MAJOR >= 22 && path.fd === -1) throw outOfRange('fd', '>= 0 && <= 2147483647', -1)
    return path.writeFileInternal(data, options)
  }
  checkAborted(options.signal as AbortSignal | undefined)
  // The whole write as one request on a worker (open, write, fsync if flushing, close: one
  // thread hop where node:fs takes three), for what that request can carry.
  const flags = flagsToNumber(flag)
  // Not for a FIFO or device (cachedKind, or the engine's statx when the lookup is not
  // cached): its open may wait for the other end, which node:fs does on libuv's pool, and a
  // kaio worker must finish before its Context can be dropped.
  if (typeof path === 'string' && flags !== undefined && plainMode(options.mode) && options.signal === undefined && options.direct === undefined && ArrayBuffer.isView(data)) {
    const context = contextOf(options.context)
    if ((await kindOf(path, flags, context)).kind !== IRREGULAR) {
      await context.writeFile(path, data, { flags, mode: options.mode as number, flush })
      return
    }
  }
  const handle = await open(path as PathLike, flag as string, options.mode as fs.Mode, kaioOptions(options))
  const op = (async () => {
    await handle.writeFileInternal(data, options)
    if (flush) await handle.sync()
  })()
  return withClose(handle, op)
}

function isIterable(obj: unknown): boolean {
  if (obj === null || obj === undefined) return false
  const o = obj as Record<symbol, unknown>
  return typeof o[Symbol.iterator] === 'function' || typeof o[Symbol.asyncIterator] === 'function'
}

/** `fs.promises.appendFile`: writeFile with `flag` 'a' by default. */
export async function appendFile(path: PathLike | FileHandle, data: WriteFileData, optionsArg?: (WriteFileOptions & KaioOptions) | BufferEncoding | null): Promise<void> {
  const options = { ...getOptions(optionsArg, { encoding: 'utf8', mode: 0o666, flag: 'a' }) }
  options.flag = options.flag || 'a'
  return writeFile(path, data, options as WriteFileOptions & KaioOptions)
}

export interface CopyFileOptions extends KaioOptions {
  /** COPYFILE_* flags, as node's `mode` argument. */
  mode?: number
}

function copyError(e: unknown, src: string | Buffer, dest: string | Buffer): unknown {
  const err = e as SystemError
  if (typeof err?.errno !== 'number' || typeof err.code !== 'string' || err.code.startsWith('ERR_')) return e
  return errnoError(err.errno, 'copyfile', String(src), String(dest))
}

/**
 * `fs.promises.copyFile(src, dest, mode)`: one Context request (`ctx.copyFile`, libuv's copy
 * on a worker), or with `direct` (or Buffer paths) a copy through the Context with DEPTH
 * chunks of 1 MiB in flight. The third argument is node's `mode` or `{ mode, context, direct }`.
 */
export async function copyFile(srcArg: PathLike, destArg: PathLike, modeOrOptions?: number | CopyFileOptions | null): Promise<void> {
  const src = validatePath(srcArg, 'src')
  const dest = validatePath(destArg, 'dest')
  let mode: unknown = modeOrOptions
  let kaio: OpenOptions = {}
  // kaio's options object only when it names one of kaio's options: any other object is a bad
  // `mode`, as for node.
  if (modeOrOptions !== null && typeof modeOrOptions === 'object' && ('context' in modeOrOptions || 'direct' in modeOrOptions)) {
    mode = modeOrOptions.mode
    kaio = kaioOptions(modeOrOptions as Record<string, unknown>)
  }
  // node's checks, made in its C++ (hence the messages): any finite number, truncated, in 0..7.
  if (mode !== undefined && mode !== null && typeof mode !== 'number') throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', 'mode must be int32 or null/undefined')
  if (typeof mode === 'number' && !Number.isFinite(mode)) throw codedError(RangeError, 'ERR_OUT_OF_RANGE', 'mode is out of range')
  const m = typeof mode === 'number' ? Math.trunc(mode) : 0
  if (!(m >= 0 && m <= 7)) throw codedError(RangeError, 'ERR_OUT_OF_RANGE', 'mode is out of range: >= 0 && <= 7')
  const { context, direct = false } = kaio
  const ctx = contextOf(context)
  validateBoolean(direct, 'options.direct')
  if (!direct) {
    // One request on a worker: libuv's copy (FICLONE, copy_file_range), as node:fs's, with one
    // thread round trip and the bytes copied in the kernel.
    if (typeof src === 'string' && typeof dest === 'string' && cachedKind(src, 0) !== IRREGULAR && cachedKind(dest, 0) !== IRREGULAR) {
      return ctx.copyFile(src, dest, m)
    }
    // A FIFO or device as the source (whose open may wait for the other end, on libuv's pool
    // as node's) or a Buffer path: node:fs's own copy, with its own results (a FIFO copies as
    // empty: libuv copies the size fstat gives). A device destination takes the copy below.
    if (typeof dest !== 'string' || cachedKind(dest, 0) !== IRREGULAR) return node.copyFile(src, dest, m)
  }
  // A clone or nothing: only the kernel's FICLONE can do that.
  if (m & COPYFILE_FICLONE_FORCE) return node.copyFile(src, dest, m)
  const dflag = direct ? O_DIRECT : 0
  let srcFd = -1
  let dstFd = -1
  let created = false
  try {
    srcFd = await openFd(src, O_RDONLY | dflag, 0o666, ctx)
    const st = (await fstat(srcFd)) as fs.Stats
    const dflags = O_CREAT | dflag | (m & COPYFILE_EXCL ? O_EXCL : 0)
    // O_DIRECT reads back the partial last block: ask for read access too (write-only if refused).
    dstFd = direct
      ? await openFd(dest, dflags | O_RDWR, st.mode, ctx).catch((e: NodeJS.ErrnoException) => {
          if (e.code === 'EACCES') return openFd(dest, dflags | O_WRONLY, st.mode, ctx)
          throw e
        })
      : await openFd(dest, dflags | O_WRONLY, st.mode, ctx)
    const dst = (await fstat(dstFd)) as fs.Stats
    if (dst.dev === st.dev && dst.ino === st.ino) return
    // A regular destination is truncated, given the source's mode, and removed if the copy
    // fails, as libuv does (a directory as the source fails at the first read, EISDIR). A
    // device or FIFO is written to and left as it is: libuv would chmod it and, when its
    // copy then fails (EINVAL into /dev/null), unlink the device node.
    if (dst.isFile()) {
      created = true
      await ftruncate(dstFd, 0)
      await fchmod(dstFd, st.mode & 0o7777).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EPERM') throw e
      })
    }
    const from: BlockIO = direct ? new DirectIO(ctx, srcFd) : new PlainIO(ctx, srcFd)
    const to: BlockIO = direct ? new DirectIO(ctx, dstFd) : new PlainIO(ctx, dstFd)
    await copyData(from, to)
    created = false
  } catch (e) {
    throw copyError(e, src, dest)
  } finally {
    const closing: Promise<void>[] = []
    if (srcFd >= 0) closing.push(closeFd(srcFd))
    if (dstFd >= 0) closing.push(closeFd(dstFd))
    await Promise.allSettled(closing)
    // As libuv: a failed copy does not leave a partial destination behind.
    if (created) await node.unlink(dest).catch(() => {})
  }
}

/** Copies until end of file with DEPTH chunks in flight, each read then written at its offset. */
async function copyData(from: BlockIO, to: BlockIO): Promise<void> {
  let next = 0
  let eof = Infinity
  const worker = async (): Promise<void> => {
    const buf = from.alloc(CHUNK)
    for (;;) {
      const off = next
      if (off >= eof) return
      next += CHUNK
      const n = await from.pread(buf, off)
      if (n < CHUNK) eof = Math.min(eof, off + n)
      if (n > 0) await to.pwrite(buf.subarray(0, n), off)
      if (n < CHUNK) return
    }
  }
  await settleAll(Array.from({ length: DEPTH }, worker))
}

/**
 * The `fs` option of node's streams: functions used instead of node:fs's (callback style,
 * called as node's streams call them; position undefined for "the current position").
 */
export interface StreamFs {
  open?: (path: PathLike, flags: string | number, mode: number | string, cb: (err: Error | null, fd: number) => void) => void
  close?: (fd: number, cb: (err: Error | null) => void) => void
  read?: FsCalls['read']
  write?: FsCalls['write']
  writev?: FsCalls['writev']
  fsync?: (fd: number, cb: (err: Error | null) => void) => void
}

interface StreamSourceOptions extends KaioOptions {
  flags?: string | number
  mode?: fs.Mode
  /** A descriptor (or kaio FileHandle) to use instead of opening `path`. */
  fd?: number | FileHandle | null
  fs?: StreamFs | null
  autoClose?: boolean
  flush?: boolean | null
}

export interface CreateReadStreamOptions extends ReadStreamOptions, StreamSourceOptions {
  /** Flags to open with. Default 'r'. */
  flags?: string | number
}

export interface CreateWriteStreamOptions extends Omit<WriteStreamOptions, 'flush'>, StreamSourceOptions {
  /** Flags to open with. Default 'w'. */
  flags?: string | number
}

function validateFunction(value: unknown, name: string): void {
  if (typeof value !== 'function') throw invalidArgType(name, 'of type function', value)
}

/** A FileHandle over a descriptor opened with (or given to) a stream's `fs` overrides. */
function overriddenHandle(calls: StreamFs, fd: number, ctx: Context): FileHandle {
  return new FileHandle(fd, ctx, false, 'none', false, {
    io: new FsIO(calls as FsCalls, fd, true),
    close: (d) => call<void>((cb) => calls.close!(d, cb)),
    sync: (d) => call<void>((cb) => calls.fsync!(d, cb)),
    owned: false,
  })
}

/**
 * What a stream reads or writes, resolved as node's stream constructors do it: `options.fd`
 * (a descriptor or a FileHandle) instead of the path, `options.fs` instead of node:fs, and
 * node's checks in node's order.
 */
function streamSource(path: unknown, opts: StreamSourceOptions, writing: boolean): { source: Source; opening: Opening } {
  const calls = opts.fs ?? undefined
  const autoClose = opts.autoClose === undefined ? true : opts.autoClose
  const { context, direct = false } = opts
  if (context !== undefined && !(context instanceof Context)) throw invalidArgType('options.context', 'an instance of Context', context)
  const ctx = () => context ?? defaultContext()
  let result: { source: Source; opening: Opening }
  const given = opts.fd
  if (given === null || given === undefined) {
    if (calls) validateFunction(calls.open, 'options.fs.open')
    const p = validatePath(path)
    const flags = opts.flags === undefined ? (writing ? 'w' : 'r') : opts.flags
    const mode = opts.mode === undefined ? 0o666 : opts.mode
    const source = calls
      ? async () => overriddenHandle(calls, await call<number>((cb) => calls.open!(p, flags, mode, cb)), ctx())
      : () => open(p, flags, mode, kaioOptions(opts as Record<string, unknown>))
    result = { source, opening: { path: p, flags, mode } }
  } else if (given instanceof FileHandle) {
    if (calls) throw codedError(Error, 'ERR_METHOD_NOT_IMPLEMENTED', 'The FileHandle with fs method is not implemented')
    result = { source: given, opening: {} }
  } else if (typeof given !== 'number') {
    throw invalidArgType('options.fd', 'of type number or an instance of FileHandle', given)
  } else {
    const fd = validateInt32(given, 'fd', 0)
    validateBoolean(direct, 'options.direct')
    const handle = calls ? async () => overriddenHandle(calls, fd, ctx()) : () => handleFor(fd, ctx(), false, { owned: false })
    result = { source: { fd, handle }, opening: {} }
  }
  const fns: StreamFs = calls ?? {}
  if (calls) {
    if (writing) {
      if (!calls.write && !calls.writev) throw invalidArgType('options.fs.write', 'of type function', calls.write)
      if (calls.write) validateFunction(calls.write, 'options.fs.write')
      if (calls.writev) validateFunction(calls.writev, 'options.fs.writev')
    } else validateFunction(fns.read, 'options.fs.read')
    if (autoClose) validateFunction(fns.close, 'options.fs.close')
    if (writing && opts.flush !== null && opts.flush !== undefined) {
      validateBoolean(opts.flush, 'options.flush')
      validateFunction(fns.fsync, 'options.fs.fsync')
    }
  }
  return result
}

/** A ReadStream over `path` (opened on construction), `options.fd`, or through `options.fs`, as `fs.createReadStream`. */
export function createReadStream(path: PathLike | null | undefined, options?: CreateReadStreamOptions | BufferEncoding): ReadStream {
  const opts = getOptions(options, {}) as CreateReadStreamOptions
  const { source, opening } = streamSource(path, opts, false)
  return new ReadStream(source, opts, opening)
}

/** A WriteStream into `path` (opened on construction), `options.fd`, or through `options.fs`, as `fs.createWriteStream`. */
export function createWriteStream(path: PathLike | null | undefined, options?: CreateWriteStreamOptions | BufferEncoding): WriteStream {
  const opts = getOptions(options, {}) as CreateWriteStreamOptions
  const { source, opening } = streamSource(path, opts, true)
  return new WriteStream(source, opts as WriteStreamOptions, opening)
}
