// ReadStream and WriteStream: node's options and events, read-ahead and write-behind
// (several requests in flight), order, errors, pipeline; on every backend.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

import { Context, createReadStream, createWriteStream, open, ReadStream, WriteStream } from '../index'
import { each, sha, tempDir, tempPath } from './helpers'

const tmp = tempPath



async function collect(stream: Readable): Promise<Buffer[]> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return chunks
}

/** Counts the Context's read (or write) requests in flight, and the most at once. */
function instrument(ctx: Context, method: 'readInto' | 'write'): { max: () => number; calls: () => number } {
  let now = 0
  let max = 0
  let calls = 0
  const orig = ctx[method].bind(ctx) as (...a: unknown[]) => Promise<number>
  ;(ctx as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
    calls++
    max = Math.max(max, ++now)
    return orig(...args).finally(() => now--)
  }
  return { max: () => max, calls: () => calls }
}

each('createReadStream: start, end (inclusive), highWaterMark, encoding', async (t, context) => {
  const data = Buffer.from('0123456789abcdefghij')
  const p = tmp(data)
  const fh = await open(p, 'r', 0o666, { context })
  const whole = await collect(fh.createReadStream({ highWaterMark: 4 }))
  t.deepEqual(
    whole.map((c) => c.toString()),
    ['0123', '4567', '89ab', 'cdef', 'ghij'],
  )
  t.is(fh.fd, -1, 'autoClose closed the handle')
  const fh2 = await open(p, 'r', 0o666, { context })
  const part = await collect(fh2.createReadStream({ start: 3, end: 9, highWaterMark: 3, autoClose: false }))
  t.is(Buffer.concat(part).toString(), '3456789')
  t.true(fh2.fd >= 0, 'autoClose: false keeps the handle open')
  const text = fh2.createReadStream({ encoding: 'hex', start: 0, end: 1, autoClose: false })
  t.deepEqual(await collect(text), ['3031'] as unknown as Buffer[])
  const rs = fh2.createReadStream({ start: 18, autoClose: false })
  t.is(rs.start, 18)
  t.is(Buffer.concat(await collect(rs)).toString(), 'ij')
  t.is(rs.bytesRead, 2)
  t.throws(() => fh2.createReadStream({ start: 5, end: 2 }), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => fh2.createReadStream({ start: -1 }), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => fh2.createReadStream({ end: 'x' as unknown as number }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => fh2.createReadStream({ readAhead: 0 }), { code: 'ERR_OUT_OF_RANGE' })
  await fh2.close()
})

each('createReadStream without start follows and advances the handle position', async (t, context) => {
  const fh = await open(tmp('abcdefgh'), 'r', 0o666, { context })
  await fh.read(Buffer.alloc(3), 0, 3, null)
  const rest = await collect(fh.createReadStream({ autoClose: false }))
  t.is(Buffer.concat(rest).toString(), 'defgh')
  t.is((await fh.read(Buffer.alloc(1), 0, 1, null)).bytesRead, 0)
  await fh.close()
})

each('createReadStream keeps readAhead reads in flight and delivers in order', async (t, context) => {
  const data = randomBytes(64 * 1024 * 24 + 5)
  const p = tmp(data)
  const probe = instrument(context, 'readInto')
  const fh = await open(p, 'r', 0o666, { context })
  const chunks = await collect(fh.createReadStream({ readAhead: 6 }))
  t.is(sha(Buffer.concat(chunks)), sha(data))
  t.true(probe.max() > 1, `reads in flight at once: ${probe.max()}`)
  t.true(probe.max() <= 6)
  const fh1 = await open(p, 'r', 0o666, { context })
  const before = probe.max()
  const serial = instrument(context, 'readInto')
  const one = await collect(fh1.createReadStream({ readAhead: 1 }))
  t.is(sha(Buffer.concat(one)), sha(data))
  t.is(serial.max(), 1)
  t.true(before > 1)
})

each('createWriteStream: start, encoding, bytesWritten, order with writes in flight', async (t, context) => {
  const p = tmp('0123456789')
  const fh = await open(p, 'r+', 0o666, { context })
  const ws = fh.createWriteStream({ start: 2, encoding: 'latin1' })
  ws.write('ab')
  ws.write(Buffer.from('cd'))
  ws.end('é')
  await once(ws, 'close')
  t.is(ws.bytesWritten, 5)
  t.is(fs.readFileSync(p, 'latin1'), '01abcdé789')
  t.is(fh.fd, -1)

  const probe = instrument(context, 'write')
  const big = randomBytes(3 << 20)
  const q = tmp()
  const out = createWriteStream(q, { context, highWaterMark: 1 << 20, writeBehind: 5 })
  for (let off = 0; off < big.length; off += 100_000) {
    if (!out.write(big.subarray(off, off + 100_000))) await once(out, 'drain')
  }
  out.end()
  await once(out, 'close')
  t.is(sha(fs.readFileSync(q)), sha(big))
  t.true(probe.max() > 1, `writes in flight at once: ${probe.max()}`)
  t.true(probe.max() <= 5)
})

each('createWriteStream copies chunks: a buffer can be reused after its callback', async (t, context) => {
  const q = tmp()
  const out = createWriteStream(q, { context })
  const buf = Buffer.alloc(1000)
  for (let i = 0; i < 50; i++) {
    buf.fill(i)
    await new Promise<void>((resolve, reject) => out.write(buf, (e) => (e ? reject(e) : resolve())))
  }
  out.end()
  await once(out, 'close')
  const got = fs.readFileSync(q)
  t.is(got.length, 50_000)
  for (let i = 0; i < 50; i++) t.is(got[i * 1000 + 999], i)
})

each('createWriteStream in append mode appends in order', async (t, context) => {
  const p = tmp('start:')
  const ws = createWriteStream(p, { context, flags: 'a' })
  for (let i = 0; i < 100; i++) ws.write(`${i},`)
  ws.end()
  await once(ws, 'close')
  t.is(fs.readFileSync(p, 'utf8'), `start:${Array.from({ length: 100 }, (_, i) => `${i},`).join('')}`)
})

each('write errors are reported through the stream', async (t, context) => {
  const fh = await open(tmp('ro'), 'r', 0o666, { context })
  const ws = fh.createWriteStream()
  // events.once would reject on 'error': listen to 'close' plainly.
  const closed = new Promise((resolve) => ws.on('close', resolve))
  ws.write('x')
  const [err] = (await once(ws, 'error')) as [NodeJS.ErrnoException]
  t.is(err.code, 'EBADF')
  t.is(err.syscall, 'write')
  await closed
  t.is(fh.fd, -1)

  const rh = await open(tmp('w'), 'w', 0o666, { context })
  const rs = rh.createReadStream()
  rs.resume()
  const [rerr] = (await once(rs, 'error')) as [NodeJS.ErrnoException]
  t.is(rerr.code, 'EBADF')
  t.is(rerr.syscall, 'read')
  for (let i = 0; i < 200 && rh.fd !== -1; i++) await new Promise((r) => setTimeout(r, 5))
  t.is(rh.fd, -1)
})

each('path streams: open/ready events, ENOENT, flush, pipeline', async (t, context) => {
  const data = randomBytes((2 << 20) + 7)
  const src = tmp(data)
  const rs = createReadStream(src, { context })
  t.true(rs.pending)
  const [fd] = (await once(rs, 'open')) as [number]
  t.is(typeof fd, 'number')
  t.false(rs.pending)
  const dest = tmp()
  const ws = createWriteStream(dest, { context, flush: true })
  await pipeline(rs, ws)
  t.is(sha(fs.readFileSync(dest)), sha(data))
  t.true(rs instanceof ReadStream)
  t.true(ws instanceof WriteStream)
  const missing = createReadStream(path.join(tempDir(), 'missing'), { context })
  const [err] = (await once(missing, 'error')) as [NodeJS.ErrnoException]
  t.is(err.code, 'ENOENT')
  t.is(err.syscall, 'open')
  t.throws(() => createReadStream(5 as unknown as string), { code: 'ERR_INVALID_ARG_TYPE' })
})

each('pipeline from a generator and into a Writable', async (t, context) => {
  const q = tmp()
  await pipeline(
    Readable.from(
      (function* () {
        for (let i = 0; i < 1000; i++) yield Buffer.from(`line ${i}\n`)
      })(),
    ),
    createWriteStream(q, { context }),
  )
  let lines = 0
  await pipeline(
    createReadStream(q, { context, highWaterMark: 100 }),
    new Writable({
      write(chunk: Buffer, _e, cb) {
        lines += chunk.toString().split('\n').length - 1
        cb()
      },
    }),
  )
  t.is(lines, 1000)
})

each('destroying a stream closes the handle after reads in flight', async (t, context) => {
  const fh = await open(tmp(randomBytes(1 << 20)), 'r', 0o666, { context })
  const rs = fh.createReadStream({ highWaterMark: 4096, readAhead: 8 })
  rs.once('data', () => rs.destroy())
  await once(rs, 'close')
  t.is(fh.fd, -1)
  const fh2 = await open(tmp(randomBytes(1 << 20)), 'r', 0o666, { context })
  const rs2 = fh2.createReadStream()
  const closed = once(rs2, 'close')
  await fh2.close()
  await closed
  t.true(rs2.destroyed, "the handle's close destroys its streams")
})
