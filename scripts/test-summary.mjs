// Prints the one line CI reads: "N passed, N failed", from vitest's JSON report and its exit status.
//   node scripts/test-summary.mjs REPORT.json EXIT_STATUS
import { readFileSync } from 'node:fs';

const status = Number(process.argv[3] ?? 0);
let passed = 0;
let failed = 0;
try {
  const report = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  passed = report.numPassedTests ?? 0;
  // A file that fails to load counts as a failure even though it ran no test.
  failed = (report.numFailedTests ?? 0) + (report.testResults ?? []).filter((f) => f.status === 'failed' && f.assertionResults.length === 0).length;
} catch (err) {
  console.error(`no test report: ${err.message}`);
}
// vitest also fails a run for errors outside any test (unhandled rejections): count that as one.
if (status !== 0 && failed === 0) {
  console.error(`vitest exited with status ${status} although no test failed (unhandled errors or no report)`);
  failed = 1;
}
console.log(`${passed} passed, ${failed} failed`);
