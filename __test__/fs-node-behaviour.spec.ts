// kaio's fs drop-in next to node:fs doing the same thing in the same test, on every backend:
// descriptors without a position (FIFO, character devices, procfs), the ReadStream's end of
// file and chunk sizes, the streams' properties and `fs`/`fd` options, write callbacks.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import * as fs from 'node:fs'
import * as path from 'node:path'
import type { Readable, Writable } from 'node:stream'

import * as kaio from '../index'
import { each, heldFifo, tempDir, tempPath } from './helpers'

const fsp = fs.promises

/** The part of a FileHandle (kaio's or node's) these tests use. */
interface FH {
  read(b: Buffer, off: number, len: number, pos: number | null): Promise<{ bytesRead: number; buffer: Buffer }>
  write(b: Buffer, off: number, len: number, pos: number | null): Promise<{ bytesWritten: number }>
  readFile(): Promise<Buffer>
  writeFile(d: Buffer): Promise<void>
  createReadStream(o?: object): Readable
  createWriteStream(o?: object): Writable
  close(): Promise<void>
}

async function openBoth(lib: 'kaio' | 'node', p: string, flags: string, context: kaio.Context): Promise<FH> {
  return (lib === 'kaio' ? await kaio.open(p, flags, 0o666, { context }) : await fsp.open(p, flags)) as unknown as FH
}

/** The module functions used here, of kaio (with the test's Context) or of node:fs/promises. */
function libOf(which: 'kaio' | 'node', context: kaio.Context) {
  const opts = (o: object = {}) => (which === 'kaio' ? { ...o, context } : o)
  const m = (which === 'kaio' ? kaio : fsp) as unknown as {
    readFile(p: string, o: object): Promise<Buffer>
    writeFile(p: string, d: string, o: object): Promise<void>
    appendFile(p: string, d: string, o: object): Promise<void>
  }
  return {
    readFile: (p: string) => m.readFile(p, opts()),
    writeFile: (p: string, d: string) => m.writeFile(p, d, opts()),
    appendFile: (p: string, d: string) => m.appendFile(p, d, opts()),
  }
}

/** An error as compared between kaio and node:fs: code, syscall, message. */
function shape(e: unknown): { code: unknown; syscall: unknown; message: unknown; name: unknown } {
  const err = e as NodeJS.ErrnoException
  return { code: err.code, syscall: err.syscall, message: err.message, name: err.name }
}

async function settle<T>(p: Promise<T> | (() => T)): Promise<{ ok: T } | { err: ReturnType<typeof shape> }> {
  try {
    return { ok: await (typeof p === 'function' ? p() : p) }
  } catch (e) {
    return { err: shape(e) }
  }
}

async function chunksOf(s: Readable): Promise<Buffer[]> {
  const out: Buffer[] = []
  for await (const c of s) out.push(c as Buffer)
  return out
}

let names = 0
/** A fresh path in the (shared) temp directory. */
function uniquePath(): string {
  return path.join(tempDir(), `node-behaviour-${process.pid}-${names++}`)
}

function drainKeeper(keeper: number, want: number): Buffer {
  const buf = Buffer.alloc(want)
  let got = 0
  while (got < want) got += fs.readSync(keeper, buf, got, want - got, null)
  return buf
}

const data = Buffer.from('fifo payload '.repeat(3000)) // 39 KB, under a pipe's capacity

