// Prints the one line CI reads: "N passed, N failed", from vitest's JSON report.
import { readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
try {
  const report = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  passed = report.numPassedTests ?? 0;
  // A file that fails to load counts as a failure even though it ran no test.
  failed = (report.numFailedTests ?? 0) + (report.testResults ?? []).filter((f) => f.status === 'failed' && f.assertionResults.length === 0).length;
} catch (err) {
  console.error(`no test report: ${err.message}`);
  failed = 1;
}
console.log(`${passed} passed, ${failed} failed`);
