// Building requests from user arguments: validation and conversion, shared by the Context
// methods and the raw `Operation` batch API.
import type { Req, ReqOptions } from './driver'
import { invalidArgType, outOfRange } from './errors'
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

/** A validated request, its abort signal and the syscall name its errors carry. */
export interface Built {
  req: Req
  signal: AbortSignal | undefined
  syscall: string
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

function views(buffers: unknown, name: string): Uint8Array[] {
  if (!Array.isArray(buffers)) throw invalidArgType(name, 'an instance of Array', buffers)
  if (buffers.length > MAX_IOVECS) throw outOfRange(`${name}.length`, `<= ${MAX_IOVECS}`, buffers.length)
  return buffers.map((b, i) => bytesOf(b, `${name}[${i}]`))
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

/**
 * One request prepared for `ctx.submit([...])` (python-libaio's AIOBlock, linux-aio's
 * AIOOperation). Reusable once its previous submission has completed.
 */
export class Operation {
  /** @internal */
  readonly built: Built
  /** Whether the operation is submitted and not yet completed. */
  inFlight = false

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
