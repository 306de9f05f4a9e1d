import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as zlib from 'node:zlib';
import { DedupCache, ENTRY_BYTES, type DedupKey, type Lookup } from './dedup.js';
import { Claim } from './claim.js';
import { contentFingerprint, exactFingerprint, headerFingerprint } from './fingerprint.js';
import { computeCrc } from '../codec/record-batch.js';

// --- a small encoder of RecordBatch v2 records (test only) ---
function varint(n: number | bigint): Buffer {
  let z = BigInt.asUintN(64, (BigInt(n) << 1n) ^ (BigInt(n) >> 63n));
  const out: number[] = [];
  do {
    let byte = Number(z & 0x7fn);
    z >>= 7n;
    if (z !== 0n) byte |= 0x80;
    out.push(byte);
  } while (z !== 0n);
  return Buffer.from(out);
}
const nb = (b: Buffer | null): Buffer => (b === null ? varint(-1) : Buffer.concat([varint(b.length), b]));
interface Rec {
  key: Buffer | null;
  value: Buffer | null;
  headers?: Array<[string, Buffer | null]>;
  tsDelta?: number;
}
function encodeRecords(recs: Rec[]): Buffer {
  return Buffer.concat(
    recs.map((r, i) => {
      const hs = r.headers ?? [];
      const body = Buffer.concat([
        Buffer.from([0]),
        varint(r.tsDelta ?? 0),
        varint(i),
        nb(r.key),
        nb(r.value),
        varint(hs.length),
        ...hs.map(([k, v]) => Buffer.concat([nb(Buffer.from(k)), nb(v)])),
      ]);
      return Buffer.concat([varint(body.length), body]);
    }),
  );
}
const B = (s: string) => Buffer.from(s);
const fpOf = (s: string): bigint => BigInt('0x' + Buffer.from(s).toString('hex'));
const key = (fp: string, partition = 0, topic = 't'): DedupKey => ({ topic, partition, fingerprint: fpOf(fp) });
const LIMITS = { maxDecompressedBytes: 1024 * 1024 };
/** A lookup without its claim (tested on its own below). */
const bare = <R>(l: Lookup<R>): object => (l.kind === 'miss' ? l : { ...l, claim: undefined });

/** A RecordBatch v2 around a records section (compressed or not), valid CRC. */
function batchOf(section: Buffer, count: number, o: { compression?: number; ts?: bigint; producerId?: bigint; seq?: number } = {}): Buffer {
  const b = Buffer.alloc(61 + section.length);
  b.writeInt32BE(b.length - 12, 8);
  b.writeInt32BE(-1, 12);
  b.writeInt8(2, 16);
  b.writeInt16BE(o.compression ?? 0, 21);
  b.writeInt32BE(count - 1, 23);
  b.writeBigInt64BE(o.ts ?? 1_700_000_000_000n, 27);
  b.writeBigInt64BE(o.ts ?? 1_700_000_000_000n, 35);
  b.writeBigInt64BE(o.producerId ?? -1n, 43);
  b.writeInt16BE(o.producerId === undefined ? -1 : 0, 51);
  b.writeInt32BE(o.seq ?? -1, 53);
  b.writeInt32BE(count, 57);
  section.copy(b, 61);
  b.writeUInt32BE(computeCrc(b), 17);
  return b;
}
const content = (section: Buffer, compression: number, count: number) => contentFingerprint(batchOf(section, count, { compression }), LIMITS);
const header = (section: Buffer, compression: number, name: string) => headerFingerprint(batchOf(section, 2, { compression }), name, LIMITS).fingerprint;
const zstd = (zlib as unknown as { zstdCompressSync?: (b: Buffer) => Buffer }).zstdCompressSync;

