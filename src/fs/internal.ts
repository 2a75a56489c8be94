// What the streams and module functions see of a FileHandle beyond its public API.
import type { Context } from '../context'
import type { BlockIO } from './io'

export const kCore = Symbol('kaio.fs.core')

/** How writes without a position behave: ordinary, O_APPEND in the kernel, or O_APPEND emulated (O_DIRECT). */
export type AppendMode = 'none' | 'kernel' | 'emulated'

export interface Core {
  readonly ctx: Context
  readonly io: BlockIO
  readonly append: AppendMode
  /** The descriptor, or -1 once closed. */
  fd(): number
  /** Keeps the descriptor open until the matching `unref` (as node's kRef/kUnref). */
  ref(): void
  unref(): void
  /** The handle's file position, after the position-ordered operations queued before. */
  tell(syscall?: 'read' | 'write'): Promise<number>
  /** Sets the handle's file position. */
  seek(pos: number): void
  /**
   * The file position now, on this thread (the descriptor's offset, with nothing queued
   * before it): what a stream sharing the position compares with what it last set, to see
   * another user of the descriptor move it.
   */
  offset(): number
  /** Writes at the handle's position (or at the end, in append mode) and advances it. */
  writeNext(view: Uint8Array): Promise<number>
  /** Writes at `pos` (append mode: at the end, as Linux does with O_APPEND). */
  writeAt(view: Uint8Array, pos: number): Promise<number>
}
