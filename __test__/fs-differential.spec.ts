// Differential test: the same operations (valid and invalid) on a kaio FileHandle and on a
// node:fs/promises FileHandle over twin files must give the same results, the same error
// codes and the same file contents. Random sequences from a seeded PRNG plus fixed cases,
// for every backend, with and without O_DIRECT on the kaio side.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as os from 'node:os'
import * as path from 'node:path'

import { appendFile, Context, copyFile, implementations, open, readFile, writeFile } from '../index'
import type { FileHandle } from '../index'
import { rng } from './fixtures/common'
import { directDir, unmet } from './helpers'

// In a directory that accepts O_DIRECT where there is one (the O_DIRECT sessions need it).
const dir = fs.mkdtempSync(path.join(directDir() ?? os.tmpdir(), 'kaio-fs-diff-'))
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))

// Seeds: KAIO_FS_SEED reproduces a run.
const BASE_SEED = Number(process.env.KAIO_FS_SEED ?? 0x5eed)
const OPS_PER_SESSION = 700
const DIRECT_OPS_PER_SESSION = 250


class Rng {
  readonly next: () => number
  constructor(seed: number) {
    this.next = rng(seed)
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = this.int(0, 255)
    return b
  }
  text(n: number): string {
    const alphabet = 'abcdef0123456789 xyzé€\n'
    let s = ''
    for (let i = 0; i < n; i++) s += alphabet[this.int(0, alphabet.length - 1)]
    return s
  }
}

/** Both handles are driven through kaio's type; node's has the same methods. */
type Handle = FileHandle

/** One operation: its arguments are built afresh for each side from the same random draws. */
interface Op {
  desc: string
  run: (h: Handle) => Promise<unknown>
  post?: (v: unknown) => unknown
}

type Outcome = { ok: true; value: unknown } | { ok: false; name: string; code: unknown; syscall: unknown }

