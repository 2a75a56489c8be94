// node:fs's argument rules, restated: the same codes (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE,
// ERR_INVALID_ARG_VALUE) for the same inputs, so kaio's fs layer can stand in for fs.promises.
import * as fs from 'node:fs'
import { fileURLToPath } from 'node:url'

import { AbortError, codedError, invalidArgType, invalidArgValue, outOfRange } from '../errors'

const {
  O_RDONLY,
  O_WRONLY,
  O_RDWR,
  O_CREAT,
  O_TRUNC,
  O_EXCL,
  O_APPEND,
  O_SYNC,
} = fs.constants

/** Largest single transfer, as node:fs (`kIoMaxLength`). */
export const IO_MAX_LENGTH = 2 ** 31 - 1
/** node:fs's `kMaxUserId`. */
export const MAX_USER_ID = 2 ** 32 - 1

/** A path as node:fs takes it. */
export type PathLike = string | Buffer | URL

/** The flags strings of node:fs (`stringToFlags`); `undefined` when not recognised. */
/** A mode node's parseFileMode takes as it is (anything else goes to node:fs, which checks it). */
export function plainMode(mode: unknown): boolean {
  return typeof mode === 'number' && Number.isInteger(mode) && mode >= 0 && mode <= 0xffffffff
}

export function flagsToNumber(flags: unknown): number | undefined {
  if (typeof flags === 'number') return Number.isInteger(flags) && flags >= -(2 ** 31) && flags < 2 ** 31 ? flags : undefined
  if (flags === null || flags === undefined) return O_RDONLY
  switch (flags) {
    case 'r':
      return O_RDONLY
    case 'rs':
    case 'sr':
      return O_RDONLY | O_SYNC
    case 'r+':
      return O_RDWR
    case 'rs+':
    case 'sr+':
      return O_RDWR | O_SYNC
    case 'w':
      return O_TRUNC | O_CREAT | O_WRONLY
    case 'wx':
    case 'xw':
      return O_TRUNC | O_CREAT | O_WRONLY | O_EXCL
    case 'w+':
      return O_TRUNC | O_CREAT | O_RDWR
    case 'wx+':
    case 'xw+':
      return O_TRUNC | O_CREAT | O_RDWR | O_EXCL
    case 'a':
      return O_APPEND | O_CREAT | O_WRONLY
    case 'ax':
    case 'xa':
      return O_APPEND | O_CREAT | O_WRONLY | O_EXCL
    case 'as':
    case 'sa':
      return O_APPEND | O_CREAT | O_WRONLY | O_SYNC
    case 'a+':
      return O_APPEND | O_CREAT | O_RDWR
    case 'ax+':
    case 'xa+':
      return O_APPEND | O_CREAT | O_RDWR | O_EXCL
    case 'as+':
    case 'sa+':
      return O_APPEND | O_CREAT | O_RDWR | O_SYNC
  }
  return undefined
}

/** node's `validateInteger`: a number, an integer, within [min, max]. */
export function validateInteger(value: unknown, name: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value)
  if (value < min || value > max) throw outOfRange(name, `>= ${min} && <= ${max}`, value)
  return value
}

/** node's `validateInt32`. */
export function validateInt32(value: unknown, name: string, min = -(2 ** 31), max = 2 ** 31 - 1): number {
  return validateInteger(value, name, min, max)
}

export function validateBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value)
  return value
}

/** node's `validateObject` (`allowNullable` as `kValidateObjectAllowNullable`). */
export function validateString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value)
}

export function validateObject(value: unknown, name: string, allowNullable = false): void {
  if ((!allowNullable && value === null) || Array.isArray(value) || (typeof value !== 'object' && value !== null)) {
    throw invalidArgType(name, 'of type object', value)
  }
}

export function validateBuffer(value: unknown, name = 'buffer'): ArrayBufferView {
  if (!ArrayBuffer.isView(value)) throw invalidArgType(name, 'an instance of Buffer, TypedArray, or DataView', value)
  return value
}

export function validateBufferArray(buffers: unknown, name = 'buffers'): ArrayBufferView[] {
  if (!Array.isArray(buffers)) throw invalidArgType(name, 'an ArrayBufferView[]', buffers)
  for (const b of buffers) {
    if (!ArrayBuffer.isView(b)) throw invalidArgType(name, 'an ArrayBufferView[]', buffers)
  }
  return buffers as ArrayBufferView[]
}

export function validateAbortSignal(signal: unknown, name = 'options.signal'): AbortSignal | undefined {
  if (signal === undefined) return undefined
  if (signal === null || typeof signal !== 'object' || !('aborted' in signal)) {
    throw invalidArgType(name, 'an instance of AbortSignal', signal)
  }
  return signal as AbortSignal
}

export function validateStringAfterArrayBufferView(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string or an instance of Buffer, TypedArray, or DataView', value)
}

/** node's `validateOffsetLengthRead`. */
export function validateOffsetLengthRead(offset: number, length: number, bufferLength: number): void {
  if (offset < 0) throw outOfRange('offset', '>= 0', offset)
  if (length < 0) throw outOfRange('length', '>= 0', length)
  if (offset + length > bufferLength) throw outOfRange('length', `<= ${bufferLength - offset}`, length)
}

