import { describe, expect, it } from 'vitest';
import { encodeRecordBatch } from '../codec/records.js';
import { COPY_ENTRY_BYTES, ObservedCopies } from './observe-copies.js';

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

  it('stays within its byte cap, and what it charges per entry covers the heap an entry really takes', () => {
    const gc = (globalThis as { gc?: () => void }).gc!;
    expect(gc).toBeTypeOf('function'); // vitest.config.ts runs the workers with --expose-gc
    const n = 20_000;
    const c = new ObservedCopies(3_600_000, n);
    const b = batch('a');
    const topics = ['orders', 'x'.repeat(249)].map((t) => Buffer.from(t).toString()); // as decoded per request
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < n; i++) {
      b.writeUInt32BE((i * 2654435761) >>> 0, 17); // another CRC: another batch
      c.isCopy(Buffer.from(topics[i % 2]).toString(), i % 6, b, i);
    }
    gc();
    const perEntry = (process.memoryUsage().heapUsed - before) / c.size;
    expect(c.size).toBe(n);
    expect(perEntry).toBeLessThanOrEqual(c.bytes / c.size);

    const capped = new ObservedCopies(3_600_000, n, 100 * (COPY_ENTRY_BYTES + 64));
    for (let i = 0; i < 1_000; i++) {
      b.writeUInt32BE(i, 17);
      capped.isCopy('orders', 0, b, i);
    }
    expect(capped.bytes).toBeLessThanOrEqual(100 * (COPY_ENTRY_BYTES + 64));
    expect(capped.size).toBeGreaterThan(90);
  });
});
