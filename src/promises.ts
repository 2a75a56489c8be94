// `kaio/promises`: a drop-in for node:fs/promises. Every export name of the running Node's
// node:fs/promises, nothing else; open, readFile, writeFile, appendFile, copyFile, stat and lstat run on
// kaio, the rest are node:fs/promises' own functions (see src/fs-promises.ts and README).
// `module.exports` is the object itself, so `require('kaio/promises')` has exactly node's
// keys; ESM imports go through src/promises.mjs.
import { promises } from './fs-promises'

export = promises
