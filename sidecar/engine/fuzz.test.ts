// The engine's fuzz campaign (fuzz.test-support.ts): in `make test` a short run per mode; `make
// fuzz` runs FUZZ_ITERATIONS=1000000 (FUZZ_SEED to replay). Every fuzzed request is followed by
// a valid one that must succeed; nothing may throw, stay in flight, or keep memory.
import { describe, expect, it } from 'vitest';
import { campaign } from './fuzz.test-support.js';

const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 9_000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261130);
const MODES = ['upgrade', 'enforce', 'observe'] as const;
const HEAP_SLACK = 48 * 1024 * 1024;

describe(`engine fuzz: ${ITERATIONS} mutated Produce requests (seed ${SEED}), each followed by a valid one`, () => {
  MODES.forEach((mode, i) => {
    const n = Math.ceil(ITERATIONS / MODES.length);
    it(`${mode}: ${n} requests`, async () => {
      const t0 = Date.now();
      const r = await campaign(mode, n, SEED + i);
      console.log(
        `fuzz ${mode}: ${r.requests} fuzzed + ${r.requests} valid requests in ${((Date.now() - t0) / 1000).toFixed(1)} s; ` +
          `${r.frameRejected} frames refused by the codec, ${r.closed} connections closed, ${r.retried} valid ones retried; heap ${(r.heapGrowthBytes / 1048576).toFixed(1)} MiB over baseline; ${JSON.stringify(r.stats)}` + (r.failures.length ? `\n${r.failures.join('\n')}` : ''),
      );
      expect(r.failures).toEqual([]);
      expect(r.heapGrowthBytes).toBeLessThan(HEAP_SLACK);
    }, 120_000 + n * 5);
  });
});
