// Building requests from user arguments: validation and conversion, shared by the Context
// methods and the raw `Operation` batch API.
import { fileURLToPath } from 'node:url'

import { POSIX_FADV_NOREUSE, POSIX_FADV_NORMAL } from './constants'
import type { PathOp, PathReq, Req, ReqOptions } from './driver'
import { codedError, invalidArgType, invalidArgValue, outOfRange } from './errors'
import { AT_EMPTY_PATH, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, STATX_SIZE } from './statx'
import { asBytes, isDetached, MAX_LENGTH, toPayload, validateFd, validateInt, validateOffset } from './validate'

/** Options every operation takes as its last argument. */
export interface OperationOptions {
  /** Aborting rejects with an AbortError; see the README for what happens in flight. */
  signal?: AbortSignal
  /** RWF_* flags (RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOWAIT, RWF_APPEND). */
  flags?: number
  /** An I/O priority from `ioprio(class, level)`. */
  priority?: number
}

/** A validated request, its abort signal, and the syscall name (and paths) its errors carry. */
export interface Built {
  req: Req
  signal: AbortSignal | undefined
  syscall: string
  path?: string
  dest?: string
}

const MAX_IOVECS = 1024
const RWF_ALL = 0x1f
const NO_OPTS: ReqOptions = Object.freeze({ flags: 0, priority: -1 })

function parseOptions(options: unknown): { signal: AbortSignal | undefined; opts: ReqOptions } {
  if (options === undefined || options === null) return { signal: undefined, opts: NO_OPTS }
  if (typeof options !== 'object') throw invalidArgType('options', 'of type object', options)
  const { signal, flags = 0, priority } = options as OperationOptions
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal)
  validateInt(flags, 'options.flags', 0, 2 ** 31 - 1)
  if ((flags & ~RWF_ALL) !== 0) throw outOfRange('options.flags', 'a combination of RWF_* flags', flags)
  const prio = priority === undefined ? -1 : validateInt(priority, 'options.priority', 0, 0xffff)
  return { signal, opts: flags === 0 && prio === -1 ? NO_OPTS : { flags, priority: prio } }
}

function checkView(view: Uint8Array, name: string): Uint8Array {
  if (isDetached(view)) throw invalidArgType(name, 'a view of an attached (not transferred) ArrayBuffer', view)
  if (view.byteLength > MAX_LENGTH) throw outOfRange(`${name}.byteLength`, `<= ${MAX_LENGTH}`, view.byteLength)
  return view
}

/** Refuses a view whose buffer was detached (before anything builds a view over it). */
function attached<T>(view: T, name: string): T {
  if (ArrayBuffer.isView(view) && isDetached(view)) throw invalidArgType(name, 'a view of an attached (not transferred) ArrayBuffer', view)
  return view
}

/** A view argument as bytes, refusing detached buffers and oversized views. */
export function bytesOf(view: unknown, name: string): Uint8Array {
  return checkView(asBytes(attached(view, name), name), name)
}

/**
 * A vector of views, each checked as `bytesOf` checks one. `Array.from` visits holes (as
 * undefined), where `map` would skip them and hand a sparse array to the backend: a hole is
 * refused like any other non-view element, on every backend.
 */
function views(buffers: unknown, name: string): Uint8Array[] {
  if (!Array.isArray(buffers)) throw invalidArgType(name, 'an instance of Array', buffers)
  if (buffers.length > MAX_IOVECS) throw outOfRange(`${name}.length`, `<= ${MAX_IOVECS}`, buffers.length)
  return Array.from(buffers, (b: unknown, i) => bytesOf(b, `${name}[${i}]`))
}

export function buildRead(buffer: unknown, fd: unknown, offset: unknown, options: unknown): Built {
  const buf = bytesOf(buffer, 'buffer')
  const f = validateFd(fd)
  const off = validateOffset(offset)
  const { signal, opts } = parseOptions(options)
  return { req: { op: 'read', fd: f, offset: off, buf, opts }, signal, syscall: 'read' }
}

