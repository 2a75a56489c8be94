// kaio's drop-in for node:fs/promises: `open`, `FileHandle`, `readFile`, `writeFile`,
// `appendFile`, `copyFile` and streams, with data I/O on a kaio Context.
import * as fs from 'node:fs'

export { open, FileHandle } from './filehandle'
export type {
  FileReadOptions,
  FileReadResult,
  FileWriteResult,
  OpenOptions,
  ReadFileOptions,
  ReadPositionOptions,
  WriteFileData,
  WriteFileOptions,
} from './filehandle'
export { appendFile, copyFile, createReadStream, createWriteStream, readFile, writeFile } from './functions'
export type { CopyFileOptions, CreateReadStreamOptions, CreateWriteStreamOptions, KaioOptions } from './functions'
export { ReadStream, WriteStream } from './streams'
export type { ReadStreamOptions, WriteStreamOptions } from './streams'

/** node:fs's constants (O_*, COPYFILE_*, ...), as `fs.promises.constants`. */
export const constants = fs.constants
