// Issue 6, item 6: seeded fuzzing of every public function's argument validation with values
// of every JS type. Each call must return a result or fail with an Error carrying a string
// `code` (promise-returning methods must reject, never throw), never crash or hang.
// Values that would be valid but expensive or dangerous (other descriptors of this process,
// gigabyte sizes, huge kernel rings) are mapped to cheap ones; the mapping keeps the type.
// KAIO_FUZZ_SEED and KAIO_FUZZ_CASES override the seed and the cases per function.
import test from 'ava'
import * as fs from 'node:fs'
import { inspect } from 'node:util'

import { allocAligned, Context, implementations, isAligned } from '../index'
import type { Implementation } from '../index'
import { rng, scratchFile } from './fixtures/common'

const SEED = Number(process.env.KAIO_FUZZ_SEED ?? 0x6a10)
const CASES = Number(process.env.KAIO_FUZZ_CASES ?? 1500)
// Generous: a loaded disk can make one fsync take seconds; a real hang never settles.
const HANG_MS = 30_000

let fileFd = -1
test.before(() => {
  fileFd = fs.openSync(scratchFile(Buffer.alloc(64 * 1024, 7)), 'r+')
})
test.after.always(() => fs.closeSync(fileFd))

class FuzzThrow extends Error {
  code = 'FUZZ_THROW'
}

function detachedInt32(): Int32Array {
  const ab = new ArrayBuffer(16)
  const v = new Int32Array(ab, 4, 2)
  structuredClone(ab, { transfer: [ab] })
  return v
}

function detached(): Uint8Array {
  const ab = new ArrayBuffer(16)
  const v = new Uint8Array(ab)
  structuredClone(ab, { transfer: [ab] })
  return v
}

/** A random value of any JS type. */
function anyValue(r: () => number, depth = 0): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
  switch (Math.floor(r() * 16)) {
    case 0: return pick([undefined, null, true, false])
    case 1: return pick([0, -0, 1, -1, 0.5, -1.5, NaN, Infinity, -Infinity, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), Number.MAX_VALUE, Number.MIN_VALUE, 4096, 512, 65536, 65537, 1024, 1025])
    case 2: return Math.floor(r() * 2 ** 16) - 2 ** 10
    case 3: return (r() - 0.5) * 2 ** (Math.floor(r() * 70))
    case 4: return pick([0n, 1n, -1n, 2n ** 31n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n, -(2n ** 63n), 4096n])
    case 5: return pick(['', '0', '1', '4096', 'linux', 'thread', 'js', 'io_uring', 'x'.repeat(5000), '\u0000', '💥', 'NaN'])
    case 6: return pick([Symbol('s'), Symbol.iterator])
    case 7: return pick([() => 1, function named() {}, async () => {}, class K {}, Math.max])
    case 8: return pick([{}, Object.create(null), new Date(0), /x/, new Map(), new Set(), Promise.resolve(1), new Error('e'), new WeakRef({}), { valueOf: () => 4096 }, { toString: () => '3' }, { length: 4 }, { byteLength: 8, buffer: new ArrayBuffer(8) }])
    case 9: return pick([Buffer.alloc(0), Buffer.alloc(17, 1), Buffer.from('hello'), allocAligned(4096), allocAligned(8192).subarray(1, 4097), Buffer.alloc(100).subarray(3, 50)])
    case 10: return pick([new Uint8Array(8), new Int32Array(4), new Float64Array(3), new BigInt64Array(2), new Uint16Array(0), new DataView(new ArrayBuffer(12), 4), new Uint8ClampedArray(5), new Float32Array(new SharedArrayBuffer(16))])
    case 11: return pick([new ArrayBuffer(8), new SharedArrayBuffer(8), detached(), detachedInt32()])
    case 12: {
      if (depth > 1) return []
      const n = Math.floor(r() * 4)
      return Array.from({ length: n }, () => (r() < 0.6 ? Buffer.alloc(Math.floor(r() * 64)) : anyValue(r, depth + 1)))
    }
    case 13: {
      if (depth > 1) return {}
      // Options-shaped objects with random members, sometimes hostile.
      const o: Record<string, unknown> = {}
      for (const k of ['signal', 'flags', 'priority', 'maxRequests', 'implementation', 'poolSize']) if (r() < 0.3) o[k] = anyValue(r, depth + 1)
      if (r() < 0.2) o.signal = r() < 0.5 ? AbortSignal.abort() : new AbortController().signal
      if (r() < 0.05) Object.defineProperty(o, 'flags', { get() { throw new FuzzThrow('getter') }, enumerable: true })
      return o
    }
    case 14: return pick([new Proxy({}, { get: () => 1 }), new Proxy([], {}), Object.freeze([Buffer.alloc(1)])])
    default: return pick([AbortSignal.abort(), new AbortController().signal, fileFd, 0, 1, 4096, 0n])
  }
}

