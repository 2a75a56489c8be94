// ReadStream and WriteStream over a kaio FileHandle: node's fs streams (options, events,
// positions) with several requests in flight instead of one.
import { addAbortSignal, finished, Readable, Writable } from 'node:stream'

import { codedError } from '../errors'
import { ALIGN, CURRENT, FsIO } from './io'
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
  /** fsync before closing. Default false (also for null). */
  flush?: boolean | null
  /** Close the FileHandle when the stream finishes or is destroyed. Default true. */
  autoClose?: boolean
  emitClose?: boolean
  signal?: AbortSignal
}

/**
 * What a stream reads or writes: a FileHandle, a file it opens on construction (and announces
 * with 'open'), or a descriptor it was given (`options.fd`: no 'open', as node's streams).
 */
export type Source = FileHandle | (() => Promise<FileHandle>) | { readonly fd: number; readonly handle: () => Promise<FileHandle> }

/** How a stream was opened, as node's streams record it (`path`, `flags`, `mode`; undefined over a descriptor). */
export interface Opening {
  path?: string | Buffer
  flags?: string | number
  mode?: number | string
}

export const DEFAULT_READ_AHEAD = 4
export const DEFAULT_WRITE_BEHIND = 4
/** Staging of the write stream: data is copied here and written in pieces of this size. */
const STAGE_PLAIN = 64 * 1024
const STAGE_DIRECT = 1 << 20

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
    // As node's: the handle's 'close' (emitted when close() is called) closes the stream, which
    // for a write stream is an end: data written before is written, then the handle closes.
    this.#onClose = () => (stream as unknown as { close(): void }).close()
    handle.on('close', this.#onClose)
  }

  /**
   * Drops the reference and closes the handle (node's _destroy closes the descriptor or
   * FileHandle whatever autoClose says). Resolves the close error, if any.
   */
  async detach(): Promise<unknown> {
    this.handle.off('close', this.#onClose)
    this.core.unref()
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
  pos: number
  len: number
}

/** Opens a stream's Source: the handle, and whether 'open' is to be emitted. */
async function attach(source: Source, att: Attachment | null, stream: Readable | Writable): Promise<{ att: Attachment; announce: boolean }> {
  if (typeof source === 'function') return { att: new Attachment(await source(), stream), announce: true }
  if ('handle' in source) return { att: new Attachment(await source.handle(), stream), announce: false }
  // A FileHandle: attached on construction (its 'close' closes the stream from then on).
  return { att: att!, announce: false }
}

/**
 * The end of a stream's construction, as node's: the callback (which lets buffered writes
 * and reads go on its next tick), then 'open' and 'ready'. On a tick of its own, not in the
 * promise reaction that got here: an `await once(stream, 'open')` resumes after those
 * writes went out, as with node, so a `destroy()` there does not drop them.
 */
function constructed(stream: Readable | Writable, callback: (error?: Error | null) => void, announce: boolean): void {
  callback()
  if (announce) {
    stream.emit('open', (stream as { fd?: number | null }).fd)
    stream.emit('ready')
  }
}

/** node's `getValidatedFd`-less initial `fd` of a stream: the descriptor if known, else null. */
function initialFd(source: Source): number | null {
  if (typeof source === 'function') return null
  return source.fd
}

/** A Readable over a FileHandle that keeps `readAhead` reads in flight. */
export class ReadStream extends Readable {
  /** Bytes delivered so far. */
  bytesRead = 0
  /** The descriptor: null until the file is open and once the stream closed it, as node's. */
  fd: number | null
  readonly path: string | Buffer | undefined
  readonly flags: string | number | undefined
  readonly mode: number | string | undefined
  readonly start: number | undefined
  readonly end: number
  #source: Source
  #att: Attachment | null = null
  #next = 0
  #origin = 0
  #followsHandle = false
  #abortedAtStart = false
  #stop: number
  #queue: PendingRead[] = []
  #inflight = new Set<Promise<unknown>>()
  /** Reads issued and not landed (the queue, and reads dropped from it). */
  #outstanding = 0
  #eof = false
  #pumping = false
  readonly #readAhead: number

  constructor(source: Source, options?: ReadStreamOptions | BufferEncoding, opening: Opening = {}) {
    const opts = getOptions(options, {}) as ReadStreamOptions
    // autoClose as node takes it: any value, false only when `false`-ish to Readable's autoDestroy.
    const { start, readAhead = DEFAULT_READ_AHEAD, autoClose = true } = opts
    const end = opts.end === undefined ? Infinity : opts.end
    if (start !== undefined) validateInteger(start, 'start', 0)
    if (end !== Infinity) {
      validateInteger(end, 'end', 0)
      if (start !== undefined && start > end) throw outOfRangeStartEnd(start, end)
    }
    validateInteger(readAhead, 'options.readAhead', 1, 1024)
    super({
      highWaterMark: opts.highWaterMark ?? 64 * 1024,
      encoding: opts.encoding ?? undefined,
      emitClose: opts.emitClose ?? true,
      autoDestroy: autoClose,
    })
    this.fd = initialFd(source)
    this.path = opening.path
    this.flags = opening.flags
    this.mode = opening.mode
    this.start = start
    this.end = end
    this.#stop = end === Infinity ? Infinity : end + 1
    this.#readAhead = readAhead
    this.#source = source
    if (typeof source !== 'function' && !('handle' in source)) this.#att = new Attachment(source, this)
    // Once the fields exist: an aborted signal destroys the stream at once.
    this.#abortedAtStart = opts.signal?.aborted === true
    if (opts.signal !== undefined) addAbortSignal(opts.signal, this)
  }

  /** True while there is no descriptor (`fd === null`), as node's. */
  get pending(): boolean {
    return this.fd === null
  }

  /** Where the next read starts: `start` plus the bytes read, or undefined without `start` (node's `pos`). */
  get pos(): number | undefined {
    return this.start === undefined ? undefined : this.start + this.bytesRead
  }

  /** node's: the stream's autoDestroy. */
  get autoClose(): boolean {
    return readableState(this).autoDestroy
  }

  set autoClose(value: boolean) {
    readableState(this).autoDestroy = value
  }

  /** Destroys the stream; `cb` runs once it is closed. */
  close(cb?: (err?: Error | null) => void): void {
    if (typeof cb === 'function') finished(this, cb)
    this.destroy()
  }

  override _construct(callback: (error?: Error | null) => void): void {
    let announce = false
    void (async () => {
      const a = await attach(this.#source, this.#att, this)
      this.#att = a.att
      // A signal aborted at construction: opened and closed, without 'open' before 'close', as node's.
      announce = a.announce && !this.#abortedAtStart
      this.fd = a.att.core.fd()
      if (this.start === undefined) {
        this.#followsHandle = true
        // Without a position (a FIFO, a socket): reads at the descriptor's own, one at a time.
        this.#follow(a.att.core.io.seekable ? await a.att.core.tell() : 0)
      } else this.#origin = this.start
      this.#next = this.#origin
    })().then(
      () => process.nextTick(constructed, this, callback, announce),
      (e: Error) => callback(e),
    )
  }

  /**
   * Without `start`: the stream's bytes count from `origin` (where the descriptor's offset
   * was, less what was delivered), and `end`, as node's, counts from there.
   */
  #follow(origin: number): void {
    this.#origin = origin
    if (this.end !== Infinity) this.#stop = origin + this.end + 1
  }

  override _read(): void {
    // node's: a read of highWaterMark bytes, nothing to read when that is 0 (the end).
    if (this.readableHighWaterMark <= 0) {
      this.push(null)
      return
    }
    this.#fill()
    void this.#pump()
  }

  #fill(): void {
    const core = this.#att!.core
    const sequential = this.#followsHandle && !core.io.seekable
    // node:fs's own calls (a descriptor without a position, an `fs` option): one read at a time, as node's.
    const depth = core.io instanceof FsIO ? 1 : this.#readAhead
    // Reads dropped after a short read count until they land: never more than `depth` at once.
    while (!this.#eof && this.#queue.length < depth && this.#outstanding < depth && this.#next < this.#stop) {
      const pos = this.#next
      const len = Math.min(Math.max(1, this.readableHighWaterMark), this.#stop - pos)
      const buf = core.io.alloc(len)
      const promise = core.io.pread(buf, sequential ? CURRENT : pos)
      this.#outstanding++
      const landed = () => {
        this.#outstanding--
        // The last of the reads dropped after a short read: the reads that replace them can go.
        if (this.#queue.length === 0 && !this.#eof && !this.destroyed) this._read()
      }
      const tracked = promise.then(landed, landed)
      this.#inflight.add(tracked)
      void tracked.then(() => this.#inflight.delete(tracked))
      this.#queue.push({ promise, buf, pos, len })
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
        const core = this.#att!.core
        if (this.#followsHandle && core.io.seekable) {
          const now = core.offset()
          if (now !== this.#origin + this.bytesRead) {
            // Another user of the shared position moved it (fh.read(), fs.readSync(fd)): what
            // was read ahead is not where the descriptor now is. Go on from there, as node's
            // next read(2) would; nothing is delivered twice.
            this.#queue.length = 0
            this.#follow(now - this.bytesRead)
            this.#next = now
            this.#fill()
            continue
          }
        }
        this.#queue.shift()
        if (n === 0) {
          // Only a read of nothing is the end of the file (node's rule): a short read is not.
          this.#eof = true
          this.#queue.length = 0
          this.push(null)
          return
        }
        this.bytesRead += n
        if (this.#followsHandle && this.#att!.core.io.seekable) this.#att!.core.seek(this.#origin + this.bytesRead)
        if (n < head.len) {
          // The reads issued ahead started past bytes this one did not get (a file still
          // growing, a pipe): drop them and go on from where this one ended.
          this.#queue.length = 0
          this.#next = head.pos + n
        }
        // A chunk much smaller than its buffer is copied, so it does not keep the whole
        // buffer alive (node's rule, nodejs/node#21967).
        const more = this.push(n === head.buf.byteLength ? head.buf : copyOf(head.buf, n))
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
      const closeErr = this.#att ? await this.#att.detach() : null
      this.fd = null
      // As node's close(stream, err, cb): the close's own error first.
      callback((closeErr as Error | null) ?? err)
    })
  }
}

/** The first `n` bytes of `buf` in a buffer of their own. */
function copyOf(buf: Buffer, n: number): Buffer {
  const out = Buffer.allocUnsafeSlow(n)
  buf.copy(out, 0, 0, n)
  return out
}

/**
 * A Writable into a FileHandle that copies chunks into staging buffers and keeps up to
 * `writeBehind` writes in flight, each at its own position (so order is kept). A write's
 * callback (and so 'drain') runs once its data reached the descriptor, as node's; chunks
 * buffered meanwhile are written together (`_writev`).
 */
export class WriteStream extends Writable {
  /** Bytes written so far. */
  bytesWritten = 0
  /** The descriptor: null until the file is open and once the stream closed it, as node's. */
  fd: number | null
  readonly path: string | Buffer | undefined
  readonly flags: string | number | undefined
  readonly mode: number | string | undefined
  readonly start: number | undefined
  /** fsync before closing (node's `flush`; null and undefined are false). */
  readonly flush: boolean
  #source: Source
  #att: Attachment | null = null
  #direct = false
  #stageSize = STAGE_PLAIN
  #stage: Buffer | null = null
  #stagePos = 0
  #fill = 0
  /** Bytes at the start of the stage already written (an O_DIRECT partial block kept for rewriting). */
  #counted = 0
  /** Bytes accepted so far (node advances `pos` when a write is issued). */
  #accepted = 0
  #followsHandle = false
  #abortedAtStart = false
  /** No position to write at (a FIFO, a socket) and no `start`: write(2) in order. */
  #sequential = false
  #inflight = new Set<Promise<void>>()
  #error: Error | null = null
  /** Where this stream's last write ended (the offset it set), to see another writer move it. */
  #lastEnd = 0
  /** A write that landed after destroy(): node's ERR_STREAM_DESTROYED. */
  #landedLate: Error | null = null
  readonly #writeBehind: number

  constructor(source: Source, options?: WriteStreamOptions | BufferEncoding, opening: Opening = {}) {
    const opts = getOptions(options, {}) as WriteStreamOptions
    const { start, writeBehind = DEFAULT_WRITE_BEHIND, autoClose = true } = opts
    const flush = (opts.flush as boolean | null | undefined) ?? false
    validateBoolean(flush, 'options.flush')
    if (start !== undefined) validateInteger(start, 'start', 0)
    validateInteger(writeBehind, 'options.writeBehind', 1, 1024)
    super({
      highWaterMark: opts.highWaterMark,
      decodeStrings: true,
      emitClose: opts.emitClose ?? true,
      autoDestroy: autoClose,
    })
    if (opts.encoding) this.setDefaultEncoding(opts.encoding)
    this.fd = initialFd(source)
    this.path = opening.path
    this.flags = opening.flags
    this.mode = opening.mode
    this.start = start
    this.flush = flush
    this.#writeBehind = writeBehind
    this.#source = source
    if (typeof source !== 'function' && !('handle' in source)) this.#att = new Attachment(source, this)
    this.#abortedAtStart = opts.signal?.aborted === true
    if (opts.signal !== undefined) addAbortSignal(opts.signal, this)
  }

  /** True while there is no descriptor (`fd === null`), as node's. */
  get pending(): boolean {
    return this.fd === null
  }

  /** Where the next write goes: `start` plus the bytes accepted, or undefined without `start` (node's `pos`). */
  get pos(): number | undefined {
    return this.start === undefined ? undefined : this.start + this.#accepted
  }

  /** node's: the stream's autoDestroy. */
  get autoClose(): boolean {
    return writableState(this).autoDestroy
  }

  set autoClose(value: boolean) {
    writableState(this).autoDestroy = value
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
    if (!this.autoClose) this.on('finish', () => this.destroy())
    this.end()
  }

  override _construct(callback: (error?: Error | null) => void): void {
    let announce = false
    void (async () => {
      const a = await attach(this.#source, this.#att, this)
      this.#att = a.att
      // A signal aborted at construction: opened and closed, without 'open' before 'close', as node's.
      announce = a.announce && !this.#abortedAtStart
      this.fd = a.att.core.fd()
      const core = a.att.core
      this.#direct = core.io.direct
      this.#stageSize = this.#direct ? STAGE_DIRECT : Math.max(STAGE_PLAIN, this.writableHighWaterMark)
      if (this.start !== undefined) this.#stagePos = this.start
      else if (!core.io.seekable) this.#sequential = true
      else if (core.append === 'none') {
        this.#followsHandle = true
        this.#stagePos = await core.tell('write')
        this.#lastEnd = this.#stagePos
      }
    })().then(
      () => process.nextTick(constructed, this, callback, announce),
      (e: Error) => callback(e),
    )
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#put([chunk], callback)
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.#put(
      chunks.map((c) => c.chunk),
      callback,
    )
  }

  /** Stages `chunks`, writes them (`writeBehind` at once), and calls back once all landed. */
  #put(chunks: Buffer[], callback: (error?: Error | null) => void): void {
    if (this.#error) {
      callback(this.#error)
      return
    }
    void (async () => {
      for (const chunk of chunks) {
        this.#accepted += chunk.byteLength
        let off = 0
        while (off < chunk.byteLength) {
          const cap = this.#capacity()
          this.#stage ??= this.#att!.core.io.alloc(this.#stageSize)
          const k = Math.min(cap - this.#fill, chunk.byteLength - off)
          this.#stage.set(chunk.subarray(off, off + k), this.#fill)
          this.#fill += k
          off += k
          if (this.#fill === cap) {
            this.#flush(false)
            while (this.#inflight.size >= this.#writeBehind) await Promise.race([...this.#inflight])
          }
        }
      }
      this.#flush(false)
      await this.#drain()
    })().then(() => {
      // As node's: a write that lands after destroy() reports the stream destroyed (the data
      // is in the file), to its callback and as the stream's error.
      if (!this.#error && this.destroyed) this.#landedLate ??= codedError(Error, 'ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed')
      callback(this.#error ?? this.#landedLate)
    })
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.#error) this.#flush(true)
    void this.#drain().then(async () => {
      if (this.#error) return callback(this.#error)
      if (this.flush) {
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
      const closeErr = this.#att ? await this.#att.detach() : null
      this.fd = null
      callback((closeErr as Error | null) ?? err ?? this.#landedLate)
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
    // (An O_DIRECT partial block kept from the last write, with nothing new: already written.)
    if (this.#fill === this.#counted || this.#stage === null) return
    const now = this.#direct && this.#followsHandle ? this.#att!.core.offset() : this.#lastEnd
    if (now !== this.#lastEnd) {
      // Another writer moved the shared offset: the partial block kept from the last write is
      // in the file already; the fresh bytes go where the offset now is (DirectIO aligns them).
      const fresh = this.#stage.subarray(this.#counted, this.#fill)
      const moved = this.#att!.core.io.alloc(Math.max(this.#stageSize, fresh.byteLength))
      moved.set(fresh)
      this.#stage = moved
      this.#stagePos = now
      this.#fill = fresh.byteLength
      this.#counted = 0
    }
    const stage = this.#stage
    const pos = this.#stagePos
    const fill = this.#fill
    const fresh = fill - this.#counted
    const at = this.#issue(stage.subarray(0, fill), pos, fresh)
    const end = at + fill
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

  /** Starts the write of `view` at `pos` (or where the shared position now is); returns where. */
  #issue(view: Buffer, pos: number, fresh: number): number {
    const core = this.#att!.core
    let op: Promise<number>
    let at = pos
    if (this.#sequential || (core.append !== 'none' && this.start === undefined)) op = core.writeNext(view)
    else if (core.append !== 'none') op = core.writeAt(view, pos)
    else {
      // Without `start`, a stream writes where the descriptor's offset is, as node's write(2)
      // at position null: another writer of the handle or descriptor (fh.write(),
      // fs.writeSync(fd), a second stream) moved it, and this write goes after theirs.
      if (this.#followsHandle && !this.#direct) at = core.offset()
      op = core.io.pwrite(view, at)
      if (this.#followsHandle) {
        core.seek(at + view.byteLength)
        this.#lastEnd = at + view.byteLength
      }
    }
    const tracked: Promise<void> = op.then(
      () => {
        this.bytesWritten += fresh
      },
      (e: Error) => {
        this.#error ??= e
      },
    )
    this.#inflight.add(tracked)
    void tracked.then(() => this.#inflight.delete(tracked))
    return at
  }
}

function writableState(s: Writable): { autoDestroy: boolean } {
  return (s as unknown as { _writableState: { autoDestroy: boolean } })._writableState
}

function readableState(s: Readable): { autoDestroy: boolean } {
  return (s as unknown as { _readableState: { autoDestroy: boolean } })._readableState
}