export function buildWrite(data: unknown, fd: unknown, offset: unknown, options: unknown): Built {
  const buf = checkView(toPayload(attached(data, 'data')), 'data')
  const f = validateFd(fd)
  const off = validateOffset(offset)
  const { signal, opts } = parseOptions(options)
  return { req: { op: 'write', fd: f, offset: off, buf, opts }, signal, syscall: 'write' }
}

export function buildVectored(op: 'readv' | 'writev', buffers: unknown, fd: unknown, offset: unknown, options: unknown): Built {
  const bufs = views(buffers, 'buffers')
  const f = validateFd(fd)
  const off = validateOffset(offset)
  const { signal, opts } = parseOptions(options)
  return { req: { op, fd: f, offset: off, bufs, opts }, signal, syscall: op === 'readv' ? 'read' : 'write' }
}

export function buildSync(op: 'fsync' | 'fdatasync', fd: unknown, options: unknown): Built {
  const f = validateFd(fd)
  const { signal, opts } = parseOptions(options)
  if (opts.flags !== 0) throw outOfRange('options.flags', '0 for fsync and fdsync', opts.flags)
  return { req: { op, fd: f, opts }, signal, syscall: op }
}

export function buildPoll(fd: unknown, events: unknown, options: unknown): Built {
  const f = validateFd(fd)
  const ev = validateInt(events, 'events', 0, 0xffff)
  const { signal, opts } = parseOptions(options)
  if (opts.flags !== 0) throw outOfRange('options.flags', '0 for poll', opts.flags)
  return { req: { op: 'poll', fd: f, events: ev, opts }, signal, syscall: 'poll' }
}

/** The raw outcome of one operation of a batch, as the kernel reported it. */
export interface RawResult {
  /** Bytes transferred (or the ready mask for poll), or a negative errno. */
  res: number
  res2: number
}

/**
 * One request prepared for `ctx.submit([...])` (python-libaio's AIOBlock, linux-aio's
 * AIOOperation). Reusable once its previous submission has completed.
 */
export class Operation {
  /** @internal */
  readonly built: Built
  /** Whether the operation is submitted and not yet completed. */
  inFlight = false
  /**
   * What the kernel (or worker, or node:fs) reported for the last submission, once it has
   * completed; undefined while in flight and when it never ran (withdrawn by an abort, refused
   * after close, a poll cancelled by close). It tells what an aborted operation did (an
   * aborted write may have landed) and holds every result of a batch that rejected.
   */
  result: RawResult | undefined = undefined

  private constructor(built: Built) {
    this.built = built
  }

  /** A read into `buffer` at `offset` (IOCB_CMD_PREAD). */
  static read(buffer: ArrayBufferView, fd: number, offset: number | bigint, options?: OperationOptions): Operation {
    return new Operation(buildRead(buffer, fd, offset, options))
  }

  /** A write of `buffer` (or a string, as UTF-8) at `offset` (IOCB_CMD_PWRITE). */
  static write(buffer: string | ArrayBufferView, fd: number, offset: number | bigint, options?: OperationOptions): Operation {
    return new Operation(buildWrite(buffer, fd, offset, options))
  }

  /** A vectored read (IOCB_CMD_PREADV). */
  static readv(buffers: readonly ArrayBufferView[], fd: number, offset: number | bigint, options?: OperationOptions): Operation {
    return new Operation(buildVectored('readv', buffers, fd, offset, options))
  }

  /** A vectored write (IOCB_CMD_PWRITEV). */
  static writev(buffers: readonly ArrayBufferView[], fd: number, offset: number | bigint, options?: OperationOptions): Operation {
    return new Operation(buildVectored('writev', buffers, fd, offset, options))
  }

  /** IOCB_CMD_FSYNC. */
  static fsync(fd: number, options?: OperationOptions): Operation {
    return new Operation(buildSync('fsync', fd, options))
  }

  /** IOCB_CMD_FDSYNC. */
  static fdsync(fd: number, options?: OperationOptions): Operation {
    return new Operation(buildSync('fdatasync', fd, options))
  }

  /** IOCB_CMD_POLL for `events` (POLL* bits). */
  static poll(fd: number, events: number, options?: OperationOptions): Operation {
    return new Operation(buildPoll(fd, events, options))
  }
}

