// How many kernel entries a request costs: `io_uring_enter` per read on the uring backend (and
// `io_submit` + `io_getevents` on linux, for comparison), at depth 1 and 32, O_DIRECT and page
// cache. Each case runs a fixed number of 4 KiB random `readInto`s in a child process under
// `strace -f`; a child that does no reads (same setup and teardown) is subtracted. Every call
// is split by thread (the JS thread or another) and, for io_uring_enter, by whether it
// submitted anything (to_submit > 0) or only reaped / waited (to_submit == 0).
//   npx tsc -p tsconfig.test.json && node benchmark/enter-count.js [--dir DIR] [--ops N]
// Needs strace (apt-get install -y strace).
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { allocAligned, Context } from '../index'
import type { Implementation } from '../index'
import { O_DIRECT } from '../src/bench/engines'
import { fillTestFile, openTestFile, removeTestFile, testFilePath, warm } from '../src/bench/testfile'

const SIZE = 256 << 20
const BS = 4096
const SYSCALLS = ['io_uring_enter', 'io_submit', 'io_getevents', 'io_pgetevents']

interface Case {
  impl: Implementation
  direct: boolean
  depth: number
  ops: number
}

/** The child: `ops` reads at `depth` in flight, nothing else. */
async function child(file: string, c: Case): Promise<void> {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | (c.direct ? O_DIRECT : 0))
  const ctx = new Context({ implementation: c.impl, maxRequests: Math.max(128, c.depth) })
  let issued = 0
  await Promise.all(
    Array.from({ length: c.depth }, async (_, w) => {
      const buf = allocAligned(BS)
      let s = (w + 1) * 0x9e3779b1
      while (issued < c.ops) {
        issued++
        s ^= s << 13
        s ^= s >>> 17
        s ^= s << 5
        await ctx.readInto(buf, fd, ((s >>> 0) % (SIZE / BS)) * BS)
      }
    }),
  )
  await ctx.close()
  fs.closeSync(fd)
}

interface Counts {
  /** Calls per syscall on the JS thread and on other threads. */
  js: Map<string, number>
  other: Map<string, number>
  /** io_uring_enter calls with to_submit == 0 (reap or wait only), any thread. */
  reapOnly: number
}

/** Runs the child under strace; counts the calls in its output. */
function traced(file: string, c: Case): Counts {
  const out = path.join(os.tmpdir(), `kaio-enter-count-${process.pid}.strace`)
  const r = spawnSync(
    'strace',
    ['-f', '-qq', '-e', `trace=${SYSCALLS.join(',')}`, '-o', out, process.execPath, __filename, '--child', file, JSON.stringify(c)],
    { encoding: 'utf8', stdio: ['ignore', 'inherit', 'pipe'] },
  )
  if (r.error) throw new Error(`strace: ${r.error.message} (apt-get install -y strace)`)
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr.trim().split('\n').pop() ?? r.status}`)
  const text = fs.readFileSync(out, 'utf8')
  fs.unlinkSync(out)
  const counts: Counts = { js: new Map(), other: new Map(), reapOnly: 0 }
  // The first pid in the file is the traced process itself: its main (JS) thread.
  let main: string | undefined
  for (const line of text.split('\n')) {
    // "<pid> name(args) = r", or "<pid> name(args <unfinished ...>"; resumptions are not calls.
    const m = /^(\d+)\s+(\w+)\((.*)/.exec(line)
    if (!m) continue
    main ??= m[1]
    const [, pid, name, args] = m
    if (!SYSCALLS.includes(name!)) continue
    const side = pid === main ? counts.js : counts.other
    side.set(name!, (side.get(name!) ?? 0) + 1)
    if (name === 'io_uring_enter' && Number(args!.split(',')[1]) === 0) counts.reapOnly++
  }
  return counts
}

function minus(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  return new Map(SYSCALLS.map((s) => [s, (a.get(s) ?? 0) - (b.get(s) ?? 0)]))
}

async function main(): Promise<void> {
  const a = process.argv.slice(2)
  if (a[0] === '--child') return child(a[1]!, JSON.parse(a[2]!) as Case)
  const opt = (name: string, dflt: string): string => {
    const i = a.indexOf(name)
    return i >= 0 && a[i + 1] !== undefined ? a[i + 1]! : dflt
  }
  const ops = Number(opt('--ops', '20000'))
  const file = testFilePath(undefined, opt('--dir', process.cwd()))
  fillTestFile(openTestFile(file), file, SIZE)
  try {
    const rows: string[][] = [['backend', 'mode', 'depth', 'reads', 'per read: JS thread', 'per read: other threads', 'io_uring_enter with to_submit=0, per read']]
    for (const impl of ['uring', 'linux'] as const) {
      for (const direct of [true, false]) {
        for (const depth of [1, 32]) {
          const n = direct ? Math.max(1, Math.floor(ops / 4)) : ops
          if (!direct) warm(file)
          const base = traced(file, { impl, direct, depth, ops: 0 })
          if (!direct) warm(file)
          const run = traced(file, { impl, direct, depth, ops: n })
          const fmt = (m: Map<string, number>): string =>
            [...m].filter(([, v]) => v !== 0).map(([k, v]) => `${k} ${(v / n).toFixed(3)}`).join(', ') || '0'
          rows.push([
            impl,
            direct ? 'O_DIRECT' : 'page cache',
            String(depth),
            String(n),
            fmt(minus(run.js, base.js)),
            fmt(minus(run.other, base.other)),
            impl === 'uring' ? ((run.reapOnly - base.reapOnly) / n).toFixed(3) : '-',
          ])
        }
      }
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
    const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
    console.log(`${os.cpus()[0]?.model ?? ''} ×${os.cpus().length}, Linux ${os.release()}, node ${process.version}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; 256 MiB file, 4 KiB random readInto, strace -f`)
    console.log('')
    console.log(line(rows[0]!))
    console.log(line(widths.map((w) => '-'.repeat(w))))
    for (const r of rows.slice(1)) console.log(line(r))
  } finally {
    removeTestFile()
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e)
  process.exitCode = 1
})
