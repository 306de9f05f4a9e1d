// tsconfig.json compiles what ships and leaves *.test.ts out, and vitest strips types without
// checking them: a test importing a module that moved, or passing the wrong shape, would only
// fail when it runs (or never, on a branch nobody takes). tsconfig.check.json covers every file.
// Run asynchronously: a synchronous tsc (tens of seconds on a loaded machine) blocks the
// worker's event loop past vitest's 60 s RPC timeout ("Timeout calling onTaskUpdate").
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');

describe('types', () => {
  it('every .ts file in the repository type-checks, tests included', async () => {
    const r = await new Promise<{ status: number; output: string }>((done) => {
      execFile(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.check.json')], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
        done({ status: err ? ((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
      );
    });
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });
});
