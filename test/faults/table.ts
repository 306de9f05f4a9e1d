// The campaign's results as a fixed-width text table (one row per run) and the verdict lines
// under it: each failing run with the command that re-runs it, and each fault whose baseline
// (no sidecar) did not bite.
import { bites, violations, type RunResult } from './campaign.js';
import { cellId, knownReorder } from './faults.js';

const COLUMNS: { head: string; width: number; get: (r: RunResult) => string | number; left?: boolean }[] = [
  { head: 'seed', width: 4, get: (r) => r.seed },
  { head: 'client', width: 9, get: (r) => r.client, left: true },
  { head: 'fault', width: 12, get: (r) => r.fault, left: true },
  { head: 'path', width: 7, get: (r) => r.path, left: true },
  { head: 'sent', width: 6, get: (r) => r.sent },
  { head: 'acked', width: 6, get: (r) => r.acked },
  { head: 'failed', width: 6, get: (r) => r.failed },
  { head: 'in log', width: 6, get: (r) => r.inLog },
  { head: 'dup', width: 6, get: (r) => r.duplicates },
  { head: 'lost', width: 5, get: (r) => r.lost },
  { head: 'reord', width: 5, get: (r) => r.reordered },
  { head: 'relay r/h/s/d', width: 13, get: (r) => `${r.relayFaults.reset}/${r.relayFaults.half_write}/${r.relayFaults.stall}/${r.relayFaults.drop}` },
  { head: 'events', width: 6, get: (r) => `${r.events.length}${r.eventsMissed.length ? '!' : ''}` },
  { head: 'wall s', width: 6, get: (r) => (r.wallMs / 1000).toFixed(0) },
  { head: 'verdict', width: 7, get: verdict, left: true },
];

export function verdict(r: RunResult): string {
  if (r.path === 'direct') return r.error ? 'error' : bites(r) ? 'bites' : 'no bite';
  if (violations(r).length > 0) return 'FAIL';
  return r.reordered > 0 ? 'known' : 'ok';
}

const cell = (s: string | number, width: number, left?: boolean) => (left ? String(s).padEnd(width) : String(s).padStart(width));

export function header(): string {
  const h = COLUMNS.map((c) => cell(c.head, c.width, c.left)).join(' ');
  return `${h}\n${'-'.repeat(h.length)}`;
}

export function row(r: RunResult): string {
  return COLUMNS.map((c) => cell(c.get(r), c.width, c.left)).join(' ');
}

/** The command that re-runs one cell with one seed. */
export const rerun = (r: RunResult, records: number) => `make faults SEED=${r.seed} CELL=${cellId(r.client, r.fault)} RECORDS=${records}`;

/** Lines under the table: failures with their re-run command, baselines that did not bite. */
export function summary(results: RunResult[], records: number): { lines: string[]; failed: boolean } {
  const lines: string[] = [];
  let failed = false;
  for (const r of results.filter((x) => x.path === 'sidecar')) {
    const v = violations(r);
    if (v.length === 0) continue;
    failed = true;
    lines.push(`FAIL seed ${r.seed} ${cellId(r.client, r.fault)}: ${v.join(', ')}`);
    lines.push(`     re-run: ${rerun(r, records)}`);
    if (r.sidecarLog) lines.push(`     sidecar log: ${r.sidecarLog}`);
    for (const d of (r.duplicateRuns ?? []).slice(0, 12)) lines.push(`     copies: ${d}`);
    if (r.eventsMissed.length) lines.push(`     events missed: ${r.eventsMissed.join('; ')}`);
  }
  for (const r of results.filter((x) => x.path === 'sidecar' && violations(x).length === 0 && x.reordered > 0)) {
    lines.push(`KNOWN seed ${r.seed} ${cellId(r.client, r.fault)}: ${r.reordered} reordered (${knownReorder(r.client, r.fault)})`);
  }
  // A fault proves something only if it bites without the sidecar for some client of its runs.
  const direct = results.filter((x) => x.path === 'direct');
  for (const fault of [...new Set(direct.map((r) => r.fault))]) {
    const runs = direct.filter((r) => r.fault === fault);
    if (!runs.some(bites)) {
      failed = true;
      lines.push(`NO BITE ${fault}: without the sidecar no client wrote a duplicate, lost or reordered a record`);
    }
  }
  for (const r of results.filter((x) => x.events.length > 0 || x.eventsMissed.length > 0)) {
    lines.push(`events seed ${r.seed} ${cellId(r.client, r.fault)} ${r.path}: ${[...r.events.map((e) => e.detail), ...r.eventsMissed.map((m) => `MISSED ${m}`)].join('; ')}`);
  }
  if (!failed) lines.push('every run through the sidecar: 0 duplicates, 0 acknowledged records lost, 0 reordered (but for KNOWN lines)');
  return { lines, failed };
}
