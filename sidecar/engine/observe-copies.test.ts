import { describe, expect, it } from 'vitest';
import { encodeRecordBatch } from '../codec/records.js';
import { ObservedCopies } from './observe-copies.js';

const batch = (value: string, timestamp = 1_700_000_000_000n): Buffer => encodeRecordBatch({ records: [{ key: null, value: Buffer.from(value), timestamp }] });

describe('ObservedCopies (observe, dedup exact)', () => {
  it('a byte-identical re-send on the same partition is a copy; another partition, other records or another timestamp are not', () => {
    const c = new ObservedCopies(60_000, 100);
    expect(c.isCopy('t', 0, batch('a'), 0)).toBe(false);
    expect(c.isCopy('t', 0, batch('a'), 1)).toBe(true);
    expect(c.isCopy('t', 1, batch('a'), 2)).toBe(false);
    expect(c.isCopy('u', 0, batch('a'), 3)).toBe(false);
    expect(c.isCopy('t', 0, batch('b'), 4)).toBe(false); // same size and timestamps, other CRC
    expect(c.isCopy('t', 0, batch('a', 1_700_000_000_001n), 5)).toBe(false); // an application's second send
  });

  it('forgets batches past the window, and the oldest beyond the entry cap', () => {
    const c = new ObservedCopies(1_000, 2);
    expect(c.isCopy('t', 0, batch('a'), 0)).toBe(false);
    expect(c.isCopy('t', 0, batch('a'), 1_000)).toBe(false); // expired: seen anew
    c.sweep(5_000);
    expect(c.size).toBe(0);
    c.isCopy('t', 0, batch('a'), 0);
    c.isCopy('t', 0, batch('b'), 0);
    c.isCopy('t', 0, batch('c'), 0);
    expect(c.size).toBe(2);
    expect(c.isCopy('t', 0, batch('c'), 1)).toBe(true);
    expect(c.isCopy('t', 0, batch('a'), 1)).toBe(false); // evicted first
  });
});
