import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as zlib from 'node:zlib';
import { DedupCache, contentFingerprint, extractHeader, extractHeaderValues, type DedupKey } from './dedup.js';
import { encodeRecords as encodeRecordsAt } from '../codec/records.js';

interface Rec {
  key: Buffer | null;
  value: Buffer | null;
  headers?: Array<[string, Buffer | null]>;
  tsDelta?: number;
}
/** Records with the given timestamp deltas, through the codec's encoder. */
const encodeRecords = (recs: Rec[]): Buffer => encodeRecordsAt(recs.map((r) => ({ ...r, timestamp: BigInt(r.tsDelta ?? 0) })), 0n);
const B = (s: string) => Buffer.from(s);
const key = (fp: string, partition = 0, topic = 't'): DedupKey => ({ topic, partition, fingerprint: fp });
const zstd = (zlib as unknown as { zstdCompressSync?: (b: Buffer) => Buffer }).zstdCompressSync;

describe('DedupCache', () => {
  it('miss → in_flight → done → expires after the window', () => {
    const c = new DedupCache<{ offset: bigint }>({ windowMs: 1000 });
    expect(c.lookup(key('a'), 0)).toEqual({ kind: 'miss' });
    const tk = c.begin(key('a'), 0);
    expect(c.lookup(key('a'), 5000)).toEqual({ kind: 'in_flight', ticket: tk }); // in flight never expires
    expect(c.lookup(key('a', 1), 0)).toEqual({ kind: 'miss' });
    expect(c.lookup(key('a', 0, 'u'), 0)).toEqual({ kind: 'miss' });
    expect(c.finish(tk, { ok: true, result: { offset: 42n } }, 100)).toBe(true);
    expect(c.lookup(key('a'), 1099)).toEqual({ kind: 'done', result: { offset: 42n } });
    expect(c.lookup(key('a'), 1100)).toEqual({ kind: 'miss' });
    expect(c.size).toBe(0);
  });

  it('a failed original is forgotten so that a retry can write; unknown tickets are ignored', () => {
    const c = new DedupCache<number>({ windowMs: 1000 });
    const tk = c.begin(key('a'), 0);
    expect(c.finish(tk, { ok: false }, 1)).toBe(true);
    expect(c.lookup(key('a'), 2)).toEqual({ kind: 'miss' });
    expect(c.finish(tk, { ok: true, result: 1 }, 3)).toBe(false);
  });

  it('Buffer and string fingerprints are distinct key spaces and compared by content', () => {
    const c = new DedupCache<number>({ windowMs: 1000 });
    const tk = c.begin({ topic: 't', partition: 0, fingerprint: B('k1') }, 0);
    c.finish(tk, { ok: true, result: 7 }, 0);
    expect(c.lookup({ topic: 't', partition: 0, fingerprint: B('k1') }, 1)).toEqual({ kind: 'done', result: 7 });
    expect(c.lookup({ topic: 't', partition: 0, fingerprint: 'k1' }, 1)).toEqual({ kind: 'miss' });
  });

  it('is capped by maxEntries (LRU) and sweeps expired entries, reporting counts', () => {
    const ev: Array<[string, number]> = [];
    const c = new DedupCache<number>({ windowMs: 100, maxEntries: 2, onEvict: (r, n) => ev.push([r, n]) });
    for (const k of ['a', 'b']) c.finish(c.begin(key(k), 0), { ok: true, result: 1 }, 0);
    c.lookup(key('a'), 1); // a is now most recent
    const tc = c.begin(key('c'), 2);
    expect(c.size).toBe(2);
    expect(c.lookup(key('b'), 3)).toEqual({ kind: 'miss' });
    expect(c.lookup(key('a'), 3).kind).toBe('done');
    c.begin(key('d'), 4); // evicts c (in flight): its ticket is dropped
    expect(c.finish(tc, { ok: true, result: 1 }, 5)).toBe(false);
    expect(c.sweep(100)).toBe(1); // a expired at 100
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

  it('ignores timestamp deltas, sees keys, values and headers', () => {
    const a = contentFingerprint(encodeRecords(recs), 0, 2);
    expect(a.decoded).toBe(true);
    expect(contentFingerprint(encodeRecords(recs.map((r, i) => ({ ...r, tsDelta: i * 17 }))), 0, 2).fingerprint).toBe(a.fingerprint);
    expect(contentFingerprint(encodeRecords([recs[0], { ...recs[1], value: B('v3') }]), 0, 2).fingerprint).not.toBe(a.fingerprint);
    expect(contentFingerprint(encodeRecords([recs[0], { ...recs[1], headers: [] }]), 0, 2).fingerprint).not.toBe(a.fingerprint);
    expect(contentFingerprint(encodeRecords([{ ...recs[0], key: null }, recs[1]]), 0, 2).fingerprint).not.toBe(a.fingerprint);
    expect(contentFingerprint(encodeRecords([recs[0]]), 0, 1).fingerprint).not.toBe(a.fingerprint);
  });

  it('decodes gzip (and zstd when Node has it); other codecs hash the raw bytes', () => {
    const plain = encodeRecords(recs);
    const a = contentFingerprint(plain, 0, 2);
    expect(contentFingerprint(zlib.gzipSync(plain), 1, 2)).toEqual(a);
    if (zstd) expect(contentFingerprint(zstd(plain), 4, 2)).toEqual(a);
    const raw = contentFingerprint(plain, 2, 2); // "snappy": not decoded here
    expect(raw.decoded).toBe(false);
    expect(contentFingerprint(plain, 2, 2)).toEqual(raw);
    expect(contentFingerprint(Buffer.from([1, 2, 3]), 1, 2).decoded).toBe(false); // not gzip
  });

  it('extracts header values and keys', () => {
    const plain = encodeRecords(recs);
    expect(extractHeaderValues(plain, 0, 'idempotency-key')?.map((v) => v?.toString())).toEqual(['abc', 'def']);
    expect(extractHeader(encodeRecords([recs[0]]), 0, 'idempotency-key')?.toString()).toBe('abc');
    expect(extractHeader(plain, 0, 'nope')).toBeNull();
    const multi = extractHeader(plain, 0, 'idempotency-key');
    expect(multi).not.toBeNull();
    expect(extractHeader(zlib.gzipSync(plain), 1, 'idempotency-key')).toEqual(multi);
    if (zstd) expect(extractHeader(zstd(plain), 4, 'idempotency-key')).toEqual(multi);
    expect(extractHeader(plain, 3, 'idempotency-key')).toBeNull(); // lz4: unsupported, caller counts it
    expect(extractHeader(encodeRecords([recs[1], recs[0]]), 0, 'idempotency-key')).not.toEqual(multi);
  });

  it('property: fingerprint depends on content only, not on timestamp deltas or compression', () => {
    const recArb = fc.record({
      key: fc.option(fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a))),
      value: fc.option(fc.uint8Array({ maxLength: 50 }).map((a) => Buffer.from(a))),
      headers: fc.array(fc.tuple(fc.string({ maxLength: 8 }), fc.option(fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)))), { maxLength: 3 }),
      tsDelta: fc.integer({ min: 0, max: 100000 }),
    });
    fc.assert(
      fc.property(fc.array(recArb, { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 0, max: 1e9 }), { minLength: 6, maxLength: 6 }), (rs, deltas) => {
        const plain = encodeRecords(rs);
        const fp = contentFingerprint(plain, 0, rs.length);
        expect(fp.decoded).toBe(true);
        const shifted = encodeRecords(rs.map((r, i) => ({ ...r, tsDelta: deltas[i] })));
        expect(contentFingerprint(shifted, 0, rs.length).fingerprint).toBe(fp.fingerprint);
        expect(contentFingerprint(zlib.gzipSync(shifted), 1, rs.length).fingerprint).toBe(fp.fingerprint);
      }),
      { numRuns: 200 },
    );
  });
});

