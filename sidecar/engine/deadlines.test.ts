import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Deadlines } from './deadlines.js';

describe('Deadlines', () => {
  beforeEach(() => {
    // performance.now() too: the deadlines run on the monotonic clock.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs each deadline at its time unless cancelled, whatever the mix of delays', () => {
    const d = new Deadlines();
    const ran: string[] = [];
    d.add(300, () => ran.push('a300'));
    const b = d.add(100, () => ran.push('b100'));
    d.add(200, () => ran.push('c200'));
    vi.advanceTimersByTime(50);
    d.add(100, () => ran.push('d100@50'));
    d.cancel(b);
    vi.advanceTimersByTime(99);
    expect(ran).toEqual([]);
    vi.advanceTimersByTime(1); // t=150
    expect(ran).toEqual(['d100@50']);
    vi.advanceTimersByTime(50); // t=200
    expect(ran).toEqual(['d100@50', 'c200']);
    vi.advanceTimersByTime(100); // t=300
    expect(ran).toEqual(['d100@50', 'c200', 'a300']);
    expect(d.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps no more than about twice its live deadlines when they are cancelled out of order', () => {
    const d = new Deadlines();
    let ran = 0;
    const held = d.add(1_000, () => ran++); // never answered: stays at the head
    for (let i = 0; i < 10_000; i++) d.cancel(d.add(1_000, () => ran++));
    expect(d.size).toBe(1);
    const q = (d as unknown as { queues: Map<number, { items: unknown[] }> }).queues.get(1_000)!;
    expect(q.items.length).toBeLessThan(64);
    vi.advanceTimersByTime(1_000);
    expect(ran).toBe(1);
    d.cancel(held); // already ran: nothing happens
    expect(d.size).toBe(0);
  });

  it('a queue that never empties (each answered after the next one came, as under steady load) holds a bounded number of records', () => {
    const d = new Deadlines();
    let prev = d.add(1_000, () => undefined);
    for (let i = 0; i < 10_000; i++) {
      const next = d.add(1_000, () => undefined);
      d.cancel(prev);
      prev = next;
    }
    expect(d.size).toBe(1);
    const q = (d as unknown as { queues: Map<number, { items: unknown[] }> }).queues.get(1_000)!;
    expect(q.items.length).toBeLessThan(200);
  });

  it('a deadline added from a running one is kept', () => {
    const d = new Deadlines();
    const ran: number[] = [];
    d.add(10, () => {
      ran.push(1);
      d.add(10, () => ran.push(2));
    });
    vi.advanceTimersByTime(10);
    expect(ran).toEqual([1]);
    vi.advanceTimersByTime(10);
    expect(ran).toEqual([1, 2]);
  });

  it('a running deadline that empties its own queue and adds one of the same delay: the new one runs', () => {
    const d = new Deadlines();
    const ran: string[] = [];
    let other: ReturnType<Deadlines['add']> | undefined;
    d.add(10, () => {
      ran.push('first');
      d.cancel(other!); // the last live deadline of this queue: the queue is dropped...
      d.add(10, () => ran.push('added')); // ...and a new one of the same delay made
    });
    other = d.add(10, () => ran.push('cancelled'));
    vi.advanceTimersByTime(10);
    expect(ran).toEqual(['first']);
    expect(d.size).toBe(1);
    vi.advanceTimersByTime(10);
    expect(ran).toEqual(['first', 'added']);
  });

  it('follows the monotonic clock: a step of the wall clock moves no deadline', () => {
    const d = new Deadlines();
    let ran = false;
    d.add(1_000, () => (ran = true));
    vi.setSystemTime(Date.now() - 3_600_000); // the wall clock steps back an hour
    vi.advanceTimersByTime(999);
    expect(ran).toBe(false);
    vi.advanceTimersByTime(1);
    expect(ran).toBe(true);
  });
});
