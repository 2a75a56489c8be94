// The native binding, or null with the reason: a missing or broken binary means the js backend.
import * as loader from './load-binding.cjs'

export type NativeBinding = NonNullable<typeof loader.binding>

export const binding: NativeBinding | null = loader.binding
export const loadError: string = loader.loadError
export const packageRoot: string = loader.root
