// dist/sidecar/main.cjs runs make build's one-file bundle (bundle.cjs) only when it is at least
// as new as the compiled modules: after a plain tsc build (every module rewritten) the
// modules run, so a stale bundle never runs code older than the tree.
import { copyFileSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/clients/java.js';
import { output } from '../support/clients/run.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'idempo-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

copyFileSync(path.join(repoRoot, 'dist/sidecar/main.cjs'), path.join(dir, 'main.cjs'));
writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
writeFileSync(path.join(dir, 'sidecar.js'), "console.log('modules');");
const start = async (): Promise<string> => (await output(process.execPath, [path.join(dir, 'main.cjs')])).trim();
const age = (file: string, seconds: number): void => {
  const t = new Date(Date.now() - seconds * 1000);
  utimesSync(path.join(dir, file), t, t);
};

describe('sidecar entry point', () => {
  it('runs the modules when there is no bundle', async () => {
    expect(await start()).toBe('modules');
  });

  it('runs the bundle when it is the newest build', async () => {
    writeFileSync(path.join(dir, 'bundle.cjs'), "console.log('bundle');");
    age('sidecar.js', 60);
    age('bundle.cjs', 10);
    expect(await start()).toBe('bundle');
  });

  it('runs the modules when they were compiled after the bundle', async () => {
    age('bundle.cjs', 60);
    age('sidecar.js', 10);
    expect(await start()).toBe('modules');
  });
});