/**
 * Refuses a batch `submit` cannot take: not an array of Operations (ERR_INVALID_ARG_TYPE), or
 * an operation still in flight or listed twice (ERR_AIO_IN_FLIGHT), before any is submitted.
 */
export function validateBatch(operations: unknown): asserts operations is readonly Operation[] {
  if (!Array.isArray(operations)) throw invalidArgType('operations', 'an instance of Array', operations)
  for (let i = 0; i < operations.length; i++) {
    const op: unknown = operations[i]
    if (!(op instanceof Operation)) throw invalidArgType(`operations[${i}]`, 'an instance of Operation', op)
  }
  if (new Set(operations).size !== operations.length || operations.some((op: Operation) => op.inFlight)) {
    throw codedError(Error, 'ERR_AIO_IN_FLIGHT', 'An operation of the batch is already in flight')
  }
}

/** A path argument: a string or a `file:` URL, without NUL bytes (as node:fs checks). */
function validatePath(value: unknown, name: string): string {
  const path = value instanceof URL ? fileURLToPath(value) : value
  if (typeof path !== 'string') throw invalidArgType(name, 'of type string or an instance of URL', value)
  if (path.includes('\u0000')) throw invalidArgValue(name, path, 'must be a string or URL without null bytes')
  return path
}

const INT32_MIN = -(2 ** 31)
const INT32_MAX = 2 ** 31 - 1
const UINT32_MAX = 2 ** 32 - 1

function pathReq(op: PathOp, fields: Partial<Omit<PathReq, 'op' | 'opts'>>): PathReq {
  return { op, fd: -1, path: '', path2: undefined, a: 0, b: 0, len: 0, start: 0, out: undefined, ...fields, opts: NO_OPTS }
}

export function buildOpen(path: unknown, flags: unknown, mode: unknown): Built {
  const p = validatePath(path, 'path')
  const a = validateInt(flags, 'flags', INT32_MIN, INT32_MAX)
  const b = validateInt(mode, 'mode', 0, UINT32_MAX)
  return { req: pathReq('open', { path: p, a, b }), signal: undefined, syscall: 'open', path: p }
}

export function buildClose(fd: unknown): Built {
  return { req: pathReq('close', { fd: validateFd(fd) }), signal: undefined, syscall: 'close' }
}

export function buildFtruncate(fd: unknown, len: unknown): Built {
  const f = validateFd(fd)
  const n = validateInt(len, 'len', 0, Number.MAX_SAFE_INTEGER)
  return { req: pathReq('ftruncate', { fd: f, len: n }), signal: undefined, syscall: 'ftruncate' }
}

/** fallocate(2): `mode` 0 or FALLOC_FL_* bits, `offset` >= 0, `len` >= 1 (the kernel refuses 0). */
export function buildFallocate(fd: unknown, mode: unknown, offset: unknown, len: unknown): Built {
  const f = validateFd(fd)
  const a = validateInt(mode, 'mode', 0, INT32_MAX)
  const start = validateInt(offset, 'offset', 0, Number.MAX_SAFE_INTEGER)
  const n = validateInt(len, 'len', 1, Number.MAX_SAFE_INTEGER)
  return { req: pathReq('fallocate', { fd: f, a, start, len: n }), signal: undefined, syscall: 'fallocate' }
}

/** posix_fadvise(2): `offset` >= 0, `len` >= 0 (0: to the end), `advice` a POSIX_FADV_* value. */
export function buildFadvise(fd: unknown, offset: unknown, len: unknown, advice: unknown): Built {
  const f = validateFd(fd)
  const start = validateInt(offset, 'offset', 0, Number.MAX_SAFE_INTEGER)
  const n = validateInt(len, 'len', 0, Number.MAX_SAFE_INTEGER)
  const a = validateInt(advice, 'advice', POSIX_FADV_NORMAL, POSIX_FADV_NOREUSE)
  return { req: pathReq('fadvise', { fd: f, a, start, len: n }), signal: undefined, syscall: 'fadvise' }
}

