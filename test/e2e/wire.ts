// Wire helpers for end-to-end tests that need exact bytes: RecordBatch v2 (codec/records.ts), Produce
// frames kept as exact bytes (the same bytes can be written twice), InitProducerId, and a
// Fetch v4 reader that reads what a broker stored. Not a test file itself.
import { expect } from 'vitest';
import { RawConnection } from '../support/raw-kafka.js';
import { waitFor } from '../support/poll.js';
import { ApiKey, requestHeaderVersion } from '../../sidecar/codec/api.js';
import { Writer } from '../../sidecar/codec/writer.js';
import { listBatches, readBatchHeader, type BatchHeader } from '../../sidecar/codec/record-batch.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, encodeProduceRequest } from '../../sidecar/codec/generated/produce-request.js';
import { decodeProduceResponse, type PartitionProduceResponse } from '../../sidecar/codec/generated/produce-response.js';
import { createInitProducerIdRequest, encodeInitProducerIdRequest } from '../../sidecar/codec/generated/init-producer-id-request.js';
import { decodeInitProducerIdResponse } from '../../sidecar/codec/generated/init-producer-id-response.js';
import { encodeRecordBatch, parseRecords, type ParsedRecord, type RecordInput } from '../../sidecar/codec/records.js';

export type Rec = RecordInput;

export interface BatchOpts {
  producerId?: bigint;
  epoch?: number;
  baseSequence?: number;
  timestamp?: bigint;
}

export const PRODUCE_V = 9; // flexible, and v8+ answers carry an error message

/** An uncompressed RecordBatch v2 with a valid CRC-32C (the codec's encoder). */
export const encodeBatch = (records: Rec[], o: BatchOpts = {}): Buffer =>
  encodeRecordBatch({ records, producerId: o.producerId, producerEpoch: o.epoch, baseSequence: o.baseSequence, baseTimestamp: o.timestamp ?? BigInt(Date.now()) });

let nextCorr = 1000;

/** A complete Produce frame (size prefix included): the same bytes can be written twice. */
export function produceFrame(topic: string, partition: number, batch: Buffer, acks = -1, timeoutMs = 10_000): { frame: Buffer; corr: number } {
  return produceFrameMulti(topic, [[partition, batch]], acks, timeoutMs);
}

/** One topic, several partitions (one batch each) in one request. */
export function produceFrameMulti(topic: string, parts: Array<[number, Buffer]>, acks = -1, timeoutMs = 10_000): { frame: Buffer; corr: number } {
  const corr = nextCorr++;
  const w = new Writer(256);
  w.int32(0);
  w.int16(ApiKey.Produce);
  w.int16(PRODUCE_V);
  w.int32(corr);
  w.nullableString('modes-wire');
  if (requestHeaderVersion(ApiKey.Produce, PRODUCE_V) >= 2) w.uvarint(0);
  const req = createProduceRequest();
  req.acks = acks;
  req.timeoutMs = timeoutMs;
  const td = createTopicProduceData();
  td.name = topic;
  for (const [partition, batch] of parts) {
    const pd = createPartitionProduceData();
    pd.index = partition;
    pd.records = Buffer.from(batch); // a private copy: the frame never aliases the caller's batch
    td.partitionData.push(pd);
  }
  req.topicData.push(td);
  encodeProduceRequest(w, req, PRODUCE_V);
  const frame = Buffer.from(w.toBuffer());
  frame.writeInt32BE(frame.length - 4, 0);
  return { frame, corr };
}

export async function readProduceAnswer(c: RawConnection, corr: number, timeoutMs?: number): Promise<PartitionProduceResponse> {
  const { correlationId, body } = await c.receive(ApiKey.Produce, PRODUCE_V, timeoutMs);
  expect(correlationId).toBe(corr);
  const resp = decodeProduceResponse(body, PRODUCE_V);
  expect(resp.responses).toHaveLength(1);
  expect(resp.responses[0].partitionResponses).toHaveLength(1);
  return resp.responses[0].partitionResponses[0];
}

/** Writes the exact frame and waits for its answer. */
export async function sendFrame(c: RawConnection, f: { frame: Buffer; corr: number }): Promise<PartitionProduceResponse> {
  c.write(f.frame);
  return readProduceAnswer(c, f.corr);
}

/**
 * A fresh producer id from the cluster: InitProducerId (null transactional id) through `bootstrap`.
 * Right after start the broker answers COORDINATOR_LOAD_IN_PROGRESS (14) for a while: ask again.
 */
export async function initProducerId(bootstrap: string): Promise<{ producerId: bigint; epoch: number }> {
  const c = await RawConnection.connect(bootstrap);
  try {
    const v = 4;
    return await waitFor('InitProducerId to succeed', async () => {
      c.send(ApiKey.InitProducerId, v, (w) => encodeInitProducerIdRequest(w, { ...createInitProducerIdRequest(), transactionalId: null, transactionTimeoutMs: 60_000, producerId: -1n, producerEpoch: -1 }, v));
      const r = decodeInitProducerIdResponse((await c.receive(ApiKey.InitProducerId, v)).body, v);
      if (r.errorCode !== 0 || r.producerId < 0n) throw new Error(`InitProducerId: error ${r.errorCode}`);
      return { producerId: r.producerId, epoch: r.producerEpoch };
    }, 30_000, 250);
  } finally {
    c.close();
  }
}

export interface StoredBatch {
  header: BatchHeader;
  bytes: Buffer;
  records: ParsedRecord[];
}

/** Every batch of a partition, read with Fetch v4 directly from the broker. */
export async function fetchBatches(bootstrap: string, topic: string, partition: number): Promise<StoredBatch[]> {
  const c = await RawConnection.connect(bootstrap);
  try {
    c.send(ApiKey.Fetch, 4, (w) => {
      w.int32(-1); // replica id
      w.int32(0); // max wait: answer at once
      w.int32(0); // min bytes
      w.int32(8 << 20);
      w.int8(0); // read uncommitted (nothing here is transactional)
      w.int32(1);
      w.string(topic);
      w.int32(1);
      w.int32(partition);
      w.int64(0n);
      w.int32(8 << 20);
    });
    const { body: r } = await c.receive(ApiKey.Fetch, 4);
    r.int32(); // throttle
    expect(r.int32()).toBe(1);
    expect(r.string()).toBe(topic);
    expect(r.int32()).toBe(1);
    expect(r.int32()).toBe(partition);
    const errorCode = r.int16();
    expect(errorCode).toBe(0);
    r.int64(); // high watermark
    r.int64(); // last stable offset
    const aborted = r.int32();
    for (let i = 0; i < aborted; i++) {
      r.int64();
      r.int64();
    }
    const records = r.bytes();
    if (!records) return [];
    return listBatches(records).map(([off, size]) => {
      const bytes = Buffer.from(records.subarray(off, off + size));
      const header = readBatchHeader(bytes, 0);
      return { header, bytes, records: parseRecords(bytes.subarray(61), header.recordsCount) };
    });
  } finally {
    c.close();
  }
}

export const valuesOf = (batches: StoredBatch[]): string[] => batches.flatMap((b) => b.records.map((r) => r.value?.toString() ?? '<null>'));
