// The three modes on the wire (DESIGN.md "Modes"), with hand-built Produce frames on a real
// broker: exact re-sends, sequence gaps, app-level retries, what the broker stores (read back
// with a raw Fetch straight from the broker, never through the sidecar) and the metrics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { RawConnection } from '../support/raw-kafka.js';
import { ApiKey, requestHeaderVersion } from '../../sidecar/codec/api.js';
import { Writer } from '../../sidecar/codec/writer.js';
import { computeCrc, listBatches, readBatchHeader, verifyCrc, type BatchHeader } from '../../sidecar/codec/record-batch.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, encodeProduceRequest } from '../../sidecar/codec/generated/produce-request.js';
import { decodeProduceResponse, type PartitionProduceResponse } from '../../sidecar/codec/generated/produce-response.js';
import { createInitProducerIdRequest, encodeInitProducerIdRequest } from '../../sidecar/codec/generated/init-producer-id-request.js';
import { decodeInitProducerIdResponse } from '../../sidecar/codec/generated/init-producer-id-response.js';
import { parseRecords, type ParsedRecord } from '../../sidecar/idempotence/dedup.js';

// ---------------------------------------------------------------------------------------------
// Wire helpers: a RecordBatch v2 encoder, Produce frames kept as exact bytes, a Fetch v4 reader.
// ---------------------------------------------------------------------------------------------

interface Rec {
  key?: string | null;
  value: string | null;
  headers?: Array<[string, string]>;
}

interface BatchOpts {
  producerId?: bigint;
  epoch?: number;
  baseSequence?: number;
  timestamp?: bigint;
}

const PRODUCE_V = 9; // flexible, and v8+ answers carry an error message

function nullableVarBytes(w: Writer, s: string | null | undefined): void {
  if (s === null || s === undefined) return w.varint(-1);
  const b = Buffer.from(s, 'utf8');
  w.varint(b.length);
  w.raw(b);
}

/** An uncompressed RecordBatch v2 with a valid CRC-32C. */
function encodeBatch(records: Rec[], o: BatchOpts = {}): Buffer {
  const body = new Writer(256);
  records.forEach((r, i) => {
    const rec = new Writer(64);
    rec.int8(0); // attributes
    rec.varlong(0n); // timestampDelta
    rec.varint(i); // offsetDelta
    nullableVarBytes(rec, r.key);
    nullableVarBytes(rec, r.value);
    const hs = r.headers ?? [];
    rec.varint(hs.length);
    for (const [k, v] of hs) {
      nullableVarBytes(rec, k);
      nullableVarBytes(rec, v);
    }
    const bytes = rec.toBuffer();
    body.varint(bytes.length);
    body.raw(bytes);
  });
  const ts = o.timestamp ?? BigInt(Date.now());
  const w = new Writer(128);
  w.int64(0n); // baseOffset
  w.int32(0); // batchLength, below
  w.int32(-1); // partitionLeaderEpoch
  w.int8(2); // magic
  w.uint32(0); // crc, below
  w.int16(0); // attributes: no compression, CreateTime, not transactional
  w.int32(records.length - 1); // lastOffsetDelta
  w.int64(ts);
  w.int64(ts);
  w.int64(o.producerId ?? -1n);
  w.int16(o.epoch ?? -1);
  w.int32(o.baseSequence ?? -1);
  w.int32(records.length);
  w.raw(body.toBuffer());
  const batch = Buffer.from(w.toBuffer());
  batch.writeInt32BE(batch.length - 12, 8);
  batch.writeUInt32BE(computeCrc(batch), 17);
  return batch;
}

let nextCorr = 1000;

/** A complete Produce frame (size prefix included): the same bytes can be written twice. */
function produceFrame(topic: string, partition: number, batch: Buffer, acks = -1): { frame: Buffer; corr: number } {
  const corr = nextCorr++;
  const w = new Writer(batch.length + 128);
  w.int32(0);
  w.int16(ApiKey.Produce);
  w.int16(PRODUCE_V);
  w.int32(corr);
  w.nullableString('modes-wire');
  if (requestHeaderVersion(ApiKey.Produce, PRODUCE_V) >= 2) w.uvarint(0);
  const req = createProduceRequest();
  req.acks = acks;
  req.timeoutMs = 10_000;
  const td = createTopicProduceData();
  td.name = topic;
  const pd = createPartitionProduceData();
  pd.index = partition;
  pd.records = Buffer.from(batch); // a private copy: the frame never aliases the caller's batch
  td.partitionData.push(pd);
  req.topicData.push(td);
  encodeProduceRequest(w, req, PRODUCE_V);
  const frame = Buffer.from(w.toBuffer());
  frame.writeInt32BE(frame.length - 4, 0);
  return { frame, corr };
}

