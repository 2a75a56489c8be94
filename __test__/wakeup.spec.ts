// How completions reach JavaScript: Node's event loop watches the completion eventfd
// (uv_poll, one thread hop); where libuv's functions are not available it falls back to a
// threadsafe function. KAIO_NO_UV_POLL=1 forces the fallback so both paths are tested.
// Busy polling (KAIO_BUSY_POLL, the default `busyPoll`) keeps the loop turning while requests
// are outstanding: timers still fire, and the spin stops when it should.
import test from 'ava'
import { execFile, spawnSync } from 'node:child_process'
import * as path from 'node:path'

import { implementations } from '../index'
import { tempPath, unmet } from './helpers'

const CHILD = path.join(process.cwd(), '__test__', 'fixtures', 'wakeup-child.cjs')
const native = implementations.filter((i) => i !== 'js')

for (const [name, env] of [
  ['event-loop watch (uv_poll)', {}],
  ['threadsafe-function fallback', { KAIO_NO_UV_POLL: '1' }],
  ['busy polling (KAIO_BUSY_POLL=1000000)', { KAIO_BUSY_POLL: '1000000' }],
] as const) {
  test(`${name}: async completions arrive, data is right, the process exits by itself`, async (t) => {
    if (unmet(t, 'native')) return
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, [CHILD, tempPath()], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (child.exitCode ?? -1) : 0, stdout, stderr }),
      )
    })
    t.is(code, 0, stderr)
    t.deepEqual(stdout.trim().split('\n'), native.map((i) => `ok ${i}`))
  })
}

test('a bad KAIO_BUSY_POLL warns once and leaves busy polling off', (t) => {
  const script = `const warnings = []; process.on('warning', (w) => warnings.push(w.name + ' ' + w.code))
    const { Context } = require(${JSON.stringify(path.join(process.cwd(), 'index.js'))})
    const a = new Context({ implementation: 'js' }), b = new Context()
    const polls = [a.busyPoll, b.busyPoll, new Context({ busyPoll: 7 }).busyPoll]
    process.on('exit', () => process.stdout.write(JSON.stringify({ polls, warnings })))`
  for (const bad of ['-1', '1e3', 'fast', '1000001']) {
    const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, KAIO_BUSY_POLL: bad }, encoding: 'utf8' })
    t.is(r.status, 0, r.stderr)
    const expected = native.length > 0 ? [0, 0, 7] : [0, 0, 0]
    t.deepEqual(JSON.parse(r.stdout), { polls: expected, warnings: ['KaioWarning KAIO_BUSY_POLL'] })
  }
})
