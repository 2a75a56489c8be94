// Backend selection: AIO_IMPL, the default-implementation file, auto-detection, the kill
// switch. Each case runs in a child process against a private copy of the built package, so
// a default-implementation file never leaks into the specs running beside this one.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'

import { implementations } from '../index'
import { tempDir, unmet } from './helpers'

const root = process.cwd()
const native = implementations.includes('linux')

/** A copy of the built package (JS, loader and native module) in a fresh directory. */
function packageCopy(defaultImplementation?: string): string {
  const dir = fs.mkdtempSync(path.join(tempDir(), 'pkg-'))
  for (const f of fs.readdirSync(root)) {
    if (/^(index\.js|binding\.js|.*\.node)$/.test(f)) fs.copyFileSync(path.join(root, f), path.join(dir, f))
  }
  fs.cpSync(path.join(root, 'src'), path.join(dir, 'src'), { recursive: true, filter: (p) => !p.endsWith('.ts') || p.endsWith('.d.ts') })
  if (defaultImplementation !== undefined) fs.writeFileSync(path.join(dir, 'default-implementation'), defaultImplementation)
  return dir
}

const shared = packageCopy()

interface Warning {
  name: string
  code: string
  /** Whether the message carries backends()'s reason for the backend it is about. */
  saysWhy?: boolean
}

function probe(env: Record<string, string>, wrap: string[] = [], pkg = shared): { impl: string; all: string[]; reasons: Record<string, string>; warnings: Warning[]; stderr: string } {
  const script = `const seen = []; process.on('warning', (w) => seen.push(w))
    const k = require(${JSON.stringify(pkg)});
    const r = {}; for (const [n, s] of Object.entries(k.backends())) r[n] = s.reason
    process.on('exit', () => {
      const why = r[process.env.AIO_IMPL] || ''
      const warnings = seen.map((w) => ({ name: w.name, code: w.code, saysWhy: why === '' ? undefined : w.message.includes(why) }))
      process.stdout.write(JSON.stringify({ impl: k.implementation, all: k.implementations, reasons: r, warnings }))
    })`
  const clean: Record<string, string | undefined> = { ...process.env, AIO_IMPL: undefined, KAIO_DISABLE_LINUX_AIO: undefined, KAIO_DISABLE_IO_URING: undefined }
  const [cmd, ...pre] = [...wrap, process.execPath]
  const r = spawnSync(cmd!, [...pre, '-e', script], { env: { ...clean, ...env } as NodeJS.ProcessEnv, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(r.stderr)
  return { ...(JSON.parse(r.stdout) as { impl: string; all: string[]; reasons: Record<string, string>; warnings: Warning[] }), stderr: r.stderr }
}

test('auto-detection picks the first available of uring, linux, thread, js', (t) => {
  const p = probe({})
  t.deepEqual(p.all, native ? ['uring', 'linux', 'thread', 'js'] : p.all)
  t.is(p.impl, p.all[0]!)
  t.is(p.stderr, '')
})

test('AIO_IMPL selects the process default', (t) => {
  for (const impl of implementations) {
    const p = probe({ AIO_IMPL: impl })
    t.is(p.impl, impl)
    t.is(p.stderr, '', 'no warning for a valid, available value')
  }
})

test('an unknown AIO_IMPL warns with the valid values and falls back to auto-detection', (t) => {
  const p = probe({ AIO_IMPL: 'io_uring' })
  t.is(p.impl, p.all[0]!)
  t.deepEqual(p.warnings, [{ name: 'KaioWarning', code: 'KAIO_IMPL' }])
})

test('an unavailable AIO_IMPL warns with the reason and falls back', (t) => {
  if (unmet(t, 'native')) return // the js-only case is covered by the js-only install in pack.spec
  const p = probe({ AIO_IMPL: 'linux', KAIO_DISABLE_LINUX_AIO: '1' })
  t.is(p.impl, 'uring')
  t.deepEqual(p.all, ['uring', 'thread', 'js'])
  // The warning names the reason backends() gives (compared with the child's own).
  t.deepEqual(p.warnings, [{ name: 'KaioWarning', code: 'KAIO_IMPL', saysWhy: true }])
  t.not(p.reasons.linux, '')
  t.is(p.reasons.thread, '')
})

test('the default-implementation file names the default when AIO_IMPL is unset', (t) => {
  const pkg = packageCopy('# chosen by the distribution\n\n  js  \nthread\n')
  t.is(probe({}, [], pkg).impl, 'js', 'first line that is not empty or a comment')
  t.is(probe({ AIO_IMPL: native ? 'thread' : 'js' }, [], pkg).impl, native ? 'thread' : 'js', 'the env var wins')
  const unknown = packageCopy('io_uring\n')
  const p = probe({}, [], unknown)
  t.is(p.impl, p.all[0]!, 'an unknown line is ignored')
  t.is(p.stderr, '')
  if (native) t.is(probe({}, [], packageCopy('uring\n')).impl, 'uring', 'uring is a valid line')
})

test('a missing native module means js, with the reason in backends()', (t) => {
  const pkg = packageCopy()
  for (const f of fs.readdirSync(pkg)) if (f.endsWith('.node')) fs.rmSync(path.join(pkg, f))
  const p = probe({}, [], pkg)
  t.is(p.impl, 'js')
  t.deepEqual(p.all, ['js'])
  // Both native backends are missing for the same reason, and it is given.
  t.not(p.reasons.linux, '')
  t.is(p.reasons.thread, p.reasons.linux)
})

test('KAIO_DISABLE_IO_URING=1 takes uring out; the default falls through to linux', (t) => {
  if (unmet(t, 'native')) return
  const p = probe({ KAIO_DISABLE_IO_URING: '1' })
  t.deepEqual(p.all, ['linux', 'thread', 'js'])
  t.is(p.impl, 'linux')
  t.is(p.reasons.uring, 'disabled by KAIO_DISABLE_IO_URING')
  t.is(p.stderr, '')
})

// io_uring refused the way containers and hardened kernels refuse it: a seccomp filter that
// answers io_uring_setup with EPERM (Docker's default profile, kernel.io_uring_disabled) or
// ENOSYS (gVisor, emulators). A small C helper installs the filter and execs node.
for (const errno of ['EPERM', 'ENOSYS'] as const) {
  test(`io_uring_setup refused with ${errno} (seccomp): uring unavailable with the reason, the default is linux`, (t) => {
    if (unmet(t, 'native') || unmet(t, 'cc')) return
    const helper = seccompHelper()
    const p = probe({}, [helper, errno === 'EPERM' ? '1' : '38'])
    t.deepEqual(p.all, ['linux', 'thread', 'js'])
    t.is(p.impl, 'linux')
    t.is(p.reasons.uring, `io_uring_setup failed: ${errno}`)
    t.is(p.stderr, '')
  })
}

let helperPath: string | undefined
/** fixtures/seccomp-exec.c, compiled once into the temp directory. */
function seccompHelper(): string {
  if (helperPath) return helperPath
  const out = path.join(tempDir(), 'seccomp-exec')
  const r = spawnSync('cc', ['-O2', '-o', out, path.join(root, '__test__', 'fixtures', 'seccomp-exec.c')], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`cc failed: ${r.stderr}`)
  return (helperPath = out)
}
