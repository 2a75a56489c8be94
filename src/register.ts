// `kaio/register`: makes the whole process use kaio for the calls kaio implements, as
// graceful-fs's gracefulify does for fs. Loaded with `node --import kaio/register`,
// `node -r kaio/register` or the same in NODE_OPTIONS, it:
//   - replaces open, readFile, writeFile, appendFile, copyFile, stat and lstat on `fs.promises` (the object
//     `require('fs/promises')` returns) with kaio/promises' functions;
//   - replaces `fs.createReadStream` and `fs.createWriteStream` with kaio's (a call kaio's
//     streams cannot serve, with an `fd` or `fs` option, goes to node:fs's own);
//   - calls `module.syncBuiltinESMExports()`, so `import { readFile } from 'node:fs/promises'`
//     gets kaio's too.
// KAIO_REGISTER=0 (or `false`, `off`) leaves everything as it is. Loading it again, or from a
// second copy of kaio, changes nothing more: fs.promises carries `Symbol.for('kaio.register')`.
import fs = require('node:fs')
import nodeModule = require('node:module')

import { createReadStream, createWriteStream, ReadStream, WriteStream } from './fs'
import { ownFunctions } from './fs-promises'

/** The mark kaio/register leaves on `fs.promises`: which functions it replaced. */
export const kRegistered: unique symbol = Symbol.for('kaio.register')

export interface Registration {
  /** The `fs.promises` properties replaced with kaio's. */
  readonly promises: readonly string[]
  /** The `fs` properties replaced with kaio's. */
  readonly fs: readonly string[]
}

const nodeCreateReadStream = fs.createReadStream
const nodeCreateWriteStream = fs.createWriteStream

/** Options kaio's streams do not take: an open descriptor or FileHandle, or fs overrides. */
function nodeOnly(options: unknown): boolean {
  return typeof options === 'object' && options !== null && ((options as { fd?: unknown }).fd != null || (options as { fs?: unknown }).fs != null)
}

const streams = {
  createReadStream: function (path: unknown, options?: unknown) {
    return nodeOnly(options) ? nodeCreateReadStream(path as fs.PathLike, options as never) : createReadStream(path as fs.PathLike, options as never)
  },
  createWriteStream: function (path: unknown, options?: unknown) {
    return nodeOnly(options) ? nodeCreateWriteStream(path as fs.PathLike, options as never) : createWriteStream(path as fs.PathLike, options as never)
  },
}

/**
 * Makes kaio's streams pass `instanceof fs.ReadStream` (and WriteStream), as the streams
 * `fs.createReadStream` returned before: node's class answers true for kaio's instances too
 * (its subclasses keep the ordinary check).
 */
function alsoInstances(nodeClass: abstract new (...args: never[]) => unknown, kaioClass: abstract new (...args: never[]) => unknown): void {
  const ordinary = Function.prototype[Symbol.hasInstance]
  Object.defineProperty(nodeClass, Symbol.hasInstance, {
    value: function (this: unknown, value: unknown): boolean {
      return ordinary.call(this, value) || (this === nodeClass && value instanceof kaioClass)
    },
    configurable: true,
  })
}

function disabled(): boolean {
  const v = (process.env.KAIO_REGISTER ?? '').trim().toLowerCase()
  return v === '0' || v === 'false' || v === 'off'
}

function register(): Registration | undefined {
  const target = fs.promises as unknown as Record<PropertyKey, unknown>
  const already = target[kRegistered] as Registration | undefined
  if (already !== undefined) return already
  if (disabled()) return undefined
  const replaced: Registration = Object.freeze({ promises: Object.freeze(Object.keys(ownFunctions)), fs: Object.freeze(Object.keys(streams)) })
  for (const [name, fn] of Object.entries(ownFunctions)) target[name] = fn
  const fsTarget = fs as unknown as Record<string, unknown>
  for (const [name, fn] of Object.entries(streams)) fsTarget[name] = fn
  alsoInstances(fs.ReadStream, ReadStream)
  alsoInstances(fs.WriteStream, WriteStream)
  Object.defineProperty(target, kRegistered, { value: replaced, enumerable: false, configurable: true })
  nodeModule.syncBuiltinESMExports()
  return replaced
}

/** What kaio/register replaced in this process, or undefined if it is off (KAIO_REGISTER=0). */
export const registration: Registration | undefined = register()

/** Whether kaio serves `fs.promises` in this process (true also if another copy of kaio registered). */
export const active: boolean = registration !== undefined