each('FIFO: readFile, fh.read(null) and a read stream read it as node:fs; a position fails ESPIPE as there', async (t, context) => {
  const run = async (lib: 'kaio' | 'node'): Promise<unknown> => {
    const f = heldFifo()
    const fh = await openBoth(lib, f.path, 'r', context)
    fs.writeSync(f.keeper, data)
    const first = await fh.read(Buffer.alloc(5), 0, 5, null)
    const positioned = await settle(fh.read(Buffer.alloc(5), 0, 5, 3))
    fs.closeSync(f.keeper)
    const rest = await fh.readFile()
    await fh.close()
    // A stream over a FIFO: read(2) until a read returns 0.
    const g = heldFifo()
    const fh2 = await openBoth(lib, g.path, 'r', context)
    fs.writeSync(g.keeper, data)
    fs.closeSync(g.keeper)
    const streamed = Buffer.concat(await chunksOf(fh2.createReadStream({ highWaterMark: 4096 })))
    return { first: first.bytesRead, firstText: first.buffer.toString(), positioned, rest: rest.toString(), streamed: streamed.toString() }
  }
  const [k, n] = [await run('kaio'), await run('node')]
  t.deepEqual(k, n)
  t.is((n as { rest: string }).rest, data.toString().slice(5))
})

each('FIFO: writeFile, fh.write(null) and a write stream write it as node:fs', async (t, context) => {
  const run = async (lib: 'kaio' | 'node'): Promise<unknown> => {
    const f = heldFifo()
    const fh = await openBoth(lib, f.path, 'w', context)
    const w1 = await fh.write(Buffer.from('head:'), 0, 5, null)
    await fh.writeFile(data)
    const ws = fh.createWriteStream()
    ws.write('tail:')
    ws.end(Buffer.from('end'))
    await once(ws, 'close')
    const got = drainKeeper(f.keeper, 5 + data.length + 8).toString()
    fs.closeSync(f.keeper)
    return { w1: w1.bytesWritten, got }
  }
  t.deepEqual(await run('kaio'), await run('node'))
})

each('character devices and procfs: /dev/null, bounded /dev/zero, size-0 /proc files as node:fs', async (t, context) => {
  const run = async (lib_: 'kaio' | 'node'): Promise<unknown> => {
    const lib = lib_
    const m = libOf(lib, context)
    const nullRead = (await m.readFile('/dev/null')).length
    await m.writeFile('/dev/null', 'discarded')
    await m.appendFile('/dev/null', 'discarded')
    // A pty master: a character device that refuses pread/pwrite (ESPIPE).
    const pty = await openBoth(lib, '/dev/ptmx', 'r+', context)
    const ptyWrite = (await pty.write(Buffer.from('hi'), 0, 2, null)).bytesWritten
    await pty.close()
    const zero = await openBoth(lib, '/dev/zero', 'r', context)
    const z = await zero.read(Buffer.alloc(10, 1), 0, 10, null)
    await zero.close()
    const zs = lib === 'kaio' ? kaio.createReadStream('/dev/zero', { end: 99_999, highWaterMark: 8192, context }) : fs.createReadStream('/dev/zero', { end: 99_999, highWaterMark: 8192 })
    const zchunks = await chunksOf(zs)
    const ws = lib === 'kaio' ? kaio.createWriteStream('/dev/null', { context }) : fs.createWriteStream('/dev/null')
    ws.end('gone')
    await once(ws, 'close')
    const version = (await m.readFile('/proc/version')).toString()
    const cmdline = (await m.readFile('/proc/self/cmdline')).toString()
    return { nullRead, ptyWrite, z: [...z.buffer], zlens: zchunks.map((c) => c.length), version, cmdline }
  }
  const [k, n] = [await run('kaio'), await run('node')]
  t.deepEqual(k, n)
  t.true((n as { version: string }).version.length > 0, 'procfs stats size 0 but has content')
})

each('ReadStream: a short read is not the end of file; a file growing meanwhile is read on (node rule)', async (t, context) => {
  const run = async (lib: 'kaio' | 'node'): Promise<string[]> => {
    const p = tempPath('abcdef')
    const s = lib === 'kaio' ? kaio.createReadStream(p, { highWaterMark: 4, context }) : fs.createReadStream(p, { highWaterMark: 4 })
    const seen: string[] = []
    let grown = false
    s.on('data', (c: Buffer) => {
      seen.push(c.toString())
      if (!grown && seen.join('').length === 6) {
        grown = true
        fs.appendFileSync(p, 'gh')
      }
    })
    await once(s, 'end')
    return seen
  }
  const n = await run('node')
  t.deepEqual(n, ['abcd', 'ef', 'gh'])
  t.deepEqual(await run('kaio'), n)
})

