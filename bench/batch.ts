// Builds a minimal RecordBatch v2 (one record) with a given producer id/epoch/sequence,
// for the session-memory benchmark. Layout per KAFKA-NOTES.md.
import { Writer } from '../sidecar/codec/writer.js';
import { computeCrc } from '../sidecar/codec/record-batch.js';

export function buildBatch(producerId: bigint, epoch: number, baseSequence: number, value: Buffer, now = BigInt(Date.now())): Buffer {
  const rec = new Writer(64 + value.length);
  rec.int8(0); // attributes
  rec.varlong(0n); // timestamp delta
  rec.varint(0); // offset delta
  rec.varint(-1); // null key
  rec.varint(value.length);
  rec.raw(value);
  rec.varint(0); // headers
  const body = rec.toBuffer();
  const w = new Writer(128 + body.length);
  w.int64(0n);
  w.int32(0); // batchLength, patched
  w.int32(-1); // partitionLeaderEpoch
  w.int8(2);
  w.int32(0); // crc, patched
  w.int16(0); // attributes
  w.int32(0); // lastOffsetDelta
  w.int64(now);
  w.int64(now);
  w.int64(producerId);
  w.int16(epoch);
  w.int32(baseSequence);
  w.int32(1);
  w.varint(body.length);
  w.raw(body);
  const out = Buffer.from(w.toBuffer());
  out.writeInt32BE(out.length - 12, 8);
  out.writeUInt32BE(computeCrc(out), 17);
  return out;
}