function norm(v: unknown): unknown {
  if (typeof v === 'bigint') return `${v}n`
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`
  if (Array.isArray(v)) return v.map(norm)
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(v).sort()) out[k] = norm((v as Record<string, unknown>)[k])
    return out
  }
  if (typeof v === 'number' && Number.isNaN(v)) return 'NaN'
  return v
}

async function outcome(op: Op, h: Handle): Promise<Outcome> {
  try {
    const v = await op.run(h)
    return { ok: true, value: norm(op.post ? op.post(v) : v) }
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    return { ok: false, name: err?.name, code: err?.code, syscall: err?.syscall }
  }
}

/** A copy of `b` as a fresh view of the same type. */
type ViewMaker = () => ArrayBufferView

function viewMaker(rng: Rng, maxLen: number): { make: ViewMaker; desc: string } {
  const len = rng.chance(0.1) ? 0 : rng.int(1, maxLen)
  const fill = rng.bytes(len)
  const kind = rng.pick(['Buffer', 'Buffer', 'Buffer', 'Uint8Array', 'DataView', 'Uint16Array'] as const)
  const make = (): ArrayBufferView => {
    const b = Buffer.from(fill)
    switch (kind) {
      case 'Buffer':
        return b
      case 'Uint8Array':
        return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))
      case 'DataView':
        return new DataView(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))
      case 'Uint16Array': {
        const even = fill.subarray(0, fill.length & ~1)
        return new Uint16Array(Uint8Array.from(even).buffer)
      }
    }
  }
  return { make, desc: `${kind}(${kind === 'Uint16Array' ? len & ~1 : len})` }
}

function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'string') return JSON.stringify(v.length > 24 ? `${v.slice(0, 24)}...` : v)
  if (v === undefined) return 'undefined'
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v)
  return JSON.stringify(v)
}

/** One random operation; `k` scales buffer sizes and positions (k > 1 crosses O_DIRECT blocks). */
function genOp(rng: Rng, size: number, k = 1): Op {
  const posPick = (): unknown =>
    rng.pick([undefined, null, null, 'int', 'int', 'int', 0, -1, -5, 1.5, 2n, 'x', NaN, Infinity] as const) === 'int'
      ? rng.int(0, size + 16 * k)
      : rng.pick([undefined, null, null, 0, -1, -5, 1.5, 2n, 'x', NaN, Infinity])
  const wposPick = (): unknown => (rng.chance(0.6) ? rng.int(0, size + 16 * k) : rng.pick([undefined, null, -1, 1.5, 'x', 2n]))
  const kind = rng.int(0, 99)
  if (kind < 22) {
    // read(buffer, offset, length, position) and its object forms
    const n = 48 * k
    const { make, desc } = viewMaker(rng, n)
    const off = rng.pick([undefined, null, 'int', 'int', 'int', -1, 1.5, '1'] as const) === 'int' ? rng.int(0, n) : rng.pick([undefined, null, 0, -1, 1.5, '1'])
    const len = rng.pick([undefined, null, 'int', 'int', 'int', -1] as const) === 'int' ? rng.int(0, n + 2) : rng.pick([undefined, null, -1])
    const pos = posPick()
    const form = rng.int(0, 9)
    if (form < 6) return { desc: `read(${desc}, ${show(off)}, ${show(len)}, ${show(pos)})`, run: (h) => h.read(make() as Buffer, off as number, len as number, pos as number) }
    if (form < 8) {
      return {
        desc: `read({buffer: ${desc}, offset: ${show(off)}, length: ${show(len)}, position: ${show(pos)}})`,
        run: (h) => h.read({ buffer: make() as Buffer, offset: off as number, length: len as number, position: pos as number }),
      }
    }
    if (form < 9) {
      return {
        desc: `read(${desc}, {offset: ${show(off)}, length: ${show(len)}, position: ${show(pos)}})`,
        run: (h) => h.read(make() as Buffer, { offset: off as number, length: len as number, position: pos as number }),
      }
    }
    const bad = rng.pick([undefined, null, {}, 'str', 5, [], () => 1] as const)
    return { desc: `read(${typeof bad === 'function' ? 'fn' : show(bad)})`, run: (h) => (h.read as (a?: unknown) => Promise<unknown>)(bad) }
  }
  if (kind < 44) {
    const form = rng.int(0, 9)
    if (form < 6) {
      const { make, desc } = viewMaker(rng, 40 * k)
      const off = rng.chance(0.6) ? rng.int(0, 40 * k) : rng.pick([undefined, null, -1, 1.5, '1', 40 * k + 1])
      const len = rng.chance(0.6) ? rng.int(0, 40 * k + 2) : rng.pick([undefined, null, -1, 1.5, '2', NaN])
      const pos = wposPick()
      if (form < 5) return { desc: `write(${desc}, ${show(off)}, ${show(len)}, ${show(pos)})`, run: (h) => h.write(make() as Buffer, off as number, len as number, pos as number) }
      return {
        desc: `write(${desc}, {offset: ${show(off)}, length: ${show(len)}, position: ${show(pos)}})`,
        run: (h) => (h.write as (...a: unknown[]) => Promise<unknown>)(make(), { offset: off, length: len, position: pos }),
      }
    }
    if (form < 9) {
      const enc = rng.pick([undefined, undefined, null, 'utf8', 'hex', 'latin1', 'base64', 'ucs2', 'bogus', 5] as const)
      const str = enc === 'hex' ? rng.pick(['ab', 'abc', '0f1e2d', 'zz', '']) : rng.text(rng.int(0, 24))
      const pos = wposPick()
      return { desc: `write(${show(str)}, ${show(pos)}, ${show(enc)})`, run: (h) => (h.write as (...a: unknown[]) => Promise<unknown>)(str, pos, enc) }
    }
    const bad = rng.pick([5, {}, null, undefined, { byteLength: 0 }, true] as const)
    return { desc: `write(${show(bad)})`, run: (h) => (h.write as (a: unknown) => Promise<unknown>)(bad) }
  }
  if (kind < 52) {
    const count = rng.int(0, 3)
    const makers = Array.from({ length: count }, () => viewMaker(rng, 16 * k))
    const pos = rng.chance(0.2) ? rng.pick([undefined, null, -1, 1.5, 'x']) : posPick()
    const bad = rng.chance(0.08) ? rng.pick(['x', [1], undefined, [Buffer.alloc(1), 'a']] as const) : null
    const args = (): unknown => bad ?? makers.map((m) => m.make())
    const descs = bad ? show(bad) : `[${makers.map((m) => m.desc).join(', ')}]`
    if (rng.chance(0.5)) return { desc: `readv(${descs}, ${show(pos)})`, run: (h) => (h.readv as (...a: unknown[]) => Promise<unknown>)(args(), pos) }
    return { desc: `writev(${descs}, ${show(pos)})`, run: (h) => (h.writev as (...a: unknown[]) => Promise<unknown>)(args(), pos) }
  }
  if (kind < 58) {
    const len = rng.chance(0.7) ? rng.int(0, size + 24 * k) : rng.pick([undefined, -3, 1.5, '4', null])
    return { desc: `truncate(${show(len)})`, run: (h) => (h.truncate as (l?: unknown) => Promise<void>)(len) }
  }
  if (kind < 64) {
    const opt = rng.pick([undefined, { bigint: true }, {}, null] as const)
    return {
      desc: `stat(${show(opt)})`,
      run: (h) => (h.stat as (o?: unknown) => Promise<fs.Stats | fs.BigIntStats>)(opt),
      post: (s) => ({ size: (s as fs.Stats).size, file: (s as fs.Stats).isFile() }),
    }
  }
  if (kind < 72) {
    const opt = rng.pick([undefined, null, 'utf8', 'latin1', { encoding: 'hex' }, 'bogus', 5, {}, 'base64'] as const)
    return { desc: `readFile(${show(opt)})`, run: (h) => (h.readFile as (o?: unknown) => Promise<unknown>)(opt) }
  }
  if (kind < 84) {
    const dataKind = rng.int(0, 5)
    const text = rng.text(rng.int(0, 30 * k))
    const bytes = rng.bytes(rng.int(0, 30 * k))
    const data = (): unknown =>
      dataKind === 0 ? text : dataKind === 1 ? Buffer.from(bytes) : dataKind === 2 ? new Uint16Array(Uint8Array.from(bytes.subarray(0, bytes.length & ~1)).buffer) : dataKind === 3 ? [text, 'x', text] : dataKind === 4 ? 5 : (function* () {
        yield Buffer.from(bytes)
        yield text
      })()
    const opt = rng.pick([undefined, 'utf8', 'hex', { encoding: 'latin1' }, 'bogus', 5, { flush: 'x' }] as const)
    const method = rng.pick(['writeFile', 'appendFile'] as const)
    return {
      desc: `${method}(${['text', 'buffer', 'u16', 'array', 'number', 'generator'][dataKind]}, ${show(opt)})`,
      run: (h) => (h[method] as (d: unknown, o?: unknown) => Promise<void>)(data(), opt),
    }
  }
  if (kind < 88) {
    const which = rng.pick(['sync', 'datasync'] as const)
    return { desc: `${which}()`, run: (h) => h[which]() }
  }
  const meta = rng.int(0, 5)
  if (meta === 0) return { desc: 'chmod(0o644)', run: (h) => h.chmod(0o644) }
  if (meta === 1) {
    const m = rng.pick(['zz', undefined, '644', -1] as const)
    return { desc: `chmod(${show(m)})`, run: (h) => (h.chmod as (m: unknown) => Promise<void>)(m) }
  }
  if (meta === 2) return { desc: 'chown(-1, -1)', run: (h) => h.chown(-1, -1) }
  if (meta === 3) return { desc: "chown('a', 1)", run: (h) => (h.chown as (u: unknown, g: unknown) => Promise<void>)('a', 1) }
  if (meta === 4) return { desc: 'utimes(1000, 2000)', run: (h) => h.utimes(1000, 2000) }
  return { desc: "utimes('x', 1)", run: (h) => (h.utimes as (a: unknown, m: unknown) => Promise<void>)('x', 1) }
}

interface Session {
  flags: string | number
  direct: boolean
  ops: number
  seed: number
  /** Scale of sizes and positions. */
  k: number
}

let fileNo = 0

/** Runs one session; returns the operations run, or fails the test at the first difference. */
async function runSession(t: ExecutionContext, ctx: Context, s: Session): Promise<number> {
  const rng = new Rng(s.seed)
  const initial = rng.bytes(rng.int(0, 200 * s.k))
  const a = path.join(dir, `k${fileNo}`)
  const b = path.join(dir, `n${fileNo++}`)
  fs.writeFileSync(a, initial)
  fs.writeFileSync(b, initial)
  const kh = await open(a, s.flags, 0o666, { context: ctx, direct: s.direct })
  const nh = (await fsp.open(b, s.flags)) as unknown as Handle
  const where = `seed ${s.seed} flags ${show(s.flags)} direct ${s.direct}`
  const log: string[] = []
  let count = 0
  const step = async (op: Op): Promise<boolean> => {
    count++
    log.push(op.desc)
    if (log.length > 12) log.shift()
    const [ko, no] = [await outcome(op, kh), await outcome(op, nh)]
    const ka = fs.readFileSync(a)
    const nb = fs.readFileSync(b)
    const same = JSON.stringify(ko) === JSON.stringify(no) && ka.equals(nb)
    if (!same) {
      t.fail(
        `${where}, op #${count}: ${op.desc}\n  kaio: ${JSON.stringify(ko)}\n  node: ${JSON.stringify(no)}\n` +
          `  files equal: ${ka.equals(nb)} (kaio ${ka.length} bytes, node ${nb.length} bytes)\n  last ops:\n    ${log.join('\n    ')}`,
      )
    }
    return same
  }
  try {
    for (let i = 0; i < s.ops; i++) {
      const size = fs.statSync(b).size
      if (!(await step(genOp(rng, size, s.k)))) return count
    }
    // Closed: every method rejects with EBADF (syscall = the method), close resolves.
    if (!(await step({ desc: 'close()', run: (h) => h.close() }))) return count
    if (!(await step({ desc: 'close() again', run: (h) => h.close() }))) return count
    for (let i = 0; i < 20; i++) if (!(await step(genOp(rng, 0)))) return count
  } finally {
    await kh.close()
    await nh.close()
  }
  return count
}

