import { describe, expect, it } from 'vitest';
import { ReadGate } from './flow-control.js';

describe('ReadGate.stoppedSince: since when bytes may have waited unread', () => {
  it('is set by the first pause, kept across resume until the reader catches up while unpaused', () => {
    const g = new ReadGate();
    expect(g.stoppedSince).toBeUndefined();
    const before = Date.now();
    g.pause('memory');
    const t = g.stoppedSince!;
    expect(t).toBeGreaterThanOrEqual(before);
    g.pause('connecting'); // a second reason does not move it
    expect(g.stoppedSince).toBe(t);
    g.resume('memory');
    g.caughtUp(); // still paused for 'connecting': what is read next may be old
    expect(g.stoppedSince).toBe(t);
    g.resume('connecting');
    expect(g.stoppedSince).toBe(t); // resumed, but the first read after it may carry old bytes
    g.caughtUp();
    expect(g.stoppedSince).toBeUndefined();
  });
});
