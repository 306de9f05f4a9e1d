// Golden pairs: testdata/<name>.yaml (Namespace?, policies, one Pod, GoldenOptions?) →
// testdata/<name>.yaml.injected (the decision, then the pod after applying the JSON patch).
// New inputs are picked up automatically; UPDATE_GOLDEN=1 rewrites the outputs; an output
// whose input is gone, or that differs, fails.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { IdempotentProducerPolicy } from '../../api/index.js';
import { decide } from './decide.js';
import { mutate } from './mutate.js';
import { applyPatch, createPatch } from './patch.js';

const dir = new URL('./testdata/', import.meta.url);
const update = process.env.UPDATE_GOLDEN === '1';
const inputs = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

interface Case {
  namespace: V1Namespace;
  policies: IdempotentProducerPolicy[];
  pod: V1Pod;
  native: boolean;
  image?: string;
}

function load(file: string): Case {
  const docs = parseAllDocuments(readFileSync(new URL(file, dir), 'utf8')).map((d) => d.toJS() as Record<string, any>);
  const pods = docs.filter((d) => d.kind === 'Pod');
  if (pods.length !== 1) throw new Error(`${file}: expected exactly one Pod`);
  const opts = docs.find((d) => d.kind === 'GoldenOptions') ?? {};
  return {
    // Without a Namespace document: an opted-in namespace named like the pod's.
    namespace: docs.find((d) => d.kind === 'Namespace') ?? {
      metadata: { name: pods[0].metadata?.namespace ?? 'shop', labels: { 'idempo.dev/injection': 'enabled' } },
    },
    policies: docs.filter((d) => d.kind === 'IdempotentProducerPolicy') as IdempotentProducerPolicy[],
    pod: pods[0] as V1Pod,
    native: opts.nativeSidecarsSupported ?? true,
    image: opts.image,
  };
}

function render(file: string): string {
  const c = load(file);
  const d = decide(c.pod, c.namespace, c.policies);
  let out: unknown = c.pod;
  if (d.inject && d.policy) {
    const mutated = mutate(c.pod, d.policy, { nativeSidecarsSupported: c.native, image: c.image });
    const ops = createPatch(c.pod, mutated);
    out = applyPatch(c.pod, ops);
    // The patch must reproduce the mutated pod exactly.
    expect(out).toEqual(JSON.parse(JSON.stringify(mutated)));
  }
  return (
    `# Generated from ${file} by operator/webhook/golden.test.ts; refresh with UPDATE_GOLDEN=1.\n` +
    `# decision: ${d.inject ? 'inject' : 'skip'} (${d.reason})\n# ${d.message}\n` +
    stringify(out, { lineWidth: 0 })
  );
}

describe('webhook goldens', () => {
  it('has inputs', () => expect(inputs.length).toBeGreaterThan(0));

  it.each(inputs)('%s', (file) => {
    const golden = new URL(`${file}.injected`, dir);
    const got = render(file);
    if (update) {
      writeFileSync(golden, got);
      return;
    }
    expect(existsSync(golden), `${file}.injected is missing: run UPDATE_GOLDEN=1 npx vitest run operator/webhook`).toBe(true);
    expect(got).toBe(readFileSync(golden, 'utf8'));
  });

  it('has no stale outputs', () => {
    const stale = readdirSync(dir).filter((f) => f.endsWith('.yaml.injected') && !inputs.includes(f.slice(0, -'.injected'.length)));
    expect(stale, 'delete outputs whose input is gone').toEqual([]);
  });
});
