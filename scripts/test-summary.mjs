// Prints the line CI reads, "N passed, N failed, N skipped", from scripts/test-outcomes.mjs's
// report and vitest's exit status, after naming every failure.
//   node scripts/test-summary.mjs test-results/outcomes.json EXIT_STATUS
// Counted as failed: every failed test; every test that never ran because its file or suite
// broke (beforeAll threw, import failed); a file or suite whose own error (afterAll, collection)
// failed no test, once; each unhandled error. Skipped: skip and todo.
import { readFileSync } from 'node:fs';

const status = Number(process.argv[3] ?? 0);
let report = { tests: [], broken: [], unhandled: [] };
try {
  report = JSON.parse(readFileSync(process.argv[2], 'utf8'));
} catch (err) {
  console.error(`no test report: ${err.message}`);
}
const count = (o) => report.tests.filter((t) => t.outcome === o).length;
const failures = [
  ...report.tests.filter((t) => t.outcome === 'failed').map((t) => `${t.file} > ${t.name}${t.why ? ` (${t.why})` : ''}`),
  ...report.broken.map((b) => `${b.file} > ${b.name}: ${b.why}`),
  ...report.unhandled.map((e) => `unhandled error: ${e}`),
];
// A failing exit status with nothing to show for it (no report, vitest crashed) is one failure.
if (status !== 0 && failures.length === 0) failures.push(`vitest exited with status ${status} and reported no failure`);
for (const f of failures) console.error(`FAILED ${f.split('\n')[0]}`);
console.log(`${count('passed')} passed, ${failures.length} failed, ${count('skipped')} skipped`);
