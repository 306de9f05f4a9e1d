import { describe, expect, it } from 'vitest';
import { canonicalJson, conflictingPolicies, type PolicyObject } from './policy.js';

const pol = (name: string, created: string, selector: unknown, extra: Record<string, unknown> = {}): PolicyObject => ({
  metadata: { name, namespace: 'ns', creationTimestamp: created },
  spec: { selector, kafka: { bootstrapServers: ['k:9092'] }, ...extra },
});

describe('conflictingPolicies', () => {
  const a = pol('a', '2026-01-01T00:00:00Z', { matchLabels: { app: 'x' } });
  const b = pol('b', '2026-01-01T00:00:05Z', { matchExpressions: [{ key: 'app', operator: 'In', values: ['x', 'y'] }] });
  const c = pol('c', '2026-01-01T00:00:00Z', { matchLabels: { app: 'z' } });
  const all = [a, b, c];

  it('finds overlapping neighbours and says which are older', () => {
    expect(conflictingPolicies(all, b, (b.spec as { selector: never }).selector)).toEqual([{ name: 'a', selector: { matchLabels: { app: 'x' } }, older: true }]);
    expect(conflictingPolicies(all, a, (a.spec as { selector: never }).selector)).toMatchObject([{ name: 'b', older: false }]);
    expect(conflictingPolicies(all, c, (c.spec as { selector: never }).selector)).toEqual([]);
  });

  it('breaks creation-time ties by name, so exactly one side is older', () => {
    const a2 = pol('a', '2026-01-01T00:00:00Z', {});
    const b2 = pol('b', '2026-01-01T00:00:00Z', {});
    expect(conflictingPolicies([a2, b2], a2, {})[0].older).toBe(false);
    expect(conflictingPolicies([a2, b2], b2, {})[0].older).toBe(true);
  });

  it('ignores invalid and deleting neighbours', () => {
    const bad = pol('bad', '2020-01-01T00:00:00Z', {}, { mode: 'nope' });
    const gone = { ...pol('gone', '2020-01-01T00:00:00Z', {}), metadata: { name: 'gone', namespace: 'ns', creationTimestamp: '2020-01-01T00:00:00Z', deletionTimestamp: '2026-01-01T00:00:00Z' } };
    expect(conflictingPolicies([bad, gone, a], a, (a.spec as { selector: never }).selector)).toEqual([]);
  });
});

describe('canonicalJson', () => {
  it('renders the same object the same way whatever the key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: 3 } })).toBe(canonicalJson({ a: { c: 3, d: [2, { e: 0, f: 1 }] }, b: 1 }));
  });
});
