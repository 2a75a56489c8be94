// FileHandle and the module functions, method by method, on every backend.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import * as fs from 'node:fs'
import * as path from 'node:path'

import { appendFile, Context, copyFile, FileHandle, implementation, open, readFile, writeFile } from '../index'
import { each, sha, tempDir, tempPath } from './helpers'

const tmp = tempPath



async function rejects(t: ExecutionContext, p: Promise<unknown>, code: string, syscall?: string): Promise<void> {
  const err = (await t.throwsAsync(p)) as NodeJS.ErrnoException
  t.is(err?.code, code)
  if (syscall !== undefined) t.is(err?.syscall, syscall)
}

each('open: string and numeric flags, mode, errors as node:fs', async (t, context) => {
  const p = tmp('abc')
  const fh = await open(p, 'r', 0o666, { context })
  t.true(fh instanceof FileHandle)
  t.is(typeof fh.fd, 'number')
  t.is(fh.context, context)
  t.false(fh.direct)
  await fh.close()
  t.is(fh.fd, -1)
  const created = tmp()
  const fh2 = await open(created, fs.constants.O_CREAT | fs.constants.O_RDWR, 0o600, { context })
  t.is(fs.statSync(created).mode & 0o777, 0o600)
  await fh2.close()
  await rejects(t, open(path.join(tempDir(), 'missing'), 'r', 0o666, { context }), 'ENOENT', 'open')
  await rejects(t, open(created, 'wx', 0o666, { context }), 'EEXIST', 'open')
  await rejects(t, open(created, 'nope', 0o666, { context }), 'ERR_INVALID_ARG_VALUE')
  await rejects(t, open(5 as unknown as string, 'r'), 'ERR_INVALID_ARG_TYPE')
  await rejects(t, open(created, 'r', 0o666, { context: {} as Context }), 'ERR_INVALID_ARG_TYPE')
  await rejects(t, open(created, 'r', 0o666, { direct: 1 as unknown as boolean }), 'ERR_INVALID_ARG_TYPE')
  // URL paths and the default Context.
  const fh3 = await open(new URL(`file://${created}`))
  t.not(fh3.context, context)
  await fh3.close()
})

each('read: all argument forms and their results', async (t, context) => {
  const fh = await open(tmp('0123456789'), 'r', 0o666, { context })
  const buf = Buffer.alloc(4)
  const r1 = await fh.read(buf, 0, 4, 2)
  t.is(r1.bytesRead, 4)
  t.is(r1.buffer, buf)
  t.is(buf.toString(), '2345')
  const r2 = await fh.read({ buffer: Buffer.alloc(3), position: 7 })
  t.is(r2.buffer.toString(), '789')
  const r3 = await fh.read(Buffer.alloc(6), { offset: 1, length: 2, position: 0 })
  t.is(r3.buffer.subarray(1, 3).toString(), '01')
  const r4 = await fh.read()
  t.is(r4.buffer.byteLength, 16384)
  t.is(r4.bytesRead, 10)
  const r5 = await fh.read()
  t.is(r5.bytesRead, 0)
  const u16 = new Uint16Array(2)
  t.is((await fh.read(u16, 0, 4, 0)).bytesRead, 4)
  t.is(Buffer.from(u16.buffer).toString(), '0123')
  await rejects(t, fh.read(Buffer.alloc(2), -1, 1, 0), 'ERR_OUT_OF_RANGE')
  await rejects(t, fh.read(Buffer.alloc(2), 0, 3, 0), 'ERR_OUT_OF_RANGE')
  await rejects(t, fh.read(Buffer.alloc(0), 0, 1, 0), 'ERR_INVALID_ARG_VALUE')
  await rejects(t, fh.read('x' as unknown as Buffer), 'ERR_INVALID_ARG_TYPE')
  await fh.close()
})

each('write: buffers and strings, positions, encodings', async (t, context) => {
  const p = tmp('')
  const fh = await open(p, 'w+', 0o666, { context })
  const b = Buffer.from('hello')
  const r = await fh.write(b)
  t.is(r.bytesWritten, 5)
  t.is(r.buffer, b)
  t.is((await fh.write(' world')).bytesWritten, 6)
  t.is((await fh.write('HE', 0)).bytesWritten, 2)
  t.is((await fh.write('21', null, 'hex')).bytesWritten, 1)
  t.is((await fh.write(Buffer.from('xyz'), 1, 1, 3)).bytesWritten, 1)
  t.is((await fh.write(Buffer.from('abc'), { offset: 2, position: 4 })).bytesWritten, 1)
  t.is(fs.readFileSync(p, 'utf8'), 'HElyc world!')
  await rejects(t, fh.write(Buffer.from('a'), 2), 'ERR_OUT_OF_RANGE')
  await rejects(t, fh.write('abc', 0, 'hex'), 'ERR_INVALID_ARG_VALUE')
  await rejects(t, fh.write(5 as unknown as string), 'ERR_INVALID_ARG_TYPE')
  await fh.close()
})

