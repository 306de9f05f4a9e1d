// The part of the fault campaign (make faults, docs/faults.md) that runs in `make test`: a
// few client x fault cells, one seed, the fewest records that still bite. Each cell runs
// through the sidecar (must show 0 duplicates, 0 lost acknowledged records, 0 reordered) and
// without it (the same seeded faults must write a duplicate or reorder for some client of
// each fault, or they prove nothing). A failure names the command that re-runs the cell.
//
// java-idem (the Java producer's own idempotence) needs no sidecar to survive these faults,
// so it has no baseline here; through the sidecar it once got 2,183 duplicates under resets
// (re-sends parked on a dead original, fixed in 66af9e9), which its cell guards against.
//
// Pending cells (each joins this file once it passes on main; see FINDINGS.md):
// - the other */sidecar-kill cells: paced to bite, their baselines need 30 s streams (too long
//   here); java/sidecar-kill reorders as README "Guarantees" documents. */all: 3 brokers cost
//   ~1 min more to start (kafkajs/all's last duplicates were a kafkajs bug: docs/faults.md).
// - */broker-kill, */leader-move: 3 brokers cost ~1 min more to start; they run in
//   `make faults` (and join here when the budget allows).
import { afterAll, describe, expect, it } from 'vitest';
import { Campaign, bites, violations, type RunResult } from './campaign.js';
import { cellId, type FaultName } from './faults.js';
import { header, rerun, row } from './table.js';
import type { ClientName } from '../e2e/faults-workload.js';

const SEED = 1;
const CELLS: { client: ClientName; fault: FaultName; records: number; paceMs?: number }[] = [
  { client: 'java', fault: 'reset', records: 6000 },
  { client: 'kcat', fault: 'stall', records: 6000 },
  { client: 'kafkajs', fault: 'drop', records: 4000 },
  { client: 'java-idem', fault: 'reset', records: 6000 },
  // Two kill -9s of the sidecar (restarted with its --state-dir) over a 10 s stream.
  { client: 'java-idem', fault: 'sidecar-kill', records: 4000, paceMs: 10_000 },
];

const campaign = new Campaign();
const results: RunResult[] = [];

afterAll(async () => {
  await campaign.close();
  console.log([header(), ...results.map(row)].join('\n'));
});

describe(`fault campaign, seed ${SEED} (the rest: make faults)`, () => {
  for (const c of CELLS) {
    it(`${cellId(c.client, c.fault)}: ${c.records} records through the sidecar once each, in order${c.client === 'java-idem' ? '' : '; the faults bite without it'}`, async () => {
      const viaSidecar = await campaign.run({ seed: SEED, ...c, path: 'sidecar' });
      results.push(viaSidecar);
      const again = rerun(viaSidecar, c.records);
      expect({ violations: violations(viaSidecar), again }).toEqual({ violations: [], again });
      expect(viaSidecar.relayFaults.reset + viaSidecar.relayFaults.half_write + viaSidecar.relayFaults.stall + viaSidecar.relayFaults.drop + viaSidecar.events.length).toBeGreaterThan(0);
      expect(viaSidecar.eventsMissed).toEqual([]);
      if (c.client === 'java-idem') return;
      const direct = await campaign.run({ seed: SEED, ...c, path: 'direct' });
      results.push(direct);
      expect({ bites: bites(direct), error: direct.error, direct: row(direct) }).toEqual({ bites: true, error: undefined, direct: row(direct) });
    }, 300_000);
  }
});
