// decide(): every reason code reachable, selector semantics, and the order of checks.
import { describe, expect, it } from 'vitest';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { IdempotentProducerPolicy, LabelSelector } from '../../api/index.js';
import { decide, REASONS } from './decide.js';
import { selectorMatches } from './selector.js';

const ns = (labels: Record<string, string> = { 'idempo.dev/injection': 'enabled' }): V1Namespace => ({ metadata: { name: 'shop', labels } });
const pol = (name: string, selector: LabelSelector = {}, extra: Partial<IdempotentProducerPolicy> = {}): IdempotentProducerPolicy =>
  ({
    apiVersion: 'idempo.dev/v1alpha1',
    kind: 'IdempotentProducerPolicy',
    metadata: { name, namespace: 'shop' },
    spec: { selector, kafka: { bootstrapServers: ['k:9092'] } },
    ...extra,
  }) as unknown as IdempotentProducerPolicy;
const pod = (labels: Record<string, string> = {}, annotations: Record<string, string> = {}, spec: Partial<V1Pod['spec']> = {}): V1Pod => ({
  metadata: { name: 'p', namespace: 'shop', labels, annotations },
  spec: { containers: [{ name: 'app', image: 'app' }], ...spec },
});

describe('decide', () => {
  it('injects with exactly one matching policy, defaulting its spec', () => {
    const d = decide(pod({ app: 'a' }), ns(), [pol('one', { matchLabels: { app: 'a' } }), pol('two', { matchLabels: { app: 'b' } })]);
    expect(d).toMatchObject({ inject: true, reason: 'injected' });
    expect(d.policy?.metadata.name).toBe('one');
    expect(d.policy?.spec.mode).toBe('upgrade');
  });

  it.each([
    ['opted_out', pod({}, { 'idempo.dev/inject': 'false' }), ns(), [pol('a')]],
    ['host_network', pod({}, {}, { hostNetwork: true }), ns(), [pol('a')]],
    ['already_injected', pod({}, { 'idempo.dev/injected': 'a' }), ns(), [pol('a')]],
    ['already_injected', pod({}, {}, { initContainers: [{ name: 'idempo-sidecar' }] }), ns(), [pol('a')]],
    ['namespace_not_enabled', pod(), ns({}), [pol('a')]],
    ['namespace_not_enabled', pod(), undefined, [pol('a')]],
    ['no_policy', pod(), ns(), []],
    ['no_policy', pod(), ns(), [{ ...pol('gone'), metadata: { name: 'gone', namespace: 'shop', deletionTimestamp: new Date() } }]],
    ['no_policy', pod(), ns(), [{ ...pol('other'), metadata: { name: 'other', namespace: 'elsewhere' } }]],
    ['multiple_policies', pod(), ns(), [pol('a'), pol('b')]],
    ['policy_not_found', pod({}, { 'idempo.dev/policy': 'c' }), ns(), [pol('a'), pol('b')]],
    ['invalid_spec', pod(), ns(), [{ ...pol('a'), spec: { selector: {} } } as unknown as IdempotentProducerPolicy]],
    [
      'policy_not_ready',
      pod(),
      ns(),
      [pol('a', {}, { status: { conditions: [{ type: 'Ready', status: 'False', reason: 'InvalidSpec', message: '', lastTransitionTime: '' }] } })],
    ],
  ] as const)('%s', (reason, p, n, policies) => {
    const d = decide(p, n, [...policies]);
    expect(d.inject).toBe(false);
    expect(d.reason).toBe(reason);
    expect(d.message.startsWith(REASONS[reason])).toBe(true);
  });

  it('inject: "true" is not an opt-out and Ready Unknown still injects', () => {
    const p = pol('a', {}, { status: { conditions: [{ type: 'Ready', status: 'Unknown', reason: 'Pending', message: '', lastTransitionTime: '' }] } });
    expect(decide(pod({}, { 'idempo.dev/inject': 'true' }), ns(), [p]).inject).toBe(true);
  });

  it('the annotation picks a policy even when its selector does not match', () => {
    const d = decide(pod({}, { 'idempo.dev/policy': 'b' }), ns(), [pol('a'), pol('b', { matchLabels: { x: 'y' } })]);
    expect(d.inject && d.policy?.metadata.name).toBe('b');
  });

  it('every reason has a sentence', () => {
    for (const s of Object.values(REASONS)) expect(s).toMatch(/^[A-Z].*\.$/);
  });
});

describe('selectorMatches', () => {
  const l = { app: 'a', tier: 'web' };
  it.each([
    [{}, true],
    [{ matchLabels: { app: 'a' } }, true],
    [{ matchLabels: { app: 'b' } }, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['web', 'db'] }] }, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['db'] }] }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['x'] }] }, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['db'] }] }, true],
    [{ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['x'] }] }, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['web'] }] }, false],
    [{ matchExpressions: [{ key: 'app', operator: 'Exists' }] }, true],
    [{ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, false],
    [{ matchLabels: { app: 'a' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['db'] }] }, false],
    [{ matchExpressions: [{ key: 'app', operator: 'Like', values: ['a'] }] }, false],
  ] as [LabelSelector, boolean][])('%j → %s', (sel, want) => {
    expect(selectorMatches(sel, l)).toBe(want);
  });
  it('a missing selector matches nothing; missing labels are empty', () => {
    expect(selectorMatches(undefined, l)).toBe(false);
    expect(selectorMatches({}, undefined)).toBe(true);
  });
});
