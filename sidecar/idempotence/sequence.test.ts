import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_SEQUENCE, forwardDistance, isNext, lastSequence, nextSequence, wouldWrapInside } from './sequence.js';

describe('sequence arithmetic', () => {
  it('wraps after Int32.MAX to 0', () => {
    expect(nextSequence(MAX_SEQUENCE, 1)).toBe(0);
    expect(nextSequence(MAX_SEQUENCE - 1, 3)).toBe(1);
    expect(nextSequence(5, 0)).toBe(5);
    expect(lastSequence(MAX_SEQUENCE - 1, 3)).toBe(0);
    expect(lastSequence(7, 1)).toBe(7);
  });
  it('isNext follows the broker inSequence rule', () => {
    expect(isNext(4, 5)).toBe(true);
    expect(isNext(MAX_SEQUENCE, 0)).toBe(true);
    expect(isNext(4, 6)).toBe(false);
    expect(isNext(4, 4)).toBe(false);
  });
  it('wouldWrapInside', () => {
    expect(wouldWrapInside(MAX_SEQUENCE, 1)).toBe(false);
    expect(wouldWrapInside(MAX_SEQUENCE, 2)).toBe(true);
    expect(wouldWrapInside(MAX_SEQUENCE - 4, 5)).toBe(false);
    expect(wouldWrapInside(MAX_SEQUENCE - 4, 6)).toBe(true);
  });
  it('rejects out-of-range input', () => {
    expect(() => nextSequence(-1, 1)).toThrow(RangeError);
    expect(() => nextSequence(MAX_SEQUENCE + 1, 1)).toThrow(RangeError);
    expect(() => lastSequence(0, 0)).toThrow(RangeError);
  });
  it('property: next(last(base,n),1) == next(base,n), stays in range, distance is n', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_SEQUENCE }), fc.integer({ min: 1, max: 100000 }), (base, n) => {
        const nx = nextSequence(base, n);
        expect(nx).toBeGreaterThanOrEqual(0);
        expect(nx).toBeLessThanOrEqual(MAX_SEQUENCE);
        expect(nextSequence(lastSequence(base, n), 1)).toBe(nx);
        expect(isNext(lastSequence(base, n), nx)).toBe(true);
        expect(forwardDistance(base, nx)).toBe(n);
        expect(wouldWrapInside(base, n)).toBe(lastSequence(base, n) < base);
      }),
    );
  });
});
