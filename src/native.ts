// Loads the native binding without ever throwing: a missing or broken binary leaves
// `binding` null and the reason in `loadError`, and kaio runs on the js backend.
import type * as Binding from '../binding'

export type NativeBinding = typeof Binding

let binding: NativeBinding | null = null
let loadError = ''

try {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  binding = require('../binding.js') as NativeBinding
} catch (e) {
  loadError = e instanceof Error ? e.message.split('\n')[0]! : String(e)
}

export { binding, loadError }
