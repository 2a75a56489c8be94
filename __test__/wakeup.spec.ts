// How completions reach JavaScript: Node's event loop watches the completion eventfd
// (uv_poll, one thread hop); where libuv's functions are not available it falls back to a
// threadsafe function. KAIO_NO_UV_POLL=1 forces the fallback so both paths are tested.
import test from 'ava'
import { execFile } from 'node:child_process'
import * as path from 'node:path'

import { implementations } from '../index'
import { tempPath } from './helpers'

const CHILD = path.join(process.cwd(), '__test__', 'fixtures', 'wakeup-child.cjs')
const native = implementations.filter((i) => i !== 'js')

for (const [name, env] of [
  ['event-loop watch (uv_poll)', {}],
  ['threadsafe-function fallback', { KAIO_NO_UV_POLL: '1' }],
] as const) {
  test(`${name}: async completions arrive, data is right, the process exits by itself`, async (t) => {
    if (native.length === 0) return t.pass('no native backend here')
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, [CHILD, tempPath()], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (child.exitCode ?? -1) : 0, stdout, stderr }),
      )
    })
    t.is(code, 0, stderr)
    t.deepEqual(stdout.trim().split('\n'), native.map((i) => `ok ${i}`))
  })
}