async function readProduceAnswer(c: RawConnection, corr: number): Promise<PartitionProduceResponse> {
  const { correlationId, body } = await c.receive(ApiKey.Produce, PRODUCE_V);
  expect(correlationId).toBe(corr);
  const resp = decodeProduceResponse(body, PRODUCE_V);
  expect(resp.responses).toHaveLength(1);
  expect(resp.responses[0].partitionResponses).toHaveLength(1);
  return resp.responses[0].partitionResponses[0];
}

/** Writes the exact frame and waits for its answer. */
async function sendFrame(c: RawConnection, f: { frame: Buffer; corr: number }): Promise<PartitionProduceResponse> {
  c.write(f.frame);
  return readProduceAnswer(c, f.corr);
}

/** A fresh producer id from the cluster: InitProducerId (null transactional id) through `bootstrap`. */
async function initProducerId(bootstrap: string): Promise<{ producerId: bigint; epoch: number }> {
  const c = await RawConnection.connect(bootstrap);
  try {
    const v = 4;
    c.send(ApiKey.InitProducerId, v, (w) => encodeInitProducerIdRequest(w, { ...createInitProducerIdRequest(), transactionalId: null, transactionTimeoutMs: 60_000, producerId: -1n, producerEpoch: -1 }, v));
    const { body } = await c.receive(ApiKey.InitProducerId, v);
    const r = decodeInitProducerIdResponse(body, v);
    expect(r.errorCode).toBe(0);
    expect(r.producerId >= 0n).toBe(true);
    return { producerId: r.producerId, epoch: r.producerEpoch };
  } finally {
    c.close();
  }
}

interface StoredBatch {
  header: BatchHeader;
  bytes: Buffer;
  records: ParsedRecord[];
}

