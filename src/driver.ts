// The request drivers behind `Context`: one for the native engines (uring, linux, thread) and one
// over node:fs (js). Arguments arrive validated; drivers only move requests and settle them.
import * as fs from 'node:fs'
import { constants as osConstants } from 'node:os'

import { binding, hostLoopWatch } from './native'
import { closedError, errnoError } from './errors'
import { AT_EMPTY_PATH, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, encodeStatx } from './statx'

export type Implementation = 'uring' | 'linux' | 'thread' | 'js'

/**
 * How completions reach JavaScript: `uv_poll` (Node's event loop watches the completion
 * eventfd: one thread hop), `threadsafe_function` (a Node-API threadsafe function, where the
 * host's libuv cannot be used: Bun), `node:fs` (the js backend: node:fs's own callbacks).
 */
export type CompletionPath = 'uv_poll' | 'threadsafe_function' | 'node:fs'

/** Per-request options, already validated. */
export interface ReqOptions {
  flags: number
  /** -1 when unset. */
  priority: number
}

/**
 * Raw completion of one request: bytes (or ready mask) or -errno, and the kernel's res2.
 * `error`: an exception the backend's own call threw for this request (js: node:fs refusing
 * an argument synchronously), which the request rejects with as is.
 */
export type Settle = (res: number, res2: number, error?: Error) => void

/** One request as the drivers see it. */
export type Req =
  | { op: 'read' | 'write'; fd: number; offset: number | bigint; buf: Uint8Array; opts: ReqOptions }
  | { op: 'readv' | 'writev'; fd: number; offset: number | bigint; bufs: Uint8Array[]; opts: ReqOptions }
  | { op: 'fsync' | 'fdatasync'; fd: number; opts: ReqOptions }
  | { op: 'poll'; fd: number; events: number; opts: ReqOptions }
  | PathReq

/**
 * A path (metadata) op. `path2`: the destination of rename/link, the link made by symlink
 * (whose target is `path`). `a`: open/statx/unlink flags; `b`: open/mkdir mode, statx mask.
 * `out`: the struct statx buffer. `len`: the length of ftruncate, fallocate, fadvise; `start`:
 * fallocate's and fadvise's offset (`a`: their mode, advice). Unused fields are 0/undefined.
 */
export interface PathReq {
  op: PathOp
  fd: number
  path: string
  path2: string | undefined
  a: number
  b: number
  len: number
  start: number
  out: Uint8Array | undefined
  opts: ReqOptions
}

/** Path op codes, as the binding's `ctxPath`/`ctxFd` take them (crates/kaio-node/src/lib.rs). */
export const PATH_OPS = { open: 0, close: 1, statx: 2, unlink: 3, rename: 4, mkdir: 5, symlink: 6, link: 7, ftruncate: 8, writefile: 9, copyfile: 10, fallocate: 11, fadvise: 12 } as const

/** The steps of a whole-file write, as its failed completion names them in `res2` (kaio-core's `write_file`). */
export const WRITE_FILE_STEPS = ['', 'open', 'write', 'fsync', 'close'] as const
export type PathOp = keyof typeof PATH_OPS

/** Result codes beyond errno, from kaio-core's `res` module. */
export const RES_CLOSED = -1_000_001
export const RES_CANCELLED = -1_000_002

export interface Driver {
  readonly implementation: Implementation
  readonly completionPath: CompletionPath
  /** Queues `req`; `settle` is called exactly once. Returns an id usable with `cancel`. */
  start(req: Req, settle: Settle): number
  /** Withdraws request `id` if it has not started; returns whether it was withdrawn. */
  cancel(id: number): boolean
  /**
   * Lets every request already started run to completion (as if close had not been called),
   * except polls, which are cancelled and settle with RES_CLOSED (they may never complete);
   * then frees everything. The caller refuses new requests itself.
   */
  close(): Promise<void>
}

/** Turns a raw result into a value or a node-style error for `syscall` (and its paths). */
export function toError(res: number, syscall: string, path?: string, dest?: string): Error {
  if (res === RES_CLOSED) return closedError()
  return errnoError(res, syscall, path, dest)
}

/** Completions one native call hands over at most. */
const OUT_CAPACITY = 1024

/** The per-request calls, without napi-rs's per-call bookkeeping (crates/kaio-node/src/fast.rs). */
const fast = binding?.fastCalls()

