// What a broker checks in one partition's records of a Produce request v3+ before it appends
// them, checked here first so that a malformed part gets the broker's error from the sidecar
// and never reaches the session table or the sequencer (where it could leave a partition in
// flight for good). The error for each case is the one Kafka gives (4.x):
// - ProduceRequest.validateRecords: no batch, more than one batch, magic != 2 → INVALID_RECORD;
//   zstd before Produce v7 → UNSUPPORTED_COMPRESSION_TYPE.
// - ByteBufferLogInputStream / DefaultRecordBatch.ensureValid: a length below the v2 header,
//   an unknown magic, a CRC mismatch → CORRUPT_MESSAGE (the batch is damaged, not invalid).
// - UnifiedLog.analyzeAndValidateRecords: baseOffset != 0 from a client → INVALID_RECORD.
// - LogValidator.validateBatch (client origin): lastOffsetDelta < 0, count <= 0, count !=
//   lastOffsetDelta + 1, a control batch, producerId >= 0 with baseSequence < 0 → INVALID_RECORD.
// - DefaultRecord.readFrom: fewer bytes than `count` records can hold → INVALID_RECORD.
// - Topic names: a name Kafka can never have (empty, over 249 chars, other than [a-zA-Z0-9._-])
//   → INVALID_TOPIC_EXCEPTION (Topic.validate).
import { ErrorCode } from '../codec/errors.js';
import { int64At, int8At } from '../codec/reader.js';
import { Attr, BATCH_HEADER_SIZE, BatchOffset, LOG_OVERHEAD, readBatchHeader, verifyCrc as crcMatches, type BatchHeader } from '../codec/record-batch.js';

/** What a broker would answer for a malformed part (PartBatch.invalid). */
export class PartProblem {
  constructor(
    readonly errorCode: number,
    readonly message: string,
  ) {}
}

/** The batch's header when the part is valid (no wrapper object per part: this runs for every batch). */
export type PartCheck = BatchHeader | PartProblem;

/** The smallest v2 record: length, attributes, timestampDelta, offsetDelta, key and value lengths, header count (1 byte each). */
const MIN_RECORD_BYTES = 7;
/** Zstd in Produce requests needs v7+ (KIP-110). */
const ZSTD_MIN_VERSION = 7;

const bad = (errorCode: number, message: string): PartProblem => new PartProblem(errorCode, message);

/**
 * Checks one partition's records of a Produce request v3+ (for v0–2, message sets, see the engine):
 * its header, or the broker's error (`instanceof PartProblem`).
 * `verifyCrc` false skips the one check that reads every byte: observe mode forwards every batch
 * untouched and the broker checks the CRC itself (a damaged batch is answered CORRUPT_MESSAGE and
 * drops out of the session table like any failed batch).
 */