/** Every batch of a partition, read with Fetch v4 directly from the broker. */
async function fetchBatches(bootstrap: string, topic: string, partition: number): Promise<StoredBatch[]> {
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

const valuesOf = (batches: StoredBatch[]): string[] => batches.flatMap((b) => b.records.map((r) => r.value?.toString() ?? '<null>'));

/** A topic's first produce can meet NOT_LEADER_OR_FOLLOWER for a moment: write one marker directly until the broker takes it. */
async function warmUp(topic: string, partition = 0): Promise<void> {
  const c = await RawConnection.connect(kafka.bootstrap);
  try {
    await expect
      .poll(async () => (await sendFrame(c, produceFrame(topic, partition, encodeBatch([{ value: 'warmup' }])))).errorCode, { timeout: 20_000, interval: 200 })
      .toBe(0);
  } finally {
    c.close();
  }
}

async function newTopic(name: string, partitions = 1): Promise<string> {
  await kafka.createTopic(name, partitions, 1);
  for (let p = 0; p < partitions; p++) await warmUp(name, p);
  return name;
}

const written = (batches: StoredBatch[]): string[] => valuesOf(batches).filter((v) => v !== 'warmup');

// ---------------------------------------------------------------------------------------------

let kafka: KafkaCluster;
const sidecars: Sidecar[] = [];
let tmp: string;

beforeAll(async () => {
  kafka = await startKafka({ brokers: 1 });
  tmp = mkdtempSync(path.join(os.tmpdir(), 'idempo-modes-wire-'));
});

afterAll(async () => {
  await Promise.all(sidecars.map((s) => s.stop()));
  await kafka?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function sidecar(opts: Parameters<typeof startSidecar>[0]): Promise<Sidecar> {
  const s = await startSidecar(opts);
  sidecars.push(s);
  return s;
}

function policyFile(name: string, spec: Record<string, unknown>): string {
  const f = path.join(tmp, `${name}.json`);
  writeFileSync(f, JSON.stringify({ selector: {}, kafka: { bootstrapServers: [kafka.bootstrap] }, ...spec }));
  return f;
}

const threeRecords = (tag: string): Rec[] => [0, 1, 2].map((i) => ({ key: `k${i}`, value: `${tag}-${i}`, headers: [['h', `v${i}`]] }));

describe('observe: counts, never changes a byte', () => {
  let obs: Sidecar;
  beforeAll(async () => {
    obs = await sidecar({ upstream: kafka.bootstrap, mode: 'observe' });
  });

  it('a batch through the sidecar is stored byte for byte like the same batch sent directly', async () => {
    const topic = await newTopic('obs-bytes', 2);
    const batch = encodeBatch(threeRecords('same'));
    const viaSidecar = await RawConnection.connect(obs.bootstrap);
    const direct = await RawConnection.connect(kafka.bootstrap);
    try {
      expect((await sendFrame(viaSidecar, produceFrame(topic, 0, batch))).errorCode).toBe(0);
      expect((await sendFrame(direct, produceFrame(topic, 1, batch))).errorCode).toBe(0);
    } finally {
      viaSidecar.close();
      direct.close();
    }
    const [a] = (await fetchBatches(kafka.bootstrap, topic, 0)).filter((b) => b.header.recordsCount === 3);
    const [b] = (await fetchBatches(kafka.bootstrap, topic, 1)).filter((b) => b.header.recordsCount === 3);
    // Everything from the magic byte on (CRC, attributes, timestamps, producer fields, records) is
    // what the client sent; only baseOffset and partitionLeaderEpoch are the broker's.
    expect(a.bytes.subarray(16).equals(batch.subarray(16))).toBe(true);
    expect(b.bytes.subarray(16).equals(batch.subarray(16))).toBe(true);
    expect(a.header.crc).toBe(b.header.crc);
    expect(a.header.producerId).toBe(-1n);
    expect(a.header.baseSequence).toBe(-1);
    expect(a.records.map((r) => r.value?.toString())).toEqual(['same-0', 'same-1', 'same-2']);
    expect(await obs.metric('idempo_upgraded_batches_total')).toBe(0);
    expect(await obs.metric('idempo_produce_batches_total', { topic, outcome: 'written' })).toBe(1);
  });

  it('an exact re-send is a duplicate (the broker answers it), a gap is out of sequence (the broker answers it)', async () => {
    const topic = await newTopic('obs-seq');
    const { producerId, epoch } = await initProducerId(obs.bootstrap);
    const first = produceFrame(topic, 0, encodeBatch(threeRecords('obs'), { producerId, epoch, baseSequence: 0 }));
    const c = await RawConnection.connect(obs.bootstrap);
    try {
      const a = await sendFrame(c, first);
      expect(a.errorCode).toBe(0);
      const again = await sendFrame(c, first);
      // KAFKA-NOTES: a duplicate is answered NONE with the ORIGINAL base offset, nothing written.
      expect(again.errorCode).toBe(0);
      expect(again.baseOffset).toBe(a.baseOffset);
      expect(await obs.metric('idempo_duplicates_rejected_total', { topic })).toBe(1);

      const gap = await sendFrame(c, produceFrame(topic, 0, encodeBatch([{ value: 'gap' }], { producerId, epoch, baseSequence: 10 })));
      expect(gap.errorCode).toBe(45); // OUT_OF_ORDER_SEQUENCE_NUMBER
      expect(gap.errorMessage ?? '').not.toMatch(/^idempo:/); // observe never answers itself
      expect(await obs.metric('idempo_out_of_sequence_total', { topic })).toBe(1);
    } finally {
      c.close();
    }
    const stored = (await fetchBatches(kafka.bootstrap, topic, 0)).filter((b) => b.header.producerId === producerId);
    expect(stored).toHaveLength(1);
    expect(written(stored)).toEqual(['obs-0', 'obs-1', 'obs-2']);
    // The producer's own stamp, untouched.
    expect(stored[0].header.baseSequence).toBe(0);
    expect(stored[0].header.producerEpoch).toBe(epoch);
    // One batch each way: the copy was not written, the gap was refused by the broker.
    expect(await obs.metric('idempo_produce_batches_total', { topic, outcome: 'written' })).toBe(1);
    expect(await obs.metric('idempo_produce_batches_total', { topic, outcome: 'duplicate' })).toBe(1);
    expect(await obs.metric('idempo_produce_batches_total', { topic, outcome: 'out_of_sequence' })).toBe(1);
  });
});
