// Errors shaped like node:fs's: `code`, negative `errno`, `syscall`, and the same message form
// ("EBADF: bad file descriptor, read"; with paths "ENOENT: no such file or directory, rename
// '/a' -> '/b'"). kaio's own conditions use ERR_AIO_* codes.
import { getSystemErrorMap, getSystemErrorName, inspect } from 'node:util'

export interface SystemError extends Error {
  code: string
  errno: number
  syscall: string
  path?: string
  dest?: string
}

let errorMap: Map<number, [string, string]> | undefined

function wellFormed(s: string | undefined): string | undefined {
  return s === undefined || !/[\uD800-\uDFFF]/.test(s) ? s : Buffer.from(s, 'utf8').toString('utf8')
}

/**
 * A node:fs-style system error for a negative (or positive) errno; `path` and `dest` (rename,
 * link, symlink) appear in the message and as properties, as node:fs puts them.
 */
export function errnoError(errno: number, syscall: string, pathArg?: string, destArg?: string): SystemError {
  // As node's, which has them back from UTF-8: a lone surrogate reads U+FFFD.
  const path = wellFormed(pathArg)
  const dest = wellFormed(destArg)
  const neg = -Math.abs(errno)
  errorMap ??= getSystemErrorMap()
  const known = errorMap.get(neg)
  const code = known?.[0] ?? safeName(neg)
  const desc = known?.[1] ?? 'unknown error'
  const where = (path === undefined ? '' : ` '${path}'`) + (dest === undefined ? '' : ` -> '${dest}'`)
  const err = new Error(`${code}: ${desc}, ${syscall}${where}`) as SystemError
  err.errno = neg
  err.code = code
  err.syscall = syscall
  if (path !== undefined) err.path = path
  if (dest !== undefined) err.dest = dest
  Error.captureStackTrace(err, errnoError)
  return err
}

function safeName(neg: number): string {
  try {
    return getSystemErrorName(neg)
  } catch {
    return `Unknown system error ${neg}`
  }
}

/** An error with a Node-style `code` (ERR_*). */
export function codedError<E extends Error>(Ctor: new (msg: string) => E, code: string, message: string): E & { code: string } {
  const err = new Ctor(message) as E & { code: string }
  err.code = code
  return err
}

/** `ERR_AIO_CLOSED`: the context was closed before the request could run. */
export function closedError(): Error & { code: string } {
  return codedError(Error, 'ERR_AIO_CLOSED', 'The kaio context is closed')
}

/** `ERR_AIO_UNAVAILABLE`: the requested backend cannot run here. */
export function unavailableError(impl: string, why: string): Error & { code: string } {
  return codedError(Error, 'ERR_AIO_UNAVAILABLE', `kaio backend '${impl}' is unavailable: ${why}`)
}

/** An `AbortError` like node:fs's (name 'AbortError', code 'ABORT_ERR'). */
export class AbortError extends Error {
  code = 'ABORT_ERR'
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'AbortError'
  }
}

/** Describes a received value the way Node's ERR_INVALID_ARG_TYPE messages do. */
export function describe(value: unknown): string {
  if (value == null) return ` Received ${value}`
  if (typeof value === 'function') return ` Received function ${value.name}`
  if (typeof value === 'object') {
    const name = (value as object).constructor?.name
    return name ? ` Received an instance of ${name}` : ` Received ${inspect(value, { depth: -1 })}`
  }
  let shown = inspect(value, { colors: false })
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`
  return ` Received type ${typeof value} (${shown})`
}

/** Node's word for a named value: a dotted name (`options.flush`) is a property, else an argument. */
function kind(name: string): string {
  return name.includes('.') ? 'property' : 'argument'
}

export function invalidArgType(name: string, expected: string, value: unknown): TypeError & { code: string } {
  return codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" ${kind(name)} must be ${expected}.${describe(value)}`)
}

/** Node's `addNumericalSeparator`: 1099511627776 as 1_099_511_627_776. */
function separated(digits: string): string {
  let res = ''
  let i = digits.length
  const start = digits[0] === '-' ? 1 : 0
  for (; i >= start + 4; i -= 3) res = `_${digits.slice(i - 3, i)}${res}`
  return `${digits.slice(0, i)}${res}`
}

/** Node's ERR_OUT_OF_RANGE: integers past 2^32 (and bigints) are shown with separators. */
export function outOfRange(name: string, range: string, value: unknown): RangeError & { code: string } {
  let shown: string
  if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) > 2 ** 32) shown = separated(String(value))
  else if (typeof value === 'bigint') {
    shown = String(value)
    if (value > 2n ** 32n || value < -(2n ** 32n)) shown = separated(shown)
    shown += 'n'
  } else shown = inspect(value)
  return codedError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${shown}`)
}

/** Node's ERR_INVALID_ARG_VALUE: the value inspected, cut at 128 characters. */
export function invalidArgValue(name: string, value: unknown, reason = 'is invalid'): TypeError & { code: string } {
  let shown = inspect(value)
  if (shown.length > 128) shown = `${shown.slice(0, 128)}...`
  return codedError(TypeError, 'ERR_INVALID_ARG_VALUE', `The ${kind(name)} '${name}' ${reason}. Received ${shown}`)
}
