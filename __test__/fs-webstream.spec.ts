// FileHandle.readableWebStream() and getAsyncId() next to node:fs's FileHandle on the same
// file, on every backend: bytes, chunk count and sizes, the lock, close while streaming, a FIFO.
import type { ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import type { ReadableStream } from 'node:stream/web'

import * as kaio from '../index'
import { each, heldFifo, sha, tempPath } from './helpers'

const NODE_MAJOR = Number(process.versions.node.split('.')[0])
/** The `type` forms of each Node version: node 20 has a non-byte default; 22+ always makes a byte stream. */
const TYPES: readonly ({ type: 'bytes' } | undefined)[] = [undefined, { type: 'bytes' }]

type Lib = 'kaio' | 'node'
interface WebFH {
  fd: number
  readableWebStream(options?: { type?: 'bytes' }): ReadableStream<Uint8Array | ArrayBuffer>
  getAsyncId(): number
  close(): Promise<void>
}

async function openBoth(lib: Lib, p: string, context: kaio.Context): Promise<WebFH> {
  return (lib === 'kaio' ? await kaio.open(p, 'r', 0o666, { context }) : await fs.promises.open(p, 'r')) as unknown as WebFH
}

/** What a stream gave: each chunk's kind and size, and all the bytes. */
async function drain(rs: ReadableStream<Uint8Array | ArrayBuffer>): Promise<{ chunks: string[]; sha: string; total: number }> {
  const chunks: string[] = []
  const parts: Buffer[] = []
  for await (const c of rs) {
    chunks.push(`${c.constructor.name}:${c.byteLength}`)
    parts.push(c instanceof ArrayBuffer ? Buffer.from(c) : Buffer.from(c.buffer, c.byteOffset, c.byteLength))
  }
  const all = Buffer.concat(parts)
  return { chunks, sha: sha(all), total: all.byteLength }
}

function caught(fn: () => unknown): { code?: unknown; message?: unknown; name?: unknown } | 'no error' {
  try {
    fn()
    return 'no error'
  } catch (e) {
    const err = e as Error & { code?: unknown }
    return { code: err.code, message: err.message, name: err.name }
  }
}

/** Streams of each type from kaio's and node's handles (`openFor`) agree, and give `content`. */
async function streamsAsNode(t: ExecutionContext, openFor: (lib: Lib) => Promise<WebFH>, content: Buffer): Promise<void> {
  for (const options of TYPES) {
    const run = async (lib: Lib) => {
      const fh = await openFor(lib)
      const out = await drain(fh.readableWebStream(options))
      await fh.close()
      return out
    }
    const [k, n] = [await run('kaio'), await run('node')]
    t.deepEqual(k, n, `options ${JSON.stringify(options)}`)
    t.is(n.sha, sha(content))
  }
}

for (const [name, content] of [
  ['1 MiB', randomBytes(1 << 20)],
  ['10 bytes', Buffer.from('0123456789')],
] as const) {
  each(`readableWebStream: a ${name} file gives node's bytes, chunks and chunk sizes, for each type`, async (t, context) => {
    const p = tempPath(content)
    await streamsAsNode(t, (lib) => openBoth(lib, p, context), content)
  })
}

each('readableWebStream: a second call, and a call on a closed handle, fail as node (code and message)', async (t, context) => {
  const p = tempPath('0123456789')
  const run = async (lib: Lib) => {
    const fh = await openBoth(lib, p, context)
    const rs = fh.readableWebStream({ type: 'bytes' })
    const second = caught(() => fh.readableWebStream())
    const bytes = await drain(rs)
    // The lock outlives the stream.
    const afterEnd = caught(() => fh.readableWebStream())
    await fh.close()
    const closed = caught(() => fh.readableWebStream())
    return { second, bytes, afterEnd, closed }
  }
  const [k, n] = [await run('kaio'), await run('node')]
  t.deepEqual(k, n)
  t.is((n.second as { code: string }).code, 'ERR_INVALID_STATE')
})

each('readableWebStream: closing the handle while streaming ends the stream as node', async (t, context) => {
  const p = tempPath(randomBytes(1 << 20))
  // Node 20 aborts the process when a handle with its non-byte stream closes: only 'bytes' there.
  for (const options of NODE_MAJOR >= 22 ? TYPES : [{ type: 'bytes' as const }]) {
    const run = async (lib: Lib) => {
      const fh = await openBoth(lib, p, context)
      const reader = fh.readableWebStream(options).getReader()
      const first = await reader.read()
      const closing = fh.close()
      const fdAtClose = fh.fd
      const next = await reader.read()
      const after = await reader.read()
      await closing
      return { first: first.value?.byteLength, fdAtClose, next: next.done, after: after.done, fd: fh.fd }
    }
    const [k, n] = [await run('kaio'), await run('node')]
    t.deepEqual(k, n, `options ${JSON.stringify(options)}`)
    t.true(n.next)
  }
})

each('readableWebStream: a FIFO streams its data in node chunk sizes', async (t, context) => {
  const data = Buffer.from('fifo payload '.repeat(3000)) // 39 KB, under a pipe's capacity
  await streamsAsNode(
    t,
    async (lib) => {
      const f = heldFifo()
      const fh = await openBoth(lib, f.path, context)
      fs.writeSync(f.keeper, data)
      fs.closeSync(f.keeper)
      return fh
    },
    data,
  )
})

each('getAsyncId: a number, the same for a handle, unique per handle, as node', async (t, context) => {
  const p = tempPath('x')
  const run = async (lib: Lib) => {
    const a = await openBoth(lib, p, context)
    const b = await openBoth(lib, p, context)
    const ids = [a.getAsyncId(), b.getAsyncId()]
    const shape = { type: typeof ids[0], stable: a.getAsyncId() === ids[0], unique: ids[0] !== ids[1], ordered: ids[0]! < ids[1]! }
    await a.close()
    await b.close()
    return { ...shape, afterClose: a.getAsyncId() === ids[0] }
  }
  const [k, n] = [await run('kaio'), await run('node')]
  t.deepEqual(k, n)
  t.true(n.unique)
})