/**
 * statx of `path` (`fd` undefined; flags 0 or AT_SYMLINK_NOFOLLOW), or of descriptor `fd`
 * (AT_EMPTY_PATH, path ''), into `out`: at least STATX_SIZE bytes at an 8-byte aligned
 * offset, since the kernel writes a struct there.
 */
export function buildStatx(fd: unknown, path: unknown, flags: unknown, mask: unknown, out: unknown): Built {
  const a = validateInt(flags, 'flags', 0, INT32_MAX)
  const fstat = fd !== undefined
  if (fstat !== ((a & AT_EMPTY_PATH) !== 0)) throw outOfRange('flags', fstat ? 'AT_EMPTY_PATH for a descriptor' : 'without AT_EMPTY_PATH (use fstatx for a descriptor)', a)
  const f = fstat ? validateFd(fd) : -1
  const p = fstat ? '' : validatePath(path, 'path')
  const b = validateInt(mask, 'mask', 0, UINT32_MAX)
  const buf = bytesOf(out, 'out')
  if (buf.byteLength < STATX_SIZE || buf.byteOffset % 8 !== 0) {
    throw invalidArgValue('out', buf, `must be at least ${STATX_SIZE} bytes at an 8-byte aligned offset`)
  }
  const syscall = fstat ? 'fstat' : a & AT_SYMLINK_NOFOLLOW ? 'lstat' : 'stat'
  return { req: pathReq('statx', { fd: f, path: p, a, b, out: buf }), signal: undefined, syscall, path: fstat ? undefined : p }
}

export function buildUnlink(path: unknown, flags: unknown): Built {
  const p = validatePath(path, 'path')
  const a = validateInt(flags, 'flags', 0, INT32_MAX)
  if ((a & ~AT_REMOVEDIR) !== 0) throw outOfRange('flags', '0 or AT_REMOVEDIR', a)
  return { req: pathReq('unlink', { path: p, a }), signal: undefined, syscall: a ? 'rmdir' : 'unlink', path: p }
}

export function buildMkdir(path: unknown, mode: unknown): Built {
  const p = validatePath(path, 'path')
  const b = validateInt(mode, 'mode', 0, UINT32_MAX)
  return { req: pathReq('mkdir', { path: p, b }), signal: undefined, syscall: 'mkdir', path: p }
}

/**
 * A whole-file write (open `path` with `flags` and `mode`, write all of `data`, fsync when
 * `sync`, close) as one request on a worker; `data` travels in `out`, `sync` in `len`.
 */
export function buildWriteFile(path: unknown, data: unknown, flags: unknown, mode: unknown, sync: unknown, signal?: AbortSignal): Built {
  const p = validatePath(path, 'path')
  const buf = checkView(toPayload(attached(data, 'data')), 'data')
  const a = validateInt(flags, 'flags', INT32_MIN, INT32_MAX)
  const b = validateInt(mode, 'mode', 0, UINT32_MAX)
  if (typeof sync !== 'boolean') throw invalidArgType('sync', 'of type boolean', sync)
  return { req: pathReq('writefile', { path: p, a, b, out: buf, len: sync ? 1 : 0 }), signal, syscall: 'open', path: p }
}

/** A whole-file copy (libuv's copyfile on a worker); `mode`: node's COPYFILE_* flags, in `a`. */
export function buildCopyFile(src: unknown, dest: unknown, mode: unknown): Built {
  const p = validatePath(src, 'src')
  const d = validatePath(dest, 'dest')
  const a = validateInt(mode, 'mode', 0, 7)
  return { req: pathReq('copyfile', { path: p, path2: d, a }), signal: undefined, syscall: 'copyfile', path: p, dest: d }
}

/** rename(from, to), link(from, to), symlink(target, path): errors name both, as node:fs's. */
export function buildTwoPaths(op: 'rename' | 'link' | 'symlink', first: unknown, second: unknown): Built {
  const [n1, n2] = op === 'symlink' ? ['target', 'path'] : op === 'link' ? ['existingPath', 'newPath'] : ['oldPath', 'newPath']
  const p = validatePath(first, n1)
  const d = validatePath(second, n2)
  return { req: pathReq(op, { path: p, path2: d }), signal: undefined, syscall: op, path: p, dest: d }
}
