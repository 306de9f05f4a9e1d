/**
 * Dedup keys of a RecordBatch v2 (DESIGN.md "Copies the broker cannot recognise"), each a
 * 128-bit hash: fixed size whatever the input, so the dedup cache is bounded in bytes by its
 * entry count. The hashes (xxHash) are not cryptographic; a key only has to tell an honest
 * client's batches apart (collision odds 2^-64 at 2^32 keys per partition), and a client that
 * wanted to forge a collision could as well send the bytes it wants written. Measured in
 * bench/fingerprint.ts.
 *
 * - `exact` (the default): the batch as the client built it — attributes, lastOffsetDelta,
 *   baseTimestamp, maxTimestamp, recordsCount and the records section, byte for byte and never
 *   decoded. Left out: baseOffset, batchLength, partitionLeaderEpoch, the CRC and
 *   producerId/epoch/baseSequence (the sidecar stamps those in upgrade mode). A client library's
 *   own retry re-sends these bytes; two sends by the application differ at least in their
 *   timestamps, so both are written. It runs for every batch of a non-idempotent producer, so
 *   it is two seeded XXH64 passes over the bytes in place (XXH64 runs at ~20 GB/s here, this
 *   package's xxh3 at ~2.5 GB/s).
 * - `content`: record count, then per record its key, value and headers (not timestampDelta nor
 *   the batch timestamps): also catches an application re-sending the same records, and merges
 *   two legitimate identical events within the window. Compressed batches are decompressed up to
 *   a byte limit; beyond it, or for codecs not decoded here (snappy, lz4), the raw records
 *   section is hashed (a byte-identical copy still matches).
 * - `header`: the configured header's value in every record (hashed, so a 500-record batch of
 *   UUID keys costs 16 bytes, not 27 KB).
 */
import { xxh128, xxh64, zlib } from '../codec/on-demand.js';
import { readVarint } from '../codec/records.js';

/** RecordBatch v2 offsets (KAFKA-NOTES). */
const ATTRIBUTES = 21;
const PRODUCER_ID = 43;
const RECORDS_COUNT = 57;
const RECORDS = 61;

/** A 128-bit fingerprint. */
export type Fingerprint = bigint;

export function exactFingerprint(batch: Buffer): Fingerprint {
  // Bytes 21.. with producer id, epoch and sequence read as -1 (all 0xff): what a producer that
  // is not idempotent sends, so the bytes are hashed where they are; any other value is
  // replaced in a copy (a rare batch) and gets the same key.
  let region = batch.subarray(ATTRIBUTES);
  if (!unstamped(batch)) {
    region = Buffer.from(region);
    region.fill(0xff, PRODUCER_ID - ATTRIBUTES, RECORDS_COUNT - ATTRIBUTES);
  }
  return (xxh64(region, EXACT_SEEDS[0]) << 64n) | xxh64(region, EXACT_SEEDS[1]);
}

/** Two independent seeds: one 128-bit key from two 64-bit hashes. */
const EXACT_SEEDS = [0x9e3779b97f4a7c15n, 0xc2b2ae3d27d4eb4fn] as const;

function unstamped(batch: Buffer): boolean {
  for (let i = PRODUCER_ID; i < RECORDS_COUNT; i++) if (batch[i] !== 0xff) return false;
  return true;
}

/** Hash of head ++ tail without copying the tail: the tail's hash goes in with the head. */
function twoPart(head: Buffer, tail: Buffer, seed: bigint): Fingerprint {
  const t = xxh128(tail, seed);
  const buf = Buffer.allocUnsafe(head.length + 16);
  head.copy(buf, 0);
  buf.writeBigUInt64BE(t >> 64n, head.length);
  buf.writeBigUInt64BE(t & 0xffff_ffff_ffff_ffffn, head.length + 8);
  return xxh128(buf, seed);
}

export interface DecodeLimits {
  /** Decompressed records larger than this are not decoded (content falls back to raw bytes). */
  maxDecompressedBytes: number;
}

export type DecodeResult = { ok: true; records: Buffer } | { ok: false; reason: 'codec' | 'too_large' | 'corrupt' };