describe('DedupCache', () => {
  it('miss → in_flight → done → expires after the window', () => {
    const c = new DedupCache<{ offset: bigint }>({ windowMs: 1000 });
    expect(bare(c.lookup(key('a'), 0))).toEqual({ kind: 'miss' });
    const tk = c.begin(key('a'), 0);
    expect(bare(c.lookup(key('a'), 5000))).toEqual({ kind: 'in_flight', ticket: tk }); // in flight never expires
    expect(bare(c.lookup(key('a', 1), 0))).toEqual({ kind: 'miss' });
    expect(bare(c.lookup(key('a', 0, 'u'), 0))).toEqual({ kind: 'miss' });
    expect(c.finish(tk, { ok: true, result: { offset: 42n } }, 100)).toBe(true);
    expect(bare(c.lookup(key('a'), 1099))).toEqual({ kind: 'done', result: { offset: 42n } });
    expect(bare(c.lookup(key('a'), 1100))).toEqual({ kind: 'miss' });
    expect(c.size).toBe(0);
  });

  it('a failed original is forgotten so that a retry can write; unknown tickets are ignored', () => {
    const c = new DedupCache<number>({ windowMs: 1000 });
    const tk = c.begin(key('a'), 0);
    expect(c.finish(tk, { ok: false }, 1)).toBe(true);
    expect(bare(c.lookup(key('a'), 2))).toEqual({ kind: 'miss' });
    expect(c.finish(tk, { ok: true, result: 1 }, 3)).toBe(false);
  });

  it('keys differ by topic, partition and fingerprint', () => {
    const c = new DedupCache<number>({ windowMs: 1000 });
    c.finish(c.begin(key('k1'), 0), { ok: true, result: 7 }, 0);
    expect(bare(c.lookup(key('k1'), 1))).toEqual({ kind: 'done', result: 7 });
    expect(bare(c.lookup(key('k2'), 1))).toEqual({ kind: 'miss' });
    expect(bare(c.lookup(key('k1', 1), 1))).toEqual({ kind: 'miss' });
    expect(bare(c.lookup(key('k1', 0, 'u'), 1))).toEqual({ kind: 'miss' });
  });

  it('is bounded in bytes: answered entries go first (LRU), originals in flight are kept', () => {
    const ev: Array<[string, number]> = [];
    const per = ENTRY_BYTES + 40;
    const c = new DedupCache<number>({ windowMs: 1000, maxBytes: per * 10, onEvict: (r, n) => ev.push([r, n]) });
    const inflight = [0, 1, 2].map((i) => c.begin(key(`f${i}`), 0));
    for (let i = 0; i < 100; i++) c.finish(c.begin(key(`d${i}`), 0), { ok: true, result: i }, 0);
    expect(c.bytes).toBeLessThanOrEqual(per * 10);
    expect(c.size).toBeLessThanOrEqual(10);
    expect(bare(c.lookup(key('d99'), 1))).toEqual({ kind: 'done', result: 99 });
    expect(bare(c.lookup(key('d0'), 1))).toEqual({ kind: 'miss' });
    inflight.forEach((t, i) => expect(bare(c.lookup(key(`f${i}`), 1))).toEqual({ kind: 'in_flight', ticket: t }));
    expect(ev.every(([r]) => r === 'capacity')).toBe(true);
    // Every byte is given back.
    inflight.forEach((t) => c.finish(t, { ok: false }, 2));
    c.sweep(5000);
    expect(c.size).toBe(0);
    expect(c.bytes).toBe(0);
  });

  it('is capped by maxEntries (LRU, sparing originals in flight) and sweeps expired entries, reporting counts', () => {
    const ev: Array<[string, number]> = [];
    const c = new DedupCache<number>({ windowMs: 100, maxEntries: 2, onEvict: (r, n) => ev.push([r, n]) });
    for (const k of ['a', 'b']) c.finish(c.begin(key(k), 0), { ok: true, result: 1 }, 0);
    c.lookup(key('a'), 1); // a is now most recent
    const tc = c.begin(key('c'), 2);
    expect(c.size).toBe(2);
    expect(bare(c.lookup(key('b'), 3))).toEqual({ kind: 'miss' });
    expect(c.lookup(key('a'), 3).kind).toBe('done');
    c.begin(key('d'), 4); // evicts a; c (in flight) is kept
    expect(bare(c.lookup(key('a'), 4))).toEqual({ kind: 'miss' });
    expect(c.finish(tc, { ok: true, result: 1 }, 5)).toBe(true);
    expect(c.sweep(105)).toBe(1); // c expired at 105
    expect(ev).toEqual([
      ['capacity', 1],
      ['capacity', 1],
      ['expired', 1],
    ]);
    expect(() => new DedupCache({ windowMs: 0 })).toThrow(RangeError);
  });
});

