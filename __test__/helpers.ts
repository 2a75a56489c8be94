// Shared test helpers: run a spec once per backend, and temp files on the real disk.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { Context, implementations } from '../index'
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

export function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}
