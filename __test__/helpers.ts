// Shared test helpers: run a spec once per backend, and temp files on the real disk.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { backends as backendStatus, Context, implementations } from '../index'
import type { ContextOptions, Implementation } from '../index'

export const backends: readonly Implementation[] = implementations

/** Registers `title` once per available backend, with a fresh Context closed afterwards. */
export function each(
  title: string,
  fn: (t: ExecutionContext, ctx: Context, impl: Implementation) => Promise<unknown>,
  options: Omit<ContextOptions, 'implementation'> = {},
): void {
  for (const impl of backends) {
    test(`${impl}: ${title}`, async (t) => {
      const ctx = new Context({ ...options, implementation: impl })
      try {
        await fn(t, ctx, impl)
      } finally {
        await ctx.close()
      }
    })
  }
}

/**
 * Capabilities a test needs that a machine can lack, and the one way to skip for lack of one.
 *
 * `if (unmet(t, 'direct')) return` at the top of a test (or of the part that needs it): where
 * the capability is missing, the test logs `skipped: <reason>` and passes; but if the
 * environment variable `KAIO_REQUIRE` names the capability, the test fails with the reason
 * instead, so a CI machine that should have it cannot go green by skipping.
 *
 *   KAIO_REQUIRE=direct,native,linux-aio,npm,setpriv   (comma-separated; unknown names throw)
 *
 * - `direct`: a directory that accepts O_DIRECT (see `directDir()`; ext4 does, tmpfs did not before Linux 6.6)
 * - `native`: the native binding loaded (the `linux` and `thread` backends)
 * - `linux-aio`: the `linux` backend (kernel AIO: io_setup works)
 * - `npm`: `npm` on PATH (the pack/install test)
 * - `setpriv`: running as root with util-linux's `setpriv`, to drop capabilities in a child
 * - `direct-refused`: a filesystem that refuses O_DIRECT (tmpfs before Linux 6.6); never
 *   required in CI, since current kernels have none
 * .ci/run sets KAIO_REQUIRE to every capability but `direct-refused`.
 */
export type Capability = 'direct' | 'native' | 'linux-aio' | 'uring' | 'cc' | 'npm' | 'setpriv' | 'direct-refused'

const probes: Record<Capability, () => string | undefined> = {
  direct: () => (directDir() === undefined ? `no directory accepts O_DIRECT (tried ${directCandidates().join(', ')})` : undefined),
  native: () => (implementations.includes('thread') ? undefined : 'the native binding did not load: only the js backend exists'),
  'linux-aio': () => (implementations.includes('linux') ? undefined : 'the linux backend (kernel AIO) is unavailable here'),
  npm: () => {
    const r = spawnSync('npm', ['--version'], { encoding: 'utf8' })
    if (r.error) return `npm is not available (${r.error.message})`
    return r.status === 0 ? undefined : `npm --version exited with ${String(r.status)}`
  },
  setpriv: () => {
    if (process.getuid?.() !== 0) return 'not running as root'
    const r = spawnSync('setpriv', ['--version'], { encoding: 'utf8' })
    return r.error || r.status !== 0 ? `setpriv is not available (${r.error?.message ?? r.stderr})` : undefined
  },
  uring: () => (implementations.includes('uring') ? undefined : `io_uring unavailable: ${backendStatus().uring.reason}`),
  cc: () => {
    const r = spawnSync('cc', ['--version'], { encoding: 'utf8' })
    return r.error || r.status !== 0 ? `no C compiler (cc) on PATH (${r.error?.message ?? r.stderr})` : undefined
  },
  'direct-refused': () => 'probed by its test',
}

const required = new Set((process.env.KAIO_REQUIRE ?? '').split(',').map((s) => s.trim()).filter(Boolean))
for (const name of required) {
  if (!(name in probes)) throw new Error(`KAIO_REQUIRE names an unknown capability '${name}' (known: ${Object.keys(probes).join(', ')})`)
}
const missingCache = new Map<Capability, string | undefined>()

/** Why `cap` is missing here, or undefined if it is present (probed once per process). */
export function missing(cap: Capability): string | undefined {
  if (!missingCache.has(cap)) missingCache.set(cap, probes[cap]())
  return missingCache.get(cap)
}