/** node's `validateOffsetLengthWrite`. */
export function validateOffsetLengthWrite(offset: number, length: number, byteLength: number): void {
  if (offset > byteLength) throw outOfRange('offset', `<= ${byteLength}`, offset)
  if (length > byteLength - offset) throw outOfRange('length', `<= ${byteLength - offset}`, length)
  if (length < 0) throw outOfRange('length', '>= 0', length)
  validateInt32(length, 'length', 0)
}

/** node's `validateEncoding` for `write(string, position, encoding)`. */
export function validateStringEncoding(data: string, encoding: unknown): void {
  if (typeof encoding === 'string' && encoding.toLowerCase() === 'hex' && data.length % 2 !== 0) {
    throw invalidArgValue('encoding', encoding, `is invalid for data of length ${data.length}`)
  }
}

function assertEncoding(encoding: unknown): void {
  if (encoding && !Buffer.isEncoding(encoding as string)) throw invalidArgValue('encoding', encoding, 'is invalid encoding')
}

/** node's `getOptions`: a string is the encoding; null/undefined/function give the defaults. */
export function getOptions<T extends object>(options: unknown, defaults: T): T & Record<string, unknown> {
  if (options === null || options === undefined || typeof options === 'function') return { ...defaults } as T & Record<string, unknown>
  let opts: Record<string, unknown>
  if (typeof options === 'string') opts = { ...defaults, encoding: options }
  else if (typeof options !== 'object') throw invalidArgType('options', 'one of type string or object', options)
  else opts = options as Record<string, unknown>
  if (opts.encoding !== 'buffer') assertEncoding(opts.encoding)
  if (opts.signal !== undefined) validateAbortSignal(opts.signal)
  return opts as T & Record<string, unknown>
}

/** node's `getValidatedPath`: a string, Buffer or file: URL without NUL bytes. */
export function validatePath(path: unknown, name = 'path'): string | Buffer {
  const p = path instanceof URL ? fileURLToPath(path) : path
  if (typeof p !== 'string' && !(p instanceof Uint8Array)) throw invalidArgType(name, 'of type string or an instance of Buffer or URL', path)
  if (typeof p === 'string' ? p.includes('\u0000') : p.includes(0)) {
    throw invalidArgValue(name, p, 'must be a string, Uint8Array, or URL without null bytes')
  }
  return typeof p === 'string' ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength)
}

/** A position as node's read/write treat it: a non-negative safe integer, else "current position". */
export function positionOrNull(position: unknown): number | null {
  return typeof position === 'number' && Number.isSafeInteger(position) && position >= 0 ? position : null
}

/** Node's major version: node:fs/promises' argument checks changed between 20 and 24. */
export const NODE_MAJOR = Number(process.versions.node.split('.')[0])

/**
 * FileHandle.read's `position` as Node 22+ checks it (`validatePosition`): null, -1 or -1n
 * for the current position, else a non-negative integer or a bigint up to
 * 2^63 - 1 - `length`; anything else throws. Node 20 reads at the current position instead
 * (see `positionOrNull`).
 */
export function readPosition(position: unknown, length: number): number | bigint | null {
  if (position === null || position === undefined) return null
  if (typeof position === 'number') {
    validateInteger(position, 'position', -1)
    return position === -1 ? null : position
  }
  if (typeof position === 'bigint') {
    const max = 2n ** 63n - 1n - BigInt(length)
    if (!(position >= -1n && position <= max)) throw outOfRange('position', `>= -1 && <= ${max}`, position)
    if (position === -1n) return null
    return position <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(position) : position
  }
  throw invalidArgType('position', 'of type bigint or integer', position)
}

/** An encoding node's native write(string) would accept; others fall back to UTF-8 as there. */
export function writeEncoding(encoding: unknown): BufferEncoding {
  return typeof encoding === 'string' && Buffer.isEncoding(encoding) ? (encoding as BufferEncoding) : 'utf8'
}

export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason })
}

/** `EBADF` for an operation on a closed FileHandle, as node:fs ("file closed", `code` and `syscall` only, no `errno`). */
export function fileClosedError(syscall: string): Error & { code: string; syscall: string } {
  const err = new Error('file closed') as Error & { code: string; syscall: string }
  err.code = 'EBADF'
  err.syscall = syscall
  return err
}

export function fileTooLarge(size: number): RangeError & { code: string } {
  return codedError(RangeError, 'ERR_FS_FILE_TOO_LARGE', `File size (${size}) is greater than 2 GiB`)
}

/** Any ArrayBufferView as bytes over the same memory. */
export function bytesOf(view: ArrayBufferView, offset = 0, length = view.byteLength - offset): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset + offset, length)
}

export function alignDown(n: number, a: number): number {
  return n - (n % a)
}

export function alignUp(n: number, a: number): number {
  const r = n % a
  return r === 0 ? n : n + a - r
}

/** node's ReadStream error for `start > end`. */
export function outOfRangeStartEnd(start: number, end: number): RangeError & { code: string } {
  return outOfRange('start', `<= "end" (here: ${end})`, start)
}