describe('records decoding and fingerprints', () => {
  const recs: Rec[] = [
    { key: B('k1'), value: B('v1'), headers: [['idempotency-key', B('abc')]] },
    { key: null, value: B('v2'), headers: [['idempotency-key', B('def')], ['x', null]] },
  ];

  it('exact: byte-identical batches only; the sidecar\'s stamp and the CRC do not count', () => {
    const section = encodeRecords(recs);
    const a = batchOf(section, 2);
    expect(exactFingerprint(batchOf(section, 2))).toBe(exactFingerprint(a));
    // What the sidecar (or the client) stamps is not part of the key.
    expect(exactFingerprint(batchOf(section, 2, { producerId: 7n, seq: 12 }))).toBe(exactFingerprint(a));
    // The same records a millisecond later are another write (the application sent them again).
    expect(exactFingerprint(batchOf(section, 2, { ts: 1_700_000_000_001n }))).not.toBe(exactFingerprint(a));
    expect(exactFingerprint(batchOf(encodeRecords(recs.map((r, i) => ({ ...r, tsDelta: i }))), 2))).not.toBe(exactFingerprint(a));
    expect(exactFingerprint(batchOf(encodeRecords([recs[0], { ...recs[1], value: B('v3') }]), 2))).not.toBe(exactFingerprint(a));
    expect(exactFingerprint(batchOf(section, 2, { compression: 2 }))).not.toBe(exactFingerprint(a));
  });

  it('content: ignores timestamps, sees keys, values and headers', () => {
    const a = content(encodeRecords(recs), 0, 2);
    expect(a.decoded).toBe(true);
    expect(contentFingerprint(batchOf(encodeRecords(recs), 2, { ts: 5n }), LIMITS)).toEqual(a);
    expect(content(encodeRecords(recs.map((r, i) => ({ ...r, tsDelta: i * 17 }))), 0, 2).fingerprint).toBe(a.fingerprint);
    expect(content(encodeRecords([recs[0], { ...recs[1], value: B('v3') }]), 0, 2).fingerprint).not.toBe(a.fingerprint);
    expect(content(encodeRecords([recs[0], { ...recs[1], headers: [] }]), 0, 2).fingerprint).not.toBe(a.fingerprint);
    expect(content(encodeRecords([{ ...recs[0], key: null }, recs[1]]), 0, 2).fingerprint).not.toBe(a.fingerprint);
    expect(content(encodeRecords([recs[0]]), 0, 1).fingerprint).not.toBe(a.fingerprint);
  });

  it('content: decodes gzip (and zstd when Node has it) within the byte limit; otherwise hashes the raw bytes', () => {
    const plain = encodeRecords(recs);
    const a = content(plain, 0, 2);
    expect(content(zlib.gzipSync(plain), 1, 2)).toEqual(a);
    if (zstd) expect(content(zstd(plain), 4, 2)).toEqual(a);
    const raw = content(plain, 2, 2); // "snappy": not decoded here
    expect(raw.decoded).toBe(false);
    expect(content(plain, 2, 2)).toEqual(raw);
    expect(content(Buffer.from([1, 2, 3]), 1, 2).decoded).toBe(false); // not gzip
    // A gzip bomb: 64 MiB of zeros in ~64 KiB; never inflated past the limit.
    const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024));
    const fp = contentFingerprint(batchOf(bomb, 1, { compression: 1 }), { maxDecompressedBytes: 1024 * 1024 });
    expect(fp.decoded).toBe(false);
    expect(contentFingerprint(batchOf(zlib.gzipSync(plain), 2, { compression: 1 }), { maxDecompressedBytes: 0 }).decoded).toBe(false);
  });

  it('header: a fixed-size key from every record\'s header value', () => {
    const plain = encodeRecords(recs);
    const one = headerFingerprint(batchOf(encodeRecords([recs[0]]), 1), 'idempotency-key', LIMITS).fingerprint;
    expect(typeof one).toBe('bigint');
    // Another payload with the same key is the same key.
    expect(headerFingerprint(batchOf(encodeRecords([{ ...recs[0], value: B('other') }]), 1), 'idempotency-key', LIMITS).fingerprint).toBe(one);
    expect(headerFingerprint(batchOf(plain, 2), 'nope', LIMITS)).toEqual({ fingerprint: null, reason: 'absent' });
    const multi = header(plain, 0, 'idempotency-key');
    expect(multi).not.toBeNull();
    expect(header(zlib.gzipSync(plain), 1, 'idempotency-key')).toBe(multi);
    if (zstd) expect(header(zstd(plain), 4, 'idempotency-key')).toBe(multi);
    expect(headerFingerprint(batchOf(plain, 2, { compression: 3 }), 'idempotency-key', LIMITS)).toEqual({ fingerprint: null, reason: 'codec' });
    expect(header(encodeRecords([recs[1], recs[0]]), 0, 'idempotency-key')).not.toBe(multi);
    // 500 records of UUID keys: still one 128-bit key.
    const many = encodeRecords(Array.from({ length: 500 }, (_, i) => ({ key: null, value: B('v'), headers: [['idempotency-key', B(`00000000-0000-4000-8000-${String(i).padStart(12, '0')}`)]] as Array<[string, Buffer]> })));
    expect(headerFingerprint(batchOf(many, 500), 'idempotency-key', LIMITS).fingerprint! < 1n << 128n).toBe(true);
    expect(headerFingerprint(batchOf(plain.subarray(0, 7), 2), 'idempotency-key', LIMITS).fingerprint).toBeNull();
  });

  it('property: content fingerprint depends on content only, not on timestamps or compression', () => {
    const recArb = fc.record({
      key: fc.option(fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a))),
      value: fc.option(fc.uint8Array({ maxLength: 50 }).map((a) => Buffer.from(a))),
      headers: fc.array(fc.tuple(fc.string({ maxLength: 8 }), fc.option(fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)))), { maxLength: 3 }),
      tsDelta: fc.integer({ min: 0, max: 100000 }),
    });
    fc.assert(
      fc.property(fc.array(recArb, { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 0, max: 1e9 }), { minLength: 6, maxLength: 6 }), (rs, deltas) => {
        const plain = encodeRecords(rs);
        const fp = content(plain, 0, rs.length);
        expect(fp.decoded).toBe(true);
        const shifted = encodeRecords(rs.map((r, i) => ({ ...r, tsDelta: deltas[i] })));
        expect(content(shifted, 0, rs.length).fingerprint).toBe(fp.fingerprint);
        expect(content(zlib.gzipSync(shifted), 1, rs.length).fingerprint).toBe(fp.fingerprint);
      }),
      { numRuns: 200, seed: 8 },
    );
  });
});

