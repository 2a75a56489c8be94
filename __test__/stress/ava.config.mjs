// `npm run test:stress`: long load, integrity and memory runs (not part of `npm test`).
// One file at a time so they do not compete for the 2 cores and the disk. The specs are
// TypeScript compiled in place by `tsc -p tsconfig.test.json` (the script does it first).
export default {
  files: ['__test__/stress/**/*.stress.js'],
  nodeArguments: ['--expose-gc'],
  workerThreads: false,
  concurrency: 1,
  serial: true,
  timeout: '5m',
  verbose: true,
}