each('readv and writev', async (t, context) => {
  const p = tmp('')
  const fh = await open(p, 'w+', 0o666, { context })
  const bufs = [Buffer.from('ab'), Buffer.from('cde')]
  const w = await fh.writev(bufs)
  t.is(w.bytesWritten, 5)
  t.is(w.buffers, bufs)
  t.is((await fh.writev([Buffer.from('Z')], 0)).bytesWritten, 1)
  const into = [Buffer.alloc(1), Buffer.alloc(10)]
  const r = await fh.readv(into, 0)
  t.is(r.bytesRead, 5)
  t.is(Buffer.concat(into).subarray(0, 5).toString(), 'Zbcde')
  await rejects(t, fh.readv([]), 'EINVAL', 'read')
  await rejects(t, fh.readv('x' as unknown as Buffer[]), 'ERR_INVALID_ARG_TYPE')
  await fh.close()
})

each('readFile, writeFile and appendFile on a handle follow its position', async (t, context) => {
  const p = tmp('0123456789')
  const fh = await open(p, 'r+', 0o666, { context })
  await fh.read(Buffer.alloc(4), 0, 4, null)
  t.is(await fh.readFile('utf8'), '456789')
  t.is((await fh.readFile()).length, 0)
  await fh.writeFile('AB')
  await fh.appendFile(Buffer.from('CD'))
  t.is(fs.readFileSync(p, 'utf8'), '0123456789ABCD')
  await fh.writeFile(['x', Buffer.from('y')])
  t.is(fs.readFileSync(p, 'utf8'), '0123456789ABCDxy')
  await rejects(t, fh.readFile('bogus' as BufferEncoding), 'ERR_INVALID_ARG_VALUE')
  await rejects(t, fh.writeFile(5 as unknown as string), 'ERR_INVALID_ARG_TYPE')
  await rejects(t, fh.readFile({ signal: AbortSignal.abort() }), 'ABORT_ERR')
  await fh.close()
})

each('large readFile and writeFile (several chunks in flight) keep every byte', async (t, context) => {
  const data = randomBytes((5 << 20) + 123)
  const p = tmp()
  await writeFile(p, data, { context })
  t.is(sha(fs.readFileSync(p)), sha(data))
  t.is(sha(await readFile(p, { context })), sha(data))
  const fh = await open(p, 'r', 0o666, { context })
  t.is(sha(await fh.readFile()), sha(data))
  await fh.close()
})

each('stat, truncate, sync, datasync, chmod, chown, utimes', async (t, context) => {
  const p = tmp('0123456789')
  const fh = await open(p, 'r+', 0o666, { context })
  t.is((await fh.stat()).size, 10)
  t.is((await fh.stat({ bigint: true })).size, 10n)
  await fh.truncate(4)
  t.is((await fh.stat()).size, 4)
  await fh.truncate()
  t.is(fs.statSync(p).size, 0)
  await rejects(t, fh.truncate('1' as unknown as number), 'ERR_INVALID_ARG_TYPE')
  await fh.sync()
  await fh.datasync()
  await fh.chmod(0o600)
  t.is(fs.statSync(p).mode & 0o777, 0o600)
  await rejects(t, fh.chmod('zz' as unknown as number), 'ERR_INVALID_ARG_VALUE')
  await fh.chown(-1, -1)
  await fh.utimes(1000, new Date(2_000_000))
  t.is(fs.statSync(p).mtimeMs, 2_000_000)
  await fh.close()
})

each('close: emits close, waits for running operations, then EBADF', async (t, context) => {
  const p = tmp(randomBytes(1 << 20))
  const fh = await open(p, 'r', 0o666, { context })
  const closed = once(fh, 'close')
  const reading = fh.readFile()
  const closing = fh.close()
  await closed
  t.is((await reading).length, 1 << 20)
  await closing
  t.is(fh.fd, -1)
  await fh.close()
  const ops: [string, () => Promise<unknown>][] = [
    ['read', () => fh.read()],
    ['write', () => fh.write('x')],
    ['readv', () => fh.readv([Buffer.alloc(1)])],
    ['writev', () => fh.writev([Buffer.alloc(1)])],
    ['readFile', () => fh.readFile()],
    ['writeFile', () => fh.writeFile('x')],
    ['writeFile', () => fh.appendFile('x')],
    ['fstat', () => fh.stat()],
    ['ftruncate', () => fh.truncate()],
    ['fsync', () => fh.sync()],
    ['fdatasync', () => fh.datasync()],
    ['fchmod', () => fh.chmod(0o644)],
    ['fchown', () => fh.chown(-1, -1)],
    ['futimes', () => fh.utimes(1, 1)],
  ]
  for (const [syscall, op] of ops) await rejects(t, op(), 'EBADF', syscall)
})