const FLAGS: (string | number)[] = ['r+', 'w+', 'a+', 'r', 'a', 'w', fs.constants.O_RDWR, 'as+']
const DIRECT_FLAGS: (string | number)[] = ['r+', 'w+', 'a+', 'w', 'a']

for (const implementation of implementations) {
  test(`${implementation}: random operation sequences match node:fs/promises`, async (t) => {
    const ctx = new Context({ implementation })
    let total = 0
    try {
      for (let i = 0; i < FLAGS.length; i++) {
        total += await runSession(t, ctx, { flags: FLAGS[i]!, direct: false, ops: OPS_PER_SESSION, seed: BASE_SEED + i, k: 1 })
      }
    } finally {
      await ctx.close()
    }
    t.log(`${total} operations`)
    t.true(total >= FLAGS.length * OPS_PER_SESSION)
  })

  test(`${implementation}: random sequences with O_DIRECT match node:fs/promises without`, async (t) => {
    if (unmet(t, 'direct')) return
    const ctx = new Context({ implementation })
    let total = 0
    try {
      for (let i = 0; i < DIRECT_FLAGS.length; i++) {
        // Small files (one block) and larger ones (many blocks, unaligned everything).
        total += await runSession(t, ctx, { flags: DIRECT_FLAGS[i]!, direct: true, ops: DIRECT_OPS_PER_SESSION, seed: BASE_SEED + 100 + i, k: 1 })
        total += await runSession(t, ctx, { flags: DIRECT_FLAGS[i]!, direct: true, ops: DIRECT_OPS_PER_SESSION, seed: BASE_SEED + 200 + i, k: 150 })
      }
    } finally {
      await ctx.close()
    }
    t.log(`${total} operations`)
    t.true(total >= 2 * DIRECT_FLAGS.length * DIRECT_OPS_PER_SESSION)
  })
}

