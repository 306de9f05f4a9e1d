import { defineConfig } from 'vitest/config';

// Unit tests sit beside the code; end-to-end tests (real Kafka, real kube-apiserver) live
// in test/e2e. The machines have 2 cores, so e2e files run one at a time.
export default defineConfig({
  test: {
    include: ['api/**/*.test.ts', 'bench/**/*.test.ts', 'sidecar/**/*.test.ts', 'operator/**/*.test.ts', 'test/support/**/*.test.ts', 'test/e2e/**/*.test.ts', 'test/faults/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    fileParallelism: false,
    pool: 'forks',
    // The engine's fuzz campaign checks that memory returns to its baseline: it needs global.gc().
    poolOptions: { forks: { execArgv: ['--expose-gc'] } },
    // Every sidecar a test runs (in-process or spawned: they inherit the environment) overwrites
    // its reused socket read buffers after each read, so a view kept into one fails loudly
    // (proxy/socket-reads.ts).
    env: { IDEMPO_TEST_ONLY_POISON_READS: '1' },
    // test-outcomes.mjs writes test-results/outcomes.json for scripts/test-summary.mjs (make test).
    reporters: ['default', './scripts/test-outcomes.mjs'],
  },
});
