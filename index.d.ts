import type { BackendStatus } from './src/select';
import type { Implementation } from './src/driver';
export { Context, DEFAULT_MAX_REQUESTS, DEFAULT_POOL_SIZE } from './src/context';
export type { CompletionPath, ContextOptions, OperationOptions, Implementation, RawResult } from './src/context';
export { Operation } from './src/ops';
export * from './src/constants';
export { allocAligned, isAligned } from './src/aligned';
export { AbortError } from './src/errors';
export { AT_EMPTY_PATH, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, decodeStatx, STATX_BASIC_STATS, STATX_BTIME, STATX_SIZE } from './src/statx';
export type { StatxBigInts, StatxNumbers } from './src/statx';
export type { SystemError } from './src/errors';
export type { BackendStatus } from './src/select';
/** The process default backend (`AIO_IMPL`, the `default-implementation` file, or auto-detection). */
export declare const implementation: Implementation;
/** The backends usable in this process, in order of preference. */
export declare const implementations: readonly Implementation[];
/** Per backend: whether it is available here and, if not, why (for diagnostics). */
export declare function backends(): Record<Implementation, BackendStatus>;
export * from './src/fs';
