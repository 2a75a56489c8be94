// The public `Context`: caio's API with node:fs's errors. Validates, picks a driver, turns raw
// completions into values or errors.
import { JsDriver, NativeDriver, RES_CANCELLED, toError } from './driver'
import type { Driver, Implementation, Req, ReqOptions } from './driver'
import { AbortError, closedError, errnoError, invalidArgType, outOfRange, unavailableError } from './errors'
import type { SystemError } from './errors'
import { availability, defaultImplementation, IMPLEMENTATIONS } from './select'
import { readBuffer } from './aligned'
import { asBytes, isDetached, MAX_LENGTH, toPayload, validateFd, validateInt, validateOffset } from './validate'

export type { Implementation } from './driver'

/** Options of `new Context()`. */
export interface ContextOptions {
  /** Requests in the kernel (or in the pool/node:fs) at once; more wait in user space. Default 128. */
  maxRequests?: number
  /** Backend to use; default: the process default (`AIO_IMPL`, the file, auto-detection). */
  implementation?: Implementation
  /** Worker threads of the `thread` backend. Default 16. */
  poolSize?: number
}

/** Options every operation takes as its last argument. */
export interface OperationOptions {
  /** Aborting rejects with an AbortError; see the README for what happens in flight. */
  signal?: AbortSignal
  /** RWF_* flags (RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOWAIT, RWF_APPEND). */
  flags?: number
  /** An I/O priority from `ioprio(class, level)`. */
  priority?: number
}

export const DEFAULT_MAX_REQUESTS = 128
export const DEFAULT_POOL_SIZE = 16
const MAX_REQUESTS = 65536
const MAX_IOVECS = 1024
const RWF_ALL = 0x1f

function validateOptions(options: unknown): { signal: AbortSignal | undefined; opts: ReqOptions } {
  if (options === undefined || options === null) return { signal: undefined, opts: NO_OPTS }
  if (typeof options !== 'object') throw invalidArgType('options', 'of type object', options)
  const { signal, flags = 0, priority } = options as OperationOptions
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal)
  validateInt(flags, 'options.flags', 0, 2 ** 31 - 1)
  if ((flags & ~RWF_ALL) !== 0) throw outOfRange('options.flags', 'a combination of RWF_* flags', flags)
  const prio = priority === undefined ? -1 : validateInt(priority, 'options.priority', 0, 0xffff)
  return { signal, opts: flags === 0 && prio === -1 ? NO_OPTS : { flags, priority: prio } }
}

const NO_OPTS: ReqOptions = Object.freeze({ flags: 0, priority: -1 })

function checkView(view: Uint8Array, name: string): Uint8Array {
  if (isDetached(view)) throw invalidArgType(name, 'a view of an attached (not transferred) ArrayBuffer', view)
  if (view.byteLength > MAX_LENGTH) throw outOfRange(`${name}.byteLength`, `<= ${MAX_LENGTH}`, view.byteLength)
  return view
}

function validateViews(buffers: unknown, name: string): Uint8Array[] {
  if (!Array.isArray(buffers)) throw invalidArgType(name, 'an instance of Array', buffers)
  if (buffers.length > MAX_IOVECS) throw outOfRange(`${name}.length`, `<= ${MAX_IOVECS}`, buffers.length)
  return buffers.map((b, i) => checkView(asBytes(b, `${name}[${i}]`), `${name}[${i}]`))
}

function makeDriver(impl: Implementation, maxRequests: number, poolSize: number): Driver {
  if (impl === 'js') return new JsDriver(maxRequests)
  try {
    return new NativeDriver(impl, impl === 'linux' ? maxRequests : poolSize)
  } catch (e) {
    const m = e instanceof Error ? /^(\w+):(\d+)$/.exec(e.message) : null
    if (m) throw errnoError(Number(m[2]), m[1]!)
    throw e
  }
}

/**
 * An asynchronous I/O context: kernel AIO (`linux`), a worker pool (`thread`) or node:fs (`js`).
 * Every operation resolves like caio's and rejects like node:fs.
 */
export class Context {
  /** The backend serving this context. */
  readonly implementation: Implementation
  /** Requests handed to the backend at once; more wait in user space. */
  readonly maxRequests: number
  #driver: Driver
  #closed = false
  #closing: Promise<void> | null = null