describe('DedupCache snapshot and restore (the sidecar restart)', () => {
  it('keeps finished originals with their results and expiry, not in-flight ones', () => {
    const c = new DedupCache<string>({ windowMs: 1_000 });
    c.finish(c.begin(key('a'), 0), { ok: true, result: 'A' }, 10);
    c.begin(key('b'), 20); // in flight: restored with its batch, not from here
    c.finish(c.begin(key('c'), 0), { ok: false }, 30);
    const snap = c.snapshot();
    expect(snap.map(({ claim: _, ...e }) => e)).toEqual([{ key: key('a'), result: 'A', expiresAt: 1_010 }]);

    const r = new DedupCache<string>({ windowMs: 1_000 });
    r.restore(snap, 500);
    expect(bare(r.lookup(key('a'), 600))).toEqual({ kind: 'done', result: 'A' });
    expect(bare(r.lookup(key('b'), 600))).toEqual({ kind: 'miss' });
    expect(bare(r.lookup(key('a'), 1_010))).toEqual({ kind: 'miss' }); // the window counts from the original's end
  });

  it('drops expired entries and keeps a live original over a remembered one', () => {
    const r = new DedupCache<string>({ windowMs: 1_000 });
    const t = r.begin(key('x'), 0);
    r.restore([{ key: key('x'), result: 'old', expiresAt: 5_000 }, { key: key('y'), result: 'Y', expiresAt: 100 }], 200);
    expect(bare(r.lookup(key('x'), 300))).toEqual({ kind: 'in_flight', ticket: t });
    expect(bare(r.lookup(key('y'), 300))).toEqual({ kind: 'miss' });
  });
});