/**
 * True when the test must stop for lack of `cap` (`reason`, if given, overrides the probe:
 * for capabilities a test finds missing by trying). Logs the skip, or fails the test when
 * `KAIO_REQUIRE` names `cap`.
 */
export function unmet(t: ExecutionContext, cap: Capability, reason: string | undefined = missing(cap)): boolean {
  if (reason === undefined) return false
  if (required.has(cap)) t.fail(`KAIO_REQUIRE includes ${cap}, but: ${reason}`)
  else {
    t.log(`skipped: needs ${cap}: ${reason}`)
    t.pass()
  }
  return true
}

function directCandidates(): string[] {
  return [os.tmpdir(), '/var/tmp', path.join(process.cwd(), 'target')]
}

let direct: string | null | undefined

/** A fresh directory that accepts O_DIRECT (the temp dir if it does, else /var/tmp or target/), removed at exit; undefined if none does. */
export function directDir(): string | undefined {
  if (direct === undefined) {
    direct = null
    for (const base of directCandidates()) {
      let d: string | undefined
      try {
        d = fs.mkdtempSync(path.join(base, 'kaio-direct-'))
        fs.closeSync(fs.openSync(path.join(d, 'probe'), fs.constants.O_CREAT | fs.constants.O_RDWR | fs.constants.O_DIRECT))
        const found = d
        process.on('exit', () => fs.rmSync(found, { recursive: true, force: true }))
        direct = d
        break
      } catch {
        // this one refuses O_DIRECT (or cannot be written): remove it and try the next
        if (d) fs.rmSync(d, { recursive: true, force: true })
      }
    }
  }
  return direct ?? undefined
}

/** A file in `directDir()` holding `content`, opened O_RDWR | O_DIRECT (call after `unmet(t, 'direct')`). */
export function directFile(content: Uint8Array): { path: string; fd: number } {
  const d = directDir()
  if (d === undefined) throw new Error(missing('direct'))
  const p = path.join(d, `d${process.pid}-${n++}`)
  fs.writeFileSync(p, content)
  return { path: p, fd: fs.openSync(p, fs.constants.O_RDWR | fs.constants.O_DIRECT) }
}

let dir: string | undefined

/** A fresh directory on the real (ext4) disk, removed at exit. */
export function tempDir(): string {
  if (!dir) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kaio-test-'))
    const d = dir
    process.on('exit', () => fs.rmSync(d, { recursive: true, force: true }))
  }
  return dir
}

let n = 0
/** A new temp file opened with `flags` (default read-write, created); returns path and fd. */
export function tempFile(flags: number = fs.constants.O_RDWR | fs.constants.O_CREAT, content?: Uint8Array): { path: string; fd: number } {
  const p = path.join(tempDir(), `f${process.pid}-${n++}`)
  if (content) fs.writeFileSync(p, content)
  const fd = fs.openSync(p, flags, 0o644)
  return { path: p, fd }
}

/** Asserts an error's Node-style shape: code, and syscall where given. */
export function isSystemError(t: ExecutionContext, err: unknown, code: string, syscall?: string): void {
  const e = err as NodeJS.ErrnoException
  t.true(e instanceof Error, `expected an Error, got ${String(err)}`)
  t.is(e.code, code)
  if (syscall !== undefined) {
    t.is(e.syscall, syscall)
    t.is(typeof e.errno, 'number')
    t.true((e.errno ?? 0) < 0)
  }
}

/** A fresh path in the temp directory, with `content` written there if given. */
export function tempPath(content?: string | Uint8Array): string {
  const p = path.join(tempDir(), `p${process.pid}-${n++}`)
  if (content !== undefined) fs.writeFileSync(p, content)
  return p
}

/**
 * A FIFO with its other end held open read-write by this process (so opening either end never
 * blocks a thread); keep the data under the pipe's 64 KiB, so that no write blocks either.
 */
export function heldFifo(): { path: string; keeper: number } {
  const p = tempPath()
  execFileSync('mkfifo', [p])
  return { path: p, keeper: fs.openSync(p, fs.constants.O_RDWR) }
}

export function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}
