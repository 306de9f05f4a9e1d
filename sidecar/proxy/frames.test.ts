import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FrameError, FrameSplitter, frame } from './frames.js';

describe('FrameSplitter', () => {
  it('returns whole frames from one chunk as views', () => {
    const s = new FrameSplitter(1024);
    const a = frame(Buffer.from('abcd'));
    const b = frame(Buffer.from('efghij'));
    const out = s.push(Buffer.concat([a, b]));
    expect(out.map((f) => f.toString())).toEqual(['abcd', 'efghij']);
    expect(s.pendingBytes).toBe(0);
  });

  it('reassembles frames split at any byte boundary', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 4, maxLength: 64 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 30 }),
        (payloads, cuts) => {
          const stream = Buffer.concat(payloads.map((p) => frame(Buffer.from(p))));
          const s = new FrameSplitter(1024);
          const got: Buffer[] = [];
          let off = 0;
          let i = 0;
          while (off < stream.length) {
            const n = Math.min(cuts[i++ % cuts.length], stream.length - off);
            got.push(...s.push(stream.subarray(off, off + n)));
            off += n;
          }
          expect(got.map((g) => Buffer.from(g).toString('hex'))).toEqual(payloads.map((p) => Buffer.from(p).toString('hex')));
          expect(s.pendingBytes).toBe(0);
        },
      ),
    );
  });

  it('rejects oversized and negative sizes before buffering', () => {
    const s = new FrameSplitter(100);
    const big = Buffer.alloc(4);
    big.writeInt32BE(101);
    expect(() => s.push(big)).toThrow(FrameError);
    expect(() => s.push(big)).toThrow(/exceeds the limit of 100 bytes/);
    const neg = Buffer.alloc(4);
    neg.writeInt32BE(-5);
    expect(() => new FrameSplitter(100).push(neg)).toThrow(/invalid frame size -5/);
  });

  it('rejects an oversized size even when the prefix arrives in pieces', () => {
    const s = new FrameSplitter(100);
    const big = Buffer.alloc(4);
    big.writeInt32BE(1 << 30);
    expect(s.push(big.subarray(0, 2))).toEqual([]);
    expect(() => s.push(big.subarray(2))).toThrow(FrameError);
  });
});
