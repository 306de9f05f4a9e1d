// RecordBatch v2 (magic 2) header view and in-place idempotence stamping.
// Only the 61-byte header is read or written: the records (possibly compressed) are never
// decoded, and stamping patches the CRC instead of reading them again: no copy, no pass.

import { crc32c } from './on-demand.js';
import { CodecError, int64At, int8At } from './reader.js';
import { patchCrc32c } from './crc32c-patch.js';

/** Byte offsets inside a v2 batch (see KAFKA-NOTES.md). */
export const BatchOffset = {
  baseOffset: 0,
  batchLength: 8,
  partitionLeaderEpoch: 12,
  magic: 16,
  crc: 17,
  attributes: 21,
  lastOffsetDelta: 23,
  baseTimestamp: 27,
  maxTimestamp: 35,
  producerId: 43,
  producerEpoch: 51,
  baseSequence: 53,
  recordsCount: 57,
  records: 61,
} as const;

export const BATCH_HEADER_SIZE = 61;
/** baseOffset + batchLength: the part of a batch not counted by batchLength. */
export const LOG_OVERHEAD = 12;

export const Attr = {
  compressionMask: 0x07,
  timestampType: 0x08,
  transactional: 0x10,
  control: 0x20,
  deleteHorizon: 0x40,
} as const;

/**
 * The header fields the sidecar reads (one object per batch of every produce request). The rest
 * is left out: nothing reads them, and each int64 is a BigInt allocated per batch (part-check.ts
 * checks baseOffset, batchLength and the control bit in place; BatchOffset + int64At read any
 * field where needed). The magic byte is 2, checked.
 */
export interface BatchHeader {
  /** Stored CRC-32C, unsigned. */
  crc: number;
  attributes: number;
  /** 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd. */
  compression: number;
  lastOffsetDelta: number;
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
  recordsCount: number;
  isTransactional: boolean;
}

/** The magic byte of the batch at off (at offset 16 in every message format). */
export function batchMagic(buf: Buffer, off = 0): number {
  if (buf.length - off < BatchOffset.magic + 1) throw new CodecError(`record batch at ${off} too short to hold a magic byte`);
  return int8At(buf, off + BatchOffset.magic);
}

/** Total size in bytes of the batch at off (12 + batchLength), checked against the buffer. */
export function batchSize(buf: Buffer, off = 0): number {
  if (buf.length - off < LOG_OVERHEAD) throw new CodecError(`record batch at ${off}: ${buf.length - off} bytes left, need ${LOG_OVERHEAD} for offset and length`);
  const len = buf.readInt32BE(off + BatchOffset.batchLength);
  // 5 bytes reach the magic byte, which every format has at the same place
  if (len < BatchOffset.magic + 1 - LOG_OVERHEAD) throw new CodecError(`record batch at ${off}: invalid batchLength ${len}`);
  if (len > buf.length - off - LOG_OVERHEAD) {
    throw new CodecError(`record batch at ${off}: batchLength ${len} runs past the end (${buf.length - off - LOG_OVERHEAD} bytes left)`);
  }
  return LOG_OVERHEAD + len;
}

function checkV2(buf: Buffer, off: number): number {
  const size = batchSize(buf, off);
  if (size < BATCH_HEADER_SIZE) throw new CodecError(`record batch at ${off}: ${size} bytes is shorter than a v2 header`);
  const magic = int8At(buf, off + BatchOffset.magic);
  if (magic !== 2) throw new CodecError(`record batch at ${off}: magic ${magic} is not 2`);
  return size;
}

export function readBatchHeader(buf: Buffer, off = 0): BatchHeader {
  checkV2(buf, off);
  const attributes = buf.readInt16BE(off + BatchOffset.attributes);
  return {
    crc: buf.readUInt32BE(off + BatchOffset.crc),
    attributes,
    compression: attributes & Attr.compressionMask,
    lastOffsetDelta: buf.readInt32BE(off + BatchOffset.lastOffsetDelta),
    producerId: int64At(buf, off + BatchOffset.producerId),
    producerEpoch: buf.readInt16BE(off + BatchOffset.producerEpoch),
    baseSequence: buf.readInt32BE(off + BatchOffset.baseSequence),
    recordsCount: buf.readInt32BE(off + BatchOffset.recordsCount),
    isTransactional: (attributes & Attr.transactional) !== 0,
  };
}

/**
 * Yields [offset, length] of each batch in a records blob (a Produce partition's Records).
 * Throws CodecError when a batch is truncated or its length is invalid.
 */
export function* iterateBatches(records: Buffer): Generator<[number, number]> {
  let off = 0;
  while (off < records.length) {
    const size = batchSize(records, off);
    yield [off, size];
    off += size;
  }
}

/** Same as iterateBatches, as an array (cheaper when the caller needs them all). */
export function listBatches(records: Buffer): [number, number][] {
  const out: [number, number][] = [];
  for (let off = 0; off < records.length; ) {
    const size = batchSize(records, off);
    out.push([off, size]);
    off += size;
  }
  return out;
}

/** CRC-32C of bytes [21, end) of the batch at the start of `batch`. */
export function computeCrc(batch: Buffer): number {
  const size = checkV2(batch, 0);
  return crc32c(batch.subarray(BatchOffset.attributes, size)) >>> 0;
}

export function verifyCrc(batch: Buffer): boolean {
  return computeCrc(batch) === batch.readUInt32BE(BatchOffset.crc);
}

/** The new producerId, producerEpoch and baseSequence bytes of a stamp (one buffer, reused). */
const STAMP = Buffer.alloc(BatchOffset.recordsCount - BatchOffset.producerId);
/** The producer id STAMP holds (writing a bigint allocates; stamps mostly repeat the id). */
let stampedId: bigint | undefined;

/**
 * Writes producerId, producerEpoch and baseSequence into the v2 batch at the start of
 * `batch` (in place) and updates its CRC. Nothing else changes: the records, their
 * compression and every other header field stay byte-identical. Returns the new CRC.
 * The CRC is patched from the stored one (crc32c-patch.ts), without reading the records again:
 * the batch's CRC was checked when it came in (part-check.ts), and a stored CRC that was wrong
 * would stay wrong, so the broker still refuses a damaged batch.
 */
export function stampIdempotence(batch: Buffer, producerId: bigint, epoch: number, baseSequence: number): number {
  const size = checkV2(batch, 0);
  if (producerId !== stampedId) {
    STAMP.writeBigInt64BE(producerId, 0);
    stampedId = producerId;
  }
  STAMP.writeInt16BE(epoch, BatchOffset.producerEpoch - BatchOffset.producerId);
  STAMP.writeInt32BE(baseSequence, BatchOffset.baseSequence - BatchOffset.producerId);
  const crc = patchCrc32c(batch.readUInt32BE(BatchOffset.crc), batch, STAMP, size - BatchOffset.recordsCount, BatchOffset.producerId);
  STAMP.copy(batch, BatchOffset.producerId);
  batch.writeUInt32BE(crc, BatchOffset.crc);
  return crc;
}
