// make faults: the fault campaign (issue 7.4). Every client x fault cell, for every seed,
// through the sidecar; and once per cell (first seed) without it, to show the faults bite.
// Prints one table row per run as it finishes, then the verdict; exit 1 when a run through
// the sidecar showed a duplicate, a lost acknowledged record or a reorder, or a fault bit no
// client without the sidecar. Environment (make variables):
//   SEED=1,2        seeds (default 1,2)
//   CELL=java/reset client/fault filters, comma-separated, * for any (default */*)
//   RECORDS=20000   records per run (2 topics x 3 partitions)
//   BASELINE=first  first | all | none: seeds that also run without the sidecar
// Results as JSON: test-results/faults/results.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Campaign, type RunResult } from './campaign.js';
import { FAULTS, matchCells } from './faults.js';
import { header, row, summary } from './table.js';
import { killAllTracked } from '../support/clients/run.js';

// As under vitest (vitest.config.ts): every sidecar this campaign starts overwrites its reused
// read buffers after each read, so a view kept into one fails the run (proxy/socket-reads.ts).
process.env.IDEMPO_TEST_ONLY_POISON_READS = '1';
const env = (k: string) => (process.env[k] ?? '').trim() || undefined;
const seeds = (env('SEED') ?? '1,2').split(',').map((s) => Number(s.trim()));
if (seeds.some((s) => !Number.isInteger(s))) throw new Error(`SEED=${env('SEED')}: expected integers, e.g. SEED=1,2`);
const records = Number(env('RECORDS') ?? 20_000);
const baseline = env('BASELINE') ?? 'first';
if (!['first', 'all', 'none'].includes(baseline)) throw new Error(`BASELINE=${baseline}: expected first, all or none`);
const cells = matchCells(env('CELL'));
// 1-broker faults first, then 3-broker ones: each cluster size starts once.
cells.sort((a, b) => FAULTS[a.fault].brokers - FAULTS[b.fault].brokers);

async function main(): Promise<number> {
  const t0 = Date.now();
  const campaign = new Campaign((l) => console.log(`# ${l}`));
  const results: RunResult[] = [];
  console.log(`# fault campaign: ${cells.length} cells x seeds ${seeds.join(',')}, ${records} records per run, baseline ${baseline}`);
  console.log(header());
  try {
    for (const c of cells) {
      for (const [i, seed] of seeds.entries()) {
        const paths = baseline === 'all' || (baseline === 'first' && i === 0) ? (['sidecar', 'direct'] as const) : (['sidecar'] as const);
        for (const p of paths) {
          const r = await campaign.run({ seed, client: c.client, fault: c.fault, path: p, records });
          results.push(r);
          console.log(row(r));
          if (r.error) console.log(`#   ${r.error}`);
          if (r.failures) console.log(`#   client failures: ${r.failures.slice(0, 400)}`);
          if (r.sidecarLog) console.log(`#   sidecar log: ${r.sidecarLog}`);
        }
      }
    }
  } finally {
    await campaign.close();
  }
  const dir = path.join(campaign.logDir);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'results.json'), JSON.stringify({ seeds, records, baseline, results }, null, 1));
  const s = summary(results, records);
  console.log('');
  for (const l of s.lines) console.log(l);
  console.log(`# wall time ${((Date.now() - t0) / 60_000).toFixed(1)} min; results in ${path.relative(process.cwd(), path.join(dir, 'results.json'))}`);
  return s.failed ? 1 : 0;
}

main().then(
  (code) => {
    killAllTracked();
    process.exit(code);
  },
  (e: unknown) => {
    console.error(e);
    killAllTracked();
    process.exit(2);
  },
);
