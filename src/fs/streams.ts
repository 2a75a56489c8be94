// ReadStream and WriteStream over a kaio FileHandle: node's fs streams (options, events,
// positions) with several requests in flight instead of one.
import { finished, Readable, Writable } from 'node:stream'

import { codedError } from '../errors'
import { ALIGN } from './io'
import type { FileHandle } from './filehandle'
import { kCore } from './internal'
import type { Core } from './internal'
import { alignDown, getOptions, outOfRangeStartEnd, validateBoolean, validateInteger } from './util'

export interface ReadStreamOptions {
  /** Decode chunks to strings with this encoding. */
  encoding?: BufferEncoding | null
  /** First byte to read; default: the handle's current position. */
  start?: number
  /** Last byte to read (inclusive), as node; default: end of file. */
  end?: number
  /** Bytes per read request and buffering threshold. Default 64 KiB. */
  highWaterMark?: number
  /** Read requests kept in flight ahead of the consumer. Default 4. */
  readAhead?: number
  /** Close the FileHandle when the stream ends or is destroyed. Default true. */
  autoClose?: boolean
  emitClose?: boolean
  signal?: AbortSignal
}

export interface WriteStreamOptions {
  /** Default encoding for string chunks. Default 'utf8'. */
  encoding?: BufferEncoding | null
  /** Position of the first byte written; default: the handle's current position. */
  start?: number
  highWaterMark?: number
  /** Write requests kept in flight behind the producer. Default 4. */
  writeBehind?: number
  /** fsync before closing. Default false. */
  flush?: boolean
  /** Close the FileHandle when the stream finishes or is destroyed. Default true. */
  autoClose?: boolean
  emitClose?: boolean
  signal?: AbortSignal
}

type Source = FileHandle | (() => Promise<FileHandle>)

export const DEFAULT_READ_AHEAD = 4
export const DEFAULT_WRITE_BEHIND = 4
/** Staging of the write stream: data is copied here and written in pieces of this size. */
const STAGE_PLAIN = 64 * 1024
const STAGE_DIRECT = 1 << 20

function destroyedError(op: string): Error & { code: string } {
  return codedError(Error, 'ERR_STREAM_DESTROYED', `Cannot call ${op} after a stream was destroyed`)
}

/** Attaches a stream to its handle: one reference, and the handle's 'close' destroys the stream. */
class Attachment {
  readonly core: Core
  readonly #onClose: () => void