each('Symbol.asyncDispose closes the handle', async (t, context) => {
  const p = tmp('x')
  let fd = -1
  let ino = 0
  {
    await using fh = await open(p, 'r', 0o666, { context })
    fd = fh.fd
    ino = fs.fstatSync(fd).ino
    t.true(fd >= 0)
  }
  // Closed: EBADF, or the number already reused by a test running alongside (another file).
  let reused: number | undefined
  try {
    reused = fs.fstatSync(fd).ino
  } catch (e) {
    t.is((e as NodeJS.ErrnoException).code, 'EBADF')
  }
  t.not(reused, ino)
})

each('readLines', async (t, context) => {
  const fh = await open(tmp('one\ntwo\r\nthree'), 'r', 0o666, { context })
  const lines: string[] = []
  for await (const line of fh.readLines()) lines.push(line)
  t.deepEqual(lines, ['one', 'two', 'three'])
  // The stream closes the handle once it has ended (autoClose), asynchronously.
  for (let i = 0; i < 200 && fh.fd !== -1; i++) await new Promise((r) => setTimeout(r, 5))
  t.is(fh.fd, -1)
})

each('append mode: positions and contents as node:fs', async (t, context) => {
  const p = tmp('abc')
  const fh = await open(p, 'a+', 0o666, { context })
  t.is((await fh.read(Buffer.alloc(2), 0, 2, null)).buffer.toString(), 'ab')
  await fh.write('123', 0)
  await fh.write('45')
  t.is((await fh.read(Buffer.alloc(4), 0, 4, null)).bytesRead, 0)
  t.is(fs.readFileSync(p, 'utf8'), 'abc12345')
  await fh.close()
  await appendFile(p, 'Z', { context })
  t.is(fs.readFileSync(p, 'utf8'), 'abc12345Z')
})

each('module readFile, writeFile, appendFile: options and errors', async (t, context) => {
  const p = tmp()
  await writeFile(p, 'héllo', { context })
  t.is(await readFile(p, { encoding: 'utf8', context }), 'héllo')
  t.is(await readFile(p, { encoding: 'latin1', context }), Buffer.from('héllo').toString('latin1'))
  await writeFile(p, '6869', { encoding: 'hex', context })
  t.is(fs.readFileSync(p, 'utf8'), 'hi')
  await appendFile(p, '!', { context, mode: 0o600 })
  t.is(await readFile(p, 'utf8'), 'hi!')
  await writeFile(p, (async function* () {
    yield 'a'
    yield Buffer.from('b')
  })(), { context, flush: true })
  t.is(fs.readFileSync(p, 'utf8'), 'ab')
  const fh = await open(p, 'r', 0o666, { context })
  t.is(await readFile(fh, 'utf8'), 'ab')
  await fh.close()
  await rejects(t, readFile(path.join(tempDir(), 'nope'), { context }), 'ENOENT', 'open')
  await rejects(t, writeFile(p, 'x', { flag: 'wx', context }), 'EEXIST', 'open')
  await rejects(t, readFile(p, 5 as unknown as BufferEncoding), 'ERR_INVALID_ARG_TYPE')
  await rejects(t, writeFile(p, 'x', { signal: AbortSignal.abort(), context }), 'ABORT_ERR')
})

each('copyFile: content, mode, COPYFILE_EXCL, errors shaped like node', async (t, context) => {
  const data = randomBytes((9 << 20) + 17)
  const src = tmp(data)
  fs.chmodSync(src, 0o640)
  const dest = tmp()
  await copyFile(src, dest, { context })
  t.is(sha(fs.readFileSync(dest)), sha(data))
  t.is(fs.statSync(dest).mode & 0o777, 0o640)
  fs.writeFileSync(dest, 'longer than nothing, overwritten')
  await copyFile(tmp('short'), dest)
  t.is(fs.readFileSync(dest, 'utf8'), 'short')
  const err = (await t.throwsAsync(copyFile(src, dest, fs.constants.COPYFILE_EXCL))) as NodeJS.ErrnoException & { dest: string }
  t.is(err.code, 'EEXIST')
  t.is(err.syscall, 'copyfile')
  t.is(err.path, src)
  t.is(err.dest, dest)
  t.is(fs.readFileSync(dest, 'utf8'), 'short', 'an EEXIST leaves the destination alone')
  await rejects(t, copyFile(path.join(tempDir(), 'nope'), dest, { context }), 'ENOENT', 'copyfile')
  await rejects(t, copyFile(src, dest, 8), 'ERR_OUT_OF_RANGE')
  await copyFile(dest, dest)
  t.is(fs.readFileSync(dest, 'utf8'), 'short', 'copying a file onto itself changes nothing')
})

test('the default Context serves calls without options.context', async (t) => {
  const p = tmp()
  await writeFile(p, 'default')
  const fh = await open(p)
  t.is(fh.context.implementation, implementation)
  t.is(await fh.readFile('utf8'), 'default')
  const other = await open(p)
  t.is(other.context, fh.context, 'one Context per thread')
  await fh.close()
  await other.close()
})
