// Installs kaio as a user would: `npm pack` the root package and this platform's binary
// package, install the tarballs into a fresh project (offline), and use it from CommonJS,
// ESM and TypeScript; then again without the binary, on the js backend.
// The work is in scripts/pack-test.sh (also `npm run test:pack`); it needs `npm run build`.
import test from 'ava'
import { execFile } from 'node:child_process'
import * as path from 'node:path'

import { unmet } from './helpers'

// ava runs each test file with the project root as its working directory.
const script = path.resolve('scripts', 'pack-test.sh')

function run(file: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('bash', [file], { maxBuffer: 16 * 1024 * 1024, env: process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0
      resolve({ code, out: `${stdout}${stderr}` })
    })
  })
}

test('the packed tarballs install and work with and without the platform binary', async (t) => {
  t.timeout(180_000)
  if (unmet(t, 'npm')) return // npm packs and installs the tarballs
  const { code, out } = await run(script)
  for (const line of out.trimEnd().split('\n')) t.log(line)
  t.is(code, 0, 'scripts/pack-test.sh failed (its output is logged above)')
  t.regex(out, /passed: native \((uring|linux|thread)\) and js installs work/)
})
