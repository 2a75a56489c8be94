// The object behind `kaio/promises` (src/promises-entry.ts): node:fs/promises with kaio's engine where kaio has one.
//
// The export names are those of the running Node's node:fs/promises, computed at load time
// (Node 22 adds glob, ...): open, readFile, writeFile, appendFile, copyFile, stat and lstat are kaio's
// (src/fs); every other name is node:fs/promises's own value, captured when this module
// loads, so that kaio/register replacing fs.promises' properties never makes kaio call
// itself. ESM gets the same names through src/promises.mjs.
import nodePromises = require('node:fs/promises')

import { appendFile, copyFile, FileHandle, open, readFile, writeFile } from './fs'
import { link, lstat, mkdir, rename, rmdir, stat, symlink, truncate, unlink } from './fs/paths'

/** node:fs/promises as it was when kaio/promises loaded: the functions kaio delegates to. */
const node: Readonly<Record<string, unknown>> = Object.freeze({ ...nodePromises })

/**
 * kaio's function, except when its first argument is an object kaio's fs layer does not
 * take (not a kaio FileHandle, URL, Buffer or typed array): a node:fs FileHandle (from an
 * `open` captured before kaio/register ran) or a bad argument, which node:fs serves or
 * rejects with its own error.
 */
function orNode<F extends (target: never, ...rest: never[]) => Promise<unknown>>(name: string, kaio: F): F {
  const fallback = node[name] as (...args: unknown[]) => Promise<unknown>
  // An async function, as node's (util.types.isAsyncFunction, no `new`).
  const fn = async function (this: unknown, target: unknown, ...rest: unknown[]): Promise<unknown> {
    const theirs = typeof target === 'object' && target !== null && !(target instanceof FileHandle) && !(target instanceof URL) && !ArrayBuffer.isView(target)
    return theirs ? fallback(target, ...rest) : (kaio as unknown as (...args: unknown[]) => Promise<unknown>)(target, ...rest)
  }
  // (Its name and length: likeNode, which wraps every one.)
  return fn as unknown as F
}

/**
 * Gives kaio's function node's `name` and `length` (the parameters before the first with a
 * default: open 3, stat 1, readFile 2, ...), which wrappers such as promisify-style helpers
 * and argument-count checks read.
 */
function likeNode<F extends (...args: never[]) => unknown>(name: string, fn: F): F {
  const theirs = node[name]
  if (typeof theirs === 'function') Object.defineProperty(fn, 'length', { value: theirs.length })
  Object.defineProperty(fn, 'name', { value: name })
  return fn
}

/** The functions kaio runs on its own engine; each replaces node's under kaio/register. */
export const kaioFunctions = Object.freeze({
  open: likeNode('open', open),
  readFile: likeNode('readFile', orNode('readFile', readFile)),
  writeFile: likeNode('writeFile', orNode('writeFile', writeFile)),
  appendFile: likeNode('appendFile', orNode('appendFile', appendFile)),
  copyFile: likeNode('copyFile', copyFile),
  stat: likeNode('stat', stat),
  lstat: likeNode('lstat', lstat),
  unlink: likeNode('unlink', unlink),
  rmdir: likeNode('rmdir', rmdir),
  rename: likeNode('rename', rename),
  mkdir: likeNode('mkdir', mkdir),
  symlink: likeNode('symlink', symlink),
  link: likeNode('link', link),
  truncate: likeNode('truncate', truncate),
})

type KaioFunctions = typeof kaioFunctions
/** kaio/promises' type: node:fs/promises (as the user's @types/node has it) with kaio's functions. */
export type KaioPromises = Omit<typeof nodePromises, keyof KaioFunctions> & KaioFunctions

/**
 * Node's permission model (`--permission`, Node 20's `--experimental-permission`) checks
 * every path in node:fs; kaio's engine makes its system calls itself and would bypass it.
 * With the model on, kaio/promises is node:fs/promises itself, and kaio/register replaces
 * nothing.
 */
export const permissionModel = typeof (process as { permission?: { has?: unknown } }).permission?.has === 'function'

/** The functions kaio/promises takes from kaio in this process. */
export const ownFunctions: Readonly<Partial<KaioFunctions>> = permissionModel ? Object.freeze({}) : kaioFunctions

const api: Record<string, unknown> = {}
for (const name of Object.keys(node)) api[name] = Object.hasOwn(ownFunctions, name) ? ownFunctions[name as keyof KaioFunctions] : node[name]

/** kaio/promises: node:fs/promises' names, kaio's functions where kaio has them. */
export const promises = api as KaioPromises
