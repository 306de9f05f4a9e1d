import { describe, expect, it } from 'vitest';
import { kubeTime, setCondition } from './conditions.js';

describe('setCondition', () => {
  const t1 = new Date('2026-01-01T00:00:00.123Z');
  const t2 = new Date('2026-01-01T00:05:00Z');
  it('adds a condition with the current time, second precision', () => {
    const c = setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Reconciled', message: 'ok' }, t1);
    expect(c).toEqual([{ type: 'Ready', status: 'True', reason: 'Reconciled', message: 'ok', lastTransitionTime: '2026-01-01T00:00:00Z' }]);
  });
  it('keeps the transition time when status stays, even if reason/message change', () => {
    const a = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'x' }, t1);
    const b = setCondition(a, { type: 'Ready', status: 'False', reason: 'ConflictingPolicies', message: 'y' }, t2);
    expect(b[0].lastTransitionTime).toBe(kubeTime(t1));
    expect(b[0].reason).toBe('ConflictingPolicies');
  });
  it('moves the transition time when status flips, and keeps other types', () => {
    const a = [
      { type: 'Other', status: 'True' as const, reason: 'R', message: '', lastTransitionTime: 'x' },
      ...setCondition(undefined, { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'x' }, t1),
    ];
    const b = setCondition(a, { type: 'Ready', status: 'True', reason: 'Reconciled', message: 'ok' }, t2);
    expect(b.map((c) => c.type)).toEqual(['Other', 'Ready']);
    expect(b[1].lastTransitionTime).toBe(kubeTime(t2));
  });
});