describe('DedupCache: separate sends with the same key (same records, same timestamps)', () => {
  it('a copy is matched only while no client waits in time for the original; otherwise it is another original', () => {
    const c = new DedupCache<string>({ windowMs: 10_000 });
    const a = Claim.arrived(0, 1_000);
    const ta = c.begin(key('same'), 0, a.claim);
    // Its client still waits for the answer (in time, connection open): the same bytes are a new write.
    expect(c.lookup(key('same'), 10)).toEqual({ kind: 'miss' });
    const b = Claim.arrived(10, 1_000);
    const tb = c.begin(key('same'), 10, b.claim);
    expect(tb).not.toBe(ta);
    expect(c.size).toBe(2);
    // a's client was told to retry (an error written): a's retry is matched, to a, not to b.
    a.claim.answered(a.waiter, false, 500);
    expect(c.lookup(key('same'), 600)).toEqual({ kind: 'in_flight', ticket: ta, claim: a.claim });
    // One waiting copy at a time: while a's copy waits, another send is matched with b only after b's deadline.
    a.claim.wait(600, 1_000);
    expect(c.lookup(key('same'), 700)).toEqual({ kind: 'miss' });
    expect(c.lookup(key('same'), 1_010)).toEqual({ kind: 'in_flight', ticket: tb, claim: b.claim }); // b's client may have timed out
  });

  it('an original whose success reached its client in time matches nothing and is dropped; a late or unwritten one still matches', () => {
    const c = new DedupCache<string>({ windowMs: 10_000 });
    const inTime = Claim.arrived(0, 1_000);
    c.finish(c.begin(key('x'), 0, inTime.claim), { ok: true, result: 'X' }, 100);
    inTime.claim.answered(inTime.waiter, true, 120);
    expect(c.lookup(key('x'), 200)).toEqual({ kind: 'miss' });
    expect(c.size).toBe(0);

    const late = Claim.arrived(0, 1_000);
    c.finish(c.begin(key('late'), 0, late.claim), { ok: true, result: 'L' }, 1_100);
    late.claim.answered(late.waiter, true, 1_100); // written after its client's timeout: it may have dropped it
    expect(bare(c.lookup(key('late'), 1_200))).toEqual({ kind: 'done', result: 'L' });

    const closed = Claim.arrived(0, 1_000);
    c.finish(c.begin(key('closed'), 0, closed.claim), { ok: true, result: 'C' }, 100);
    closed.claim.answered(closed.waiter, undefined, 100); // its connection closed before the answer
    expect(bare(c.lookup(key('closed'), 150))).toEqual({ kind: 'done', result: 'C' });
    expect(c.snapshot().map((e) => e.result)).toEqual(['L', 'C']);
  });

  it('dropKnown drops a finished original at once when its success reached its client in time, and nothing else', () => {
    const c = new DedupCache<string>({ windowMs: 10_000 });
    const inTime = Claim.arrived(0, 1_000);
    const t = c.begin(key('x'), 0, inTime.claim);
    c.dropKnown(t); // in flight: kept
    c.finish(t, { ok: true, result: 'X' }, 100);
    c.dropKnown(t); // done, but its client has not had the answer: kept
    expect(c.size).toBe(1);
    inTime.claim.answered(inTime.waiter, true, 120);
    c.dropKnown(t);
    expect(c.size).toBe(0);
    expect(c.bytes).toBe(0);

    const late = Claim.arrived(0, 1_000);
    const l = c.begin(key('late'), 0, late.claim);
    c.finish(l, { ok: true, result: 'L' }, 1_100);
    late.claim.answered(late.waiter, true, 1_100); // after its client's timeout: it may have dropped it
    c.dropKnown(l);
    expect(bare(c.lookup(key('late'), 1_200))).toEqual({ kind: 'done', result: 'L' });
  });

  it('keeps a tombstone (an error result) for the window like a success, and in snapshots', () => {
    const c = new DedupCache<{ code: number }>({ windowMs: 1_000 });
    c.finish(c.begin(key('t'), 0), { ok: true, result: { code: 7 } }, 50);
    expect(bare(c.lookup(key('t'), 60))).toEqual({ kind: 'done', result: { code: 7 } });
    expect(bare(c.lookup(key('t'), 70))).toEqual({ kind: 'done', result: { code: 7 } }); // every retry, not only one
    const r = new DedupCache<{ code: number }>({ windowMs: 1_000 });
    r.restore(c.snapshot(), 100);
    expect(bare(r.lookup(key('t'), 200))).toEqual({ kind: 'done', result: { code: 7 } });
    expect(r.lookup(key('t'), 1_050)).toEqual({ kind: 'miss' });
  });
});
