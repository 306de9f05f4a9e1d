// The native addons and node:zlib are loaded by on-demand.ts on first use only: an import of
// them anywhere else in the sidecar loads them at start-up (~3 MiB of idle RSS for one addon).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const sidecar = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const ON_DEMAND = /^(@node-rs\/|(node:)?zlib$)/;

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

describe('modules loaded on first use', () => {
  it('are imported (other than as types) only by codec/on-demand.ts', () => {
    const offenders: string[] = [];
    for (const f of sources(sidecar)) {
      if (f.endsWith(join('codec', 'on-demand.ts'))) continue;
      // Type-only imports are erased; preProcessFile lists them too, so they are dropped first.
      const text = readFileSync(f, 'utf8').replace(/^import type .*$/gm, '');
      for (const i of ts.preProcessFile(text, true, true).importedFiles) {
        if (ON_DEMAND.test(i.fileName)) offenders.push(`${relative(sidecar, f)}: ${i.fileName}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
