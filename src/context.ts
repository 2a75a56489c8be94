// The public `Context`: caio's API with node:fs's errors. Validates, picks a driver, turns raw
// completions into values or errors.
import { constants as fsConstants } from 'node:fs'

import { JsDriver, NativeDriver, RES_CANCELLED, RES_CLOSED, toError, WRITE_FILE_STEPS } from './driver'
import type { CompletionPath, Driver, Implementation, Settle } from './driver'
import { AbortError, closedError, codedError, errnoError, invalidArgType, unavailableError } from './errors'
import type { SystemError } from './errors'
import { availability, available, defaultImplementation, IMPLEMENTATIONS } from './select'
import { readBuffer } from './aligned'
import {
  buildClose,
  buildCopyFile,
  buildFadvise,
  buildFallocate,
  buildFtruncate,
  buildMkdir,
  buildOpen,
  buildPoll,
  buildRead,
  buildStatx,
  buildSync,
  buildTwoPaths,
  buildUnlink,
  buildVectored,
  buildWrite,
  buildWriteFile,
  validateBatch,
} from './ops'
import type { Built, Operation, OperationOptions, RawResult } from './ops'
import { AT_EMPTY_PATH } from './statx'
import { MAX_LENGTH, validateInt } from './validate'

export type { CompletionPath, Implementation } from './driver'
export type { OperationOptions, RawResult } from './ops'

/** Options of `new Context()`. */
export interface ContextOptions {
  /** Requests in the kernel (or in the pool/node:fs) at once; more wait in user space. Default 128. */
  maxRequests?: number
  /** Backend to use; default: the process default (`AIO_IMPL`, the file, auto-detection). */
  implementation?: Implementation
  /** Worker threads of the `thread` backend. Default 16. */
  poolSize?: number
  /**
   * Busy polling, in microseconds (0 to 1000000): while requests are outstanding, the event
   * loop keeps turning without sleeping for this long after each submit or completion, so a
   * completion is seen at once instead of after a wake-up. Trades CPU (the JS thread runs at
   * 100% meanwhile) for latency at low queue depth. `uring`, `linux` and `thread` only (the `js`
   * backend ignores it). Default: `KAIO_BUSY_POLL` from the environment, else 0 (off).
   */
  busyPoll?: number
  /**
   * `uring` only: a kernel thread polls the submission queue (`IORING_SETUP_SQPOLL`), idling
   * after this many milliseconds without work. Saves the submit system call and burns a core
   * while busy; off (0) unless asked for. Credentials are re-checked at every submit, so a
   * `process.setuid()` is honoured (CVE-2024-22017).
   */
  sqpoll?: number
}

export const DEFAULT_MAX_REQUESTS = 128
export const DEFAULT_POOL_SIZE = 16
const MAX_REQUESTS = 65536
const MAX_BUSY_POLL = 1_000_000

let envBusyPoll: number | undefined

/** `KAIO_BUSY_POLL` (microseconds), read once; a bad value is warned about and taken as 0. */
function defaultBusyPoll(): number {
  if (envBusyPoll !== undefined) return envBusyPoll
  const text = (process.env.KAIO_BUSY_POLL ?? '').trim()
  if (text === '') return (envBusyPoll = 0)
  const v = Number(text)
  if (/^\d+$/.test(text) && v <= MAX_BUSY_POLL) return (envBusyPoll = v)
  process.emitWarning(`KAIO_BUSY_POLL=${text} is not a whole number of microseconds from 0 to ${MAX_BUSY_POLL}; busy polling stays off.`, {
    code: 'KAIO_BUSY_POLL',
    type: 'KaioWarning',
  })
  return (envBusyPoll = 0)
}

