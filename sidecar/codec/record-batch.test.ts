import { readFileSync } from 'node:fs';
import { crc32c } from '@node-rs/crc32';
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { decodeProduceRequest } from './generated/produce-request.js';
import { CodecError, Reader, int64At } from './reader.js';
import {
  BATCH_HEADER_SIZE,
  BatchOffset,
  batchMagic,
  computeCrc,
  iterateBatches,
  listBatches,
  readBatchHeader,
  stampIdempotence,
  verifyCrc,
} from './record-batch.js';

interface Fixture {
  message: string;
  version: number;
  name?: string;
  hex: string;
}
const fixtures: Fixture[] = JSON.parse(readFileSync(new URL('./fixtures/java-messages.json', import.meta.url), 'utf8'));
/** Batches written by Kafka's Java MemoryRecords (scripts/codegen/JavaFixtures.java). */
const javaBatch = (name: string) => Buffer.from(fixtures.find((f) => f.message === 'RecordBatch' && f.name === name)!.hex, 'hex');

describe('CRC-32C', () => {
  test('the standard check vector', () => {
    expect(crc32c(Buffer.from('123456789')) >>> 0).toBe(0xe3069283);
  });

  test('Kafka-written batches verify', () => {
    for (const name of ['plain', 'idempotent', 'restamped', 'plainGzip', 'idempotentGzip', 'transactional']) {
      const b = javaBatch(name);
      expect(verifyCrc(b), name).toBe(true);
      expect(computeCrc(b)).toBe(b.readUInt32BE(17));
    }
  });

  test('a flipped byte anywhere in [21, end) is detected; bytes before 21 are outside the CRC', () => {
    const b = javaBatch('idempotent');
    for (let i = 21; i < b.length; i++) {
      const c = Buffer.from(b);
      c[i]! ^= 0x10;
      expect(verifyCrc(c)).toBe(false);
    }
    const c = Buffer.from(b);
    c.writeInt32BE(99, 12); // partitionLeaderEpoch, set by the broker
    c.writeBigInt64BE(1000n, 0); // baseOffset
    expect(verifyCrc(c)).toBe(true);
  });
});

describe('readBatchHeader', () => {
  test('reads a Java idempotent batch', () => {
    const h = readBatchHeader(javaBatch('idempotent'));
    expect(h).toMatchObject({
      compression: 0,
      lastOffsetDelta: 1,
      producerId: 4242n,
      producerEpoch: 3,
      baseSequence: 17,
      recordsCount: 2,
      isTransactional: false,
    });
    // Fields the header leaves out (nothing reads them), where BatchOffset says they are.
    const b = javaBatch('idempotent');
    expect([int64At(b, BatchOffset.baseOffset), int64At(b, BatchOffset.baseTimestamp), int64At(b, BatchOffset.maxTimestamp)]).toEqual([0n, 1700000000000n, 1700000000001n]);
    expect([b.readInt32BE(BatchOffset.batchLength), b[BatchOffset.magic], b.readInt16BE(BatchOffset.attributes) & 0x20]).toEqual([b.length - 12, 2, 0]);
  });

  test('non-idempotent, compressed and transactional batches', () => {
    expect(readBatchHeader(javaBatch('plain'))).toMatchObject({ producerId: -1n, producerEpoch: -1, baseSequence: -1 });
    expect(readBatchHeader(javaBatch('plainGzip'))).toMatchObject({ compression: 1, recordsCount: 2 });
    expect(readBatchHeader(javaBatch('transactional'))).toMatchObject({ isTransactional: true, producerId: 4242n });
  });

  test('reads at an offset inside a larger buffer', () => {
    const b = Buffer.concat([Buffer.alloc(5, 0xee), javaBatch('idempotent')]);
    expect(readBatchHeader(b, 5).baseSequence).toBe(17);
  });

  test('rejects short buffers, bad lengths and other magics with CodecError', () => {
    const b = javaBatch('idempotent');
    expect(() => readBatchHeader(b.subarray(0, 40))).toThrow(CodecError);
    expect(() => readBatchHeader(b.subarray(0, b.length - 1))).toThrow(/runs past the end/);
    const m1 = Buffer.from(b);
    m1[16] = 1;
    expect(batchMagic(m1)).toBe(1);
    expect(() => readBatchHeader(m1)).toThrow(/magic 1 is not 2/);
    const neg = Buffer.from(b);
    neg.writeInt32BE(-1, 8);
    expect(() => readBatchHeader(neg)).toThrow(/invalid batchLength -1/);
    expect(() => readBatchHeader(Buffer.alloc(3))).toThrow(CodecError);
  });
});