/** Keeps valid-but-costly values cheap and away from this process's other descriptors. */
function tame(v: unknown, role: 'fd' | 'size' | 'offset' | 'any'): unknown {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) {
    if (role === 'fd' && v < 2 ** 31) return v % 2 === 0 ? fileFd : 2 ** 31 - 1
    if (role === 'size' && v > 1 << 20) return v % 4096
  }
  return v
}

function tameOptions(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v) || Object.getOwnPropertyDescriptor(v, 'flags')?.get) return v
  const o = { ...(v as Record<string, unknown>) }
  if (typeof o.maxRequests === 'number' && o.maxRequests > 256) o.maxRequests = 8
  if (typeof o.poolSize === 'number' && o.poolSize > 8) o.poolSize = 2
  return o
}

function show(args: unknown[]): string {
  try {
    return inspect(args, { depth: 1, maxStringLength: 20, maxArrayLength: 4, breakLength: Infinity })
  } catch {
    return args.map((a) => typeof a).join(', ')
  }
}

interface Verdict { ok: boolean; why?: string }

/**
 * `waitMs`: how long to wait for settlement. A poll for events a regular file never reports
 * (POLLPRI, 0...) legitimately stays pending on the thread backend: such promises go to
 * `pending` and must settle when the context closes.
 */
async function judge(promiseReturning: boolean, call: () => unknown, created: Context[], waitMs = HANG_MS, pending?: Promise<Verdict>[]): Promise<Verdict> {
  let value: unknown
  try {
    value = call()
  } catch (e) {
    if (promiseReturning) return { ok: false, why: `threw synchronously: ${String(e)}` }
    return coded(e)
  }
  if (value instanceof Context) created.push(value)
  if (!promiseReturning) return { ok: true }
  if (!(value instanceof Promise)) return { ok: false, why: 'did not return a promise' }
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<Verdict>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, why: `no settlement within ${waitMs} ms` }), waitMs)
  })
  const settled = value.then((): Verdict => ({ ok: true }), (e: unknown) => coded(e))
  const v = await Promise.race([settled, hang])
  clearTimeout(timer)
  if (!v.ok && pending && v.why?.startsWith('no settlement')) {
    pending.push(settled)
    return { ok: true }
  }
  return v
}

function coded(e: unknown): Verdict {
  if (!(e instanceof Error)) return { ok: false, why: `rejected with a non-Error ${String(e)}` }
  const code = (e as { code?: unknown }).code
  if (typeof code !== 'string') return { ok: false, why: `Error without a code: ${e.name}: ${e.message}` }
  return { ok: true }
}

type Target = { name: string; promise: boolean; call: (ctx: Context, a: () => unknown) => unknown }

