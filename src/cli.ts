// The `kaio` command line. `kaio bench` benchmarks the disk; see `kaio bench --help`.
// A bad command line is one line on stderr and exit code 2, never a stack trace.
import { BENCH_HELP, parseBenchArgs, UsageError } from './bench/options'
import { kaioVersion, runBench } from './bench/run'

const HELP = `Usage: kaio <command> [options]

Commands:
  bench          benchmark this disk: kaio backends vs node:fs/promises and fio
                 (see 'kaio bench --help')

Options:
  -h, --help     this help
  -v, --version  print the version
`

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  if (cmd === undefined) {
    process.stderr.write(HELP)
    return 2
  }
  if (cmd === '-h' || cmd === '--help' || cmd === 'help') {
    if (cmd === 'help' && rest[0] === 'bench') process.stdout.write(BENCH_HELP)
    else process.stdout.write(HELP)
    return 0
  }
  if (cmd === '-v' || cmd === '--version') {
    process.stdout.write(`${kaioVersion()}\n`)
    return 0
  }
  if (cmd !== 'bench') throw new UsageError(`unknown command '${cmd}' (see 'kaio --help')`)
  const opts = parseBenchArgs(rest)
  if (opts.help) {
    process.stdout.write(BENCH_HELP)
    return 0
  }
  return runBench(opts)
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`kaio: ${e.message}\n`)
      process.exitCode = 2
    } else {
      const err = e as NodeJS.ErrnoException
      const msg = e instanceof Error ? e.message.split('\n')[0] : String(e)
      process.stderr.write(`kaio: ${msg}${err?.code && !String(msg).includes(String(err.code)) ? ` (${err.code})` : ''}\n`)
      if (process.env.KAIO_DEBUG) process.stderr.write(`${(e as Error)?.stack ?? ''}\n`)
      process.exitCode = 1
    }
  },
)
