import { describe, expect, it } from 'vitest';
import { selectorsOverlap, selectorString } from './selectors.js';

describe('selectorsOverlap', () => {
  const cases: Array<[string, Parameters<typeof selectorsOverlap>, boolean]> = [
    ['two empty selectors', [{}, {}], true],
    ['empty vs anything', [{}, { matchLabels: { app: 'a' } }], true],
    ['identical', [{ matchLabels: { app: 'a' } }, { matchLabels: { app: 'a' } }], true],
    ['different value of same key', [{ matchLabels: { app: 'a' } }, { matchLabels: { app: 'b' } }], false],
    ['disjoint keys (a pod can carry both)', [{ matchLabels: { app: 'a' } }, { matchLabels: { tier: 'x' } }], true],
    ['In sets intersect', [{ matchExpressions: [{ key: 'app', operator: 'In', values: ['a', 'b'] }] }, { matchExpressions: [{ key: 'app', operator: 'In', values: ['b', 'c'] }] }], true],
    ['In sets disjoint', [{ matchExpressions: [{ key: 'app', operator: 'In', values: ['a'] }] }, { matchExpressions: [{ key: 'app', operator: 'In', values: ['c'] }] }], false],
    ['In vs NotIn covering it', [{ matchLabels: { app: 'a' } }, { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['a'] }] }], false],
    ['NotIn alone matches pods without the key', [{ matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['a'] }] }, { matchLabels: { tier: 'x' } }], true],
    ['Exists vs DoesNotExist', [{ matchExpressions: [{ key: 'app', operator: 'Exists' }] }, { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }], false],
    ['matchLabels vs DoesNotExist', [{ matchLabels: { app: 'a' } }, { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }], false],
    ['Exists vs NotIn', [{ matchExpressions: [{ key: 'app', operator: 'Exists' }] }, { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['a'] }] }], true],
  ];
  for (const [name, sels, want] of cases) it(name, () => expect(selectorsOverlap(...sels)).toBe(want));
});

describe('selectorString', () => {
  it('is order independent and names the empty selector', () => {
    expect(selectorString({ matchLabels: { b: '2', a: '1' } })).toBe('a=1, b=2');
    expect(selectorString({})).toBe('<all pods>');
  });
});
