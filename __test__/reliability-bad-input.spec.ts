// Issue 6, item 1: bad input gives a clear, coded error on every backend, never a crash.
// The case matrix lives in fixtures/bad-input-cases.ts; fixtures/bad-input-table.ts renders
// it (with node:fs's behaviour) for the README.
import test from 'ava'
import * as fs from 'node:fs'

import { Context, implementations } from '../index'
import { binding } from '../src/native'
import { cases, closeEnv, expected, openEnv } from './fixtures/bad-input-cases'
import type { Env } from './fixtures/bad-input-cases'
import { outcome, scratchFile } from './fixtures/common'
import { unmet } from './helpers'

let env: Env
test.before(() => {
  env = openEnv()
})
test.after.always(() => closeEnv(env))

for (const impl of implementations) {
  for (const c of cases) {
    // Serial: a "closed fd" number must not be reused by a concurrent test's eventfd.
    test.serial(`${impl}: ${c.group}: ${c.title}`, async (t) => {
      const ctx = new Context({ implementation: impl })
      try {
        const r = await outcome(() => c.kaio(ctx, env))
        const want = expected(c, impl)
        t.is(r.code, want, r.err ? String(r.err) : `resolved ${String(r.value)}`)
        if (r.code === 'ok') {
          if (c.check) t.true(c.check(r.value), `unexpected value ${String(r.value)}`)
          return
        }
        t.true(r.err instanceof Error)
        if (r.code.startsWith('ERR_')) {
          const cls = r.code === 'ERR_OUT_OF_RANGE' ? RangeError : r.code === 'ERR_AIO_CLOSED' ? Error : TypeError
          t.true(r.err instanceof cls, `${r.code} should be a ${cls.name}`)
        } else if (c.syscall !== undefined) {
          t.is(r.err?.syscall, c.syscall)
          t.is(typeof r.err?.errno, 'number')
          t.true((r.err?.errno ?? 0) < 0)
        }
      } finally {
        await ctx.close()
      }
    })
  }
}

test('node:fs comparison cases run without crashing', async (t) => {
  let n = 0
  for (const c of cases) {
    if (!c.node) continue
    const r = await outcome(() => c.node!(env))
    t.is(typeof r.code, 'string')
    n++
  }
  t.true(n > 40)
})

// node:fs.write ignores a bigint position and writes at the file position instead; kaio's js
// backend must not pass such offsets through (data would land at offset 0 here).
for (const impl of implementations) {
  test.serial(`${impl}: a write at a bigint offset beyond 2**53 never lands elsewhere in the file`, async (t) => {
    const p = scratchFile(Buffer.alloc(16, 0x2e))
    const fd = fs.openSync(p, 'r+')
    const ctx = new Context({ implementation: impl })
    try {
      await ctx.write('QQQQ', fd, 2n ** 60n).catch(() => 0)
      t.deepEqual(fs.readFileSync(p), Buffer.alloc(16, 0x2e))
    } finally {
      await ctx.close()
      fs.closeSync(fd)
    }
  })
}

// The per-request native calls take arguments TypeScript has validated; called directly with
// wrong ones (a kaio bug), they throw instead of crashing or queueing garbage.
test('native per-request calls throw coded errors on wrong arguments and on a destroyed context', (t) => {
  if (unmet(t, 'native') || !binding) return
  const { ctxRead, ctxWrite } = binding.fastCalls()
  const call = (f: (...a: never[]) => void, ...args: unknown[]) => () => (f as (...a: unknown[]) => void)(...args)
  const buf = new Uint8Array(8)
  for (const f of [ctxRead, ctxWrite]) {
    t.throws(call(f), { code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(call(f, 1, 0, 0, 0, new Float64Array(1), 0, -1), { code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(call(f, 1, 0, 0, 'x', buf, 0, -1), { code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(call(f, 1, 0, 0, 2n ** 70n, buf, 0, -1), { code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(call(f, 0xffffffff, 0, 0, 0, buf, 0, -1), { code: 'ERR_AIO_CLOSED' })
  }
})
