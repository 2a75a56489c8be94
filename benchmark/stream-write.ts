// A buffered write stream fed 64 KiB chunks (200 MiB by default) through stream.pipeline, as a
// copy or an upload does: kaio's createWriteStream on each backend, at node's default
// highWaterMark and at 1 MiB, against fs.createWriteStream, alternating, median of the rounds.
// Each write's callback waits for its data to reach the descriptor (node's rule), so the
// stream runs one write at a time and the per-write cost of the backend decides.
//   node benchmark/stream-write.js [--dir DIR] [--mib 200] [--rounds 5]
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Readable } from 'node:stream'
import type { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

import { Context, createWriteStream, implementations } from '../index'
import { machine } from './common'

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

function source(mib: number): Readable {
  const chunk = Buffer.alloc(64 * 1024, 1)
  let n = 0
  return new Readable({
    read() {
      this.push(n++ < mib * 16 ? chunk : null)
    },
  })
}

async function main(): Promise<void> {
  const dir = option('dir', process.cwd())
  const mib = Number(option('mib', '200'))
  const rounds = Number(option('rounds', '5'))
  const file = path.join(dir, `.kaio-stream-write-${process.pid}`)
  console.log(`# write stream: ${mib} MiB in 64 KiB chunks through pipeline, buffered, ${rounds} rounds alternating; ms, median (all)\n${machine()}\n`)
  const contexts = new Map(implementations.map((impl) => [impl, new Context({ implementation: impl })]))
  const engines: [string, () => Writable][] = [['node:fs', () => fs.createWriteStream(file)]]
  for (const [impl, context] of contexts) {
    engines.push([`kaio ${impl}`, () => createWriteStream(file, { context })])
    engines.push([`kaio ${impl} hwm 1 MiB`, () => createWriteStream(file, { context, highWaterMark: 1 << 20 })])
  }
  const times = new Map<string, number[]>(engines.map(([name]) => [name, []]))
  try {
    for (let r = 0; r < rounds; r++) {
      for (const [name, make] of r % 2 === 0 ? engines : [...engines].reverse()) {
        const t0 = process.hrtime.bigint()
        await pipeline(source(mib), make())
        times.get(name)!.push(Number(process.hrtime.bigint() - t0) / 1e6)
      }
    }
  } finally {
    fs.rmSync(file, { force: true })
    for (const c of contexts.values()) await c.close()
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!
  const nodeMedian = median(times.get('node:fs')!)
  for (const [name, v] of times) {
    const m = median(v)
    console.log(`${name.padEnd(24)} ${m.toFixed(0).padStart(6)} ms  ×node ${(nodeMedian / m).toFixed(2)}  (${v.map((x) => x.toFixed(0)).join(' ')})`)
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})
