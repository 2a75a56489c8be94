// A process that only uses the high-level fs API (default Context, never closed by hand)
// exits by itself, on every backend.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { implementations } from '../index'

// ava runs specs with the package root as the working directory.
const root = process.cwd()
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kaio-fs-exit-'))
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))

const script = (file: string): string => `
const { open, readFile, writeFile, copyFile, createReadStream, createWriteStream } = require('./index.js')
const { pipeline } = require('node:stream/promises')
;(async () => {
  const f = ${JSON.stringify(file)}
  await writeFile(f, 'x'.repeat(100000))
  const fh = await open(f, 'r+')
  await fh.write('abc', 0)
  await fh.read()
  await fh.close()
  await copyFile(f, f + '.copy')
  await pipeline(createReadStream(f + '.copy'), createWriteStream(f + '.s'))
  const back = await readFile(f + '.s', 'utf8')
  console.log(back.length === 100000 && back.startsWith('abc') ? 'ok' : 'bad')
  // Nothing is closed here: the default Context must not hold the process.
})()
`

for (const impl of implementations) {
  test(`${impl}: a process using only the high-level API exits by itself`, (t) => {
    const file = path.join(dir, `exit-${impl}`)
    const r = spawnSync(process.execPath, ['-e', script(file)], {
      cwd: root,
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, AIO_IMPL: impl },
    })
    t.is(r.signal, null, 'did not hang until the timeout')
    t.is(r.status, 0, r.stderr)
    t.is(r.stdout.trim(), 'ok')
  })
}
