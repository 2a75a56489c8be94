// Argument validation with node:fs's codes: TypeError ERR_INVALID_ARG_TYPE for a wrong type,
// RangeError ERR_OUT_OF_RANGE for a number outside its range.
import { invalidArgType, outOfRange } from './errors'

/** Largest single transfer, as node:fs (`kIoMaxLength`): 2 GiB - 1. */
export const MAX_LENGTH = 2 ** 31 - 1
const MAX_OFFSET = (1n << 63n) - 1n

export function validateInt(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value)
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value)
  if (value < min || value > max) throw outOfRange(name, `>= ${min} && <= ${max}`, value)
  return value
}

export function validateFd(fd: unknown): number {
  return validateInt(fd, 'fd', 0, 2 ** 31 - 1)
}

/** A file offset: a non-negative safe integer, or a bigint in 0..2^63-1. */
export function validateOffset(offset: unknown, name = 'offset'): number | bigint {
  if (typeof offset === 'number') {
    if (!Number.isSafeInteger(offset)) {
      throw outOfRange(name, Number.isInteger(offset) ? `>= 0 && <= ${Number.MAX_SAFE_INTEGER}` : 'an integer', offset)
    }
    if (offset < 0) throw outOfRange(name, `>= 0 && <= ${Number.MAX_SAFE_INTEGER}`, offset)
    return offset
  }
  if (typeof offset === 'bigint') {
    if (offset < 0n || offset > MAX_OFFSET) throw outOfRange(name, `>= 0n && <= ${MAX_OFFSET}n`, offset)
    return offset <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(offset) : offset
  }
  throw invalidArgType(name, 'of type number or bigint', offset)
}

/** Whether a view's ArrayBuffer has been detached (transferred). */
export function isDetached(view: ArrayBufferView): boolean {
  // A typed array over a detached buffer has byteLength 0 (a DataView's getters throw), so a
  // non-empty typed array is attached, without materialising its ArrayBuffer.
  if (!(view instanceof DataView) && view.byteLength !== 0) return false
  const ab = view.buffer as ArrayBuffer & { detached?: boolean }
  if (typeof ab.detached === 'boolean') return ab.detached
  // Node 20 has no `detached`: a detached buffer has length 0 and refuses slice().
  if (ab.byteLength !== 0) return false
  try {
    ab.slice(0)
    return false
  } catch {
    return true
  }
}

/** Any ArrayBufferView as a Uint8Array over the same memory. */
export function asBytes(view: unknown, name: string): Uint8Array {
  if (view instanceof Uint8Array) return view
  if (ArrayBuffer.isView(view)) return new Uint8Array(view.buffer, view.byteOffset, view.byteLength)
  throw invalidArgType(name, 'an instance of Buffer, TypedArray, or DataView', view)
}

/** Write payload: a string (UTF-8) or any ArrayBufferView. */
export function toPayload(data: unknown, name = 'data'): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8')
  if (ArrayBuffer.isView(data)) return asBytes(data, name)
  throw invalidArgType(name, 'of type string or an instance of Buffer, TypedArray, or DataView', data)
}

export function validateFunctionOrUndefined(value: unknown, name: string): void {
  if (value !== undefined && typeof value !== 'function') throw invalidArgType(name, 'of type function', value)
}
