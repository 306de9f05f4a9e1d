// Each malformed part gets the error a Kafka broker gives for it (facts in part-check.ts).
import { describe, expect, it } from 'vitest';
import * as zlib from 'node:zlib';
import { checkPart, PartProblem, topicNameProblem } from './part-check.js';
import { encodeRecordBatch } from '../codec/records.js';
import { computeCrc } from '../codec/record-batch.js';

const good = (o: Parameters<typeof encodeRecordBatch>[0] = { records: [{ value: 'a' }, { value: 'b' }] }): Buffer => encodeRecordBatch({ baseTimestamp: 1n, ...o });
const crc = (b: Buffer): Buffer => (b.writeUInt32BE(computeCrc(b), 17), b);
const code = (records: Buffer | null, version = 9): number => {
  const c = checkPart(records, version);
  return c instanceof PartProblem ? c.errorCode : 0;
};
const edit = (f: (b: Buffer) => void, fixCrc = true): Buffer => {
  const b = good();
  f(b);
  return fixCrc ? crc(b) : b;
};

describe('checkPart', () => {
  it('accepts a valid batch, plain, idempotent or gzip', () => {
    expect(code(good())).toBe(0);
    expect(code(good({ records: [{ value: 'x' }], producerId: 5n, producerEpoch: 0, baseSequence: 0 }))).toBe(0);
    expect(code(good({ records: [{ value: 'x' }, { value: 'y' }], compression: 1 }))).toBe(0);
  });

  it.each([
    ['no records at all', null, 87],
    ['fewer bytes than offset and length', Buffer.alloc(11), 87],
    ['batchLength below anything', edit((b) => b.writeInt32BE(2, 8), false), 2],
    ['truncated batch', good().subarray(0, 70), 87],
    ['magic 0', edit((b) => b.writeInt8(0, 16), false), 87],
    ['magic 1', edit((b) => b.writeInt8(1, 16), false), 87],
    ['magic 7', edit((b) => b.writeInt8(7, 16), false), 2],
    ['two batches', Buffer.concat([good(), good()]), 87],
    ['bad CRC', edit((b) => (b[b.length - 1] ^= 1), false), 2],
    ['compression codec 6', edit((b) => b.writeInt16BE(6, 21)), 2],
    ['baseOffset not 0', edit((b) => b.writeBigInt64BE(3n, 0)), 87],
    ['baseOffset 2^32 (only its high half set)', edit((b) => b.writeBigInt64BE(1n << 32n, 0)), 87],
    ['empty batch (lastOffsetDelta -1, count 0)', edit((b) => (b.writeInt32BE(-1, 23), b.writeInt32BE(0, 57))), 87],
    ['count 0', edit((b) => b.writeInt32BE(0, 57)), 87],
    ['count != lastOffsetDelta + 1', edit((b) => b.writeInt32BE(5, 57)), 87],
    ['a huge count', edit((b) => (b.writeInt32BE(0x7ffffffe, 23), b.writeInt32BE(0x7fffffff, 57))), 87],
    ['control batch', edit((b) => b.writeInt16BE(0x20, 21)), 87],
    ['producer id without a sequence', edit((b) => (b.writeBigInt64BE(9n, 43), b.writeInt32BE(-1, 53))), 87],
    ['garbage said to be gzip', edit((b) => b.writeInt16BE(1, 21)), 2],
    ['garbage said to be zstd', edit((b) => b.writeInt16BE(4, 21)), 2],
    ['garbage said to be lz4', edit((b) => b.writeInt16BE(3, 21)), 2],
  ] as Array<[string, Buffer | null, number]>)('%s -> %i', (_, records, expected) => {
    expect(code(records)).toBe(expected);
  });

  it('zstd needs Produce v7+ (UNSUPPORTED_COMPRESSION_TYPE)', () => {
    const z = (zlib as unknown as { zstdCompressSync?: (b: Buffer) => Buffer }).zstdCompressSync;
    if (!z) return;
    const b = good({ records: [{ value: 'z' }], compression: 4 });
    expect(code(b, 7)).toBe(0);
    expect(code(b, 6)).toBe(76);
  });

  it('topic names Kafka can never have', () => {
    expect(topicNameProblem('orders.v1_x-y')).toBeNull();
    expect(topicNameProblem('a'.repeat(249))).toBeNull();
    expect(topicNameProblem('a'.repeat(250))).toMatch(/250 characters/);
    expect(topicNameProblem('')).not.toBeNull();
    expect(topicNameProblem('..')).not.toBeNull();
    expect(topicNameProblem('spaces here')).not.toBeNull();
    expect(topicNameProblem('ünïcode')).not.toBeNull();
  });
});
