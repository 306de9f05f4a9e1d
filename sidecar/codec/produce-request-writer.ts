// The sidecar's own Produce requests (upgrade mode), written straight from the batches it holds:
// no generated request objects per send (createProduceRequest & co. showed per batch in
// allocation profiles). A request is written in this order:
//   produceHead, then per topic: produceTopic, producePartition per partition, produceTopicEnd;
//   then produceEnd.
// The bytes are encodeProduceRequest's for a request with no transactional id and no tagged
// fields, v3-13 (produce-request-writer.test.ts compares them); record batches go through
// Writer.compactBytes/bytes, so a Writer with keepLarge sends them by reference.
import { CodecError } from './reader.js';
import type { Writer } from './writer.js';

/** The first flexible version (compact strings, arrays and bytes; tagged fields). */
const FLEXIBLE = 9;

/** Request level up to the topic array's length: a null transactional id, acks, timeout. */
export function produceHead(w: Writer, version: number, acks: number, timeoutMs: number, topicCount: number): void {
  if (version < 3 || version > 13) throw new CodecError(`ProduceRequest version ${version} is outside the supported range 3-13`);
  const flexible = version >= FLEXIBLE;
  if (flexible) w.uvarint(0);
  else w.int16(-1);
  w.int16(acks);
  w.int32(timeoutMs);
  arrayLength(w, flexible, topicCount);
}

/** A topic, named by name up to v12 and by id from v13 (KIP-516), up to its partition array's length. */
export function produceTopic(w: Writer, version: number, name: string, id: Buffer, partitionCount: number): void {
  const flexible = version >= FLEXIBLE;
  if (version >= 13) w.uuid(id);
  else if (flexible) w.compactString(name);
  else w.string(name);
  arrayLength(w, flexible, partitionCount);
}

/** One partition's record batch. */
export function producePartition(w: Writer, version: number, index: number, records: Buffer): void {
  w.int32(index);
  if (version >= FLEXIBLE) {
    w.compactBytes(records);
    w.uvarint(0); // no tagged fields
  } else w.bytes(records);
}

export function produceTopicEnd(w: Writer, version: number): void {
  if (version >= FLEXIBLE) w.uvarint(0); // no tagged fields
}

export function produceEnd(w: Writer, version: number): void {
  if (version >= FLEXIBLE) w.uvarint(0); // no tagged fields
}

function arrayLength(w: Writer, flexible: boolean, n: number): void {
  if (flexible) w.uvarint(n + 1);
  else w.int32(n);
}