export function checkPart(records: Buffer | null, version: number, verifyCrc = true): PartCheck {
  if (!records || records.length < LOG_OVERHEAD) return bad(ErrorCode.INVALID_RECORD, 'no record batch');
  const batchLength = records.readInt32BE(BatchOffset.batchLength);
  if (batchLength < BatchOffset.magic + 1 - LOG_OVERHEAD) return bad(ErrorCode.CORRUPT_MESSAGE, `record batch length ${batchLength} is below the minimum`);
  if (records.length - LOG_OVERHEAD < batchLength) return bad(ErrorCode.INVALID_RECORD, `record batch of ${batchLength + LOG_OVERHEAD} bytes truncated to ${records.length}`);
  const magic = int8At(records, BatchOffset.magic);
  if (magic !== 2) return magicError(magic);
  if (batchLength + LOG_OVERHEAD < BATCH_HEADER_SIZE) return bad(ErrorCode.CORRUPT_MESSAGE, `record batch of ${batchLength + LOG_OVERHEAD} bytes is shorter than its header`);
  if (records.length !== batchLength + LOG_OVERHEAD) return bad(ErrorCode.INVALID_RECORD, 'Produce v3+ carries exactly one record batch per partition');
  if (verifyCrc && !crcMatches(records)) return bad(ErrorCode.CORRUPT_MESSAGE, 'record batch CRC mismatch');
  const h = readBatchHeader(records, 0);
  if (h.compression > 4) return bad(ErrorCode.CORRUPT_MESSAGE, `unknown compression codec ${h.compression}`);
  if (h.compression === 4 && version < ZSTD_MIN_VERSION) return bad(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, `zstd needs Produce v${ZSTD_MIN_VERSION}+`);
  if (records.readInt32BE(BatchOffset.baseOffset) !== 0 || records.readInt32BE(BatchOffset.baseOffset + 4) !== 0) {
    return bad(ErrorCode.INVALID_RECORD, `baseOffset ${int64At(records, BatchOffset.baseOffset)} of a client batch must be 0`);
  }
  if (h.lastOffsetDelta < 0) return bad(ErrorCode.INVALID_RECORD, `invalid offset range (lastOffsetDelta ${h.lastOffsetDelta})`);
  if (h.recordsCount <= 0) return bad(ErrorCode.INVALID_RECORD, `invalid record count ${h.recordsCount}`);
  if (h.recordsCount !== h.lastOffsetDelta + 1) return bad(ErrorCode.INVALID_RECORD, `record count ${h.recordsCount} does not match lastOffsetDelta ${h.lastOffsetDelta}`);
  if ((h.attributes & Attr.control) !== 0) return bad(ErrorCode.INVALID_RECORD, 'clients may not write control batches');
  if (h.producerId >= 0n && h.baseSequence < 0) return bad(ErrorCode.INVALID_RECORD, `invalid sequence ${h.baseSequence} with producerId ${h.producerId}`);
  if (h.compression !== 0 && !codecMagicOk(records, h.compression)) return bad(ErrorCode.CORRUPT_MESSAGE, `compressed records do not start like ${CODEC_NAMES[h.compression]} data`);
  if (h.compression === 0 && h.recordsCount > (records.length - BATCH_HEADER_SIZE) / MIN_RECORD_BYTES) {
    return bad(ErrorCode.INVALID_RECORD, `${h.recordsCount} records cannot fit in ${records.length - BATCH_HEADER_SIZE} bytes`);
  }
  return h;
}

const CODEC_NAMES = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];

/**
 * Whether compressed records start the way their codec's stream does (gzip 1f 8b, an LZ4 or zstd
 * frame, or a skippable frame before it): garbage is caught without decompressing anything.
 * Snappy has no check here (Kafka reads framed and unframed snappy alike); a stream that starts
 * right and breaks later is the broker's to judge.
 */
function codecMagicOk(batch: Buffer, compression: number): boolean {
  const at = BATCH_HEADER_SIZE;
  if (compression === 2) return true;
  if (batch.length < at + 4) return false;
  if (compression === 1) return batch[at] === 0x1f && batch[at + 1] === 0x8b;
  const m = batch.readUInt32LE(at);
  if ((m & 0xfffffff0) === 0x184d2a50) return true; // skippable frame (LZ4 and zstd)
  return compression === 3 ? m === 0x184d2204 : m === 0xfd2fb528;
}

function magicError(magic: number): PartCheck {
  if (magic === 0 || magic === 1) return bad(ErrorCode.INVALID_RECORD, `Produce v3+ carries record batches with magic 2, not ${magic}`);
  return bad(ErrorCode.CORRUPT_MESSAGE, `invalid magic ${magic}`);
}

/** Kafka's limit on topic names (Topic.MAX_NAME_LENGTH). */
export const MAX_TOPIC_NAME = 249;

/** Why a topic name can never exist in Kafka, or null when it can. */
export function topicNameProblem(name: string): string | null {
  if (name.length === 0) return 'empty topic name';
  if (name.length > MAX_TOPIC_NAME) return `topic name of ${name.length} characters (at most ${MAX_TOPIC_NAME})`;
  if (name === '.' || name === '..') return `topic name "${name}"`;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const legal = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x5f || c === 0x2d;
    if (!legal) return 'topic name with characters other than [a-zA-Z0-9._-]';
  }
  return null;
}