  constructor(options: ContextOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options)
    const maxRequests = options.maxRequests ?? DEFAULT_MAX_REQUESTS
    validateInt(maxRequests, 'options.maxRequests', 1, MAX_REQUESTS)
    const poolSize = options.poolSize ?? DEFAULT_POOL_SIZE
    validateInt(poolSize, 'options.poolSize', 1, 1024)
    const explicit = options.implementation
    if (explicit !== undefined && !IMPLEMENTATIONS.includes(explicit)) {
      throw codedInvalid(explicit)
    }
    let impl = explicit ?? defaultImplementation()
    const status = availability()[impl]
    if (!status.available) throw unavailableError(impl, status.reason)
    let driver: Driver
    try {
      driver = makeDriver(impl, maxRequests, poolSize)
    } catch (e) {
      // The system-wide aio-max-nr budget is spent: the default path degrades to threads.
      if (explicit === undefined && impl === 'linux' && (e as SystemError).code === 'EAGAIN') {
        process.emitWarning(`io_setup failed with EAGAIN (fs.aio-max-nr exhausted); using the thread backend`, {
          code: 'KAIO_FALLBACK',
          type: 'KaioWarning',
        })
        impl = 'thread'
        driver = makeDriver(impl, maxRequests, poolSize)
      } else throw e
    }
    this.implementation = impl
    this.maxRequests = maxRequests
    this.#driver = driver
  }

  /** Runs one request; `map` turns a non-negative result into the resolved value. */
  #run<T>(req: Req, signal: AbortSignal | undefined, syscall: string, map: (res: number, res2: number) => T): Promise<T> {
    if (this.#closed) return Promise.reject(closedError())
    if (signal?.aborted) return Promise.reject(new AbortError(undefined, { cause: signal.reason }))
    return new Promise<T>((resolve, reject) => {
      if (signal === undefined) {
        this.#driver.start(req, (res, res2) => (res >= 0 ? resolve(map(res, res2)) : reject(toError(res, syscall))))
        return
      }
      let done = false
      const onAbort = (): void => {
        if (done) return
        done = true
        // A queued request is withdrawn; one in flight runs on (its buffer stays pinned by
        // the driver) and its late completion is discarded below.
        this.#driver.cancel(id)
        reject(new AbortError(undefined, { cause: signal.reason }))
      }
      const id = this.#driver.start(req, (res, res2) => {
        signal.removeEventListener('abort', onAbort)
        if (done || res === RES_CANCELLED) return
        done = true
        if (res >= 0) resolve(map(res, res2))
        else reject(toError(res, syscall))
      })
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /**
   * Reads up to `nbytes` at `offset`; resolves a Buffer of the bytes actually read (short at
   * EOF, empty past it). The buffer is page aligned, so O_DIRECT descriptors work.
   */
  read(nbytes: number, fd: number, offset: number | bigint, options?: OperationOptions): Promise<Buffer> {
    try {
      validateInt(nbytes, 'nbytes', 0, MAX_LENGTH)
      validateFd(fd)
      const off = validateOffset(offset)
      const { signal, opts } = validateOptions(options)
      const buf = readBuffer(nbytes)
      return this.#run({ op: 'read', fd, offset: off, buf, opts }, signal, 'read', (n) => buf.subarray(0, n))
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Reads into `buffer` (any ArrayBufferView, zero-copy) at `offset`; resolves bytes read. */
  readInto(buffer: ArrayBufferView, fd: number, offset: number | bigint, options?: OperationOptions): Promise<number> {
    try {
      const buf = checkView(asBytes(buffer, 'buffer'), 'buffer')
      validateFd(fd)
      const off = validateOffset(offset)
      const { signal, opts } = validateOptions(options)
      return this.#run({ op: 'read', fd, offset: off, buf, opts }, signal, 'read', (n) => n)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Writes `data` (a string as UTF-8, or any ArrayBufferView) at `offset`; resolves bytes written (may be short). */
  write(data: string | ArrayBufferView, fd: number, offset: number | bigint, options?: OperationOptions): Promise<number> {
    try {
      const buf = checkView(toPayload(data), 'data')
      validateFd(fd)
      const off = validateOffset(offset)
      const { signal, opts } = validateOptions(options)
      return this.#run({ op: 'write', fd, offset: off, buf, opts }, signal, 'write', (n) => n)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Vectored read into `buffers` (at most 1024) at `offset`; resolves the total bytes read. */
  readv(buffers: readonly ArrayBufferView[], fd: number, offset: number | bigint, options?: OperationOptions): Promise<number> {
    try {
      const bufs = validateViews(buffers, 'buffers')
      validateFd(fd)
      const off = validateOffset(offset)
      const { signal, opts } = validateOptions(options)
      return this.#run({ op: 'readv', fd, offset: off, bufs, opts }, signal, 'read', (n) => n)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Vectored write of `buffers` (at most 1024) at `offset`; resolves the total bytes written. */
  writev(buffers: readonly ArrayBufferView[], fd: number, offset: number | bigint, options?: OperationOptions): Promise<number> {
    try {
      const bufs = validateViews(buffers, 'buffers')
      validateFd(fd)
      const off = validateOffset(offset)
      const { signal, opts } = validateOptions(options)
      return this.#run({ op: 'writev', fd, offset: off, bufs, opts }, signal, 'write', (n) => n)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** `fsync(2)`: flushes data and metadata. */
  fsync(fd: number, options?: OperationOptions): Promise<void> {
    return this.#sync(fd, options, 'fsync')
  }

  /** `fdatasync(2)`: flushes data (and the metadata needed to read it). */
  fdsync(fd: number, options?: OperationOptions): Promise<void> {
    return this.#sync(fd, options, 'fdatasync')
  }

  #sync(fd: number, options: OperationOptions | undefined, op: 'fsync' | 'fdatasync'): Promise<void> {
    try {
      validateFd(fd)
      const { signal, opts } = validateOptions(options)
      if (opts.flags !== 0) throw outOfRange('options.flags', '0 for fsync and fdsync', opts.flags)
      return this.#run({ op, fd, opts }, signal, op, () => undefined)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Waits until `fd` is ready for `events` (POLL* bits); resolves the ready mask. */
  poll(fd: number, events: number, options?: OperationOptions): Promise<number> {
    try {
      validateFd(fd)
      validateInt(events, 'events', 0, 0xffff)
      const { signal, opts } = validateOptions(options)
      if (opts.flags !== 0) throw outOfRange('options.flags', '0 for poll', opts.flags)
      return this.#run({ op: 'poll', fd, events, opts }, signal, 'poll', (n) => n)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /**
   * Closes the context: requests not yet handed to the backend reject with ERR_AIO_CLOSED,
   * running ones complete, then the kernel context and threads are freed. Idempotent.
   */
  close(): Promise<void> {
    this.#closed = true
    this.#closing ??= this.#driver.close()
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

function codedInvalid(value: unknown): TypeError & { code: string } {
  const e = new TypeError(
    `The property 'options.implementation' must be one of: ${IMPLEMENTATIONS.map((i) => `'${i}'`).join(', ')}. Received ${String(value)}`,
  ) as TypeError & { code: string }
  e.code = 'ERR_INVALID_ARG_VALUE'
  return e
}
