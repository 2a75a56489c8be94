// kaio/register, in child processes loaded the three ways users load it (--import, -r,
// NODE_OPTIONS): fs.promises' functions become kaio/promises', ESM named imports of
// node:fs/promises see them, Node's ESM loader reads a multi-file .mjs app through kaio's
// readFile, KAIO_REGISTER=0 changes nothing, loading it twice changes nothing more, and real
// packages (rimraf, glob, load-json-file) run unchanged on it.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

const ROOT = path.resolve('.')

// A project whose node_modules has kaio (this checkout) and the third-party packages.
const project = fs.mkdtempSync(path.join(os.tmpdir(), 'kaio-register-'))
process.on('exit', () => fs.rmSync(project, { recursive: true, force: true }))
fs.mkdirSync(path.join(project, 'node_modules'))
fs.symlinkSync(ROOT, path.join(project, 'node_modules', 'kaio'))
for (const dep of ['rimraf', 'glob', 'load-json-file']) fs.symlinkSync(path.join(ROOT, 'node_modules', dep), path.join(project, 'node_modules', dep))
fs.writeFileSync(path.join(project, 'package.json'), '{ "name": "app", "private": true }\n')

const files: Record<string, string> = {
  // Preloaded after kaio/register: records which files Node's ESM loader reads through fs.promises.readFile.
  'spy.mjs': `
import fs from 'node:fs'
// Instantiates node:fs/promises' ESM module now, with kaio's functions, not with the spy.
import 'node:fs/promises'
import { createRequire } from 'node:module'
const kaioReadFile = createRequire(import.meta.url)('kaio/promises').readFile
const seen = fs.promises.readFile
globalThis.loaderReads = []
globalThis.loaderSawKaio = seen === kaioReadFile
fs.promises.readFile = function (p, o) { globalThis.loaderReads.push(String(p)); return seen.call(this, p, o) }
// main.mjs calls this once the loader has read every module.
globalThis.unspy = () => { fs.promises.readFile = seen }
`,
  'main.mjs': `
import fs from 'node:fs'
import { readFile, writeFile, open, appendFile, copyFile, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { one } from './lib/one.mjs'
globalThis.unspy?.()
const require = createRequire(import.meta.url)
const kp = require('kaio/promises')
const reg = require('kaio/register')
const out = {
  active: reg.active,
  mark: Symbol.for('kaio.register') in fs.promises,
  registration: reg.registration ?? null,
  identity: Object.fromEntries(['open', 'readFile', 'writeFile', 'appendFile', 'copyFile', 'stat', 'readdir'].map((n) => [n, fs.promises[n] === kp[n] && require('fs/promises')[n] === kp[n]])),
  esm: { readFile: readFile === kp.readFile, writeFile: writeFile === kp.writeFile, open: open === kp.open, appendFile: appendFile === kp.appendFile, copyFile: copyFile === kp.copyFile, stat: stat === kp.stat },
  streams: { read: fs.createReadStream.toString().includes('nodeOnly'), write: fs.createWriteStream.toString().includes('nodeOnly') },
  instances: (() => {
    const r = fs.createReadStream(new URL(import.meta.url))
    const w = fs.createWriteStream('/dev/null')
    class Mine extends fs.ReadStream {}
    const out = { read: r instanceof fs.ReadStream, write: w instanceof fs.WriteStream, crossed: r instanceof fs.WriteStream, subclass: r instanceof Mine, plain: {} instanceof fs.ReadStream, node: new fs.ReadStream(new URL(import.meta.url)) instanceof fs.ReadStream }
    r.destroy()
    w.destroy()
    return out
  })(),
  one: one(),
  loaderSawKaio: globalThis.loaderSawKaio ?? null,
  loaderReads: (globalThis.loaderReads ?? []).map((f) => f.slice(f.lastIndexOf('/') + 1)).sort(),
}
process.stdout.write(JSON.stringify(out))
`,
  'lib/one.mjs': `import { two } from './two.mjs'\nexport const one = () => 'one+' + two()\n`,
  'lib/two.mjs': `import { three } from './three.cjs'\nexport const two = () => 'two+' + three\n`,
  'lib/three.cjs': `exports.three = 'three'\n`,
  // Third-party packages doing their file work through fs.promises, unchanged.
  'third-party.mjs': `
import assert from 'node:assert'
import fs from 'node:fs'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { rimraf } from 'rimraf'
import { glob } from 'glob'
import { loadJsonFile } from 'load-json-file'
import { active } from 'kaio/register'
const tree = fs.mkdtempSync(path.join(process.argv[2], 'tree-'))
for (let i = 0; i < 5; i++) {
  fs.mkdirSync(path.join(tree, 'd' + i, 'sub'), { recursive: true })
  fs.writeFileSync(path.join(tree, 'd' + i, 'sub', 'f.json'), JSON.stringify({ i }))
  fs.symlinkSync('sub', path.join(tree, 'd' + i, 'link'))
}
const matched = (await glob('**/*.json', { cwd: tree })).sort()
const json = await loadJsonFile(path.join(tree, 'd3', 'sub', 'f.json'))
// fs.createReadStream/createWriteStream are kaio's; an fd option goes to node:fs.
await pipeline(fs.createReadStream(path.join(tree, 'd1', 'sub', 'f.json')), fs.createWriteStream(path.join(tree, 'copy.json')))
const fd = fs.openSync(path.join(tree, 'copy.json'), 'r')
let viaFd = ''
for await (const c of fs.createReadStream(null, { fd })) viaFd += c
// COPYFILE_FICLONE_FORCE: node:fs's answer, not a kaio recursion.
let expected = 'ok', got = 'ok'
try { fs.copyFileSync(path.join(tree, 'copy.json'), path.join(tree, 'clone-sync'), fs.constants.COPYFILE_FICLONE_FORCE) } catch (e) { expected = e.code }
try { await fs.promises.copyFile(path.join(tree, 'copy.json'), path.join(tree, 'clone'), fs.constants.COPYFILE_FICLONE_FORCE) } catch (e) { got = e.code }
const removed = await rimraf(tree)
process.stdout.write(JSON.stringify({ active, matched, json, viaFd, clone: [expected, got], removed, exists: fs.existsSync(tree) }))
`,
}
for (const [name, text] of Object.entries(files)) {
  fs.mkdirSync(path.dirname(path.join(project, name)), { recursive: true })
  fs.writeFileSync(path.join(project, name), text)
}

