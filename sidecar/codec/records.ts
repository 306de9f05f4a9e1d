// The records inside a RecordBatch v2: decoding (dedup keys need keys, values and headers) and
// encoding (tests, benchmarks and fixtures build batches with it instead of by hand).
// Layout, from org.apache.kafka.common.record.DefaultRecord and DefaultRecordBatch:
//   Record => length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
//             keyLength varint, key, valueLength varint, value,
//             headerCount varint, [headerKeyLength varint, headerKey, headerValueLength varint, headerValue]
// All varints are zigzag encoded; a length of -1 is null. The batch header (61 bytes) is
// described in record-batch.ts, which reads and stamps it without touching the records.
import { crc32c, zlib } from './on-demand.js';
import { Attr, BatchOffset, BATCH_HEADER_SIZE, LOG_OVERHEAD } from './record-batch.js';
import { Writer } from './writer.js';

/** Attribute bits 0-2 of a batch: none, gzip, snappy, lz4, zstd. */
export type Compression = 0 | 1 | 2 | 3 | 4;

/** Decompressed records larger than this are not decoded (the caller treats them as opaque). */
export const MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;

export interface RecordHeader {
  key: string;
  value: Buffer | null;
}

export interface ParsedRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeader[];
}

/** Reads a zigzag varint at pos without allocating; returns [value, next position]. */
export function readVarint(buf: Buffer, pos: number): [number, number] {
  let raw = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new RangeError('truncated varint');
    const byte = buf[pos++];
    raw += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) return [raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2, pos];
    mul *= 128;
  }
  throw new RangeError('varint too long');
}

