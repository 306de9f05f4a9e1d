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

  it('stays within its byte cap; charged per entry as allocated, and the JS heap does not grow per batch', () => {
    const gc = (globalThis as { gc?: () => void }).gc!;
    expect(gc).toBeTypeOf('function'); // vitest.config.ts runs the workers with --expose-gc
    const n = 20_000;
    const c = new ObservedCopies(3_600_000, n);
    const b = batch('a');
    const topics = ['orders', 'x'.repeat(249)].map((t) => Buffer.from(t).toString()); // as decoded per request
    gc();
    const before = process.memoryUsage();
    for (let i = 0; i < n; i++) {
      b.writeUInt32BE((i * 2654435761) >>> 0, 17); // another CRC: another batch
      c.isCopy(Buffer.from(topics[i % 2]).toString(), i % 6, b, i);
    }
    gc();
    const after = process.memoryUsage();
    expect(c.size).toBe(n);
    expect(c.bytes).toBeLessThanOrEqual(2 * n * COPY_ENTRY_BYTES); // grown by doubling
    expect((after.heapUsed - before.heapUsed) / n).toBeLessThan(8); // no object per batch (a Map entry was ~430 B)

    const cap = 100 * COPY_ENTRY_BYTES;
    const capped = new ObservedCopies(3_600_000, n, cap);
    for (let i = 0; i < 1_000; i++) {
      b.writeUInt32BE(i, 17);
      capped.isCopy('orders', 0, b, i);
    }
    expect(capped.bytes).toBeLessThanOrEqual(cap);
    expect(capped.size).toBeGreaterThan(90);
  });

  it('answers as a plain map of keys would, through growth, eviction and expiry (seeded random batches)', () => {
    let seed = 42;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    /** `perTick(now)` batches arrive each ms; every answer is checked against the reference. */
    const run = (window: number, cap: number, ticks: number, perTick: (now: number) => number): number => {
      const c = new ObservedCopies(window, cap);
      // The reference: key -> expiry, insertion order, the same rules (expired = seen anew; oldest evicted at the cap).
      const model = new Map<string, number>();
      const b = batch('a');
      let copies = 0;
      for (let now = 0; now < ticks; now++) {
        for (let n = perTick(now); n > 0; n--) {
          // Few distinct keys, so re-sends (copies) are frequent and probe runs collide.
          const crc = rand(3_000);
          const partition = rand(3);
          const topic = rand(2) === 0 ? 't' : 'u';
          b.writeUInt32BE(crc, 17);
          const key = `${crc}:${partition}:${topic}`;
          for (const [k, exp] of model) {
            if (exp > now) break;
            model.delete(k);
          }
          const expected = model.has(key);
          if (!expected) {
            model.set(key, now + window);
            if (model.size > cap) model.delete(model.keys().next().value!);
          }
          expect(c.isCopy(topic, partition, b, now)).toBe(expected);
          if (expected) copies++;
          expect(c.size).toBe(model.size);
        }
      }
      return copies;
    };
    // The cap (below a window's worth) evicts too.
    expect(run(5_000, 3_000, 40_000, () => 1)).toBeGreaterThan(1_000);
    // A short window moves the oldest row around the ring first, then a burst makes the table
    // grow while its rows wrap around the end.
    expect(run(300, 20_000, 6_000, (now) => (now < 3_000 ? 1 : 6))).toBeGreaterThan(1_000);
  });
});