/**
 * Contexts with requests pending: reachable from here, so that a busy context is never
 * collected. (The memory its requests use is held by the binding itself, by references it
 * takes when a request is queued and drops when its completion is handed back.)
 */
const live = new Set<unknown>()

/** The uring, linux and thread engines, through the native binding. */
export class NativeDriver implements Driver {
  readonly implementation: Implementation
  readonly completionPath: CompletionPath
  /** The io_uring setup flags the kernel accepted ('' on other backends). */
  readonly setupFlags: string
  #native: InstanceType<NonNullable<typeof binding>['NativeContext']>
  /** Names the native context in the per-request calls (cheaper than method calls). */
  readonly #handle: number
  readonly #b = binding!
  #settles: (Settle | undefined)[] = []
  /** Ids of pending polls: close() cancels them. */
  #polls = new Set<number>()
  #free: number[] = []
  #pending = 0
  #scheduled = false
  #referenced = false
  #onIdle: (() => void) | null = null
  #closed: Promise<void> | null = null
  /** Native code writes completions here (`[id, res, res2]*`); never reallocated. */
  readonly #out = new Float64Array(3 * OUT_CAPACITY)
  readonly #flush = (): void => this.#doFlush()

  /** `busyPoll`: microseconds the event loop keeps polling for completions (0: off). */
  constructor(kind: 'uring' | 'linux' | 'thread', size: number, busyPoll = 0, sqpoll = 0) {
    if (!binding) throw new Error('native binding not loaded')
    this.implementation = kind
    // The completion callback holds the driver weakly: an idle, unreachable context can be
    // collected (its native finalizer then tears it down). A busy one is in `live`.
    const weak = new WeakRef(this)
    this.#native = new binding.NativeContext(kind, size, () => weak.deref()?.onReady(), this.#out, busyPoll, hostLoopWatch, sqpoll)
    this.setupFlags = this.#native.setupFlags
    this.#handle = this.#native.handle
    this.completionPath = this.#native.completionPath as CompletionPath
  }

