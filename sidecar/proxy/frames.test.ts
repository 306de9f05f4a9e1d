import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FrameError, FrameReader, PEEK_BYTES, frame, framed, ownFrame } from './frames.js';

/** FrameReader for whole frames: push returns the frames a chunk completes, each its own. */
class FrameSplitter {
  private out: Buffer[] = [];
  private readonly reader: FrameReader;

  constructor(maxFrameBytes: number, lent = false) {
    this.reader = new FrameReader(
      maxFrameBytes,
      {
        begin: () => 'whole',
        frame: (payload, lent) => void this.out.push(ownFrame(payload, lent)),
        piece: () => undefined,
      },
      lent,
    );
  }

  get pendingBytes(): number {
    return this.reader.pendingBytes;
  }

  push(chunk: Buffer): Buffer[] {
    this.out = [];
    this.reader.push(chunk);
    return this.out;
  }
}


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
          // Every whole frame, from a chunk or reassembled, carries its prefix in front: one write.
          expect(Buffer.concat(got.map((g) => framed(g)!)).equals(stream)).toBe(true);
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

describe('FrameReader', () => {
  /** Feeds `stream` cut at `cuts`, deciding per frame by `decide`; returns what the handler saw, as hex. */
  function run(stream: Buffer, cuts: number[], decide: (size: number, head: Buffer, n: number) => 'whole' | 'stream' | 'wait') {
    const seen: string[] = [];
    let current: Buffer[] = [];
    let n = 0;
    let waits = 0;
    const reader: FrameReader = new FrameReader(1 << 20, {
      begin: (size, head) => {
        const d = decide(size, head, n);
        if (d === 'wait') waits++;
        else n++;
        return d;
      },
      frame: (p) => void seen.push(`W${Buffer.from(p).toString('hex')}`),
      piece: (b, last) => {
        current.push(Buffer.from(b));
        if (last) {
          seen.push(`S${Buffer.concat(current).toString('hex')}`);
          current = [];
        }
      },
    });
    let off = 0;
    let i = 0;
    while (off < stream.length) {
      const len = Math.min(cuts[i++ % cuts.length], stream.length - off);
      reader.push(stream.subarray(off, off + len));
      off += len;
      // The owner resumes a waiting reader later, from outside begin.
      while (reader.isWaiting) reader.resume();
    }
    return { seen, waits, pending: reader.pendingBytes };
  }

  it('delivers every frame whole, streamed or after waiting, split at any byte boundary', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 4, maxLength: 40 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 25 }), { minLength: 1, maxLength: 30 }),
        fc.array(fc.constantFrom<'whole' | 'stream' | 'wait'>('whole', 'stream', 'wait'), { minLength: 1, maxLength: 10 }),
        (payloads, cuts, decisions) => {
          const stream = Buffer.concat(payloads.map((p) => frame(Buffer.from(p))));
          let asked = 0;
          const modes: string[] = [];
          const r = run(stream, cuts, (size, head, n) => {
            expect(head.length).toBe(Math.min(size, PEEK_BYTES));
            expect(Buffer.from(head).toString('hex')).toBe(Buffer.from(payloads[n]).subarray(0, PEEK_BYTES).toString('hex'));
            const d = decisions[asked++ % decisions.length];
            // A frame that waited is asked again; the second answer is never 'wait', so it ends.
            const final = d === 'wait' && modes.length === n + 1 ? 'stream' : d;
            if (final === 'wait') modes.push('wait');
            else modes[n] = final === 'whole' ? 'W' : 'S';
            return final;
          });
          expect(r.seen).toEqual(payloads.map((p, i) => `${modes[i]}${Buffer.from(p).toString('hex')}`));
          expect(r.pending).toBe(0);
        },
      ),
    );
  });

  it('hands out a frame that lies inside one chunk as a view, not a copy', () => {
    const chunk = Buffer.concat([frame(Buffer.from('abcdefghijkl')), frame(Buffer.from('mnop'))]);
    const got: Buffer[] = [];
    new FrameReader(100, { begin: () => 'whole', frame: (p) => void got.push(p), piece: () => undefined }).push(chunk);
    expect(got.map((g) => g.toString())).toEqual(['abcdefghijkl', 'mnop']);
    expect(got[0].buffer).toBe(chunk.buffer);
  });

  it('lent chunks (a reused read buffer): whole frames and bytes held while waiting outlive the push', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 4, maxLength: 40 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 30 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 10 }),
        (payloads, cuts, waits) => {
          const stream = Buffer.concat(payloads.map((p) => frame(Buffer.from(p))));
          const readBuffer = Buffer.alloc(64); // reused for every chunk, like socket-reads.ts
          const kept: Buffer[] = [];
          let asked = 0;
          let waited = false;
          const reader = new FrameReader(
            1 << 20,
            {
              begin: () => {
                // Waits at most once per frame, then takes it whole.
                waited = !waited && waits[asked++ % waits.length];
                return waited ? 'wait' : 'whole';
              },
              frame: (p, lent) => void kept.push(ownFrame(p, lent)), // a frame not lent must own its bytes
              piece: () => undefined,
            },
            true,
          );
          let off = 0;
          let i = 0;
          while (off < stream.length) {
            const len = Math.min(cuts[i++ % cuts.length], stream.length - off);
            stream.copy(readBuffer, 0, off, off + len);
            reader.push(readBuffer.subarray(0, len));
            readBuffer.fill(0xa5); // the next read overwrites it
            off += len;
            // Resumed after every other chunk: the others arrive while it waits.
            while (reader.isWaiting && (i % 2 === 0 || off === stream.length)) {
              reader.resume();
              readBuffer.fill(0xa5);
            }
          }
          expect(kept.map((k) => Buffer.from(k).toString('hex'))).toEqual(payloads.map((p) => Buffer.from(p).toString('hex')));
          // Each still carries its size prefix in front: forwarding it is one write.
          expect(Buffer.concat(kept.map((k) => framed(k)!)).equals(stream)).toBe(true);
        },
      ),
    );
  });

  it('streams pieces as views of the chunks and holds nothing', () => {
    const payload = Buffer.alloc(1000, 7);
    const stream = frame(payload);
    const pieces: Buffer[] = [];
    const reader = new FrameReader(2000, { begin: () => 'stream', frame: () => undefined, piece: (b) => void pieces.push(b) });
    const a = stream.subarray(0, 300);
    const b = stream.subarray(300);
    reader.push(a);
    expect(reader.pendingBytes).toBe(0);
    reader.push(b);
    expect(Buffer.concat(pieces).equals(payload)).toBe(true);
    expect(pieces[pieces.length - 1].buffer).toBe(b.buffer);
  });
});

describe('framed', () => {
  it('is the prefix and payload as one view when the prefix is in front, else undefined', () => {
    const f = frame(Buffer.from('abcdef'));
    const v = framed(f.subarray(4))!;
    expect(v.equals(f)).toBe(true);
    expect(v.buffer).toBe(f.buffer); // a view, no copy
    expect(framed(Buffer.alloc(6, 'a'))).toBeUndefined(); // nothing in front
    expect(framed(Buffer.concat([Buffer.from([0, 0, 0, 9]), Buffer.from('abcdef')]).subarray(4))).toBeUndefined();
  });
});