/** The uncompressed records section, decompressing gzip/zstd up to the limit. */
export function decodedRecords(recordsSection: Buffer, compression: number, limits: DecodeLimits): DecodeResult {
  if (compression !== 0 && limits.maxDecompressedBytes < 1) return { ok: false, reason: 'too_large' };
  try {
    switch (compression) {
      case 0:
        return { ok: true, records: recordsSection };
      case 1:
        return { ok: true, records: zlib().gunzipSync(recordsSection, { maxOutputLength: limits.maxDecompressedBytes }) };
      case 4: {
        const z = zlib() as unknown as { zstdDecompressSync?: (b: Buffer, o?: { maxOutputLength?: number }) => Buffer };
        if (!z.zstdDecompressSync) return { ok: false, reason: 'codec' };
        return { ok: true, records: z.zstdDecompressSync(recordsSection, { maxOutputLength: limits.maxDecompressedBytes }) };
      }
      default:
        return { ok: false, reason: 'codec' };
    }
  } catch (err) {
    return { ok: false, reason: (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || /maxOutputLength|too large/i.test((err as Error).message) ? 'too_large' : 'corrupt' };
  }
}


export interface ContentFingerprint {
  readonly fingerprint: Fingerprint;
  /** false: the records could not be decoded (codec, size or malformed): the raw section was hashed. */
  readonly decoded: boolean;
}

/**
 * `content` key of a whole batch (header at offset 0). Each record's bytes after its
 * timestampDelta (offsetDelta, key, value, headers: self-delimiting, so their concatenation is
 * unambiguous) are copied into one buffer, hashed once.
 */
export function contentFingerprint(batch: Buffer, limits: DecodeLimits): ContentFingerprint {
  const compression = batch.readInt16BE(ATTRIBUTES) & 0x07;
  const count = batch.readInt32BE(RECORDS_COUNT);
  const section = batch.subarray(RECORDS);
  const plain = decodedRecords(section, compression, limits);
  if (plain.ok) {
    const tails = recordTails(plain.records, count);
    if (tails) return { fingerprint: xxh128(tails, 1n), decoded: true };
  }
  // Attributes + count + the raw records: only a byte-identical records section matches.
  const head = Buffer.allocUnsafe(6);
  head.writeInt16BE(compression, 0);
  head.writeInt32BE(count, 2);
  return { fingerprint: twoPart(head, section, 2n), decoded: false };
}

function recordTails(records: Buffer, count: number): Buffer | null {
  const out = Buffer.allocUnsafe(records.length + 4);
  out.writeInt32BE(count, 0);
  let w = 4;
  let pos = 0;
  let n = 0;
  try {
    while (pos < records.length) {
      const [len, start] = readVarint(records, pos);
      const end = start + len;
      if (len < 1 || end > records.length) return null;
      const [, afterTs] = readVarint(records, start + 1); // skip attributes, then timestampDelta
      if (afterTs > end) return null;
      w += records.copy(out, w, afterTs, end);
      pos = end;
      n++;
    }
  } catch {
    return null;
  }
  return n === count ? out.subarray(0, w) : null;
}

/**
 * `header` key of a whole batch: the hash of every record's value of header `name` (first
 * occurrence; records without it are marked), or null when no record carries it or the records
 * cannot be decoded (`reason` says why).
 */
export function headerFingerprint(batch: Buffer, name: string, limits: DecodeLimits): { fingerprint: Fingerprint } | { fingerprint: null; reason: 'absent' | 'codec' | 'too_large' | 'corrupt' } {
  const compression = batch.readInt16BE(ATTRIBUTES) & 0x07;
  const plain = decodedRecords(batch.subarray(RECORDS), compression, limits);
  if (!plain.ok) return { fingerprint: null, reason: plain.reason };
  const want = Buffer.from(name, 'utf8');
  const parts: Buffer[] = [];
  let found = false;
  const records = plain.records;
  let pos = 0;
  try {
    while (pos < records.length) {
      const [len, start] = readVarint(records, pos);
      const end = start + len;
      if (len < 1 || end > records.length) return { fingerprint: null, reason: 'corrupt' };
      let p = start + 1; // attributes
      [, p] = readVarint(records, p); // timestampDelta
      [, p] = readVarint(records, p); // offsetDelta
      let kl: number;
      [kl, p] = readVarint(records, p);
      if (kl > 0) p += kl;
      let vl: number;
      [vl, p] = readVarint(records, p);
      if (vl > 0) p += vl;
      let hc: number;
      [hc, p] = readVarint(records, p);
      if (hc < 0 || p > end) return { fingerprint: null, reason: 'corrupt' };
      let value: Buffer | null = null;
      for (let i = 0; i < hc; i++) {
        let hk: number;
        [hk, p] = readVarint(records, p);
        if (hk < 0 || p + hk > end) return { fingerprint: null, reason: 'corrupt' };
        const key = records.subarray(p, p + hk);
        p += hk;
        let hv: number;
        [hv, p] = readVarint(records, p);
        if (p + Math.max(hv, 0) > end) return { fingerprint: null, reason: 'corrupt' };
        if (value === null && hv >= 0 && key.equals(want)) value = records.subarray(p, p + hv);
        if (hv > 0) p += hv;
      }
      if (p !== end) return { fingerprint: null, reason: 'corrupt' };
      const lenBuf = Buffer.allocUnsafe(4);
      lenBuf.writeInt32BE(value === null ? -1 : value.length);
      parts.push(lenBuf);
      if (value) {
        parts.push(value);
        found = true;
      }
      pos = end;
    }
  } catch {
    return { fingerprint: null, reason: 'corrupt' };
  }
  if (!found) return { fingerprint: null, reason: 'absent' };
  return { fingerprint: xxh128(Buffer.concat(parts), 3n) };
}
