// `npm run test:stress`: long load, integrity and memory runs (not part of `npx ava`).
// One file at a time so they do not compete for the 2 cores and the disk.
export default {
  files: ['__test__/stress/**/*.stress.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import', '@oxc-node/core/register', '--expose-gc'],
  workerThreads: false,
  concurrency: 1,
  serial: true,
  timeout: '5m',
  verbose: true,
}