describe('stampIdempotence', () => {
  test('stamping a plain Java batch reproduces the idempotent Java batch byte for byte', () => {
    const b = javaBatch('plain');
    const crc = stampIdempotence(b, 4242n, 3, 17);
    expect(b.toString('hex')).toBe(javaBatch('idempotent').toString('hex'));
    expect(crc).toBe(b.readUInt32BE(17));
  });

  test('restamping changes only producer fields and CRC (near the Int32 sequence limit)', () => {
    const b = javaBatch('idempotent');
    stampIdempotence(b, 9001n, 0, 2147483000);
    expect(b.toString('hex')).toBe(javaBatch('restamped').toString('hex'));
  });

  test('compressed batches are stamped without touching the compressed records', () => {
    const b = javaBatch('plainGzip');
    const records = Buffer.from(b.subarray(BATCH_HEADER_SIZE));
    stampIdempotence(b, 4242n, 3, 17);
    expect(b.toString('hex')).toBe(javaBatch('idempotentGzip').toString('hex'));
    expect(b.subarray(BATCH_HEADER_SIZE).equals(records)).toBe(true);
  });

  test('stamps in place inside a decoded Produce request (zero copy)', () => {
    const f = fixtures.find((x) => x.message === 'ProduceRequest' && x.version === 9)!;
    const frame = Buffer.from(f.hex, 'hex');
    const req = decodeProduceRequest(new Reader(frame), 9);
    const recs = req.topicData[0]!.partitionData[1]!.records!; // the gzip, non-idempotent one
    const [[off, len]] = listBatches(recs) as [[number, number]];
    expect(readBatchHeader(recs, off).producerId).toBe(-1n);
    stampIdempotence(recs.subarray(off, off + len), 77n, 1, 5);
    const again = decodeProduceRequest(new Reader(frame), 9).topicData[0]!.partitionData[1]!.records!;
    expect(readBatchHeader(again)).toMatchObject({ producerId: 77n, producerEpoch: 1, baseSequence: 5 });
    expect(verifyCrc(again)).toBe(true);
  });

  test('a batch whose stored CRC is wrong stays wrong after a stamp (the CRC is patched, damage never hidden)', () => {
    const b = javaBatch('plainGzip');
    b[b.length - 1] ^= 0x01; // one flipped bit in the records
    expect(verifyCrc(b)).toBe(false);
    stampIdempotence(b, 4242n, 3, 17);
    expect(verifyCrc(b)).toBe(false);
    b[b.length - 1] ^= 0x01;
    expect(verifyCrc(b)).toBe(true);
  });

  test('property: any stamp verifies and reads back', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -1n, max: 2n ** 63n - 1n }),
        fc.integer({ min: -1, max: 32767 }),
        fc.integer({ min: -1, max: 2 ** 31 - 1 }),
        (pid, epoch, seq) => {
          const b = javaBatch('plainGzip');
          stampIdempotence(b, pid, epoch, seq);
          expect(verifyCrc(b)).toBe(true);
          expect(readBatchHeader(b)).toMatchObject({ producerId: pid, producerEpoch: epoch, baseSequence: seq, recordsCount: 2 });
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('iterateBatches', () => {
  test('yields [offset, length] for each batch', () => {
    const a = javaBatch('idempotent');
    const b = javaBatch('plainGzip');
    const all = Buffer.concat([a, b, a]);
    const expected = [
      [0, a.length],
      [a.length, b.length],
      [a.length + b.length, a.length],
    ];
    expect([...iterateBatches(all)]).toEqual(expected);
    expect(listBatches(all)).toEqual(expected);
    expect([...iterateBatches(Buffer.alloc(0))]).toEqual([]);
  });

  test('truncated or corrupt lengths throw CodecError', () => {
    const a = javaBatch('idempotent');
    const all = Buffer.concat([a, a]);
    for (let cut = 1; cut < a.length; cut += 7) {
      expect(() => [...iterateBatches(all.subarray(0, all.length - cut))]).toThrow(CodecError);
    }
    const huge = Buffer.from(a);
    huge.writeInt32BE(0x7fffffff, 8);
    expect(() => listBatches(huge)).toThrow(/runs past the end/);
  });

  test('property: random bytes never throw anything but CodecError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (arr) => {
        try {
          for (const [off] of iterateBatches(Buffer.from(arr))) readBatchHeader(Buffer.from(arr), off);
        } catch (e) {
          expect(e).toBeInstanceOf(CodecError);
        }
      }),
    );
  });
});