each('ReadStream: a chunk smaller than its buffer is copied, retaining only its bytes (nodejs/node#21967)', async (t, context) => {
  const p = tempPath(Buffer.alloc(64 * 1024 + 170, 7))
  const sizes = async (s: Readable) => (await chunksOf(s)).map((c) => [c.length, c.buffer.byteLength])
  const n = await sizes(fs.createReadStream(p))
  t.deepEqual(n, [
    [65536, 65536],
    [170, 170],
  ])
  t.deepEqual(await sizes(kaio.createReadStream(p, { context })), n)
  const fh = await kaio.open(p, 'r', 0o666, { context })
  t.deepEqual(await sizes(fh.createReadStream()), n)
})

function props(s: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const k of ['fd', 'path', 'flags', 'mode', 'start', 'end', 'pos', 'autoClose', 'bytesRead', 'bytesWritten', 'pending', 'flush']) {
    const v = s[k]
    out[k] = k === 'fd' ? (v === null ? null : typeof v) : v
  }
  return out
}

each("streams: node's properties (fd, path, flags, mode, start, end, pos, autoClose, bytes, pending, flush) at each stage", async (t, context) => {
  const p = tempPath('0123456789abcdef')
  const run = async (lib: 'kaio' | 'node'): Promise<unknown> => {
    const rs = (lib === 'kaio' ? kaio.createReadStream(p, { start: 2, end: 9, context }) : fs.createReadStream(p, { start: 2, end: 9 })) as unknown as Readable & Record<string, unknown>
    const before = props(rs)
    await once(rs, 'open')
    const opened = props(rs)
    const body = Buffer.concat(await chunksOf(rs)).toString()
    const ended = props(rs)
    if (!rs.closed) await once(rs, 'close')
    const closed = props(rs)
    const out = `${p}.w`
    const ws = (lib === 'kaio' ? kaio.createWriteStream(out, { flags: 'w', mode: 0o600, flush: null as unknown as boolean, context }) : fs.createWriteStream(out, { flags: 'w', mode: 0o600, flush: null as unknown as boolean })) as unknown as Writable & Record<string, unknown>
    const wbefore = props(ws)
    await once(ws, 'open')
    ws.write('xyz')
    const wopened = props(ws)
    ws.end()
    await once(ws, 'close')
    return { before, opened, body, ended, closed, wbefore, wopened, wclosed: props(ws) }
  }
  t.deepEqual(await run('kaio'), await run('node'))
})