class Cursor {
  constructor(
    readonly buf: Buffer,
    public pos = 0,
  ) {}
  /** Zigzag varint as a number (int32 range; wider values, e.g. timestamp deltas, still decode). */
  varint(): number {
    const [v, next] = readVarint(this.buf, this.pos);
    this.pos = next;
    return v;
  }
  bytes(n: number): Buffer {
    if (n < 0 || this.pos + n > this.buf.length) throw new RangeError('truncated record');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  nullableBytes(): Buffer | null {
    const n = this.varint();
    return n < 0 ? null : this.bytes(n);
  }
}

/** Decodes uncompressed records (views into `records`, no copies); throws RangeError on malformed input. */
export function parseRecords(records: Buffer, count?: number): ParsedRecord[] {
  const c = new Cursor(records);
  const out: ParsedRecord[] = [];
  while (c.pos < records.length && (count === undefined || out.length < count)) {
    const len = c.varint();
    const end = c.pos + len;
    if (len < 0 || end > records.length) throw new RangeError('truncated record');
    c.pos += 1; // attributes
    c.varint(); // timestampDelta
    c.varint(); // offsetDelta
    const key = c.nullableBytes();
    const value = c.nullableBytes();
    const hc = c.varint();
    if (hc < 0 || hc > records.length) throw new RangeError('bad header count');
    const headers: RecordHeader[] = [];
    for (let i = 0; i < hc; i++) {
      const hk = c.bytes(c.varint()).toString('utf8');
      headers.push({ key: hk, value: c.nullableBytes() });
    }
    if (c.pos !== end) throw new RangeError('record length mismatch');
    out.push({ key, value, headers });
  }
  if (count !== undefined && out.length !== count) throw new RangeError(`expected ${count} records, found ${out.length}`);
  return out;
}

type ZstdZlib = {
  zstdDecompressSync?: (b: Buffer, o?: { maxOutputLength?: number }) => Buffer;
  zstdCompressSync?: (b: Buffer) => Buffer;
};

/**
 * The uncompressed records bytes, or null when the codec is not supported here (snappy, lz4,
 * zstd on a Node without zlib zstd) or the data does not decompress within the bound.
 */
export function decompressRecords(recordsSection: Buffer, compression: number): Buffer | null {
  try {
    switch (compression) {
      case 0:
        return recordsSection;
      case 1:
        return zlib().gunzipSync(recordsSection, { maxOutputLength: MAX_DECOMPRESSED_BYTES });
      case 4: {
        const z = zlib() as unknown as ZstdZlib;
        return z.zstdDecompressSync ? z.zstdDecompressSync(recordsSection, { maxOutputLength: MAX_DECOMPRESSED_BYTES }) : null;
      }
      default:
        return null;
    }
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

type Bytes = Buffer | string | null;

export interface RecordInput {
  key?: Bytes;
  value: Bytes;
  headers?: Array<[string, Bytes]>;
  /** Absolute timestamp (ms); defaults to the batch's baseTimestamp. */
  timestamp?: bigint;
}

export interface BatchInput {
  records: RecordInput[];
  /** -1 (the default) for a producer without idempotence. */
  producerId?: bigint;
  producerEpoch?: number;
  baseSequence?: number;
  /** Defaults to the first record's timestamp, else now (as Kafka's MemoryRecordsBuilder does). */
  baseTimestamp?: bigint;
  compression?: Compression;
  transactional?: boolean;
  baseOffset?: bigint;
  partitionLeaderEpoch?: number;
}

const toBytes = (b: Bytes | undefined): Buffer | null => (b === null || b === undefined ? null : typeof b === 'string' ? Buffer.from(b, 'utf8') : b);

function nullableVarBytes(w: Writer, b: Buffer | null): void {
  if (b === null) return w.varint(-1);
  w.varint(b.length);
  w.raw(b);
}

/** The uncompressed records section for `records`, offsets counting from 0. */
export function encodeRecords(records: RecordInput[], baseTimestamp: bigint): Buffer {
  const out = new Writer(256);
  const rec = new Writer(128);
  records.forEach((r, i) => {
    rec.reset();
    rec.int8(0); // attributes: unused by v2 records
    rec.varlong((r.timestamp ?? baseTimestamp) - baseTimestamp);
    rec.varint(i);
    nullableVarBytes(rec, toBytes(r.key));
    nullableVarBytes(rec, toBytes(r.value));
    const hs = r.headers ?? [];
    rec.varint(hs.length);
    for (const [k, v] of hs) {
      nullableVarBytes(rec, Buffer.from(k, 'utf8'));
      nullableVarBytes(rec, toBytes(v));
    }
    const bytes = rec.toBuffer();
    out.varint(bytes.length);
    out.raw(bytes);
  });
  return Buffer.from(out.toBuffer());
}

/** Compresses a records section (gzip, or zstd where this Node has it); other codecs throw. */
function compressRecords(plain: Buffer, compression: Compression): Buffer {
  switch (compression) {
    case 0:
      return plain;
    case 1:
      return zlib().gzipSync(plain);
    case 4: {
      const z = zlib() as unknown as ZstdZlib;
      if (z.zstdCompressSync) return z.zstdCompressSync(plain);
      break;
    }
  }
  throw new RangeError(`compression ${compression} is not supported by this encoder`);
}

/** A complete RecordBatch v2 with a valid CRC-32C, laid out as Kafka's DefaultRecordBatch writes it. */
export function encodeRecordBatch(b: BatchInput): Buffer {
  if (b.records.length === 0) throw new RangeError('a record batch holds at least one record');
  const baseTimestamp = b.baseTimestamp ?? b.records[0].timestamp ?? BigInt(Date.now());
  let maxTimestamp = baseTimestamp;
  for (const r of b.records) if (r.timestamp !== undefined && r.timestamp > maxTimestamp) maxTimestamp = r.timestamp;
  const compression = b.compression ?? 0;
  const section = compressRecords(encodeRecords(b.records, baseTimestamp), compression);

  const batch = Buffer.alloc(BATCH_HEADER_SIZE + section.length);
  batch.writeBigInt64BE(b.baseOffset ?? 0n, BatchOffset.baseOffset);
  batch.writeInt32BE(batch.length - LOG_OVERHEAD, BatchOffset.batchLength);
  batch.writeInt32BE(b.partitionLeaderEpoch ?? -1, BatchOffset.partitionLeaderEpoch);
  batch.writeInt8(2, BatchOffset.magic);
  batch.writeInt16BE(compression | (b.transactional ? Attr.transactional : 0), BatchOffset.attributes);
  batch.writeInt32BE(b.records.length - 1, BatchOffset.lastOffsetDelta);
  batch.writeBigInt64BE(baseTimestamp, BatchOffset.baseTimestamp);
  batch.writeBigInt64BE(maxTimestamp, BatchOffset.maxTimestamp);
  batch.writeBigInt64BE(b.producerId ?? -1n, BatchOffset.producerId);
  batch.writeInt16BE(b.producerEpoch ?? -1, BatchOffset.producerEpoch);
  batch.writeInt32BE(b.baseSequence ?? -1, BatchOffset.baseSequence);
  batch.writeInt32BE(b.records.length, BatchOffset.recordsCount);
  section.copy(batch, BatchOffset.records);
  batch.writeUInt32BE(crc32c(batch.subarray(BatchOffset.attributes)) >>> 0, BatchOffset.crc);
  return batch;
}