/** Fixed sequences: each op runs on both sides in order. */
const FIXED: { name: string; flags: string; content: string; ops: Op[] }[] = [
  {
    name: 'position: null reads advance, numbered reads do not',
    flags: 'r+',
    content: 'abcdefghij',
    ops: [
      { desc: 'read 3', run: (h) => h.read(Buffer.alloc(3), 0, 3, null) },
      { desc: 'read at 0', run: (h) => h.read(Buffer.alloc(3), 0, 3, 0) },
      { desc: 'read 3 more', run: (h) => h.read(Buffer.alloc(3), 0, 3, null) },
      { desc: 'write null', run: (h) => h.write('XY') },
      { desc: 'read rest', run: (h) => h.read(Buffer.alloc(8), 0, 8, null) },
      { desc: 'readFile from position', run: (h) => h.readFile('utf8') },
      { desc: 'read past end', run: (h) => h.read(Buffer.alloc(4), 0, 4, 100) },
    ],
  },
  {
    name: 'append mode: writes land at the end whatever the position',
    flags: 'a+',
    content: 'start',
    ops: [
      { desc: 'read from 0', run: (h) => h.read(Buffer.alloc(3), 0, 3, null) },
      { desc: 'append', run: (h) => h.write('111') },
      { desc: 'read after append', run: (h) => h.read(Buffer.alloc(5), 0, 5, null) },
      { desc: 'positional write appends', run: (h) => h.write('222', 0) },
      { desc: 'read after', run: (h) => h.read(Buffer.alloc(5), 0, 5, null) },
      { desc: 'truncate', run: (h) => h.truncate(4) },
      { desc: 'append again', run: (h) => h.write('3') },
      { desc: 'appendFile', run: (h) => h.appendFile('44') },
      { desc: 'readFile', run: (h) => h.readFile() },
      { desc: 'writev null', run: (h) => h.writev([Buffer.from('5'), Buffer.from('6')]) },
      { desc: 'readv 0', run: (h) => h.readv([Buffer.alloc(4), Buffer.alloc(4)], 0) },
    ],
  },
  {
    name: 'huge position: EFBIG from the kernel',
    flags: 'r+',
    content: 'x',
    ops: [{ desc: 'write at 2^50', run: (h) => h.write(Buffer.from('z'), 0, 1, 2 ** 50) }],
  },
  {
    name: 'write-only and read-only handles',
    flags: 'w',
    content: 'data',
    ops: [
      { desc: 'read', run: (h) => h.read() },
      { desc: 'readv', run: (h) => h.readv([Buffer.alloc(2)]) },
      { desc: 'readFile', run: (h) => h.readFile() },
      { desc: 'write', run: (h) => h.write('ok') },
    ],
  },
  {
    name: 'aborted signals',
    flags: 'r+',
    content: 'data',
    ops: [
      { desc: 'readFile aborted', run: (h) => h.readFile({ signal: AbortSignal.abort() }) },
      { desc: 'writeFile aborted', run: (h) => h.writeFile('x', { signal: AbortSignal.abort() }) },
      { desc: 'readFile bad signal', run: (h) => h.readFile({ signal: 5 as unknown as AbortSignal }) },
    ],
  },
  {
    name: 'empty and oversized arguments',
    flags: 'r+',
    content: 'data',
    ops: [
      { desc: 'readv []', run: (h) => h.readv([]) },
      { desc: 'writev []', run: (h) => h.writev([]) },
      { desc: 'readv empty views', run: (h) => h.readv([Buffer.alloc(0)]) },
      { desc: 'read length 0, bad position', run: (h) => h.read(Buffer.alloc(2), 0, 0, 'x' as unknown as number) },
      { desc: 'read at a bigint position past 2^53', run: (h) => h.read(Buffer.alloc(4), 0, 4, 2n ** 60n) },
      { desc: 'read at position -1n', run: (h) => h.read(Buffer.alloc(4), 0, 4, -1n) },
      { desc: 'read at position -5', run: (h) => h.read(Buffer.alloc(4), 0, 4, -5) },
      { desc: 'read empty buffer', run: (h) => h.read(Buffer.alloc(0), 0, 1) },
      { desc: 'write empty string', run: (h) => h.write('') },
      { desc: 'readv 1100 views', run: (h) => h.readv(Array.from({ length: 1100 }, () => Buffer.alloc(1)), 0) },
      { desc: 'writev 1100 views', run: (h) => h.writev(Array.from({ length: 1100 }, (_, i) => Buffer.from([i & 0xff])), 0) },
    ],
  },
]

