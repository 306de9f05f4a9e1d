import { describe, expect, it } from 'vitest';
import { ByteBudget } from './byte-budget.js';

const tick = () => new Promise<void>((r) => queueMicrotask(r));

describe('ByteBudget', () => {
  it('a take must fit in the connection and in the sidecar; giving back wakes a waiter once', async () => {
    const sidecar = new ByteBudget(100);
    const a = new ByteBudget(60, sidecar);
    const b = new ByteBudget(60, sidecar);
    expect(a.tryTake(60)).toBe(true);
    expect(a.tryTake(1)).toBe(false); // its own limit
    expect(b.tryTake(50)).toBe(false); // the sidecar's
    expect(b.tryTake(40)).toBe(true);
    expect(sidecar.used).toBe(100);
    let woken = 0;
    b.whenFreed(() => woken++);
    a.give(30);
    await tick();
    await tick();
    expect(woken).toBe(1);
    a.give(10);
    await tick();
    await tick();
    expect(woken).toBe(1);
    expect(b.tryTake(20)).toBe(true);
  });

  it('answers take past the limit (they give a request its bytes back); requests then wait', () => {
    const sidecar = new ByteBudget(100);
    const c = new ByteBudget(100, sidecar);
    expect(c.tryTake(100)).toBe(true);
    c.take(10);
    expect(sidecar.used).toBe(110);
    expect(c.tryTake(1)).toBe(false);
    c.give(110);
    expect(c.tryTake(100)).toBe(true);
  });

  it('a closed connection gives everything back to the sidecar', () => {
    const sidecar = new ByteBudget(100);
    const c = new ByteBudget(100, sidecar);
    c.tryTake(70);
    c.take(5);
    c.release();
    expect(sidecar.used).toBe(0);
    expect(c.fits(101)).toBe(false);
  });
});
