// ESM entry of `kaio/promises` (the CommonJS one is src/promises.js, whose module.exports
// is built at load time, so cjs-module-lexer cannot list its names). `export *` from the
// builtin gives exactly the running Node's names, and the explicit exports below take
// precedence over it for the functions kaio runs itself.
import promises from './promises.js'

export * from 'node:fs/promises'
export const { open, readFile, writeFile, appendFile, copyFile, stat, lstat, unlink, rmdir, rename, mkdir, symlink, link, truncate } = promises
export default promises
