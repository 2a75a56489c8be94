// kaio/promises: exactly node:fs/promises' export names on the running Node, kaio's functions
// for open/readFile/writeFile/appendFile/copyFile and node's own for the rest, and a
// differential suite (__test__/fixtures/promises-diff.ts) that calls every export through
// both on twin trees, for every backend, as root and (for EACCES) as an unprivileged user.
import test from 'ava'
import type { ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import { isDeepStrictEqual } from 'node:util'

import nodeFsp = require('node:fs/promises')
import kaioFsp = require('../src/promises')
import * as kaio from '../index'
import { runFixture } from './fixtures/common'
import type { DiffResult } from './fixtures/promises-diff'

const KAIO_NAMES = ['open', 'readFile', 'writeFile', 'appendFile', 'copyFile', 'stat', 'lstat', 'unlink', 'rmdir', 'rename', 'mkdir', 'symlink', 'link', 'truncate']

test('kaio/promises has exactly the export names of node:fs/promises, with the same typeof', (t) => {
  const ours = kaioFsp as unknown as Record<string, unknown>
  const theirs = nodeFsp as unknown as Record<string, unknown>
  t.deepEqual(new Set(Object.keys(ours)), new Set(Object.keys(theirs)))
  for (const name of Object.keys(theirs)) t.is(typeof ours[name], typeof theirs[name], name)
  t.log(`node ${process.version}: ${Object.keys(theirs).length} names`)
})

test('kaio runs open, readFile, writeFile, appendFile, copyFile, stat, lstat, unlink, rmdir, rename, mkdir, symlink, link and truncate; every other export is node:fs/promises own value', (t) => {
  const ours = kaioFsp as unknown as Record<string, unknown>
  const theirs = nodeFsp as unknown as Record<string, unknown>
  for (const name of Object.keys(theirs)) {
    if (KAIO_NAMES.includes(name)) t.not(ours[name], theirs[name], name)
    else t.is(ours[name], theirs[name], name)
  }
  t.is(kaioFsp.open, kaio.open)
  t.is(kaioFsp.constants, fs.constants)
  // require('kaio') keeps its fs names.
  for (const name of ['open', 'readFile', 'writeFile', 'appendFile', 'copyFile', 'FileHandle', 'createReadStream', 'createWriteStream', 'ReadStream', 'WriteStream', 'constants']) {
    t.true(name in kaio, name)
  }
})

test('the ESM entry has the same names and values as the CommonJS one', async (t) => {
  const esm = (await import(pathToFileURL(path.resolve('src', 'promises.mjs')).href)) as Record<string, unknown>
  const nodeEsm = (await import('node:fs/promises')) as Record<string, unknown>
  t.deepEqual(new Set(Object.keys(esm)), new Set(Object.keys(nodeEsm)))
  t.is(esm.default, kaioFsp)
  const ours = kaioFsp as unknown as Record<string, unknown>
  for (const name of Object.keys(ours)) t.is(esm[name], ours[name], name)
})

test('kaio/promises readFile takes what the ESM loader passes: a URL, no encoding', async (t) => {
  const file = path.resolve('package.json')
  t.deepEqual(await kaioFsp.readFile(pathToFileURL(file)), fs.readFileSync(file))
  t.is(await kaioFsp.readFile(pathToFileURL(file), 'utf8'), fs.readFileSync(file, 'utf8'))
})

test('a node:fs FileHandle passed to kaio/promises goes to node:fs', async (t) => {
  const fh = await nodeFsp.open(path.resolve('package.json'))
  try {
    t.is(await kaioFsp.readFile(fh as never, 'utf8'), fs.readFileSync('package.json', 'utf8'))
  } finally {
    await fh.close()
  }
  await t.throwsAsync(kaioFsp.readFile({} as never), { code: 'ERR_INVALID_ARG_TYPE' })
})

interface Report {
  implementation: string
  uid: number
  results: DiffResult[]
  codes: string[]
}

async function differential(t: ExecutionContext, impl: string, mode: 'normal' | 'eacces'): Promise<Report | undefined> {
  const r = await runFixture('promises-diff.js', [mode], { env: { AIO_IMPL: impl }, timeoutMs: 100_000 })
  const base = /^base (.*)$/m.exec(r.stderr)?.[1]
  if (base?.includes('kaio-promises-diff-')) fs.rmSync(base, { recursive: true, force: true })
  if (r.code !== 0) {
    t.fail(`the differential child failed (${r.code ?? r.signal}): ${r.stderr}`)
    return undefined
  }
  const report = JSON.parse(r.stdout) as Report
  t.is(report.implementation, impl, 'AIO_IMPL chose the backend')
  let differing = 0
  for (const { name, kaio: ours, node } of report.results) {
    if (isDeepStrictEqual(ours, node)) continue
    differing++
    t.deepEqual(ours, node, name)
  }
  t.is(differing, 0)
  t.log(`${impl}: ${report.results.length} calls as uid ${report.uid}, node's codes met: ${report.codes.join(' ')}`)
  return report
}

const names = Object.keys(nodeFsp)
if (names.includes('watch')) test('watch is not in the differential suite', (t) => {
  t.log('skipped: watch returns an endless async iterator of events; kaio/promises.watch is node:fs/promises.watch itself (checked above)')
  t.pass()
})

test('constants are node:fs/promises constants by value', (t) => {
  t.deepEqual({ ...kaioFsp.constants }, { ...nodeFsp.constants })
})

for (const impl of kaio.implementations) {
  test(`${impl}: every export of kaio/promises behaves as node:fs/promises (values, errors, trees)`, async (t) => {
    t.timeout(120_000)
    const report = await differential(t, impl, 'normal')
    if (!report) return
    // The suite meets every error it is meant to compare.
    for (const code of ['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'ELOOP', 'ENAMETOOLONG', 'ERR_INVALID_ARG_TYPE']) {
      t.true(report.codes.includes(code), `no call met ${code}`)
    }
    for (const name of KAIO_NAMES) t.true(report.results.some((r) => r.name.startsWith(`${name}#`)), `${name} was called`)
  })

  test(`${impl}: as an unprivileged user, EACCES and the rest match node:fs/promises`, async (t) => {
    t.timeout(120_000)
    if (process.getuid?.() !== 0) {
      t.log('skipped: not running as root, so the child cannot setuid(65534) into an unprivileged user')
      t.pass()
      return
    }
    const report = await differential(t, impl, 'eacces')
    if (!report) return
    t.is(report.uid, 65534)
    t.true(report.codes.includes('EACCES'))
  })
}