describe('DedupCache snapshot and restore (the sidecar restart)', () => {
  const key = (fp: string, partition = 0): DedupKey => ({ topic: 't', partition, fingerprint: fp });
  it('keeps finished originals with their results and expiry, not in-flight ones', () => {
    const c = new DedupCache<string>({ windowMs: 1_000 });
    c.finish(c.begin(key('a'), 0), { ok: true, result: 'A' }, 10);
    c.begin(key('b'), 20); // in flight: restored with its batch, not from here
    c.finish(c.begin(key('c'), 0), { ok: false }, 30);
    const snap = c.snapshot();
    expect(snap).toEqual([{ key: key('a'), result: 'A', expiresAt: 1_010 }]);

    const r = new DedupCache<string>({ windowMs: 1_000 });
    r.restore(snap, 500);
    expect(r.lookup(key('a'), 600)).toEqual({ kind: 'done', result: 'A' });
    expect(r.lookup(key('b'), 600)).toEqual({ kind: 'miss' });
    expect(r.lookup(key('a'), 1_010)).toEqual({ kind: 'miss' }); // the window counts from the original's end
  });

  it('drops expired entries and keeps a live original over a remembered one', () => {
    const r = new DedupCache<string>({ windowMs: 1_000 });
    const t = r.begin(key('x'), 0);
    r.restore([{ key: key('x'), result: 'old', expiresAt: 5_000 }, { key: key('y'), result: 'Y', expiresAt: 100 }], 200);
    expect(r.lookup(key('x'), 300)).toEqual({ kind: 'in_flight', ticket: t });
    expect(r.lookup(key('y'), 300)).toEqual({ kind: 'miss' });
  });
});
