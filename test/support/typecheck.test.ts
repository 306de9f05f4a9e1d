// tsconfig.json compiles what ships and leaves *.test.ts out, and vitest strips types without
// checking them: a test importing a module that moved, or passing the wrong shape, would only
// fail when it runs (or never, on a branch nobody takes). tsconfig.check.json covers every file.
// Run asynchronously (clients/run.ts says why).
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runProcess } from './clients/run.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');

describe('types', () => {
  it('every .ts file in the repository type-checks, tests included', async () => {
    const r = await runProcess(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.check.json')], { cwd: root, timeoutMs: 600_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});