function run(args: string[], env: Record<string, string> = {}): { status: number | null; out: Record<string, unknown>; stderr: string } {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env }
  delete childEnv.NODE_OPTIONS
  if (env.NODE_OPTIONS) childEnv.NODE_OPTIONS = env.NODE_OPTIONS
  const r = spawnSync(process.execPath, args, { cwd: project, env: childEnv, encoding: 'utf8', timeout: 60_000 })
  let out: Record<string, unknown> = {}
  try {
    out = JSON.parse(r.stdout) as Record<string, unknown>
  } catch {
    out = { unparsed: r.stdout }
  }
  return { status: r.status, out, stderr: r.stderr }
}

// Node 20's ESM loader reads module source through the live fs.promises.readFile; Node 22 and
// 24 read it without fs.promises, so there the app loads through node:fs whatever is registered.
const NODE_MAJOR = Number(process.versions.node.split('.')[0])
const LOADER_READS = NODE_MAJOR === 20 ? ['main.mjs', 'one.mjs', 'two.mjs'] : []

const ALL_TRUE = { open: true, readFile: true, writeFile: true, appendFile: true, copyFile: true, stat: true, readdir: true }
const REGISTRATION = { promises: ['open', 'readFile', 'writeFile', 'appendFile', 'copyFile', 'stat', 'lstat', 'unlink', 'rmdir', 'rename', 'mkdir', 'symlink', 'link', 'truncate'], fs: ['createReadStream', 'createWriteStream'] }

