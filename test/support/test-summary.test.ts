// CI's one line ("N passed, N failed, N skipped") must count what really happened. Runs vitest
// on the cases in testdata/summary (a beforeAll that throws, a file that cannot load, an
// afterAll that throws, skip and todo) through scripts/test-outcomes.mjs and test-summary.mjs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runProcess } from './clients/run.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const cases = join(repoRoot, 'test/support/testdata/summary');
const tmp = mkdtempSync(join(tmpdir(), 'idempo-summary-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('test summary', () => {
  it('counts tests that never ran because their file or suite broke as failed, skip and todo as skipped', async () => {
    const outcomes = join(tmp, 'outcomes.json');
    const vitestRun = await runProcess(process.execPath, [join(repoRoot, 'node_modules/vitest/vitest.mjs'), 'run', '--root', cases], {
      cwd: cases,
      env: { ...process.env, OUTCOMES_FILE: outcomes },
      timeoutMs: 300_000,
    });
    expect(vitestRun.code).toBe(1);
    const summary = await runProcess(process.execPath, [join(repoRoot, 'scripts/test-summary.mjs'), outcomes, String(vitestRun.code)]);
    // passed: mixed "passes", "passes before it". failed: 3 (hook-fails) + "fails" + "never runs"
    // + the afterAll + the file that cannot load. skipped: skip + todo.
    expect(summary.stdout.trim()).toBe('2 passed, 7 failed, 2 skipped');
    expect(summary.stderr).toContain('hook-fails.case.ts > a suite whose beforeAll throws > two (not run: boom in beforeAll)');
    expect(summary.stderr).toContain('import-fails.case.ts > (file)');
    expect(summary.stderr).toContain('boom in afterAll');
  });

  it('a failing exit status with no report is one failure, not a green line', async () => {
    const summary = await runProcess(process.execPath, [join(repoRoot, 'scripts/test-summary.mjs'), join(tmp, 'missing.json'), '1']);
    expect(summary.stdout.trim()).toBe('0 passed, 1 failed, 0 skipped');
  });
});
