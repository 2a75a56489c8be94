// Progress on stderr: a redrawn bar on a TTY, plain lines otherwise (CI logs, pipes).

export class Progress {
  readonly #tty: boolean
  readonly #quiet: boolean
  #done = 0
  #shown = false

  constructor(
    readonly total: number,
    /** Estimated seconds of the whole run, for the ETA. */
    readonly estimate: number,
    quiet = false,
  ) {
    this.#tty = process.stderr.isTTY === true
    this.#quiet = quiet
  }

  /** Announces the run about to start. */
  start(what: string): void {
    if (this.#quiet) return
    if (this.#tty) {
      const cols = process.stderr.columns || 80
      const width = 24
      const filled = Math.round((this.#done / Math.max(1, this.total)) * width)
      const left = Math.max(0, Math.round(this.estimate * (1 - this.#done / Math.max(1, this.total))))
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.#done + 1}/${this.total} ~${left}s left  ${what}`
      process.stderr.write(`\r\x1b[K${bar.slice(0, cols - 1)}`)
      this.#shown = true
    } else {
      process.stderr.write(`[${this.#done + 1}/${this.total}] ${what}\n`)
    }
  }

  /** Marks the announced run done. */
  step(): void {
    this.#done++
  }

  /** A message that must not be overwritten by the bar. */
  note(text: string): void {
    if (this.#quiet) return
    this.clear()
    process.stderr.write(`${text}\n`)
  }

  clear(): void {
    if (this.#tty && this.#shown) {
      process.stderr.write('\r\x1b[K')
      this.#shown = false
    }
  }
}