  start(req: Req, settle: Settle): number {
    const id = this.#free.length > 0 ? this.#free.pop()! : this.#settles.length
    const o = req.opts
    switch (req.op) {
      case 'read':
        fast!.ctxRead(this.#handle, id, req.fd, req.offset, req.buf, o.flags, o.priority)
        break
      case 'write':
        fast!.ctxWrite(this.#handle, id, req.fd, req.offset, req.buf, o.flags, o.priority)
        break
      case 'readv':
      case 'writev':
        this.#b.ctxVectored(this.#handle, id, req.fd, req.offset, req.bufs, req.op === 'writev', o.flags, o.priority)
        break
      case 'fsync':
      case 'fdatasync':
        this.#b.ctxSync(this.#handle, id, req.fd, req.op === 'fdatasync', o.priority)
        break
      case 'poll':
        this.#b.ctxPoll(this.#handle, id, req.fd, req.events, o.priority)
        this.#polls.add(id)
        break
      case 'close':
      case 'ftruncate':
      case 'fallocate':
      case 'fadvise':
        this.#b.ctxFd(this.#handle, id, PATH_OPS[req.op], req.fd, req.a, req.start, req.len)
        break
      default:
        // Path ops take strings, which the binding may refuse (a NUL byte): the id goes back.
        try {
          if (req.op === 'writefile') this.#b.ctxWriteFile(this.#handle, id, req.path, req.a, req.b, req.out, req.len === 1)
          else if (req.op === 'copyfile') this.#b.ctxCopyFile(this.#handle, id, req.path, req.path2!, req.a)
          else this.#b.ctxPath(this.#handle, id, PATH_OPS[req.op], req.fd, req.path, req.path2, req.a, req.b, req.out)
        } catch (e) {
          this.#free.push(id)
          throw e
        }
    }
    this.#settles[id] = settle
    if (this.#pending++ === 0) live.add(this)
    if (!this.#scheduled) {
      this.#scheduled = true
      queueMicrotask(this.#flush)
    }
    return id
  }

  cancel(id: number): boolean {
    if (this.#settles[id] === undefined) return false
    const res = this.#native.cancel(id)
    if (res === null) return false
    this.#settleOne(id, res, 0)
    this.#afterSettle()
    return true
  }

  /** Submits what this tick queued and settles what the kernel finished already. */
  #doFlush(): void {
    this.#scheduled = false
    if (this.#closed && this.#pending === 0) return
    let n
    while ((n = fast!.ctxFlush(this.#handle)) > 0) {
      this.#settleAll(n)
      if (n < OUT_CAPACITY) break
    }
    if (this.#pending > 0 && !this.#referenced) {
      this.#referenced = true
      this.#b.ctxSetRef(this.#handle, true)
    }
    this.#afterSettle()
  }

  /** Called through the threadsafe function when the mailbox has completions. */
  onReady(): void {
    let n
    while ((n = this.#b.ctxDrain(this.#handle)) > 0) {
      this.#settleAll(n)
      if (n < OUT_CAPACITY) break
    }
    this.#afterSettle()
  }

  /** Settles the first `n` completions of the completion array (or of `from`). */
  #settleAll(n: number, from: Float64Array = this.#out): void {
    // Copy first: a settle callback may start requests whose flush reuses the array.
    const done = from === this.#out ? from.slice(0, n * 3) : from
    for (let i = 0; i < n * 3; i += 3) this.#settleOne(done[i]!, done[i + 1]!, done[i + 2]!)
  }

  #settleOne(id: number, res: number, res2: number): void {
    const settle = this.#settles[id]
    if (settle === undefined) return
    this.#settles[id] = undefined
    this.#free.push(id)
    this.#pending--
    // A poll that close() cancelled reports the close, not how the kernel phrased the cancel
    // (kernel AIO completes a cancelled poll with 0 events, the pool with a cancel code).
    if (this.#polls.delete(id) && this.#closed && res <= 0) res = RES_CLOSED
    settle(res, res2)
  }

  #afterSettle(): void {
    if (this.#pending !== 0) return
    live.delete(this)
    if (this.#referenced) {
      this.#referenced = false
      this.#b.ctxSetRef(this.#handle, false)
    }
    const idle = this.#onIdle
    if (idle) {
      this.#onIdle = null
      idle()
    }
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      // Requests already started run to completion; polls might wait forever, so they are
      // cancelled (a queued one is withdrawn here, one in flight completes when cancelled).
      for (const id of [...this.#polls]) {
        const res = this.#native.cancel(id)
        if (res !== null) this.#settleOne(id, RES_CLOSED, 0)
      }
      this.#afterSettle()
      if (this.#pending > 0) {
        if (!this.#referenced) {
          this.#referenced = true
          this.#b.ctxSetRef(this.#handle, true)
        }
        await new Promise<void>((resolve) => {
          this.#onIdle = resolve
        })
      }
      // Nothing is pending: this refuses nothing, and destroy waits for nobody.
      this.#native.close()
      this.#native.destroy()
    })()
    return this.#closed
  }
}

/**
 * The negative errno of a node:fs error. Deno's node:fs sets `code` but not always `errno`
 * (a bad descriptor arrives as `{ code: 'EBADF' }`): take it from the code then.
 */
function errnoOf(err: NodeJS.ErrnoException): number {
  if (typeof err.errno === 'number') return -Math.abs(err.errno)
  const byCode = err.code === undefined ? undefined : (osConstants.errno as Record<string, number>)[err.code]
  return byCode === undefined ? -5 : -byCode
}

/** Copies `from` into `bufs` in order. */
function scatter(from: Uint8Array, bufs: Uint8Array[]): void {
  let at = 0
  for (const b of bufs) {
    if (at >= from.length) break
    b.set(from.subarray(at, at + b.byteLength))
    at += b.byteLength
  }
}

/**
 * A node:fs-style completion: the error or the count (bytes, a descriptor). Its own type
 * rather than FsStepDone: node's read/write callbacks pass their buffer third.
 */
type FsDone = (err: NodeJS.ErrnoException | null, n?: number) => void
/** As FsDone, plus a whole-file write's failed step. */
type FsStepDone = (err: NodeJS.ErrnoException | null, n?: number, step?: number) => void

/** A whole-file write with node:fs's callbacks: `done(err, bytes, step)` as the native engines answer. */
function writeWhole(req: PathReq, done: FsStepDone): void {
  const data = req.out!
  fs.open(req.path, req.a, req.b, (err, fd) => {
    if (err) return done(err, 0, 1)
    const fail = (e: NodeJS.ErrnoException, step: number): void => fs.close(fd, () => done(e, 0, step))
    const finish = (): void => fs.close(fd, (e) => (e ? done(e, 0, 4) : done(null, data.byteLength)))
    const sync = (): void => (req.len === 1 ? fs.fsync(fd, (e) => (e ? fail(e, 3) : finish())) : finish())
    const write = (at: number): void => {
      if (at >= data.byteLength) return sync()
      fs.write(fd, data, at, data.byteLength - at, null, (e, n) => (e ? fail(e, 2) : write(at + n)))
    }
    write(0)
  })
}

/**
 * Answers a request the js driver decides itself, without node:fs (a refusal, an empty
 * transfer), on a later turn of the event loop, as node:fs's own callbacks come: a loop that
 * awaits such requests one after another then lets timers and I/O run in between (README: the
 * event loop keeps turning), where a microtask would starve them.
 */
function answer(done: FsDone, err: NodeJS.ErrnoException | null, n = 0): void {
  setImmediate(done, err, n)
}

/** A path op through node:fs's callback API (`done(err, res)`). */
function runPath(req: PathReq, done: FsStepDone): void {
  const unit = (e: NodeJS.ErrnoException | null): void => done(e, 0)
  switch (req.op) {
    case 'open':
      fs.open(req.path, req.a, req.b, done)
      break
    case 'close':
      fs.close(req.fd, unit)
      break
    case 'statx': {
      const out = req.out!
      const filled = (e: NodeJS.ErrnoException | null, st?: fs.BigIntStats): void => {
        if (!e) encodeStatx(st!, out)
        unit(e)
      }
      if (req.a & AT_EMPTY_PATH) fs.fstat(req.fd, { bigint: true }, filled)
      else if (req.a & AT_SYMLINK_NOFOLLOW) fs.lstat(req.path, { bigint: true }, filled)
      else fs.stat(req.path, { bigint: true }, filled)
      break
    }
    case 'unlink':
      if (req.a & AT_REMOVEDIR) fs.rmdir(req.path, unit)
      else fs.unlink(req.path, unit)
      break
    case 'rename':
      fs.rename(req.path, req.path2!, unit)
      break
    case 'mkdir':
      fs.mkdir(req.path, { mode: req.b }, (e) => unit(e))
      break
    case 'symlink':
      fs.symlink(req.path, req.path2!, unit)
      break
    case 'link':
      fs.link(req.path, req.path2!, unit)
      break
    case 'ftruncate':
      fs.ftruncate(req.fd, req.len, unit)
      break
    case 'fallocate':
      // node:fs has no fallocate: refused, as poll and RWF_* flags are (ENOTSUP).
      answer(unit, { errno: -95 } as NodeJS.ErrnoException)
      break
    case 'fadvise':
      // Advice only: nothing to do, but the descriptor is checked as posix_fadvise checks it
      // (EBADF; ESPIPE for a pipe or FIFO).
      fs.fstat(req.fd, (e, st) => unit(e ?? (st.isFIFO() ? ({ errno: -29 } as NodeJS.ErrnoException) : null)))
      break
    case 'writefile':
      writeWhole(req, done)
      break
    case 'copyfile':
      fs.copyFile(req.path, req.path2!, req.a, unit)
      break
  }
}

/**
 * Hands one request to node:fs (`done` gets its result; `settleStep`, a path op's, also a
 * whole-file write's failed step), or answers it itself where node:fs cannot take it as is.
 * Throws where node:fs refuses an argument synchronously.
 */
function dispatch(req: Req, done: FsDone, settleStep: FsStepDone): void {
  if (req.opts.flags !== 0 || req.opts.priority !== -1) {
    // node:fs has no preadv2/pwritev2 and no I/O priorities: refuse rather than ignore.
    return answer(done, { errno: -95 } as NodeJS.ErrnoException)
  }
  if ((req.op === 'readv' || req.op === 'writev') && req.bufs.length === 0) {
    // libuv refuses an empty vector (EINVAL); the kernel and the thread backend move 0 bytes.
    return answer(done, null, 0)
  }
  if (req.op === 'read' && req.buf.byteLength === 0) {
    // node:fs answers an empty read on process.nextTick, which would starve the event loop.
    return answer(done, null, 0)
  }
  if ('offset' in req && typeof req.offset === 'bigint') {
    const len = 'buf' in req ? req.buf.byteLength : req.bufs.reduce((a, b) => a + b.byteLength, 0)
    // As the kernel (rw_verify_area): EINVAL when offset + length overflows. node:fs 21+
    // throws ERR_OUT_OF_RANGE for such a read instead, and 20 passes it on.
    if (req.offset + BigInt(len) > 2n ** 63n - 1n) return answer(done, { errno: -22 } as NodeJS.ErrnoException)
    if (req.op === 'write' || req.op === 'writev') {
      // Offsets past 2^53 arrive as bigints, which node:fs's write/writev take for "the
      // current position" (the data would land elsewhere). Past 2^53 no ext4 file can grow:
      // answer as the kernel does, EFBIG.
      return answer(done, { errno: -27 } as NodeJS.ErrnoException)
    }
    if (req.op === 'readv') {
      // fs.readv takes a bigint position for "the current position"; fs.read takes it as is.
      const bufs = req.bufs
      const tmp = Buffer.allocUnsafe(len)
      fs.read(req.fd, tmp, 0, tmp.length, req.offset, (err, n) => {
        if (!err) scatter(tmp.subarray(0, n), bufs)
        done(err, n)
      })
      return
    }
  }
  const pos = req.op === 'read' || req.op === 'write' || req.op === 'readv' || req.op === 'writev' ? req.offset : 0
  switch (req.op) {
    case 'read':
      fs.read(req.fd, req.buf, 0, req.buf.byteLength, pos as number, done)
      break
    case 'write':
      fs.write(req.fd, req.buf, 0, req.buf.byteLength, pos as number, done)
      break
    case 'readv':
      fs.readv(req.fd, req.bufs, pos as number, done)
      break
    case 'writev':
      fs.writev(req.fd, req.bufs, pos as number, done)
      break
    case 'fsync':
      fs.fsync(req.fd, (e) => done(e, 0))
      break
    case 'fdatasync':
      fs.fdatasync(req.fd, (e) => done(e, 0))
      break
    case 'poll':
      answer(done, { errno: -95 } as NodeJS.ErrnoException)
      break
    default:
      runPath(req, settleStep)
  }
}

/** The js backend: node:fs's callback API (about half the cost of fs.promises per request). */
export class JsDriver implements Driver {
  readonly implementation = 'js' as const
  readonly completionPath = 'node:fs' as const
  #running = 0
  #queue: { id: number; req: Req; settle: Settle }[] = []
  #next = 0
  #closing = false
  #onIdle: (() => void) | null = null
  #closed: Promise<void> | null = null

  constructor(readonly maxRequests: number) {}

  start(req: Req, settle: Settle): number {
    const id = this.#next++
    if (this.#closing) {
      queueMicrotask(() => settle(RES_CLOSED, 0))
      return id
    }
    if (this.#running < this.maxRequests) this.#run(req, settle)
    else this.#queue.push({ id, req, settle })
    return id
  }

  cancel(id: number): boolean {
    const i = this.#queue.findIndex((q) => q.id === id)
    if (i < 0) return false
    const [q] = this.#queue.splice(i, 1)
    q!.settle(RES_CANCELLED, 0)
    return true
  }

  #run(req: Req, settle: Settle): void {
    this.#running++
    // `step`: a whole-file write's failed step (res2). Node's read/write callbacks pass their
    // buffer third, so they get `done`, which drops it.
    const settleStep: FsStepDone = (err, n, step) => {
      this.#finish(settle, err ? errnoOf(err) : (n ?? 0), err ? (step ?? 0) : 0)
    }
    try {
      dispatch(req, (err, n) => settleStep(err, n), settleStep)
    } catch (e) {
      // node:fs checks some arguments itself and throws before it queues anything: the request
      // rejects with that error, a turn later as a refusal would, and its slot is freed (a
      // slot lost here would stall the queue and keep close() from ever resolving).
      setImmediate(() => this.#finish(settle, -22, 0, e as Error))
    }
  }

  /** Settles one running request and starts the next queued one in its slot. */
  #finish(settle: Settle, res: number, res2: number, error?: Error): void {
    this.#running--
    settle(res, res2, error)
    const next = this.#queue.shift()
    if (next) this.#run(next.req, next.settle)
    else if (this.#running === 0 && this.#onIdle) this.#onIdle()
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      // Queued requests still run (the js backend has no poll that could wait forever).
      this.#closing = true
      if (this.#running > 0 || this.#queue.length > 0) {
        await new Promise<void>((resolve) => {
          this.#onIdle = resolve
        })
      }
    })()
    return this.#closed
  }
}
