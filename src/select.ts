// Backend selection, like caio's: AIO_IMPL first, then a `default-implementation` file in the
// package root, then auto-detection in the order uring, linux, thread, js. Never throws at import.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { binding, hostLoopWatch, loadError, packageRoot } from './native'
import type { CompletionPath, Implementation } from './driver'

export const IMPLEMENTATIONS: readonly Implementation[] = ['uring', 'linux', 'thread', 'js']

export interface BackendStatus {
  available: boolean
  /** Why not, when unavailable (e.g. "io_setup failed: ENOSYS"); '' otherwise. */
  reason: string
  /** How this backend's completions reach JavaScript in this process (see `Context#completionPath`). */
  completionPath: CompletionPath
}

/** The completion path native contexts get here: decided without creating one. */
function nativePath(): CompletionPath {
  return binding && hostLoopWatch && binding.loopWatchAvailable() ? 'uv_poll' : 'threadsafe_function'
}

let cached: Record<Implementation, BackendStatus> | undefined

/** Per backend: can it run in this process, and if not, why. */
export function availability(): Record<Implementation, BackendStatus> {
  if (cached) return cached
  const completionPath = nativePath()
  const native: BackendStatus = binding
    ? { available: true, reason: '', completionPath }
    : { available: false, reason: `native binding not loaded: ${loadError}`, completionPath }
  let linux: BackendStatus
  let uring: BackendStatus
  if (!binding) linux = uring = native
  else if (process.platform !== 'linux') {
    linux = { available: false, reason: 'kernel AIO exists only on Linux', completionPath }
    uring = { available: false, reason: 'io_uring exists only on Linux', completionPath }
  } else {
    const [ok, why] = binding.probe()
    linux = { available: ok, reason: why, completionPath }
    const [uok, uwhy] = binding.probeUring()
    uring = { available: uok, reason: uwhy, completionPath }
  }
  cached = { uring, linux, thread: native, js: { available: true, reason: '', completionPath: 'node:fs' } }
  return cached
}

/** The backends usable here, in order of preference. */
export function available(): Implementation[] {
  const a = availability()
  return IMPLEMENTATIONS.filter((i) => a[i].available)
}

function isImplementation(v: string): v is Implementation {
  return (IMPLEMENTATIONS as readonly string[]).includes(v)
}

/** The first line of `default-implementation` that is not empty or a `#` comment. */
function fileChoice(): string | undefined {
  let text: string
  try {
    text = readFileSync(join(packageRoot, 'default-implementation'), 'utf8')
  } catch {
    return undefined
  }
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    return line
  }
  return undefined
}

let chosen: Implementation | undefined

/** The process default backend. Decided once. */
export function defaultImplementation(): Implementation {
  if (chosen) return chosen
  const usable = available()
  const env = process.env.AIO_IMPL
  if (env !== undefined && env !== '') {
    if (isImplementation(env) && usable.includes(env)) return (chosen = env)
    const why = isImplementation(env) ? `unavailable: ${availability()[env].reason}` : 'unknown'
    process.emitWarning(
      `AIO_IMPL=${env} is ${why}; valid values are ${IMPLEMENTATIONS.join(', ')}. Using auto-detection.`,
      { code: 'KAIO_IMPL', type: 'KaioWarning' },
    )
  } else {
    const file = fileChoice()
    if (file !== undefined && isImplementation(file) && usable.includes(file)) return (chosen = file)
  }
  return (chosen = usable[0]!)
}
