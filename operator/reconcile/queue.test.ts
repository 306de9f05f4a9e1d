import { describe, expect, it, vi } from 'vitest';
import { WorkQueue } from './queue.js';

describe('WorkQueue', () => {
  it('collapses repeated adds of a waiting key', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  it('never hands out a key twice at once; an add while processing requeues it on done', async () => {
    const q = new WorkQueue();
    q.add('a');
    const k = await q.get();
    q.add('a');
    expect(q.length).toBe(0);
    q.done(k!);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe('a');
  });

  it('wakes a waiting worker', async () => {
    const q = new WorkQueue();
    const p = q.get();
    q.add('x');
    expect(await p).toBe('x');
  });

  it('backs off exponentially per key and resets on forget', () => {
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50 });
    expect(q.addRateLimited('a')).toBe(10);
    expect(q.addRateLimited('a')).toBe(20);
    expect(q.addRateLimited('a')).toBe(40);
    expect(q.addRateLimited('a')).toBe(50);
    expect(q.addRateLimited('b')).toBe(10);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(10);
    q.shutdown();
  });

  it('addAfter delivers later, and the earlier of two delays wins', async () => {
    // Fake timers: the clock moves only when the test says so, so "later" is exact.
    vi.useFakeTimers();
    try {
      const q = new WorkQueue();
      q.addAfter('a', 5000);
      q.addAfter('a', 5);
      q.addAfter('a', 50); // later than the pending 5 ms: ignored
      vi.advanceTimersByTime(4);
      expect(q.length).toBe(0);
      vi.advanceTimersByTime(1);
      expect(q.length).toBe(1);
      expect(await q.get()).toBe('a');
      q.done('a');
      // The 5000 ms and 50 ms timers were replaced, not kept: nothing arrives later.
      vi.advanceTimersByTime(10_000);
      expect(q.length).toBe(0);
      q.shutdown();
    } finally {
      vi.useRealTimers();
    }
  });

  it('shutdown releases waiting workers', async () => {
    const q = new WorkQueue();
    const p = q.get();
    q.shutdown();
    expect(await p).toBeUndefined();
  });
});
