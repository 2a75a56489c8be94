// A request never runs with credentials the process has dropped (CVE-2024-22017: libuv's
// io_uring, created before setuid(), kept writing as root). As root, a child creates a context
// on every backend (and a SQPOLL ring, whose kernel thread is the case the CVE was about), then
// drops to nobody with process.setgid/setuid; afterwards kaio's writeFile to a root-only file
// must fail exactly as fs.promises.writeFile does (EACCES, syscall open), the file must keep
// its bytes, and the contexts must still work on a file nobody may write.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { implementations } from '../index'
import { unmet } from './helpers'

test('after process.setuid() to nobody, kaio writes to a root-only file fail with EACCES like fs.writeFile, on every backend', (t) => {
  if (unmet(t, 'setpriv')) return // root, needed to drop privileges
  const { dir, secret } = rootOnlyFile(t)
  const open = path.join(dir, 'world-writable')
  fs.writeFileSync(open, '')
  fs.chmodSync(open, 0o666)
  const script = `
    const fs = require('node:fs')
    const kaio = require(${JSON.stringify(process.cwd())})
    const impls = ${JSON.stringify(implementations)}
    const ctxs = impls.map((impl) => new kaio.Context({ implementation: impl }))
    if (impls.includes('uring')) ctxs.push(new kaio.Context({ implementation: 'uring', sqpoll: 100 }))
    ;(async () => {
      // Warm every context as root, so rings, workers and kernel threads exist before the drop.
      const warm = fs.openSync(${JSON.stringify(open)}, 'r+')
      for (const c of ctxs) await c.write('w', warm, 0)
      fs.closeSync(warm)
      process.setgid(65534)
      process.setuid(65534)
      const out = { uid: process.getuid(), node: null, kaio: [], writes: [] }
      try { await fs.promises.writeFile(${JSON.stringify(secret)}, 'x') } catch (e) { out.node = [e.code, e.syscall] }
      for (const c of ctxs) {
        try { await kaio.writeFile(${JSON.stringify(secret)}, 'x', { context: c }); out.kaio.push('written') }
        catch (e) { out.kaio.push([c.implementation, e.code, e.syscall]) }
        const fd = fs.openSync(${JSON.stringify(open)}, 'r+')
        out.writes.push(await c.write('ok', fd, 0))
        fs.closeSync(fd)
        await c.close()
      }
      console.log(JSON.stringify(out))
    })().catch((e) => { console.error(e); process.exit(1) })`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 })
  t.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { uid: number; node: [string, string]; kaio: unknown[]; writes: number[] }
  t.is(out.uid, 65534)
  t.deepEqual(out.node, ['EACCES', 'open'])
  const expected = implementations.map((impl) => [impl, 'EACCES', 'open'])
  if (implementations.includes('uring')) expected.push(['uring', 'EACCES', 'open'])
  t.deepEqual(out.kaio, expected)
  t.deepEqual(out.writes, expected.map(() => 2))
  t.is(fs.readFileSync(secret, 'utf8'), 'root data')
})

test('after process.setuid() to nobody, kaio path ops (open, mkdir, unlink) are refused like node:fs, on every backend', (t) => {
  if (unmet(t, 'setpriv')) return
  const { dir, secret } = rootOnlyFile(t)
  const script = `
    const fs = require('node:fs')
    const kaio = require(${JSON.stringify(process.cwd())})
    const impls = ${JSON.stringify(implementations)}
    const ctxs = impls.map((impl) => new kaio.Context({ implementation: impl }))
    if (impls.includes('uring')) ctxs.push(new kaio.Context({ implementation: 'uring', sqpoll: 100 }))
    const secret = ${JSON.stringify(secret)}
    const sub = ${JSON.stringify(path.join(dir, 'sub'))}
    ;(async () => {
      // Warm every context as root with the same ops, so rings, workers, pools and kernel
      // threads exist (and have run path ops) before the drop.
      for (const c of ctxs) await c.closeFd(await c.openat(secret, 0, 0))
      process.setgid(65534)
      process.setuid(65534)
      const errs = async (p) => { try { await p; return 'allowed' } catch (e) { return [e.code, e.syscall] } }
      const out = { uid: process.getuid(), node: [], kaio: [] }
      out.node.push(await errs(fs.promises.open(secret, 'r')), await errs(fs.promises.mkdir(sub)), await errs(fs.promises.unlink(secret)))
      for (const c of ctxs) {
        out.kaio.push([c.implementation, await errs(c.openat(secret, 0, 0)), await errs(c.mkdirat(sub, 0o755)), await errs(c.unlinkat(secret))])
        await c.close()
      }
      console.log(JSON.stringify(out))
    })().catch((e) => { console.error(e); process.exit(1) })`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 })
  t.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { uid: number; node: unknown[]; kaio: unknown[] }
  t.is(out.uid, 65534)
  t.deepEqual(out.node, [['EACCES', 'open'], ['EACCES', 'mkdir'], ['EACCES', 'unlink']])
  const impls = [...implementations, ...(implementations.includes('uring') ? ['uring'] : [])]
  t.deepEqual(out.kaio, impls.map((impl) => [impl, ...out.node]))
  t.is(fs.readFileSync(secret, 'utf8'), 'root data')
  t.false(fs.existsSync(path.join(dir, 'sub')))
})

/**
 * A 0755 directory (not under tempDir(): that one is 0700, and nobody must be able to reach
 * the files) holding `root-only`, 0600 with 'root data'; removed after the test.
 */
function rootOnlyFile(t: ExecutionContext): { dir: string; secret: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kaio-creds-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.chmodSync(dir, 0o755)
  const secret = path.join(dir, 'root-only')
  fs.writeFileSync(secret, 'root data')
  fs.chmodSync(secret, 0o600)
  return { dir, secret }
}
