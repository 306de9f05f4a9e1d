import { readFileSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decompressRecords, encodeRecordBatch, encodeRecords, parseRecords, readVarint, type RecordInput } from './records.js';
import { BatchOffset, readBatchHeader, verifyCrc } from './record-batch.js';
import { int64At } from './reader.js';

interface Fixture {
  message: string;
  name?: string;
  hex: string;
}
const fixtures: Fixture[] = JSON.parse(readFileSync(new URL('./fixtures/java-messages.json', import.meta.url), 'utf8'));
/** Batches written by Kafka's Java MemoryRecords (scripts/codegen/JavaFixtures.java). */
const javaBatch = (name: string) => Buffer.from(fixtures.find((f) => f.message === 'RecordBatch' && f.name === name)!.hex, 'hex');
/** The records JavaFixtures.java puts in each of those batches. */
const javaRecords: RecordInput[] = [
  { timestamp: 1700000000000n, key: 'k1', value: 'hello' },
  { timestamp: 1700000000001n, key: null, value: 'world' },
];
const plainOf = (batch: Buffer) => decompressRecords(batch.subarray(BatchOffset.records), readBatchHeader(batch).compression)!;

describe('encodeRecordBatch', () => {
  it('writes the same bytes as Kafka\'s Java MemoryRecords', () => {
    expect(encodeRecordBatch({ records: javaRecords }).toString('hex')).toBe(javaBatch('plain').toString('hex'));
    expect(encodeRecordBatch({ records: javaRecords, producerId: 4242n, producerEpoch: 3, baseSequence: 17 }).toString('hex')).toBe(javaBatch('idempotent').toString('hex'));
    expect(encodeRecordBatch({ records: javaRecords, producerId: 9001n, producerEpoch: 0, baseSequence: 2147483000 }).toString('hex')).toBe(javaBatch('restamped').toString('hex'));
    expect(encodeRecordBatch({ records: javaRecords, producerId: 4242n, producerEpoch: 3, baseSequence: 17, transactional: true }).toString('hex')).toBe(
      javaBatch('transactional').toString('hex'),
    );
  });

  it('gzip: the same records as Java\'s gzip batch (compressed bytes differ between gzip implementations)', () => {
    const ours = encodeRecordBatch({ records: javaRecords, compression: 1 });
    expect(verifyCrc(ours)).toBe(true);
    expect(readBatchHeader(ours)).toMatchObject({ compression: 1, recordsCount: 2, lastOffsetDelta: 1 });
    expect([int64At(ours, BatchOffset.baseTimestamp), int64At(ours, BatchOffset.maxTimestamp)]).toEqual([1700000000000n, 1700000000001n]);
    expect(plainOf(ours)).toEqual(plainOf(javaBatch('plainGzip')));
  });

  it('rejects an empty batch and codecs it cannot write', () => {
    expect(() => encodeRecordBatch({ records: [] })).toThrow(RangeError);
    expect(() => encodeRecordBatch({ records: javaRecords, compression: 2 })).toThrow(RangeError);
  });
});

describe('parseRecords', () => {
  const recs: RecordInput[] = [
    { key: 'k1', value: 'v1', headers: [['idempotency-key', 'abc']] },
    { key: null, value: 'v2', headers: [['idempotency-key', 'def'], ['x', null]] },
  ];

  it('reads keys, values and headers, and refuses truncated or miscounted input', () => {
    const plain = encodeRecords(recs, 0n);
    const p = parseRecords(plain, 2);
    expect(p.map((r) => [r.key?.toString() ?? null, r.value?.toString(), r.headers.map((h) => [h.key, h.value?.toString() ?? null])])).toEqual([
      ['k1', 'v1', [['idempotency-key', 'abc']]],
      [null, 'v2', [['idempotency-key', 'def'], ['x', null]]],
    ]);
    expect(() => parseRecords(plain.subarray(0, 10))).toThrow(RangeError);
    expect(() => parseRecords(plain, 3)).toThrow(RangeError);
  });

  it('reads the records of every Java-written batch, compressed or not', () => {
    for (const name of ['plain', 'idempotent', 'plainGzip', 'idempotentGzip', 'transactional']) {
      const p = parseRecords(plainOf(javaBatch(name)), 2);
      expect(p.map((r) => [r.key?.toString() ?? null, r.value?.toString()]), name).toEqual([
        ['k1', 'hello'],
        [null, 'world'],
      ]);
    }
  });

  it('decompression is bounded and fails soft', () => {
    expect(decompressRecords(Buffer.from([1, 2, 3]), 1)).toBeNull(); // not gzip
    expect(decompressRecords(Buffer.from([1, 2, 3]), 3)).toBeNull(); // lz4: not decoded here
    expect(decompressRecords(zlib.gzipSync(Buffer.alloc(65 * 1024 * 1024)), 1)).toBeNull(); // over MAX_DECOMPRESSED_BYTES
  });

  it('property: encode then parse gives the records back', () => {
    const bytes = fc.option(fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)), { nil: null });
    const rec = fc.record({ key: bytes, value: bytes, headers: fc.array(fc.tuple(fc.string({ maxLength: 8 }), bytes), { maxLength: 3 }) });
    fc.assert(
      fc.property(fc.array(rec, { minLength: 1, maxLength: 8 }), (rs) => {
        const batch = encodeRecordBatch({ records: rs, baseTimestamp: 5n });
        expect(verifyCrc(batch)).toBe(true);
        const back = parseRecords(plainOf(batch), rs.length);
        expect(back.map((r) => ({ key: r.key, value: r.value, headers: r.headers.map((h) => [h.key, h.value]) }))).toEqual(rs);
      }),
      { numRuns: 200 },
    );
  });
});

describe('readVarint', () => {
  it('zigzag, as Kafka\'s ByteUtils.readVarint', () => {
    expect(readVarint(Buffer.from([0x00]), 0)).toEqual([0, 1]);
    expect(readVarint(Buffer.from([0x01]), 0)).toEqual([-1, 1]);
    expect(readVarint(Buffer.from([0x02]), 0)).toEqual([1, 1]);
    expect(readVarint(Buffer.from([0xfe, 0xff, 0xff, 0xff, 0x0f]), 0)).toEqual([2147483647, 5]);
    expect(readVarint(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), 0)).toEqual([-2147483648, 5]);
    expect(() => readVarint(Buffer.from([0x80]), 0)).toThrow(RangeError);
  });
});
