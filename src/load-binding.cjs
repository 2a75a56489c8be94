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
  exports.loadError = e instanceof Error ? String(e.message).split('\n')[0] : String(e)
}
