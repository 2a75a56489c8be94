// Page-aligned memory for O_DIRECT. Native allocation when the binding is loaded (freed when
// the Buffer is collected); otherwise WebAssembly.Memory, whose backing store is page aligned.
import * as workerThreads from 'node:worker_threads'

import { binding } from './native'
import { invalidArgType, outOfRange } from './errors'
import { validateInt } from './validate'

const WASM_PAGE = 65536
/** From this size up, `allocAligned` memory is its own mapping advised for transparent huge pages. */
export const HUGE_PAGE = 2 * 1024 * 1024

// @types/node does not declare the WebAssembly namespace; this is the part used here.
declare const WebAssembly: { Memory: new (d: { initial: number; maximum?: number }) => { buffer: ArrayBuffer } }

function validateAlignment(alignment: unknown): number {
  const a = validateInt(alignment, 'alignment', 1, WASM_PAGE)
  if ((a & (a - 1)) !== 0) throw outOfRange('alignment', 'a power of two', a)
  return a
}

/** Whether the view's first byte sits at a multiple of `alignment`. */
export function isAligned(view: ArrayBufferView, alignment = 4096): boolean {
  if (!ArrayBuffer.isView(view)) throw invalidArgType('view', 'an instance of Buffer, TypedArray, or DataView', view)
  const a = validateAlignment(alignment)
  if (view.byteLength === 0 && view.buffer.byteLength === 0) return true
  if (binding) {
    const bytes = view instanceof Uint8Array ? view : new Uint8Array(view.buffer, view.byteOffset, view.byteLength)
    return binding.misalignment(bytes, a) === 0
  }
  // Without the binding only WebAssembly memory has a known (page) alignment.
  return wasmBuffers.has(view.buffer) && view.byteOffset % a === 0
}

const wasmBuffers = new WeakSet<ArrayBufferLike>()

function wasmAligned(size: number): Buffer {
  const pages = Math.max(1, Math.ceil(size / WASM_PAGE))
  const mem = new WebAssembly.Memory({ initial: pages, maximum: pages })
  wasmBuffers.add(mem.buffer)
  return Buffer.from(mem.buffer, 0, size)
}

/**
 * Marks kaio's own V8-heap memory (read() slabs, and allocAligned's fallbacks) so that `postMessage` and
 * `structuredClone` refuse to transfer (detach) it, on every Node version, and so does
 * `ArrayBuffer.prototype.transfer()` on Node 24. A request in flight into a slab must not see
 * its memory handed to another owner; and a slab is shared by several read() results.
 */
const untransferable = (workerThreads as { markAsUntransferable?: (o: object) => void }).markAsUntransferable

function keep(b: Buffer): Buffer {
  untransferable?.(b.buffer)
  return b
}

/** A zero-filled Buffer of `size` bytes whose memory is aligned to `alignment`. */
export function allocAligned(size: number, alignment = 4096): Buffer {
  validateInt(size, 'size', 0, 2 ** 31 - 1)
  const a = validateAlignment(alignment)
  if (binding) {
    try {
      // Native (external) memory is not marked: on Node 24, an external ArrayBuffer marked
      // untransferable aborts the process at exit (FromJust in Environment::RunCleanup).
      return binding.allocAligned(size, a)
    } catch {
      // External buffers refused (Electron).
      return heapAligned(size, a)
    }
  }
  return keep(wasmAligned(size))
}

/** Aligned memory V8 allocates and accounts for: over-allocate, slice at the aligned offset. */
function heapAligned(size: number, alignment: number): Buffer {
  if (!binding) return wasmAligned(size)
  const raw = keep(Buffer.alloc(size + alignment - 1))
  const skip = (alignment - binding.misalignment(raw, alignment)) % alignment
  return raw.subarray(skip, skip + size)
}

const SLAB = 256 * 1024
const SMALL = 64 * 1024
let slab: Buffer | null = null
let used = 0

/**
 * A page-aligned buffer for `read()`: small ones are cut from a shared aligned slab. The memory
 * is V8's (not native), so the garbage collector sees it and frees it promptly: native slabs
 * made RSS swing by 100+ MB under sustained read() because V8 could not see them.
 */
export function readBuffer(n: number): Buffer {
  if (n > SMALL) return heapAligned(n, 4096)
  const rounded = (n + 4095) & ~4095
  if (slab === null || used + rounded > SLAB) {
    slab = heapAligned(SLAB, 4096)
    used = 0
  }
  const b = slab.subarray(used, used + n)
  used += Math.max(rounded, 4096)
  return b
}
