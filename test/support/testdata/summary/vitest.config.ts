// Runs the *.case.ts files here for test/support/test-summary.test.ts: each shows one way a run
// can fail, and the summary must count it.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['*.case.ts'],
    reporters: [['../../../../scripts/test-outcomes.mjs', { outputFile: process.env.OUTCOMES_FILE }]],
  },
});