  constructor(
    readonly handle: FileHandle,
    stream: Readable | Writable,
  ) {
    this.core = handle[kCore]()
    this.core.ref()
    this.#onClose = () => stream.destroy()
    handle.on('close', this.#onClose)
  }

  /** Drops the reference; closes the handle when `close`. Resolves the close error, if any. */
  async detach(close: boolean): Promise<unknown> {
    this.handle.off('close', this.#onClose)
    this.core.unref()
    if (!close) return null
    try {
      await this.handle.close()
      return null
    } catch (e) {
      return e
    }
  }
}

interface PendingRead {
  promise: Promise<number>
  buf: Buffer
  len: number
}

/** A Readable over a FileHandle that keeps `readAhead` reads in flight. */
export class ReadStream extends Readable {
  /** Bytes delivered so far. */
  bytesRead = 0
  readonly path: string | Buffer | undefined
  readonly start: number | undefined
  readonly end: number
  #source: Source
  #att: Attachment | null = null
  #opened = false
  #next = 0
  #origin = 0
  #followsHandle = false
  #stop: number
  #queue: PendingRead[] = []
  #inflight = new Set<Promise<unknown>>()
  #eof = false
  #pumping = false
  readonly #readAhead: number
  readonly #autoClose: boolean

  constructor(source: Source, options?: ReadStreamOptions | BufferEncoding, path?: string | Buffer) {
    const opts = getOptions(options, {}) as ReadStreamOptions
    const { start, readAhead = DEFAULT_READ_AHEAD, autoClose = true } = opts
    let end = opts.end ?? Infinity
    if (start !== undefined) validateInteger(start, 'start', 0)
    if (end !== Infinity) {
      validateInteger(end, 'end', 0)
      if (start !== undefined && start > end) throw outOfRangeStartEnd(start, end)
    }
    validateInteger(readAhead, 'options.readAhead', 1, 1024)
    validateBoolean(autoClose, 'options.autoClose')
    super({
      highWaterMark: opts.highWaterMark ?? 64 * 1024,
      encoding: opts.encoding ?? undefined,
      emitClose: opts.emitClose ?? true,
      autoDestroy: autoClose,
      signal: opts.signal,
    })
    this.path = path
    this.start = start
    this.end = end
    this.#stop = end === Infinity ? Infinity : end + 1
    this.#readAhead = readAhead
    this.#autoClose = autoClose
    this.#source = source
    if (typeof source !== 'function') this.#att = new Attachment(source, this)
  }

  /** True until the file is open. */
  get pending(): boolean {
    return this.#att === null
  }

  /** Destroys the stream; `cb` runs once it is closed. */
  close(cb?: (err?: Error | null) => void): void {
    if (typeof cb === 'function') finished(this, cb)
    this.destroy()
  }

  override _construct(callback: (error?: Error | null) => void): void {
    void (async () => {
      if (this.#att === null) {
        const handle = await (this.#source as () => Promise<FileHandle>)()
        this.#att = new Attachment(handle, this)
        this.#opened = true
      }
      if (this.start === undefined) {
        this.#followsHandle = true
        this.#origin = await this.#att.core.tell()
      } else this.#origin = this.start
      this.#next = this.#origin
    })().then(
      () => {
        callback()
        if (this.#opened) {
          this.emit('open', this.#att!.core.fd())
          this.emit('ready')
        }
      },
      (e: Error) => callback(e),
    )
  }

  override _read(): void {
    this.#fill()
    void this.#pump()
  }

  #fill(): void {
    const core = this.#att!.core
    while (!this.#eof && this.#queue.length < this.#readAhead && this.#next < this.#stop) {
      const pos = this.#next
      const len = Math.min(Math.max(1, this.readableHighWaterMark), this.#stop - pos)
      const buf = core.io.alloc(len)
      const promise = core.io.pread(buf, pos)
      const tracked = promise.then(
        () => {},
        () => {},
      )
      this.#inflight.add(tracked)
      void tracked.then(() => this.#inflight.delete(tracked))
      this.#queue.push({ promise, buf, len })
      this.#next += len
    }
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return
    this.#pumping = true
    try {
      for (;;) {
        const head = this.#queue[0]
        if (head === undefined) {
          if (this.#eof || this.#next >= this.#stop) this.push(null)
          return
        }
        let n: number
        try {
          n = await head.promise
        } catch (e) {
          this.destroy(e as Error)
          return
        }
        if (this.destroyed) return
        this.#queue.shift()
        let more = true
        if (n > 0) {
          this.bytesRead += n
          if (this.#followsHandle) this.#att!.core.seek(this.#origin + this.bytesRead)
          more = this.push(n === head.buf.byteLength ? head.buf : head.buf.subarray(0, n))
        }
        if (n < head.len) {
          // A short read is the end of the file; later reads only found nothing.
          this.#eof = true
          this.#queue.length = 0
          this.push(null)
          return
        }
        this.#fill()
        if (!more) return
      }
    } finally {
      this.#pumping = false
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // The descriptor stays open until every read in flight has landed.
    void Promise.all([...this.#inflight]).then(async () => {
      const closeErr = this.#att ? await this.#att.detach(this.#autoClose || this.#opened) : null
      callback(err ?? (closeErr as Error | null))
    })
  }
}

/**
 * A Writable into a FileHandle that copies chunks into staging buffers and keeps up to
 * `writeBehind` writes in flight, each at its own position (so order is kept).
 */
export class WriteStream extends Writable {
  /** Bytes written so far. */
  bytesWritten = 0
  readonly path: string | Buffer | undefined
  readonly start: number | undefined
  #source: Source
  #att: Attachment | null = null
  #opened = false
  #direct = false
  #stageSize = STAGE_PLAIN
  #stage: Buffer | null = null
  #stagePos = 0
  #fill = 0
  /** Bytes at the start of the stage already written (an O_DIRECT partial block kept for rewriting). */
  #counted = 0
  #followsHandle = false
  #inflight = new Set<Promise<unknown>>()
  #error: Error | null = null
  #waiting: ((err?: Error | null) => void) | null = null
  #finalizing = false
  readonly #writeBehind: number
  readonly #autoClose: boolean
  readonly #flushOnClose: boolean

  constructor(source: Source, options?: WriteStreamOptions | BufferEncoding, path?: string | Buffer) {
    const opts = getOptions(options, {}) as WriteStreamOptions
    const { start, writeBehind = DEFAULT_WRITE_BEHIND, autoClose = true, flush = false } = opts
    if (start !== undefined) validateInteger(start, 'start', 0)
    validateInteger(writeBehind, 'options.writeBehind', 1, 1024)
    validateBoolean(autoClose, 'options.autoClose')
    validateBoolean(flush, 'options.flush')
    super({
      highWaterMark: opts.highWaterMark,
      decodeStrings: true,
      emitClose: opts.emitClose ?? true,
      autoDestroy: autoClose,
      signal: opts.signal,
    })
    if (opts.encoding) this.setDefaultEncoding(opts.encoding)
    this.path = path
    this.start = start
    this.#writeBehind = writeBehind
    this.#autoClose = autoClose
    this.#flushOnClose = flush
    this.#source = source
    if (typeof source !== 'function') this.#att = new Attachment(source, this)
  }

  /** True until the file is open. */
  get pending(): boolean {
    return this.#att === null
  }

  /** Ends the stream; `cb` runs once it is closed. */
  close(cb?: (err?: Error | null) => void): void {
    if (cb) {
      if (this.closed) {
        process.nextTick(cb)
        return
      }
      this.on('close', cb)
    }
    if (!this.#autoClose) this.on('finish', () => this.destroy())
    this.end()
  }

  override _construct(callback: (error?: Error | null) => void): void {
    void (async () => {
      if (this.#att === null) {
        const handle = await (this.#source as () => Promise<FileHandle>)()
        this.#att = new Attachment(handle, this)
        this.#opened = true
      }
      const core = this.#att.core
      this.#direct = core.io.direct
      this.#stageSize = this.#direct ? STAGE_DIRECT : Math.max(STAGE_PLAIN, this.writableHighWaterMark)
      if (this.start !== undefined) this.#stagePos = this.start
      else if (core.append === 'none') {
        this.#followsHandle = true
        this.#stagePos = await core.tell()
      }
    })().then(
      () => {
        callback()
        if (this.#opened) {
          this.emit('open', this.#att!.core.fd())
          this.emit('ready')
        }
      },
      (e: Error) => callback(e),
    )
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#error) {
      callback(this.#error)
      return
    }
    let off = 0
    while (off < chunk.byteLength) {
      const cap = this.#capacity()
      this.#stage ??= this.#att!.core.io.alloc(this.#stageSize)
      const k = Math.min(cap - this.#fill, chunk.byteLength - off)
      this.#stage.set(chunk.subarray(off, off + k), this.#fill)
      this.#fill += k
      off += k
      if (this.#fill === cap) this.#flush(false)
    }
    // Nothing queued behind this chunk: write what is staged now rather than wait for more.
    if (this.writableLength <= chunk.byteLength) this.#flush(false)
    if (this.#inflight.size < this.#writeBehind) callback()
    else this.#waiting = callback
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#finalizing = true
    if (!this.#error) this.#flush(true)
    void this.#drain().then(async () => {
      if (this.#error) return callback(this.#error)
      if (this.#flushOnClose) {
        try {
          await this.#att!.handle.sync()
        } catch (e) {
          return callback(e as Error)
        }
      }
      callback()
    })
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    void this.#drain().then(async () => {
      const waiting = this.#waiting
      this.#waiting = null
      waiting?.(err ?? destroyedError('write'))
      const closeErr = this.#att ? await this.#att.detach(this.#autoClose || this.#opened) : null
      callback(err ?? (closeErr as Error | null))
    })
  }

  async #drain(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight])
  }

  /** Room in the stage; for O_DIRECT the stage ends on a block boundary. */
  #capacity(): number {
    return this.#direct ? this.#stageSize - (this.#stagePos % ALIGN) : this.#stageSize
  }

  #flush(final: boolean): void {
    if (this.#fill === 0 || this.#stage === null) return
    const stage = this.#stage
    const pos = this.#stagePos
    const fill = this.#fill
    const fresh = fill - this.#counted
    this.#issue(stage.subarray(0, fill), pos, fresh)
    const end = pos + fill
    const keepFrom = Math.max(pos, alignDown(end, ALIGN))
    // (Not in append mode: there every write lands at the end, so nothing is rewritten.)
    if (this.#direct && !final && keepFrom < end && this.#att!.core.append === 'none') {
      // Keep the partial last block: the next write rewrites it whole, aligned.
      const next = this.#att!.core.io.alloc(this.#stageSize)
      next.set(stage.subarray(keepFrom - pos, fill))
      this.#stage = next
      this.#stagePos = keepFrom
      this.#fill = end - keepFrom
      this.#counted = this.#fill
    } else {
      this.#stage = null
      this.#stagePos = end
      this.#fill = 0
      this.#counted = 0
    }
  }

  #issue(view: Buffer, pos: number, fresh: number): void {
    const core = this.#att!.core
    let op: Promise<number>
    if (core.append === 'none') {
      op = core.io.pwrite(view, pos)
      if (this.#followsHandle) core.seek(pos + view.byteLength)
    } else if (this.start === undefined) op = core.writeNext(view)
    else op = core.writeAt(view, pos)
    const tracked: Promise<void> = op.then(
      () => {
        this.bytesWritten += fresh
      },
      (e: Error) => this.#fail(e),
    )
    this.#inflight.add(tracked)
    void tracked.then(() => {
      this.#inflight.delete(tracked)
      if (this.#waiting && this.#inflight.size < this.#writeBehind) {
        const w = this.#waiting
        this.#waiting = null
        w(this.#error)
      }
    })
  }

  #fail(e: Error): void {
    if (this.#error) return
    this.#error = e
    const w = this.#waiting
    if (w) {
      this.#waiting = null
      w(e)
    } else if (!this.#finalizing) this.destroy(e)
  }
}
