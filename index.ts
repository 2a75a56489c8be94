// kaio: kernel asynchronous file I/O for Node.js.
import { availability, available, defaultImplementation } from './src/select'
import type { BackendStatus } from './src/select'
import type { Implementation } from './src/driver'

export { Context, DEFAULT_MAX_REQUESTS, DEFAULT_POOL_SIZE } from './src/context'
export type { CompletionPath, ContextOptions, OperationOptions, Implementation, RawResult } from './src/context'
export { Operation } from './src/ops'
export * from './src/constants'
export { allocAligned, isAligned } from './src/aligned'
export { AbortError } from './src/errors'
export { AT_EMPTY_PATH, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, decodeStatx, STATX_BASIC_STATS, STATX_BTIME, STATX_SIZE } from './src/statx'
export type { StatxBigInts, StatxNumbers } from './src/statx'
export type { SystemError } from './src/errors'
export type { BackendStatus } from './src/select'

/** The process default backend (`AIO_IMPL`, the `default-implementation` file, or auto-detection). */
export const implementation: Implementation = defaultImplementation()

/** The backends usable in this process, in order of preference. */
export const implementations: readonly Implementation[] = Object.freeze(available())

/** Per backend: whether it is available here and, if not, why (for diagnostics). */
export function backends(): Record<Implementation, BackendStatus> {
  const a = availability()
  return { uring: { ...a.uring }, linux: { ...a.linux }, thread: { ...a.thread }, js: { ...a.js } }
}
export * from './src/fs'
