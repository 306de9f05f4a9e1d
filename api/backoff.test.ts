import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay } from './backoff.js';

describe('backoff', () => {
  it('doubles from initial per failure and stops at max', () => {
    const p = { initialMs: 100, maxMs: 1000 };
    expect([1, 2, 3, 4, 5, 60].map((n) => backoffDelay(p, n))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(p, 0)).toBe(100); // "before the first retry" is the first step
  });

  it('jitter stays within [delay/2, delay]', () => {
    const p = { initialMs: 100, maxMs: 1000, jitter: true };
    expect(backoffDelay(p, 3, () => 0)).toBe(200);
    expect(backoffDelay(p, 3, () => 0.999999)).toBe(400);
  });

  it('counts failures, resets, and reads a changing policy at each step', () => {
    let policy = { initialMs: 10, maxMs: 100 };
    const b = new Backoff(() => policy);
    expect([b.next(), b.next(), b.next()]).toEqual([10, 20, 40]);
    policy = { initialMs: 10, maxMs: 50 };
    expect(b.next()).toBe(50);
    expect(b.attempts).toBe(4);
    b.reset();
    expect(b.next()).toBe(10);
  });
});