const targets: Target[] = [
  { name: 'read', promise: true, call: (c, a) => c.read(tame(a(), 'size') as never, tame(a(), 'fd') as never, tame(a(), 'offset') as never, a() as never) },
  { name: 'readInto', promise: true, call: (c, a) => c.readInto(a() as never, tame(a(), 'fd') as never, a() as never, a() as never) },
  { name: 'write', promise: true, call: (c, a) => c.write(a() as never, tame(a(), 'fd') as never, a() as never, a() as never) },
  { name: 'readv', promise: true, call: (c, a) => c.readv(a() as never, tame(a(), 'fd') as never, a() as never, a() as never) },
  { name: 'writev', promise: true, call: (c, a) => c.writev(a() as never, tame(a(), 'fd') as never, a() as never, a() as never) },
  { name: 'fsync', promise: true, call: (c, a) => c.fsync(tame(a(), 'fd') as never, a() as never) },
  { name: 'fdsync', promise: true, call: (c, a) => c.fdsync(tame(a(), 'fd') as never, a() as never) },
  { name: 'poll', promise: true, call: (c, a) => c.poll(tame(a(), 'fd') as never, a() as never, a() as never) },
  { name: 'allocAligned', promise: false, call: (_c, a) => allocAligned(tame(a(), 'size') as never, a() as never) },
  { name: 'isAligned', promise: false, call: (_c, a) => isAligned(a() as never, a() as never) },
]

for (const impl of implementations) {
  for (const target of targets) {
    if (!target.promise && impl !== implementations[0]) continue
    test.serial(`${impl}: fuzz ${target.name} (${CASES} cases, seed ${SEED})`, async (t) => {
      t.timeout(120_000)
      const r = rng(SEED ^ target.name.length * 7919 ^ impl.length)
      const ctx = new Context({ implementation: impl, maxRequests: 16, poolSize: 2 })
      const created: Context[] = []
      const failures: string[] = []
      const pending: Promise<Verdict>[] = []
      const isPoll = target.name === 'poll'
      try {
        for (let i = 0; i < CASES; i++) {
          const args: unknown[] = []
          const v = await judge(target.promise, () => target.call(ctx, () => {
            const x = anyValue(r)
            args.push(x)
            return x
          }), created, isPoll ? 200 : HANG_MS, isPoll ? pending : undefined)
          if (!v.ok) failures.push(`case ${i}: ${v.why}; raw args ${show(args)}`)
        }
      } finally {
        await ctx.close()
      }
      if (pending.length > 0) {
        t.log(`${pending.length} polls stayed pending until close()`)
        let timer: NodeJS.Timeout | undefined
        const late = await Promise.race([Promise.all(pending), new Promise<null>((r) => (timer = setTimeout(() => r(null), HANG_MS)))])
        clearTimeout(timer)
        if (late === null) failures.push('polls pending at close() never settled')
        else for (const v of late) if (!v.ok) failures.push(`pending poll: ${v.why}`)
      }
      t.deepEqual(failures.slice(0, 10), [])
    })
  }

  test.serial(`${impl}: fuzz new Context() (${Math.ceil(CASES / 5)} cases)`, async (t) => {
    t.timeout(120_000)
    const r = rng(SEED + 17)
    const created: Context[] = []
    const failures: string[] = []
    for (let i = 0; i < Math.ceil(CASES / 5); i++) {
      let opts = tameOptions(anyValue(r))
      // Steer half the cases to this backend so each one's constructor path runs.
      if (r() < 0.5 && opts !== null && typeof opts === 'object' && !Array.isArray(opts) && !Object.getOwnPropertyDescriptor(opts, 'flags')?.get) opts = { ...(opts as object), implementation: impl as Implementation }
      const v = await judge(false, () => new Context(opts as never), created)
      if (!v.ok) failures.push(`case ${i}: ${v.why}; options ${show([opts])}`)
      // Every context made gets used once and closed.
      for (const c of created.splice(0)) {
        const u = await judge(true, () => c.write('x', fileFd, 0), [])
        if (!u.ok) failures.push(`case ${i} (use): ${u.why}; options ${show([opts])}`)
        await c.close()
      }
    }
    t.deepEqual(failures.slice(0, 10), [])
  })
}
