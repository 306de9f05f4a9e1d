// Tests never run a child process synchronously (clients/run.ts says why: a run where every
// test passed failed on vitest's RPC timeout). The one exception is kube.ts's process 'exit'
// handler, where only synchronous work runs.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const ALLOWED = new Set(['test/support/kube.ts']);

/** What the test runner loads: every test file, and everything under test/. */
function testCode(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) testCode(p, out);
    else if (name.endsWith('.test.ts') || (name.endsWith('.ts') && relative(root, p).startsWith('test/'))) out.push(p);
  }
  return out;
}

describe('test code', () => {
  it('runs no child process synchronously', () => {
    const offenders = testCode(root)
      .map((f) => relative(root, f))
      .filter((f) => !ALLOWED.has(f) && /\b(spawnSync|execFileSync|execSync)\s*\(/.test(readFileSync(join(root, f), 'utf8')));
    expect(offenders).toEqual([]);
  });
});