for (const implementation of implementations) {
  for (const c of FIXED) {
    test(`${implementation}: fixed: ${c.name}`, async (t) => {
      const ctx = new Context({ implementation })
      const a = path.join(dir, `fk${fileNo}`)
      const b = path.join(dir, `fn${fileNo++}`)
      fs.writeFileSync(a, c.content)
      fs.writeFileSync(b, c.content)
      const kh = await open(a, c.flags, 0o666, { context: ctx })
      const nh = (await fsp.open(b, c.flags)) as unknown as Handle
      try {
        for (const op of c.ops) {
          const ko = await outcome(op, kh)
          const no = await outcome(op, nh)
          t.deepEqual(ko, no, op.desc)
          t.deepEqual(fs.readFileSync(a), fs.readFileSync(b), `contents after ${op.desc}`)
        }
      } finally {
        await kh.close()
        await nh.close()
        await ctx.close()
      }
    })
  }
}

test('module functions match node:fs/promises', async (t) => {
  const ctx = new Context()
  const k = (n: string): string => path.join(dir, `mk-${n}`)
  const n = (x: string): string => path.join(dir, `mn-${x}`)
  const both = async (desc: string, kf: () => Promise<unknown>, nf: () => Promise<unknown>): Promise<void> => {
    const op = (f: () => Promise<unknown>): Op => ({ desc, run: () => f() })
    const ko = await outcome(op(kf), null as unknown as Handle)
    const no = await outcome(op(nf), null as unknown as Handle)
    t.deepEqual(ko, no, desc)
  }
  await both('writeFile', () => writeFile(k('a'), 'hello', { context: ctx }), () => fsp.writeFile(n('a'), 'hello'))
  await both('appendFile', () => appendFile(k('a'), ' world', { context: ctx }), () => fsp.appendFile(n('a'), ' world'))
  await both('readFile utf8', () => readFile(k('a'), { encoding: 'utf8', context: ctx }), () => fsp.readFile(n('a'), 'utf8'))
  await both('readFile missing', () => readFile(k('missing'), { context: ctx }), () => fsp.readFile(n('missing')))
  await both('readFile bad path', () => readFile(5 as unknown as string), () => fsp.readFile(5 as unknown as string))
  await both('readFile NUL path', () => readFile('a\u0000b'), () => fsp.readFile('a\u0000b'))
  await both('readFile bad flag', () => readFile(k('a'), { flag: 'q' as 'r' }), () => fsp.readFile(n('a'), { flag: 'q' }))
  await both('readFile directory', () => readFile(dir, { context: ctx }), () => fsp.readFile(dir))
  await both('writeFile wx exists', () => writeFile(k('a'), 'x', { flag: 'wx', context: ctx }), () => fsp.writeFile(n('a'), 'x', { flag: 'wx' }))
  await both('writeFile bad data', () => writeFile(k('b'), 5 as unknown as string), () => fsp.writeFile(n('b'), 5 as unknown as string))
  await both('writeFile iterable', () => writeFile(k('c'), ['a', 'b', Buffer.from('c')], { context: ctx }), () => fsp.writeFile(n('c'), ['a', 'b', Buffer.from('c')]))
  await both('writeFile flush', () => writeFile(k('d'), 'x', { flush: true, context: ctx }), () => fsp.writeFile(n('d'), 'x', { flush: true }))
  await both('writeFile bad flush', () => writeFile(k('d'), 'x', { flush: 1 as unknown as boolean }), () => fsp.writeFile(n('d'), 'x', { flush: 1 as unknown as boolean }))
  await both('copyFile', () => copyFile(k('a'), k('copy'), { context: ctx }), () => fsp.copyFile(n('a'), n('copy')))
  await both('copyFile excl', () => copyFile(k('a'), k('copy'), fs.constants.COPYFILE_EXCL), () => fsp.copyFile(n('a'), n('copy'), fs.constants.COPYFILE_EXCL))
  await both('copyFile missing', () => copyFile(k('missing'), k('x')), () => fsp.copyFile(n('missing'), n('x')))
  await both('copyFile to self', () => copyFile(k('a'), k('a')), () => fsp.copyFile(n('a'), n('a')))
  await both('copyFile bad mode', () => copyFile(k('a'), k('y'), 8), () => fsp.copyFile(n('a'), n('y'), 8))
  await both('copyFile mode type', () => copyFile(k('a'), k('y'), 'x' as unknown as number), () => fsp.copyFile(n('a'), n('y'), 'x' as unknown as number))
  await both('copyFile directory', () => copyFile(dir, k('z')), () => fsp.copyFile(dir, n('z')))
  t.deepEqual(fs.readFileSync(k('a')), fs.readFileSync(n('a')))
  t.deepEqual(fs.readFileSync(k('copy')), fs.readFileSync(n('copy')))
  t.deepEqual(fs.readFileSync(k('c')), fs.readFileSync(n('c')))
  t.is(fs.statSync(k('copy')).mode, fs.statSync(n('copy')).mode)
  t.false(fs.existsSync(k('z')))
  await ctx.close()
})
