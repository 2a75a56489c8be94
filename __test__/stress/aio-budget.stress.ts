// When the system-wide aio-max-nr budget is spent, a default Context falls back to the thread
// backend with a warning, and an explicit linux Context throws EAGAIN (syscall io_setup).
// In the stress suite because it exhausts a system-wide resource for a moment. io_uring is
// switched off in the child: the budget is kernel AIO's, and uring (the default) does not use it.
import test from 'ava'
import { spawnSync } from 'node:child_process'

import { unmet } from '../helpers'

test('io_setup EAGAIN: the default path falls back to thread, an explicit linux throws', (t) => {
  if (unmet(t, 'linux-aio')) return
  const script = `
    const { Context } = require(${JSON.stringify(process.cwd())})
    const warnings = []
    process.on('warning', (w) => warnings.push(w.code))
    const held = []
    let fellBack = null
    for (let i = 0; i < 5000 && !fellBack; i++) {
      const c = new Context({ maxRequests: 4096 })
      if (c.implementation === 'thread') fellBack = c
      else held.push(c)
    }
    let explicit = 'no error'
    try { held.push(new Context({ implementation: 'linux', maxRequests: 4096 })) } catch (e) { explicit = e.code + ' ' + e.syscall }
    setImmediate(async () => {
      console.log(JSON.stringify({ fellBack: !!fellBack, held: held.length, explicit, warnings }))
      await Promise.all([...held, fellBack].filter(Boolean).map((c) => c.close()))
    })`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, AIO_IMPL: '', KAIO_DISABLE_IO_URING: '1' }, timeout: 120_000 })
  t.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { fellBack: boolean; held: number; explicit: string; warnings: string[] }
  t.log(`${out.held} kernel contexts before the budget ran out`)
  t.true(out.fellBack)
  t.is(out.explicit, 'EAGAIN io_setup')
  t.true(out.warnings.includes('KAIO_FALLBACK'))
})
