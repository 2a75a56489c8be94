// Every README code block marked `<!-- test -->` (optionally `<!-- test: prelude -->`) runs, as
// written, against the built package in a temp directory, on every backend.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'

import { backends, tempDir } from './helpers'

const root = process.cwd()
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
const blocks = [...readme.matchAll(/<!-- test(?::([\s\S]*?))? -->\n```js\n([\s\S]*?)```/g)].map((m) => ({
  prelude: m[1]?.trim() ?? '',
  code: m[2]!,
  line: readme.slice(0, m.index).split('\n').length,
}))

test('the README has runnable examples', (t) => {
  t.true(blocks.length >= 5)
})

for (const impl of backends) {
  for (const { prelude, code, line } of blocks) {
    // poll, flags and priorities are refused by the js backend by design (ENOTSUP).
    if (impl === 'js' && /poll|flags|priority/.test(code)) continue
    test(`${impl}: README example at line ${line} runs`, (t) => {
      const dir = fs.mkdtempSync(path.join(tempDir(), 'readme-'))
      spawnSync('mkfifo', [path.join(dir, 'fifo')])
      const body = `${prelude}\n${code}`.replace(/require\('kaio'\)/g, `require(${JSON.stringify(root)})`)
      const src = `(async () => {\n${body}\n;if (typeof ctx !== 'undefined') await ctx.close()\n})().catch((e) => { console.error(e); process.exit(1) })`
      const r = spawnSync(process.execPath, ['-e', src], { cwd: dir, encoding: 'utf8', timeout: 20000, env: { ...process.env, AIO_IMPL: impl } })
      t.is(r.status, 0, `${r.stderr}\n--- code ---\n${src}`)
    })
  }
}
