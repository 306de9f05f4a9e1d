import { describe, expect, it } from 'vitest';
import { classBytes, FramePool, POOL_IDLE_BYTES } from './frame-pool.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('FramePool', () => {
  it('rounds sizes up by at most a quarter', () => {
    for (const n of [4097, 5000, 8192, 8193, 46_000, 65_536, 65_537, 1_000_000]) {
      const c = classBytes(n);
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c).toBeLessThanOrEqual(n * 1.25);
    }
    expect(classBytes(65_536)).toBe(65_536);
    expect(classBytes(65_537)).toBe(81_920);
  });

  it('reuses a buffer once every holder dropped it, and detaches the views kept of it', async () => {
    const pool = new FramePool();
    const a = pool.acquire(46_000);
    expect(a.buf.length).toBe(46_000);
    a.buf.fill(1);
    const kept = a.buf.subarray(100, 200); // e.g. a batch view the engine keeps
    a.hold(); // a second holder (the upgrader)
    a.drop();
    await turn();
    expect(kept.readUInt8(0)).toBe(1); // still held: untouched
    expect(pool.idleBytes).toBe(0);
    a.drop();
    expect(kept.length).toBe(100); // released after this turn, not during it
    await turn();
    expect(kept.length).toBe(0);
    expect(() => kept.readUInt8(0)).toThrow(RangeError); // a view kept by mistake fails loudly
    expect(a.buf.length).toBe(0);
    expect(pool.idleBytes).toBe(classBytes(46_000));
    const b = pool.acquire(45_000); // same class: the same memory again
    expect(pool.idleBytes).toBe(0);
    expect(b.buf.length).toBe(45_000);
    expect(b.buf.buffer.byteLength).toBe(classBytes(46_000));
  });

  it('poisons released bytes under the test flag', async () => {
    expect(process.env.IDEMPO_TEST_ONLY_POISON_READS).toBe('1');
    const pool = new FramePool();
    const small = pool.acquire(100); // not pooled (Node's own small-buffer pool), still poisoned
    small.buf.fill(0);
    const view = small.buf.subarray(0, 10);
    small.drop();
    await turn();
    expect(view.readUInt8(0)).toBe(0xa5);
  });

  it('keeps at most its idle byte limit for reuse', async () => {
    const pool = new FramePool(100_000);
    const leases = [pool.acquire(40_000), pool.acquire(40_000), pool.acquire(40_000)];
    for (const l of leases) l.drop();
    await turn();
    expect(pool.idleBytes).toBe(2 * classBytes(40_000));
    expect(POOL_IDLE_BYTES).toBeLessThanOrEqual(8 * 1024 * 1024);
  });

  it('does not pool frames above 1 MiB, and refuses a drop or hold after the last drop', async () => {
    const pool = new FramePool();
    const big = pool.acquire(2 * 1024 * 1024);
    expect(big.pooled).toBe(false);
    big.drop();
    expect(() => big.drop()).toThrow(/after its last drop/);
    expect(() => big.hold()).toThrow(/after its last drop/);
    await turn();
    expect(pool.idleBytes).toBe(0);
  });
});
