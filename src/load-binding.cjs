// Loads the native binding without ever throwing. Plain CommonJS on purpose: it works the same
// whether the TypeScript around it runs as CommonJS (the published build) or as ESM (tests).
'use strict'
const path = require('node:path')

exports.root = path.join(__dirname, '..')
exports.binding = null
exports.loadError = ''
try {
  exports.binding = require('../binding.js')
} catch (e) {
  const msg = e instanceof Error ? String(e.message).split('\n')[0] : String(e)
  // napi-rs's loader blames an npm bug whenever no package fits; say what is missing instead.
  exports.loadError = /Cannot find native binding/.test(msg)
    ? `no kaio binary for ${process.platform}-${process.arch} (the kaio-${process.platform}-${process.arch}* package is not installed)`
    : msg
}