each('streams: options.fd (a descriptor from another stream) and options.fs overrides, called as node calls them', async (t, context) => {
  const p = tempPath('0123456789')
  const run = async (lib: 'kaio' | 'node'): Promise<unknown> => {
    // The descriptor of another stream.
    const first = lib === 'kaio' ? kaio.createReadStream(p, { autoClose: false, end: 1, context }) : fs.createReadStream(p, { autoClose: false, end: 1 })
    await chunksOf(first)
    const fd = (first as unknown as { fd: number }).fd
    const again = lib === 'kaio' ? kaio.createReadStream(null, { fd, start: 4, context }) : fs.createReadStream(null as unknown as string, { fd, start: 4 })
    const viaFd = Buffer.concat(await chunksOf(again)).toString()
    // Overrides: every call is recorded with its position.
    const calls: unknown[] = []
    const over = {
      open: (...a: unknown[]) => {
        calls.push(['open', a[1], a[2]])
        return (fs.open as (...x: unknown[]) => void)(...a)
      },
      read: (fd: number, buf: Buffer, off: number, len: number, pos: unknown, cb: (...x: unknown[]) => void) => {
        calls.push(['read', len, pos])
        fs.read(fd, buf, off, len, pos as number, cb)
      },
      close: (fd: number, cb: (e: Error | null) => void) => {
        calls.push(['close'])
        fs.close(fd, cb)
      },
    }
    const o = lib === 'kaio' ? kaio.createReadStream(p, { fs: over, highWaterMark: 4, context } as kaio.CreateReadStreamOptions) : fs.createReadStream(p, { fs: over, highWaterMark: 4 } as never)
    const viaFs = Buffer.concat(await chunksOf(o)).toString()
    if (!o.closed) await once(o, 'close')
    const bad = await Promise.all([
      settle(() => (lib === 'kaio' ? kaio.createReadStream(p, { fs: { open: 1 } } as never) : fs.createReadStream(p, { fs: { open: 1 } } as never))),
      settle(() => (lib === 'kaio' ? kaio.createReadStream(p, { fs: { open: fs.open } } as never) : fs.createReadStream(p, { fs: { open: fs.open } } as never))),
      settle(() => (lib === 'kaio' ? kaio.createReadStream(null, { fd: 'x' } as never) : fs.createReadStream(null as unknown as string, { fd: 'x' } as never))),
      settle(() => (lib === 'kaio' ? kaio.createReadStream(null, { fd: -1 } as never) : fs.createReadStream(null as unknown as string, { fd: -1 } as never))),
      settle(() => (lib === 'kaio' ? kaio.createWriteStream(p, { flush: 1 } as never) : fs.createWriteStream(p, { flush: 1 } as never))),
    ])
    return { viaFd, viaFs, calls, bad: bad.map((b) => ('err' in b ? b.err : 'no error')) }
  }
  t.deepEqual(await run('kaio'), await run('node'))
})

/** Delays the start of each of the Context's writes by a few event-loop turns (no clock involved). */
function lateWrites(ctx: kaio.Context): void {
  const turns = async () => {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
  }
  const c = ctx as unknown as Record<'write' | 'writev', (...a: unknown[]) => Promise<number>>
  for (const m of ['write', 'writev'] as const) {
    const orig = c[m].bind(ctx)
    c[m] = async (...a: unknown[]) => {
      await turns()
      return orig(...a)
    }
  }
}

each("WriteStream: a write's callback and 'drain' come once the data is in the file", async (t, context) => {
  // kaio's writes start late, so that a callback run before its write landed is seen as such.
  lateWrites(context)
  const run = async (lib: 'kaio' | 'node'): Promise<unknown> => {
    const p = uniquePath()
    const ws = lib === 'kaio' ? kaio.createWriteStream(p, { highWaterMark: 1024, context }) : fs.createWriteStream(p, { highWaterMark: 1024 })
    await once(ws, 'open')
    const seen: unknown[] = []
    // Whether the bytes of every write called back so far are in the file (a later write may
    // already be there too: node issues it before calling the earlier one back).
    const landed = (bytes: number) => fs.statSync(p).size >= bytes
    ws.write(Buffer.alloc(100, 1), () => seen.push(['cb1', landed(100)]))
    const more = ws.write(Buffer.alloc(4000, 2), () => seen.push(['cb2', landed(4100)]))
    seen.push(['more', more])
    await once(ws, 'drain')
    seen.push(['drain', landed(4100)])
    ws.end()
    await once(ws, 'close')
    return seen
  }
  const n = await run('node')
  t.deepEqual(n, [
    ['more', false],
    ['cb1', true],
    ['cb2', true],
    ['drain', true],
  ])
  t.deepEqual(await run('kaio'), n)
})

each('writeFile(fileHandle, data, { signal }): an abort after the write started rejects with AbortError between chunks', async (t, context) => {
  const big = Buffer.alloc(4 << 20, 3)
  const run = async (lib: 'kaio' | 'node'): Promise<unknown> => {
    const p = uniquePath()
    const fh = (lib === 'kaio' ? await kaio.open(p, 'w', 0o666, { context }) : await fsp.open(p, 'w')) as unknown as {
      writeFile(d: Buffer, o: object): Promise<void>
      close(): Promise<void>
    }
    const ac = new AbortController()
    const writing = fh.writeFile(big, { signal: ac.signal })
    ac.abort()
    const result = await settle(writing)
    await fh.close()
    return { result, partial: fs.statSync(p).size < big.length }
  }
  const n = await run('node')
  t.like(n, { partial: true, result: { err: { name: 'AbortError', code: 'ABORT_ERR' } } })
  t.deepEqual(await run('kaio'), n)
})

