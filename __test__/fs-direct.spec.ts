// O_DIRECT through the fs layer: any buffer, offset and length work (bounce buffers and
// read-modify-write inside), and files keep their exact length. Every backend.
import test from 'ava'
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { pipeline } from 'node:stream/promises'

import { copyFile, createReadStream, createWriteStream, open, readFile, writeFile } from '../index'
import { directDir, each, sha, unmet } from './helpers'

// O_DIRECT needs a directory that accepts it (helpers' directDir()); every test here says so.
let n = 0
const tmp = (): string => path.join(directDir()!, `f${n++}`)
const SIZES = [1, 4095, 4097, (1 << 20) + 3]

function isDirectFd(fd: number): boolean {
  const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')
  const flags = parseInt(/flags:\s+(\d+)/.exec(info)![1]!, 8)
  return (flags & fs.constants.O_DIRECT) !== 0
}

for (const size of SIZES) {
  each(`direct round trip of ${size} bytes: writeFile, readFile, copyFile, streams`, async (t, context) => {
    if (unmet(t, 'direct')) return
    const data = randomBytes(size)
    const a = tmp()
    await writeFile(a, data, { context, direct: true })
    t.is(fs.statSync(a).size, size, 'exact length after writeFile')
    t.is(sha(fs.readFileSync(a)), sha(data))
    t.is(sha(await readFile(a, { context, direct: true })), sha(data))
    const b = tmp()
    await copyFile(a, b, { context, direct: true })
    t.is(fs.statSync(b).size, size, 'exact length after copyFile')
    t.is(sha(fs.readFileSync(b)), sha(data))
    const c = tmp()
    await pipeline(createReadStream(b, { context, direct: true, highWaterMark: 10_000 }), createWriteStream(c, { context, direct: true }))
    t.is(fs.statSync(c).size, size, 'exact length after the streams')
    t.is(sha(fs.readFileSync(c)), sha(data))
  })
}

each('direct handle: unaligned buffers, offsets and lengths in both directions', async (t, context) => {
  if (unmet(t, 'direct')) return
  const p = tmp()
  const fh = await open(p, 'w+', 0o666, { context, direct: true })
  t.true(fh.direct)
  t.true(isDirectFd(fh.fd), 'opened with O_DIRECT')
  const model = Buffer.alloc(0)
  let expect = model
  const put = (pos: number, bytes: Buffer): void => {
    const grown = Buffer.alloc(Math.max(expect.length, pos + bytes.length))
    expect.copy(grown)
    bytes.copy(grown, pos)
    expect = grown
  }
  const writes: [number, number][] = [
    [3, 10],
    [4090, 20],
    [8192, 4096],
    [100, 9000],
    [20_000, 1],
    [12_287, 2],
  ]
  for (const [pos, len] of writes) {
    const src = Buffer.alloc(len + 7)
    const bytes = randomBytes(len)
    bytes.copy(src, 7)
    const r = await fh.write(src, 7, len, pos)
    t.is(r.bytesWritten, len)
    put(pos, bytes)
    t.is((await fh.stat()).size, expect.length, `size after write at ${pos}`)
  }
  t.is(sha(fs.readFileSync(p)), sha(expect))
  for (const [pos, len] of [
    [0, 1],
    [1, 4096],
    [4095, 3],
    [5000, 17_000],
    [20_000, 100],
  ] as const) {
    const into = Buffer.alloc(len + 3)
    const r = await fh.read(into, 3, len, pos)
    const want = expect.subarray(pos, pos + len)
    t.is(r.bytesRead, want.length)
    t.true(into.subarray(3, 3 + r.bytesRead).equals(want), `read at ${pos}`)
  }
  const v = [Buffer.alloc(5), Buffer.alloc(4100)]
  t.is((await fh.readv(v, 11)).bytesRead, 4105)
  t.true(Buffer.concat(v).equals(expect.subarray(11, 11 + 4105)))
  await fh.truncate(5)
  await fh.writev([Buffer.from('ab'), Buffer.from('cd')], 4097)
  t.is(fs.statSync(p).size, 4101)
  t.is(fs.readFileSync(p).subarray(4097).toString(), 'abcd')
  await fh.close()
})

each('direct append mode and write-only handles', async (t, context) => {
  if (unmet(t, 'direct')) return
  const p = tmp()
  fs.writeFileSync(p, 'head')
  const fh = await open(p, 'a', 0o666, { context, direct: true })
  for (let i = 0; i < 5; i++) await fh.write(`-${i}`)
  await fh.appendFile(Buffer.alloc(5000, 1))
  await fh.close()
  const got = fs.readFileSync(p)
  t.is(got.subarray(0, 14).toString(), 'head-0-1-2-3-4')
  t.is(got.length, 14 + 5000)
  const ws = createWriteStream(p, { context, direct: true, flags: 'a' })
  for (let i = 0; i < 50; i++) ws.write(`<${i}>`)
  ws.end()
  await new Promise((resolve) => ws.on('close', resolve))
  const appended = Array.from({ length: 50 }, (_, i) => `<${i}>`).join('')
  t.is(fs.readFileSync(p).subarray(14 + 5000).toString(), appended, 'a direct append stream writes each byte once, in order')
  const w = await open(p, 'w', 0o666, { context, direct: true })
  await t.throwsAsync(w.read(), { code: 'EBADF' })
  await w.write('x'.repeat(4097))
  await w.close()
  t.is(fs.statSync(p).size, 4097)
})

test('a filesystem refusing O_DIRECT gives EINVAL from open', async (t) => {
  // tmpfs refused O_DIRECT before Linux 6.6; find out what this kernel does first.
  const p = path.join('/dev/shm', `kaio-direct-${process.pid}`)
  let refused: NodeJS.ErrnoException | null = null
  try {
    fs.closeSync(fs.openSync(p, fs.constants.O_CREAT | fs.constants.O_WRONLY | fs.constants.O_DIRECT))
  } catch (e) {
    refused = e as NodeJS.ErrnoException
  }
  try {
    const why = refused === null ? 'tmpfs (/dev/shm) accepts O_DIRECT on this kernel' : refused.code !== 'EINVAL' ? `O_DIRECT on /dev/shm failed with ${refused.code}, not EINVAL` : undefined
    if (unmet(t, 'direct-refused', why)) return
    const err = (await t.throwsAsync(open(p, 'w', 0o666, { direct: true }))) as NodeJS.ErrnoException
    t.is(err.code, 'EINVAL')
    t.is(err.syscall, 'open')
    t.is(err.path, p)
  } finally {
    fs.rmSync(p, { force: true })
  }
})