const forms: [string, string[], Record<string, string>][] = [
  ['--import kaio/register', ['--import', 'kaio/register', '--import', './spy.mjs'], {}],
  ['-r kaio/register', ['-r', 'kaio/register', '--import', './spy.mjs'], {}],
  ["NODE_OPTIONS='--import kaio/register'", ['--import', './spy.mjs'], { NODE_OPTIONS: '--import kaio/register' }],
  ["NODE_OPTIONS='-r kaio/register'", ['--import', './spy.mjs'], { NODE_OPTIONS: '-r kaio/register' }],
]

for (const [title, args, env] of forms) {
  test(`${title}: fs.promises and ESM named imports are kaio's, and the ESM loader reads the app through kaio`, (t) => {
    const r = run([...args, 'main.mjs'], env)
    t.is(r.status, 0, r.stderr)
    t.is(r.out.active, true)
    t.is(r.out.mark, true)
    t.deepEqual(r.out.registration, REGISTRATION)
    t.deepEqual(r.out.identity, ALL_TRUE)
    t.deepEqual(r.out.esm, { readFile: true, writeFile: true, open: true, appendFile: true, copyFile: true, stat: true })
    t.deepEqual(r.out.streams, { read: true, write: true })
    // kaio's streams pass node's instanceof checks; subclasses of node's keep the ordinary one.
    t.deepEqual(r.out.instances, { read: true, write: true, crossed: false, subclass: false, plain: false, node: true })
    t.is(r.out.one, 'one+two+three')
    // The spy, preloaded after kaio/register, found kaio's readFile, and (Node 20) the loader read main.mjs and lib/*.mjs through it.
    t.is(r.out.loaderSawKaio, true)
    t.deepEqual(r.out.loaderReads, LOADER_READS)
    if (LOADER_READS.length === 0) t.log(`node ${process.version}'s ESM loader does not read modules through fs.promises`)
  })
}

test('KAIO_REGISTER=0: kaio/register changes nothing', (t) => {
  const r = run(['--import', 'kaio/register', '--import', './spy.mjs', 'main.mjs'], { KAIO_REGISTER: '0' })
  t.is(r.status, 0, r.stderr)
  t.is(r.out.active, false)
  t.is(r.out.mark, false)
  t.is(r.out.registration, null)
  t.deepEqual(r.out.identity, { ...ALL_TRUE, open: false, readFile: false, writeFile: false, appendFile: false, copyFile: false, stat: false })
  t.deepEqual(r.out.esm, { readFile: false, writeFile: false, open: false, appendFile: false, copyFile: false, stat: false })
  t.deepEqual(r.out.streams, { read: false, write: false })
  t.is(r.out.loaderSawKaio, false)
  t.is(r.out.one, 'one+two+three')
})

test('loading kaio/register twice (-r and --import) changes nothing more', (t) => {
  const r = run(['-r', 'kaio/register', '--import', 'kaio/register', '-r', 'kaio/register', '--import', './spy.mjs', 'main.mjs'])
  t.is(r.status, 0, r.stderr)
  t.deepEqual(r.out.identity, ALL_TRUE)
  t.deepEqual(r.out.registration, REGISTRATION)
  t.deepEqual(r.out.loaderReads, LOADER_READS)
})

test('rimraf, glob and load-json-file run unchanged under kaio/register', (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kaio-register-tree-'))
  try {
    const r = run(['--import', 'kaio/register', 'third-party.mjs', work])
    t.is(r.status, 0, r.stderr)
    t.is(r.out.active, true)
    t.deepEqual(r.out.matched, [0, 1, 2, 3, 4].map((i) => `d${i}/sub/f.json`))
    t.deepEqual(r.out.json, { i: 3 })
    t.is(r.out.viaFd, '{"i":1}')
    const [expected, got] = r.out.clone as [string, string]
    t.is(got, expected, 'COPYFILE_FICLONE_FORCE answers as node:fs does')
    t.is(r.out.removed, true)
    t.is(r.out.exists, false)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
})