each('FileHandle methods called on something else reject (never throw) with node\'s error', async (t, context) => {
  const p = tempPath('x')
  const kfh = await kaio.open(p, 'r', 0o666, { context })
  const nfh = await fsp.open(p, 'r')
  const call = async (proto: Record<string, (...a: unknown[]) => unknown>, m: string): Promise<unknown> => {
    let returned: unknown
    try {
      returned = proto[m]!.call({})
    } catch (e) {
      return { threw: shape(e) }
    }
    return { rejected: await settle(returned as Promise<unknown>) }
  }
  for (const m of ['stat', 'read', 'write', 'readv', 'writev', 'readFile', 'writeFile', 'appendFile', 'truncate', 'sync', 'datasync', 'chmod', 'chown', 'utimes']) {
    t.deepEqual(await call(Object.getPrototypeOf(kfh), m), await call(Object.getPrototypeOf(nfh), m), m)
  }
  await kfh.close()
  await nfh.close()
})

each("argument errors carry node's messages (ERR_OUT_OF_RANGE separators, ERR_INVALID_ARG_VALUE)", async (t, context) => {
  const p = tempPath('0123456789')
  const cases: [string, () => unknown, () => unknown][] = [
    ['start > end, large', () => kaio.createReadStream(p, { start: 2 ** 40, end: 1, context }), () => fs.createReadStream(p, { start: 2 ** 40, end: 1 })],
    ['end out of range', () => kaio.createReadStream(p, { end: -(2 ** 35), context }), () => fs.createReadStream(p, { end: -(2 ** 35) })],
    ['bad encoding', () => kaio.readFile(p, { encoding: 'nope' as BufferEncoding, context }), () => fsp.readFile(p, { encoding: 'nope' as BufferEncoding })],
    ['long bad encoding', () => kaio.readFile(p, { encoding: 'x'.repeat(200) as BufferEncoding, context }), () => fsp.readFile(p, { encoding: 'x'.repeat(200) as BufferEncoding })],
    ['bad flush', () => kaio.writeFile(p, 'x', { flush: 'yes' as unknown as boolean, context }), () => fsp.writeFile(p, 'x', { flush: 'yes' as unknown as boolean })],
  ]
  for (const [name, k, n] of cases) {
    const got = await settle(async () => k())
    const want = await settle(async () => n())
    t.true('err' in want, name)
    t.deepEqual(got, want, name)
  }
})

test('a FileHandle closed by the garbage collector: node\'s warning and the DEP0137 deprecation (once)', (t) => {
  const p = tempPath('x')
  const script = `
const which = process.argv[1]
const open = which === 'kaio' ? require('./index.js').open : require('node:fs/promises').open
const seen = []
process.on('warning', (w) => seen.push({ name: w.name, code: w.code, message: w.message.replace(/[0-9]+/, 'N') }))
;(async () => {
  await open(${JSON.stringify(p)})
  await open(${JSON.stringify(p)})
  for (let i = 0; i < 200 && seen.length < 3; i++) {
    globalThis.gc()
    await new Promise((r) => setImmediate(r))
  }
  console.log(JSON.stringify(seen.sort((a, b) => (a.message < b.message ? -1 : 1))))
})()`
  const run = (which: string): unknown => {
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script, which], { encoding: 'utf8' })
    t.is(r.status, 0, r.stderr)
    return JSON.parse(r.stdout)
  }
  const n = run('node') as unknown[]
  t.is(n.length, 3)
  t.deepEqual(run('kaio'), n)
})
