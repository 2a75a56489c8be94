// The bench's own test file: created with real (non-sparse) data written sequentially,
// warmed into the page cache before buffered runs, removed at the end (also on Ctrl-C).
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { randomFillSync } from 'node:crypto'

import { allocAligned } from '../aligned'
import { O_DIRECT } from './engines'
import { UsageError } from './options'

const CHUNK = 1 << 20

function why(e: unknown): string {
  const err = e as NodeJS.ErrnoException
  return err.code ?? (e instanceof Error ? e.message : String(e))
}

/** Picks the test file path; throws UsageError if the directory cannot take one. */
export function testFilePath(file: string | undefined, dir: string): string {
  if (file !== undefined) {
    const p = path.resolve(file)
    if (fs.existsSync(p)) throw new UsageError(`--file ${file} exists; refusing to overwrite it (give a new path)`)
    return p
  }
  let st: fs.Stats
  try {
    st = fs.statSync(dir)
  } catch (e) {
    throw new UsageError(`cannot use --dir ${dir}: ${why(e)}`)
  }
  if (!st.isDirectory()) throw new UsageError(`cannot use --dir ${dir}: not a directory`)
  return path.resolve(dir, `.kaio-bench-${process.pid}.tmp`)
}

/** The test file, or the fs suite's directory, that the run removes at exit. */
let owned: string | null = null

function removeOwned(): void {
  if (owned === null) return
  try {
    fs.rmSync(owned, { recursive: true, force: true })
  } catch {
    // already gone
  }
  owned = null
}

let hooked = false
function hookCleanup(): void {
  if (hooked) return
  hooked = true
  process.on('exit', removeOwned)
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.once(sig, () => {
      removeOwned()
      process.stderr.write(`\nkaio: interrupted (${sig}); test file removed\n`)
      process.exit(code)
    })
  }
}

/** Creates the fs suite's temporary directory under `dir`; throws UsageError when it cannot. */
export function testDirectory(dir: string): string {
  const base = testFilePath(undefined, dir)
  try {
    owned = fs.mkdtempSync(`${base.slice(0, -'.tmp'.length)}-fs-`)
  } catch (e) {
    throw new UsageError(`cannot create a directory in ${dir}: ${why(e)}`)
  }
  hookCleanup()
  return owned
}

/** Creates `p` (it must not exist); throws UsageError when the directory refuses it. */
export function openTestFile(p: string): number {
  let fd: number
  try {
    fd = fs.openSync(p, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600)
  } catch (e) {
    throw new UsageError(`cannot create the test file in ${path.dirname(p)}: ${why(e)}`)
  }
  owned = p
  hookCleanup()
  return fd
}

/**
 * Fills the file opened by `openTestFile` with `size` bytes of random data written
 * sequentially and synced, so no run reads holes; closes `fd`. Throws UsageError when the
 * file system refuses (no space, quota).
 */
export function fillTestFile(fd: number, p: string, size: number): void {
  try {
    const buf = randomFillSync(Buffer.allocUnsafe(CHUNK))
    let done = 0
    while (done < size) {
      const n = Math.min(CHUNK, size - done)
      // Vary each chunk a little so nothing below can deduplicate it.
      buf.writeDoubleLE(done, 0)
      let w = 0
      while (w < n) w += fs.writeSync(fd, buf, w, n - w, done + w)
      done += n
    }
    fs.fsyncSync(fd)
  } catch (e) {
    fs.closeSync(fd)
    removeOwned()
    throw new UsageError(`cannot write the ${size}-byte test file ${p}: ${why(e)}`)
  }
  fs.closeSync(fd)
}

/** Whether the file system under `p` takes O_DIRECT (tmpfs does not); '' or the reason. */
export function directProblem(p: string): string {
  if (O_DIRECT === 0) return 'O_DIRECT is not available on this platform'
  let fd: number
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY | O_DIRECT)
  } catch (e) {
    return `open with O_DIRECT failed: ${why(e)}`
  }
  try {
    fs.readSync(fd, allocAligned(4096), 0, 4096, 0)
    return ''
  } catch (e) {
    return `O_DIRECT read failed: ${why(e)}`
  } finally {
    fs.closeSync(fd)
  }
}

const warmBuf = Buffer.allocUnsafe(CHUNK)

/** Reads the whole file sequentially so the page cache holds it; returns seconds taken. */
export function warm(p: string): number {
  const t0 = process.hrtime.bigint()
  const fd = fs.openSync(p, fs.constants.O_RDONLY)
  try {
    let off = 0
    for (;;) {
      const n = fs.readSync(fd, warmBuf, 0, CHUNK, off)
      if (n <= 0) break
      off += n
    }
  } finally {
    fs.closeSync(fd)
  }
  return Number(process.hrtime.bigint() - t0) / 1e9
}

/** Flushes dirty pages after a write run, outside any measurement. */
export function sync(p: string): void {
  const fd = fs.openSync(p, fs.constants.O_RDONLY)
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

const DROP_CACHES = '/proc/sys/vm/drop_caches'

/**
 * Empties the page cache (all of it: `sync; echo 3 > /proc/sys/vm/drop_caches`) so that the
 * next run reads from the disk; '' or why it could not (not root, read-only /proc).
 */
export function dropCaches(): string {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return `not root (dropping the page cache needs root)`
  try {
    execFileSync('sync', { stdio: 'ignore' })
    fs.writeFileSync(DROP_CACHES, '3')
    return ''
  } catch (e) {
    return `cannot write ${DROP_CACHES}: ${why(e)}`
  }
}

/** Removes the test file. */
export function removeTestFile(): void {
  removeOwned()
}
