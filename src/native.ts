// The native binding, or null with the reason: a missing or broken binary means the js backend.
import * as loader from './load-binding.cjs'

export type NativeBinding = NonNullable<typeof loader.binding>

export const binding: NativeBinding | null = loader.binding
export const loadError: string = loader.loadError
export const packageRoot: string = loader.root

/**
 * Whether native contexts may use the host's libuv to watch their completions. Decided here,
 * before any `uv_*` function is called: Bun exports every libuv symbol, but as stubs that
 * abort the process ("unsupported uv function"), so "the symbol exists" proves nothing there.
 * `KAIO_NO_UV_POLL` (any value) forces the threadsafe-function path, for tests.
 */
export const hostLoopWatch: boolean = !('bun' in process.versions) && process.env.KAIO_NO_UV_POLL === undefined