function makeDriver(impl: Implementation, maxRequests: number, poolSize: number, busyPoll: number, sqpoll: number): Driver {
  if (impl === 'js') return new JsDriver(maxRequests)
  try {
    return new NativeDriver(impl, impl === 'thread' ? Math.min(poolSize, maxRequests) : maxRequests, busyPoll, sqpoll)
  } catch (e) {
    // The binding throws system errors with `errno` and `syscall`; rebuild them here so the
    // message reads as node:fs's does ("EAGAIN: resource temporarily unavailable, io_setup").
    const se = e as Partial<SystemError>
    if (typeof se.errno === 'number' && typeof se.syscall === 'string') throw errnoError(se.errno, se.syscall)
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
  /** Busy polling in microseconds (0: off; always 0 on the `js` backend). */
  readonly busyPoll: number
  /**
   * How this context's completions reach JavaScript: `'uv_poll'` (Node's event loop watches
   * the completion eventfd), `'threadsafe_function'` (hosts whose libuv cannot be used, such
   * as Bun) or `'node:fs'` (the js backend).
   */
  readonly completionPath: CompletionPath
  /** SQPOLL idle time in milliseconds (`uring` only; 0: off). */
  readonly sqpoll: number
  /** The io_uring setup flags the kernel accepted, e.g. `SINGLE_ISSUER|DEFER_TASKRUN|...` ('' on other backends). */
  readonly setupFlags: string
  #driver: Driver
  #closed = false
  #closing: Promise<void> | null = null

  constructor(options: ContextOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options)
    const maxRequests = options.maxRequests ?? DEFAULT_MAX_REQUESTS
    validateInt(maxRequests, 'options.maxRequests', 1, MAX_REQUESTS)
    const poolSize = options.poolSize ?? DEFAULT_POOL_SIZE
    validateInt(poolSize, 'options.poolSize', 1, 1024)
    const busyPoll = options.busyPoll ?? defaultBusyPoll()
    validateInt(busyPoll, 'options.busyPoll', 0, MAX_BUSY_POLL)
    const sqpoll = options.sqpoll ?? 0
    validateInt(sqpoll, 'options.sqpoll', 0, 60_000)
    const explicit = options.implementation
    if (explicit !== undefined && !IMPLEMENTATIONS.includes(explicit)) {
      throw codedInvalid(explicit)
    }
    let impl = explicit ?? defaultImplementation()
    const status = availability()[impl]
    if (!status.available) throw unavailableError(impl, status.reason)
    if (sqpoll !== 0 && impl !== 'uring') {
      throw codedError(TypeError, 'ERR_INVALID_ARG_VALUE', `The property 'options.sqpoll' is only valid with the 'uring' backend. Received ${sqpoll}`)
    }
    let driver: Driver | undefined
    // The default path never fails on a resource the next backend does not need: a ring the
    // kernel refuses now (memlock, io_uring_disabled set after the probe) or a spent
    // fs.aio-max-nr budget degrade, with a warning, to the next available backend.
    for (;;) {
      try {
        driver = makeDriver(impl, maxRequests, poolSize, busyPoll, sqpoll)
        break
      } catch (e) {
        const code = (e as SystemError).code
        const next = available()[available().indexOf(impl) + 1]
        if (explicit !== undefined || next === undefined || typeof (e as SystemError).syscall !== 'string') throw e
        process.emitWarning(`${(e as SystemError).syscall} failed with ${code}; using the ${next} backend`, {
          code: 'KAIO_FALLBACK',
          type: 'KaioWarning',
        })
        impl = next
      }
    }
    this.implementation = impl
    this.maxRequests = maxRequests
    this.busyPoll = impl === 'js' ? 0 : busyPoll
    this.sqpoll = sqpoll
    this.setupFlags = driver instanceof NativeDriver ? driver.setupFlags : ''
    this.completionPath = driver.completionPath
    this.#driver = driver
  }

  /**
   * Runs one request. `map` turns a result into the resolved value; errors (negative results)
   * reject unless `raw`, where only kaio's own outcomes (closed, withdrawn) reject. `onDone`
   * gets the completion as the backend reported it, RES_CANCELLED when the request never ran;
   * after an abort in flight it comes later than the rejection, when the backend is done.
   */
  #run<T>(built: Built, map: (res: number, res2: number) => T, raw = false, onDone?: Settle): Promise<T> {
    const { signal, syscall, path, dest } = built
    if (this.#closed || signal?.aborted) {
      onDone?.(RES_CANCELLED, 0)
      return Promise.reject(this.#closed ? closedError() : new AbortError(undefined, { cause: signal!.reason }))
    }
    // No closure below captures `built` (or its buffers): while the request is in flight its
    // memory is held by the binding (or by node:fs, on js), not by these callbacks.
    let resolve!: (value: T) => void
    let reject!: (reason: unknown) => void
    const promise = new Promise<T>((res, rej) => {
      resolve = res
      reject = rej
    })
    let done = false
    const onAbort = (): void => {
      if (done) return
      done = true
      // A queued request is withdrawn; one in flight runs on (its buffer stays pinned by the
      // binding) and its late completion is discarded below.
      this.#driver.cancel(id)
      reject(new AbortError(undefined, { cause: signal!.reason }))
    }
    let id: number
    try {
      id = this.#driver.start(built.req, (res, res2, error) => {
        onDone?.(res, res2, error)
        signal?.removeEventListener('abort', onAbort)
        if (done || res === RES_CANCELLED) return
        done = true
        if (error) reject(error)
        else if (res >= 0 || (raw && res !== RES_CLOSED)) resolve(map(res, res2))
        else reject(toError(res, syscall, path, dest))
      })
    } catch (e) {
      onDone?.(RES_CANCELLED, 0)
      return Promise.reject(e)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    return promise
  }

  /** Calls `build` and runs the result, turning a validation throw into a rejection. */
  #call<T>(build: () => Built, map: (res: number, res2: number) => T): Promise<T> {
    try {
      return this.#run(build(), map)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /**
   * Reads up to `nbytes` at `offset`; resolves a Buffer of the bytes actually read (short at
   * EOF, empty past it). The buffer is page aligned, so O_DIRECT descriptors work.
   */
  read(nbytes: number, fd: number, offset: number | bigint, options?: OperationOptions): Promise<Buffer> {
    let buf: Buffer
    return this.#call(
      () => {
        validateInt(nbytes, 'nbytes', 0, MAX_LENGTH)
        buf = readBuffer(nbytes)
        return buildRead(buf, fd, offset, options)
      },
      (n) => buf.subarray(0, n),
    )
  }

  /** Reads into `buffer` (any ArrayBufferView, zero-copy) at `offset`; resolves bytes read. */
  readInto(buffer: ArrayBufferView, fd: number, offset: number | bigint, options?: OperationOptions): Promise<number> {
    return this.#call(() => buildRead(buffer, fd, offset, options), count)
  }

  /** Writes `data` (a string as UTF-8, or any ArrayBufferView) at `offset`; resolves bytes written (may be short). */
  write(data: string | ArrayBufferView, fd: number, offset: number | bigint, options?: OperationOptions): Promise<number> {
    return this.#call(() => buildWrite(data, fd, offset, options), count)
  }

  /** Vectored read into `buffers` (at most 1024) at `offset`; resolves the total bytes read. */
  readv(buffers: readonly ArrayBufferView[], fd: number, offset: number | bigint, options?: OperationOptions): Promise<number> {
    return this.#call(() => buildVectored('readv', buffers, fd, offset, options), count)
  }

  /** Vectored write of `buffers` (at most 1024) at `offset`; resolves the total bytes written. */
  writev(buffers: readonly ArrayBufferView[], fd: number, offset: number | bigint, options?: OperationOptions): Promise<number> {
    return this.#call(() => buildVectored('writev', buffers, fd, offset, options), count)
  }

  /** `fsync(2)`: flushes data and metadata. */
  fsync(fd: number, options?: OperationOptions): Promise<void> {
    return this.#call(() => buildSync('fsync', fd, options), nothing)
  }

  /** `fdatasync(2)`: flushes data (and the metadata needed to read it). */
  fdsync(fd: number, options?: OperationOptions): Promise<void> {
    return this.#call(() => buildSync('fdatasync', fd, options), nothing)
  }

  /** Waits until `fd` is ready for `events` (POLL* bits); resolves the ready mask. */
  poll(fd: number, events: number, options?: OperationOptions): Promise<number> {
    return this.#call(() => buildPoll(fd, events, options), count)
  }

  // Path (metadata) ops: io_uring opcodes on `uring` (its pool where the kernel lacks one),
  // the worker pool on `thread`, the context's own pool on `linux` (kernel AIO has no such
  // opcodes), node:fs on `js`. Paths are relative to the current directory. Errors carry
  // `path` (and `dest`) as node:fs's do.

  /** `open(2)` (always O_CLOEXEC, as libuv); resolves the new descriptor. */
  openat(path: string, flags: number, mode: number): Promise<number> {
    return this.#call(() => buildOpen(path, flags, mode), count)
  }

  /** `close(2)` of `fd`. */
  closeFd(fd: number): Promise<void> {
    return this.#call(() => buildClose(fd), nothing)
  }

  /**
   * `statx(2)` of `path` (`flags` 0 as stat, AT_SYMLINK_NOFOLLOW as lstat) for the `mask`
   * fields (STATX_BASIC_STATS | STATX_BTIME for everything fs.Stats has) into `out`: at least
   * STATX_SIZE bytes at an 8-byte aligned offset, left alone until the promise settles (the
   * kernel writes it meanwhile). Read it with `decodeStatx(out)`.
   */
  statx(path: string, flags: number, mask: number, out: Uint8Array): Promise<void> {
    return this.#call(() => buildStatx(undefined, path, flags, mask, out), nothing)
  }

  /** `statx(2)` of descriptor `fd` (AT_EMPTY_PATH: fstat) into `out`, as `statx`. */
  fstatx(fd: number, mask: number, out: Uint8Array): Promise<void> {
    return this.#call(() => buildStatx(fd, '', AT_EMPTY_PATH, mask, out), nothing)
  }

  /** `unlinkat(2)`: unlink, or rmdir with `flags` AT_REMOVEDIR. */
  unlinkat(path: string, flags = 0): Promise<void> {
    return this.#call(() => buildUnlink(path, flags), nothing)
  }

  /** `renameat(2)`. */
  renameat(from: string, to: string): Promise<void> {
    return this.#call(() => buildTwoPaths('rename', from, to), nothing)
  }

  /** `mkdirat(2)` with `mode` (less the umask). */
  mkdirat(path: string, mode: number): Promise<void> {
    return this.#call(() => buildMkdir(path, mode), nothing)
  }

  /** `symlinkat(2)`: `path` becomes a symbolic link to `target`. */
  symlinkat(target: string, path: string): Promise<void> {
    return this.#call(() => buildTwoPaths('symlink', target, path), nothing)
  }

  /** `linkat(2)`: `to` becomes a second name of `from`. */
  linkat(from: string, to: string): Promise<void> {
    return this.#call(() => buildTwoPaths('link', from, to), nothing)
  }

  /**
   * A whole file in one request, on a worker thread on every backend (each step may wait on
   * the disk): opens `path` with `options.flags` (default O_WRONLY|O_CREAT|O_TRUNC) and
   * `options.mode` (default 0o666, less the umask), writes all of `data` from the file
   * position, fsyncs when `options.flush`, closes; resolves the bytes written. An error names
   * the step that failed (`syscall` open, write, fsync or close; `path` for open's), and the
   * descriptor is closed whatever happened. `options.signal` withdraws it before it starts.
   */
  writeFile(path: string, data: string | ArrayBufferView, options: { flags?: number; mode?: number; flush?: boolean; signal?: AbortSignal } = {}): Promise<number> {
    const { O_WRONLY, O_CREAT, O_TRUNC } = fsConstants
    const { flags = O_WRONLY | O_CREAT | O_TRUNC, mode = 0o666, flush = false, signal } = options
    let built: Built
    try {
      if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal)
      built = buildWriteFile(path, data, flags, mode, flush, signal)
    } catch (e) {
      return Promise.reject(e)
    }
    const p = built.path
    return this.#run(built, (res, res2) => [res, res2] as const, true).then(([res, res2]) => {
      if (res >= 0) return res
      const step = WRITE_FILE_STEPS[res2] || 'open'
      throw toError(res, step, step === 'open' ? p : undefined)
    })
  }

  /**
   * `copyFile(src, dest, mode)` as one request on a worker on every backend: libuv's copy
   * (the destination truncated and given the source's mode, `FICLONE` for
   * COPYFILE_FICLONE(_FORCE), else `copy_file_range`, a failed copy removed), so the result
   * and errors (`syscall` 'copyfile', `path`, `dest`) are node:fs's. `mode`: COPYFILE_* flags.
   */
  copyFile(src: string, dest: string, mode = 0): Promise<void> {
    return this.#call(() => buildCopyFile(src, dest, mode), nothing)
  }

  /** `ftruncate(2)` of `fd` to `len` bytes. */
  ftruncate(fd: number, len: number): Promise<void> {
    return this.#call(() => buildFtruncate(fd, len), nothing)
  }

  /**
   * `fallocate(2)` of `len` bytes at `offset` of `fd`: `mode` 0 allocates (growing the file),
   * or `FALLOC_FL_KEEP_SIZE`, `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`,
   * `FALLOC_FL_ZERO_RANGE`. The js backend rejects with ENOTSUP (node:fs has no fallocate).
   */
  fallocate(fd: number, mode: number, offset: number, len: number): Promise<void> {
    return this.#call(() => buildFallocate(fd, mode, offset, len), nothing)
  }

  /**
   * `posix_fadvise(2)`: `advice` (`POSIX_FADV_*`) for `len` bytes at `offset` of `fd` (`len` 0:
   * to the end). The js backend checks the descriptor (EBADF, ESPIPE) and does nothing else.
   */
  fadvise(fd: number, offset: number, len: number, advice: number): Promise<void> {
    return this.#call(() => buildFadvise(fd, offset, len, advice), nothing)
  }

  /**
   * Submits prepared operations together (one `io_submit` or `io_uring_enter` when they fit; on
   * `uring` in groups of 8 while earlier requests wait on the device) and resolves their
   * raw results in order: a negative `res` is a result (-errno), not a rejection. Settles only
   * once every operation has completed, so none is in flight after it: if one was aborted,
   * closed or refused, it then rejects with the first such error (in order), and each
   * operation's `result` holds what it did. Rejects with ERR_AIO_IN_FLIGHT, submitting
   * nothing, if any operation is still in flight.
   */
  submit(operations: readonly Operation[]): Promise<RawResult[]> {
    try {
      validateBatch(operations)
    } catch (e) {
      return Promise.reject(e)
    }
    return Promise.allSettled(operations.map((op) => this.#submitOne(op))).then(batchResults)
  }

  /** Runs one operation of a batch; settles once the backend is done with it, even after an abort. */
  #submitOne(op: Operation): Promise<RawResult> {
    op.inFlight = true
    op.result = undefined
    let completed!: () => void
    const done = new Promise<void>((resolve) => (completed = resolve))
    const outcome = this.#run(op.built, (res, res2) => ({ res, res2 }), true, (res, res2, error) => {
      op.inFlight = false
      if (res !== RES_CANCELLED && res !== RES_CLOSED && !error) op.result = { res, res2 }
      completed()
    })
    // An abort rejects `outcome` before the completion: handled here, reported after `done`.
    outcome.catch(nothing)
    return done.then(() => outcome)
  }

  /**
   * Closes the context. Every request started before `close()` completes as if close had not
   * been called (a write made in the same tick is written), except polls still waiting, which
   * reject with ERR_AIO_CLOSED; requests started after it reject with ERR_AIO_CLOSED. Resolves
   * once they are all settled and the kernel context and threads are freed. Idempotent. The
   * same on every backend.
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

const count = (n: number): number => n
const nothing = (): void => undefined

/** A batch's results in order, or the first error (in order) among its operations. */
function batchResults(settled: PromiseSettledResult<RawResult>[]): RawResult[] {
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed) throw failed.reason
  return settled.map((s) => (s as PromiseFulfilledResult<RawResult>).value)
}

function codedInvalid(value: unknown): TypeError & { code: string } {
  const e = new TypeError(
    `The property 'options.implementation' must be one of: ${IMPLEMENTATIONS.map((i) => `'${i}'`).join(', ')}. Received ${String(value)}`,
  ) as TypeError & { code: string }
  e.code = 'ERR_INVALID_ARG_VALUE'
  return e
}
