// The three modes on the wire (DESIGN.md "Modes"), with hand-built Produce frames on a real
// broker: exact re-sends, sequence gaps, app-level retries, what the broker stores (read back
// with a raw Fetch straight from the broker, never through the sidecar) and the metrics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { SIDECAR_BIN, startSidecar, type Sidecar } from '../support/sidecar.js';
import { kafkajsProduce } from '../support/clients/kafkajs.js';
import { runProcess } from '../support/clients/run.js';
import { RawConnection } from '../support/raw-kafka.js';
import { createMetadataRequest, createMetadataRequestTopic, encodeMetadataRequest } from '../../sidecar/codec/generated/metadata-request.js';
import { encodeBatch, fetchBatches, initProducerId, produceFrame, produceFrameMulti, readProduceAnswer, sendFrame, valuesOf, PRODUCE_V, type Rec, type StoredBatch } from './wire.js';
import { ApiKey } from '../../sidecar/codec/api.js';
import { Writer } from '../../sidecar/codec/writer.js';
import { verifyCrc } from '../../sidecar/codec/record-batch.js';
import { decodeProduceResponse, type PartitionProduceResponse } from '../../sidecar/codec/generated/produce-response.js';

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
  await metadataThroughSidecars(name);
  return name;
}

/**
 * What a real client does before it produces: a Metadata request for the topic, through each
 * sidecar, which learns the topic from the broker's answer (metric labels name only topics a
 * broker has vouched for; others count as topic="_unknown").
 */
async function metadataThroughSidecars(topic: string): Promise<void> {
  for (const s of sidecars) {
    if (s.proc.exitCode !== null || s.proc.signalCode !== null) continue; // stopped by its test
    const c = await RawConnection.connect(s.bootstrap);
    try {
      const req = createMetadataRequest();
      const t = createMetadataRequestTopic();
      t.name = topic;
      req.topics = [t];
      c.send(ApiKey.Metadata, 12, (w) => encodeMetadataRequest(w, req, 12));
      await c.receive(ApiKey.Metadata, 12);
    } finally {
      c.close();
    }
  }
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


/** Sends the same batch as two Produce requests in one socket write (the copy arrives while the original is in flight). */
async function sendTwiceInOneWrite(bootstrap: string, topic: string, batch: Buffer): Promise<[PartitionProduceResponse, PartitionProduceResponse]> {
  const c = await RawConnection.connect(bootstrap);
  try {
    const a = produceFrame(topic, 0, batch);
    const b = produceFrame(topic, 0, batch);
    c.write(Buffer.concat([a.frame, b.frame]));
    return [await readProduceAnswer(c, a.corr), await readProduceAnswer(c, b.corr)];
  } finally {
    c.close();
  }
}

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
      expect(gap.errorMessage).toBeNull(); // the broker's 45 carries no message; the sidecar's says "idempo: ..."
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
    await expect.poll(() => obs.metric('idempo_producer_sessions')).toBe(1);
  });
});

describe('observe with dedup.strategy content: app-level copies are counted, and still written', () => {
  it('the same non-idempotent batch twice: +1 duplicate, two writes, bytes untouched', async () => {
    const sc = await sidecar({ upstream: kafka.bootstrap, config: policyFile('observe-content', { mode: 'observe', dedup: { strategy: 'content', window: '5m' } }) });
    const topic = await newTopic('obs-content');
    const batch = encodeBatch(threeRecords('seen'));
    const c = await RawConnection.connect(sc.bootstrap);
    try {
      const a = await sendFrame(c, produceFrame(topic, 0, batch));
      const b = await sendFrame(c, produceFrame(topic, 0, batch));
      expect([a.errorCode, b.errorCode]).toEqual([0, 0]);
      expect(b.baseOffset).toBe(a.baseOffset + 3n);
    } finally {
      c.close();
    }
    const stored = (await fetchBatches(kafka.bootstrap, topic, 0)).filter((x) => x.header.recordsCount === 3);
    expect(written(stored)).toEqual(['seen-0', 'seen-1', 'seen-2', 'seen-0', 'seen-1', 'seen-2']);
    expect(stored.every((x) => x.bytes.subarray(16).equals(batch.subarray(16)))).toBe(true);
    expect(await sc.metric('idempo_duplicates_rejected_total', { topic })).toBe(1);
    expect(await sc.metric('idempo_produce_batches_total', { topic, outcome: 'written' })).toBe(2);
  });
});

// enforce, and upgrade for producers that are already idempotent, answer copies and gaps themselves.
describe.each(['enforce', 'upgrade'] as const)('%s: idempotent producers are validated by the sidecar', (mode) => {
  let sc: Sidecar;
  beforeAll(async () => {
    sc = await sidecar({ upstream: kafka.bootstrap, mode, extraArgs: ['--policy-name', `wire-${mode}`] });
  });

  it('an exact re-send gets NONE with the original offset from the sidecar; a gap gets 45 from the sidecar', async () => {
    const topic = await newTopic(`${mode}-seq`);
    const { producerId, epoch } = await initProducerId(sc.bootstrap);
    const first = produceFrame(topic, 0, encodeBatch(threeRecords(mode), { producerId, epoch, baseSequence: 0 }));
    const c = await RawConnection.connect(sc.bootstrap);
    try {
      const a = await sendFrame(c, first);
      expect(a.errorCode).toBe(0);
      expect(await sc.metric('idempo_produce_batches_total', { topic, outcome: 'written' })).toBe(1);

      const again = await sendFrame(c, first);
      expect(again.errorCode).toBe(0);
      expect(again.baseOffset).toBe(a.baseOffset);
      // Answered by the sidecar: counted as acted on, and never forwarded (still one written).
      expect(await sc.metric('idempo_duplicates_rejected_total', { topic })).toBe(1);
      expect(await sc.metric('idempo_produce_batches_total', { topic, outcome: 'duplicate' })).toBe(1);
      expect(await sc.metric('idempo_produce_batches_total', { topic, outcome: 'written' })).toBe(1);

      const gap = await sendFrame(c, produceFrame(topic, 0, encodeBatch([{ value: 'gap' }], { producerId, epoch, baseSequence: 10 })));
      expect(gap.errorCode).toBe(45);
      expect(gap.errorMessage).toBe('idempo: expected sequence 3, got 10');
      expect(await sc.metric('idempo_out_of_sequence_total', { topic })).toBe(1);
      expect(await sc.metric('idempo_produce_batches_total', { topic, outcome: 'out_of_sequence' })).toBe(1);

      // The producer goes on in sequence: written.
      const next = await sendFrame(c, produceFrame(topic, 0, encodeBatch([{ value: `${mode}-3` }], { producerId, epoch, baseSequence: 3 })));
      expect(next.errorCode).toBe(0);
      expect(next.baseOffset).toBe(a.baseOffset + 3n);
    } finally {
      c.close();
    }
    const stored = await fetchBatches(kafka.bootstrap, topic, 0);
    expect(written(stored)).toEqual([`${mode}-0`, `${mode}-1`, `${mode}-2`, `${mode}-3`]);
    expect(stored.filter((b) => b.header.producerId === producerId).map((b) => b.header.baseSequence)).toEqual([0, 3]);
    // One producer session tracked (plus the sidecar's own producer in upgrade mode, once it has one).
    await expect.poll(() => sc.metric('idempo_producer_sessions')).toBe(1);
  });

  it('rule 3: a gap behind a batch still in flight is left to the broker, never a sidecar 45', async () => {
    const topic = await newTopic(`${mode}-rule3`);
    const { producerId, epoch } = await initProducerId(sc.bootstrap);
    const c = await RawConnection.connect(sc.bootstrap);
    try {
      // Both frames in one write: the sidecar judges the second while the first is in flight.
      const a = produceFrame(topic, 0, encodeBatch(threeRecords('r3'), { producerId, epoch, baseSequence: 0 }));
      const b = produceFrame(topic, 0, encodeBatch([{ value: 'r3-gap' }], { producerId, epoch, baseSequence: 20 }));
      c.write(Buffer.concat([a.frame, b.frame]));
      expect((await readProduceAnswer(c, a.corr)).errorCode).toBe(0);
      const gap = await readProduceAnswer(c, b.corr);
      expect(gap.errorCode).toBe(45);
      expect(gap.errorMessage).toBeNull(); // the broker's own 45 (the sidecar's would say "idempo: expected sequence 3, got 20")
      expect(await sc.metric('idempo_out_of_sequence_total', { topic })).toBe(1);
    } finally {
      c.close();
    }
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual(['r3-0', 'r3-1', 'r3-2']);
  });

  it('a copy sent while the original is in flight gets the original answer and is not written', async () => {
    const topic = await newTopic(`${mode}-inflight`);
    const { producerId, epoch } = await initProducerId(sc.bootstrap);
    const [ra, rb] = await sendTwiceInOneWrite(sc.bootstrap, topic, encodeBatch(threeRecords('if'), { producerId, epoch, baseSequence: 0 }));
    expect(ra.errorCode).toBe(0);
    expect(rb.errorCode).toBe(0);
    expect(rb.baseOffset).toBe(ra.baseOffset);
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual(['if-0', 'if-1', 'if-2']);
    expect(await sc.metric('idempo_duplicates_rejected_total', { topic })).toBe(1);
    expect(await sc.metric('idempo_produce_batches_total', { topic, outcome: 'duplicate' })).toBe(1);
    expect(await sc.metric('idempo_produce_batches_total', { topic, outcome: 'written' })).toBe(1);
  });

  it('a request with a copy for one partition and a new batch for another: only the new one is forwarded, both answered in order', async () => {
    const topic = await newTopic(`${mode}-mixed`, 2);
    const { producerId, epoch } = await initProducerId(sc.bootstrap);
    const p0 = encodeBatch([{ value: 'p0-first' }], { producerId, epoch, baseSequence: 0 });
    const c = await RawConnection.connect(sc.bootstrap);
    try {
      const first = await sendFrame(c, produceFrame(topic, 0, p0));
      expect(first.errorCode).toBe(0);
      const f = produceFrameMulti(topic, [
        [0, p0],
        [1, encodeBatch([{ value: 'p1-a' }, { value: 'p1-b' }], { producerId, epoch, baseSequence: 0 })],
      ]);
      c.write(f.frame);
      const { correlationId, body } = await c.receive(ApiKey.Produce, PRODUCE_V);
      expect(correlationId).toBe(f.corr);
      const resp = decodeProduceResponse(body, PRODUCE_V);
      expect(resp.responses.map((t) => t.name)).toEqual([topic]);
      expect(resp.responses[0].partitionResponses.map((p) => [p.index, p.errorCode])).toEqual([
        [0, 0],
        [1, 0],
      ]);
      expect(resp.responses[0].partitionResponses[0].baseOffset).toBe(first.baseOffset);
    } finally {
      c.close();
    }
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual(['p0-first']);
    expect(written(await fetchBatches(kafka.bootstrap, topic, 1))).toEqual(['p1-a', 'p1-b']);
    expect(await sc.metric('idempo_produce_batches_total', { topic, outcome: 'duplicate' })).toBe(1);
    expect(await sc.metric('idempo_produce_batches_total', { topic, outcome: 'written' })).toBe(2);
  });
});

describe('enforce: what is refused', () => {
  let enf: Sidecar;
  beforeAll(async () => {
    enf = await sidecar({ upstream: kafka.bootstrap, mode: 'enforce', extraArgs: ['--policy-name', 'wire-refuse'] });
  });

  it('a non-idempotent batch gets POLICY_VIOLATION naming the policy; nothing is written', async () => {
    const topic = await newTopic('enf-plain');
    const c = await RawConnection.connect(enf.bootstrap);
    try {
      const r = await sendFrame(c, produceFrame(topic, 0, encodeBatch(threeRecords('plain'))));
      expect(r.errorCode).toBe(44); // POLICY_VIOLATION
      expect(r.errorMessage).toBe('policy wire-refuse (mode enforce) refuses a non-idempotent producer: set enable.idempotence=true and acks=all');
    } finally {
      c.close();
    }
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual([]);
    expect(await enf.metric('idempo_produce_batches_total', { topic, outcome: 'policy_rejected' })).toBe(1);
  });

  it('an idempotent producer with acks=1 is refused too', async () => {
    const topic = await newTopic('enf-acks1');
    const { producerId, epoch } = await initProducerId(enf.bootstrap);
    const c = await RawConnection.connect(enf.bootstrap);
    try {
      const r = await sendFrame(c, produceFrame(topic, 0, encodeBatch(threeRecords('a1'), { producerId, epoch, baseSequence: 0 }), 1));
      expect(r.errorCode).toBe(44);
      expect(r.errorMessage).toMatch(/^policy wire-refuse \(mode enforce\) refuses acks=1/);
    } finally {
      c.close();
    }
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual([]);
    expect(await enf.metric('idempo_produce_batches_total', { topic, outcome: 'policy_rejected' })).toBe(1);
  });

  it('topics.exclude: a topic the policy does not cover passes through untouched', async () => {
    const sc = await sidecar({ upstream: kafka.bootstrap, config: policyFile('enforce-exclude', { mode: 'enforce', topics: { include: ['*'], exclude: ['free-*'] } }) });
    const free = await newTopic('free-topic');
    const covered = await newTopic('covered-topic');
    const c = await RawConnection.connect(sc.bootstrap);
    try {
      expect((await sendFrame(c, produceFrame(free, 0, encodeBatch([{ value: 'free' }])))).errorCode).toBe(0);
      expect((await sendFrame(c, produceFrame(covered, 0, encodeBatch([{ value: 'covered' }])))).errorCode).toBe(44);
    } finally {
      c.close();
    }
    expect(written(await fetchBatches(kafka.bootstrap, free, 0))).toEqual(['free']);
    expect(written(await fetchBatches(kafka.bootstrap, covered, 0))).toEqual([]);
  });

  it('acks=0 from a non-idempotent producer: the connection is closed with a logged reason; nothing is written', async () => {
    const topic = await newTopic('enf-acks0');
    const c = await RawConnection.connect(enf.bootstrap);
    try {
      c.write(produceFrame(topic, 0, encodeBatch(threeRecords('a0')), 0).frame);
      expect(await c.waitClosed(10_000)).toBe(true);
    } finally {
      c.close();
    }
    await expect.poll(() => enf.logs().some((l) => l.includes('closing client connection: acks=0 produce refused by policy wire-refuse (mode enforce)'))).toBe(true);
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual([]);
    expect(await enf.metric('idempo_produce_batches_total', { topic, outcome: 'policy_rejected' })).toBe(1);
  });

  it('Produce v2 (a magic 1 message set, which cannot be idempotent) is refused: the connection is closed, nothing is written', async () => {
    const topic = await newTopic('enf-v2');
    // A message set v1 with one message (the sidecar does not parse it; the bytes only need a shape).
    const value = Buffer.from('old-client');
    const msg = Buffer.alloc(8 + 4 + 4 + 1 + 1 + 8 + 4 + 4 + value.length);
    msg.writeInt32BE(msg.length - 12, 8);
    msg.writeInt8(1, 16); // magic
    msg.writeBigInt64BE(BigInt(Date.now()), 18);
    msg.writeInt32BE(-1, 26); // null key
    msg.writeInt32BE(value.length, 30);
    value.copy(msg, 34);
    const w = new Writer(256);
    w.int32(0);
    w.int16(ApiKey.Produce);
    w.int16(2);
    w.int32(4242);
    w.nullableString('v2-client');
    w.int16(-1); // acks
    w.int32(10_000);
    w.int32(1);
    w.nullableString(topic);
    w.int32(1);
    w.int32(0);
    w.int32(msg.length);
    w.raw(msg);
    const frame = Buffer.from(w.toBuffer());
    frame.writeInt32BE(frame.length - 4, 0);
    const c = await RawConnection.connect(enf.bootstrap);
    try {
      c.write(frame);
      expect(await c.waitClosed(10_000)).toBe(true);
    } finally {
      c.close();
    }
    await expect.poll(() => enf.logs().some((l) => l.includes('closing client connection: Produce v2 (message format v0/v1, which cannot be idempotent) refused by policy wire-refuse (mode enforce)'))).toBe(true);
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual([]);
  });
});

describe('upgrade: non-idempotent producers are stamped; app-level copies are written once', () => {
  let up: Sidecar;
  beforeAll(async () => {
    const config = policyFile('upgrade-content', { mode: 'upgrade', dedup: { strategy: 'content', window: '5m' }, producer: { deliveryTimeout: '30s' } });
    up = await sidecar({ upstream: kafka.bootstrap, config });
  });

  it('the stored batch carries the sidecar producer id, sequences in order, a valid CRC', async () => {
    const topic = await newTopic('up-stamp');
    const c = await RawConnection.connect(up.bootstrap);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await sendFrame(c, produceFrame(topic, 0, encodeBatch([{ value: `stamp-${i}a` }, { value: `stamp-${i}b` }])));
        expect(r.errorCode).toBe(0);
      }
    } finally {
      c.close();
    }
    const stored = (await fetchBatches(kafka.bootstrap, topic, 0)).filter((b) => written([b]).length > 0);
    expect(written(stored)).toEqual(['stamp-0a', 'stamp-0b', 'stamp-1a', 'stamp-1b', 'stamp-2a', 'stamp-2b']);
    const pids = new Set(stored.map((b) => b.header.producerId));
    expect(pids.size).toBe(1);
    expect([...pids][0] >= 0n).toBe(true);
    expect(stored.every((b) => b.header.producerEpoch >= 0 && verifyCrc(b.bytes))).toBe(true);
    expect(stored.map((b) => b.header.baseSequence)).toEqual([0, 2, 4]);
    expect(await up.metric('idempo_upgraded_batches_total', { topic })).toBe(3);
    expect(await up.metric('idempo_produce_batches_total', { topic, outcome: 'written' })).toBe(3);
    // The sidecar's own producer is the one live session (no client here is idempotent).
    await expect.poll(() => up.metric('idempo_producer_sessions')).toBe(1);
  });

  it('acks=0 is upgraded too, and its upstream answer is swallowed (KAFKA-NOTES rule 7)', async () => {
    const topic = await newTopic('up-acks0');
    const c = await RawConnection.connect(up.bootstrap);
    try {
      const zero = produceFrame(topic, 0, encodeBatch([{ value: 'fire-and-forget' }]), 0);
      const all = produceFrame(topic, 0, encodeBatch([{ value: 'acks-all' }]));
      c.write(Buffer.concat([zero.frame, all.frame]));
      // The first answer on the wire is the acks=all one: nothing came back for acks=0.
      expect((await readProduceAnswer(c, all.corr)).errorCode).toBe(0);
      expect(c.closed).toBe(false);
    } finally {
      c.close();
    }
    const stored = (await fetchBatches(kafka.bootstrap, topic, 0)).filter((b) => written([b]).length > 0);
    expect(written(stored)).toEqual(['fire-and-forget', 'acks-all']);
    expect(stored.every((b) => b.header.producerId >= 0n)).toBe(true);
    expect(await up.metric('idempo_upgraded_batches_total', { topic })).toBe(2);
  });

  it('content dedup: the same non-idempotent batch sent twice (an app retry) is written once', async () => {
    const topic = await newTopic('up-content');
    const batch = encodeBatch(threeRecords('retry'));
    const c = await RawConnection.connect(up.bootstrap);
    try {
      const a = await sendFrame(c, produceFrame(topic, 0, batch));
      expect(a.errorCode).toBe(0);
      const b = await sendFrame(c, produceFrame(topic, 0, batch));
      expect(b.errorCode).toBe(0);
      expect(b.baseOffset).toBe(a.baseOffset);
      // A copy with other timestamps (re-batched later by the client) is still the same content.
      const later = await sendFrame(c, produceFrame(topic, 0, encodeBatch(threeRecords('retry'), { timestamp: BigInt(Date.now() + 5_000) })));
      expect(later.errorCode).toBe(0);
      expect(later.baseOffset).toBe(a.baseOffset);
      // Different records are a different write.
      expect((await sendFrame(c, produceFrame(topic, 0, encodeBatch(threeRecords('other'))))).errorCode).toBe(0);
    } finally {
      c.close();
    }
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual(['retry-0', 'retry-1', 'retry-2', 'other-0', 'other-1', 'other-2']);
    expect(await up.metric('idempo_duplicates_rejected_total', { topic })).toBe(2);
    expect(await up.metric('idempo_produce_batches_total', { topic, outcome: 'duplicate' })).toBe(2);
    expect(await up.metric('idempo_produce_batches_total', { topic, outcome: 'written' })).toBe(2);
    expect(await up.metric('idempo_upgraded_batches_total', { topic })).toBe(2);
  });

  it('content dedup with a real client: kafkajs send() called twice with the same messages writes them once, stamped', async () => {
    const topic = await newTopic('up-kafkajs');
    const messages = [0, 1, 2].map((i) => ({ key: `k${i}`, value: `app-${i}`, partition: 0, headers: { trace: `t${i}` } }));
    // Not idempotent (kafkajs's default); the second send() is what an application's own retry does.
    const acks = await kafkajsProduce({ bootstrap: up.bootstrap, topic, messages: [...messages, ...messages], batchSize: 3 });
    expect(acks).toHaveLength(2);
    expect(acks.every((a) => a.errorCode === 0)).toBe(true);
    expect(acks[1].baseOffset).toBe(acks[0].baseOffset);
    const stored = (await fetchBatches(kafka.bootstrap, topic, 0)).filter((b) => written([b]).length > 0);
    expect(written(stored)).toEqual(['app-0', 'app-1', 'app-2']);
    expect(stored).toHaveLength(1);
    // kafkajs sent producerId -1; the broker holds the sidecar's stamp.
    expect(stored[0].header.producerId >= 0n).toBe(true);
    expect(stored[0].header.baseSequence).toBe(0);
    expect(await up.metric('idempo_duplicates_rejected_total', { topic })).toBe(1);
    expect(await up.metric('idempo_produce_batches_total', { topic, outcome: 'duplicate' })).toBe(1);
    expect(await up.metric('idempo_produce_batches_total', { topic, outcome: 'written' })).toBe(1);
    expect(await up.metric('idempo_upgraded_batches_total', { topic })).toBe(1);
  });

  it('content dedup per partition: a request with a copy for one partition and new records for another', async () => {
    const topic = await newTopic('up-content-mixed', 2);
    const again = encodeBatch(threeRecords('mixed'));
    const c = await RawConnection.connect(up.bootstrap);
    try {
      const first = await sendFrame(c, produceFrame(topic, 0, again));
      expect(first.errorCode).toBe(0);
      const f = produceFrameMulti(topic, [
        [0, again],
        [1, encodeBatch([{ value: 'fresh' }])],
      ]);
      c.write(f.frame);
      const { correlationId, body } = await c.receive(ApiKey.Produce, PRODUCE_V);
      expect(correlationId).toBe(f.corr);
      const parts = decodeProduceResponse(body, PRODUCE_V).responses[0].partitionResponses;
      expect(parts.map((p) => [p.index, p.errorCode])).toEqual([
        [0, 0],
        [1, 0],
      ]);
      expect(parts[0].baseOffset).toBe(first.baseOffset);
    } finally {
      c.close();
    }
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual(['mixed-0', 'mixed-1', 'mixed-2']);
    expect(written(await fetchBatches(kafka.bootstrap, topic, 1))).toEqual(['fresh']);
    expect(await up.metric('idempo_duplicates_rejected_total', { topic })).toBe(1);
    expect(await up.metric('idempo_upgraded_batches_total', { topic })).toBe(2);
  });

  it('content dedup: a copy arriving while the original is in flight gets the original answer', async () => {
    const topic = await newTopic('up-content-inflight');
    const [ra, rb] = await sendTwiceInOneWrite(up.bootstrap, topic, encodeBatch(threeRecords('twin')));
    expect(ra.errorCode).toBe(0);
    expect(rb.errorCode).toBe(0);
    expect(rb.baseOffset).toBe(ra.baseOffset);
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual(['twin-0', 'twin-1', 'twin-2']);
    expect(await up.metric('idempo_duplicates_rejected_total', { topic })).toBe(1);
  });
});

describe('upgrade with dedup.strategy header: the record header is the idempotency key', () => {
  let hdr: Sidecar;
  beforeAll(async () => {
    const config = policyFile('upgrade-header', { mode: 'upgrade', dedup: { strategy: 'header', header: 'idempotency-key', window: '5m' }, producer: { deliveryTimeout: '30s' } });
    hdr = await sidecar({ upstream: kafka.bootstrap, config });
  });

  it('two different payloads with the same key are one write; another key is another write', async () => {
    const topic = await newTopic('up-header');
    const acks = await kafkajsProduce({
      bootstrap: hdr.bootstrap,
      topic,
      batchSize: 1,
      messages: [
        { value: 'order-1 first attempt', partition: 0, headers: { 'idempotency-key': 'order-1' } },
        { value: 'order-1 second attempt, other bytes', partition: 0, headers: { 'idempotency-key': 'order-1' } },
        { value: 'order-2', partition: 0, headers: { 'idempotency-key': 'order-2' } },
        { value: 'no key', partition: 0 },
        { value: 'no key', partition: 0 },
      ],
    });
    expect(acks.every((a) => a.errorCode === 0)).toBe(true);
    expect(acks[1].baseOffset).toBe(acks[0].baseOffset);
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual(['order-1 first attempt', 'order-2', 'no key', 'no key']);
    expect(await hdr.metric('idempo_duplicates_rejected_total', { topic })).toBe(1);
    expect(await hdr.metric('idempo_produce_batches_total', { topic, outcome: 'written' })).toBe(4);
  });
});

describe('config reload', () => {
  const spec = (mode: string, extra: Record<string, unknown> = {}) => JSON.stringify({ selector: {}, mode, kafka: { bootstrapServers: [kafka.bootstrap] }, ...extra });
  /** Replaces the file atomically, as a ConfigMap volume update does. */
  const rewrite = (file: string, text: string) => {
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  };

  it('observe -> enforce without a restart; an open connection stays open; a bad file is rejected and the previous config kept', async () => {
    const topic = await newTopic('reload');
    const file = path.join(tmp, 'reload.json');
    writeFileSync(file, spec('observe'));
    // No --mode: the file decides.
    const sc = await sidecar({ upstream: kafka.bootstrap, config: file, extraArgs: ['--policy-name', 'reloaded'] });
    const c = await RawConnection.connect(sc.bootstrap);
    try {
      expect((await sendFrame(c, produceFrame(topic, 0, encodeBatch([{ value: 'observed' }])))).errorCode).toBe(0);

      rewrite(file, spec('enforce'));
      await expect.poll(() => sc.metric('idempo_config_reloads_total', { result: 'ok' }), { timeout: 10_000 }).toBe(1);
      // The same connection, still open, now meets the new mode.
      const refused = await sendFrame(c, produceFrame(topic, 0, encodeBatch([{ value: 'refused' }])));
      expect(refused.errorCode).toBe(44);
      expect(refused.errorMessage).toMatch(/^policy reloaded \(mode enforce\)/);
      await expect(kafkajsProduce({ bootstrap: sc.bootstrap, topic, messages: [{ value: 'kafkajs refused', partition: 0 }] })).rejects.toMatchObject({ type: 'POLICY_VIOLATION' });

      rewrite(file, spec('observe', { dedup: { strategy: 'content', window: 'soon' } }));
      await expect.poll(() => sc.metric('idempo_config_reloads_total', { result: 'error' }), { timeout: 10_000 }).toBe(1);
      const rejected = sc.logs().filter((l) => l.includes('config reload rejected'));
      expect(rejected).toHaveLength(1);
      expect(rejected[0]).toContain('spec.dedup.window');
      // Still enforce, on the same connection.
      expect((await sendFrame(c, produceFrame(topic, 0, encodeBatch([{ value: 'still refused' }])))).errorCode).toBe(44);
      // The sidecar also re-reads the file every 5 s: the same bad file is not rejected (nor logged) again.
      const checks = await sc.metric('idempo_config_checks_total');
      await expect.poll(() => sc.metric('idempo_config_checks_total'), { timeout: 30_000 }).toBeGreaterThan(checks);
      expect(await sc.metric('idempo_config_reloads_total', { result: 'error' })).toBe(1);
      expect(sc.logs().filter((l) => l.includes('config reload rejected'))).toHaveLength(1);
      expect(c.closed).toBe(false);
      expect(await sc.metric('idempo_config_reloads_total', { result: 'ok' })).toBe(1);
    } finally {
      c.close();
    }
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual(['observed']);
    expect(sc.proc.exitCode).toBeNull();
  });

  it('a reload that does not touch dedup keeps its window: an app retry after it is still answered, not written', async () => {
    const topic = await newTopic('reload-dedup');
    const file = path.join(tmp, 'reload-dedup.json');
    const dedup = { strategy: 'content', window: '5m' };
    writeFileSync(file, spec('upgrade', { dedup }));
    const sc = await sidecar({ upstream: kafka.bootstrap, config: file });
    const batch = encodeBatch(threeRecords('kept'));
    const c = await RawConnection.connect(sc.bootstrap);
    try {
      const a = await sendFrame(c, produceFrame(topic, 0, batch));
      expect(a.errorCode).toBe(0);
      rewrite(file, spec('upgrade', { dedup, topics: { include: ['*'], exclude: ['not-this-one'] } }));
      await expect.poll(() => sc.metric('idempo_config_reloads_total', { result: 'ok' }), { timeout: 10_000 }).toBe(1);
      const b = await sendFrame(c, produceFrame(topic, 0, batch));
      expect(b.errorCode).toBe(0);
      expect(b.baseOffset).toBe(a.baseOffset);
    } finally {
      c.close();
    }
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual(['kept-0', 'kept-1', 'kept-2']);
    expect(await sc.metric('idempo_duplicates_rejected_total', { topic })).toBe(1);
  });

  it('a dedup cap change keeps what was remembered; a producer, strategy or window change waits for a restart and says so', async () => {
    const topic = await newTopic('reload-window');
    const file = path.join(tmp, 'reload-window.json');
    writeFileSync(file, spec('upgrade', { dedup: { strategy: 'content', window: '5m' } }));
    const sc = await sidecar({ upstream: kafka.bootstrap, config: file });
    const batch = encodeBatch(threeRecords('window'));
    const c = await RawConnection.connect(sc.bootstrap);
    try {
      const a = await sendFrame(c, produceFrame(topic, 0, batch));
      expect(a.errorCode).toBe(0);
      // A new cap: the cache is rebuilt, the original's answer moves with it.
      rewrite(file, spec('upgrade', { dedup: { strategy: 'content', window: '5m', maxEntries: 5000 } }));
      await expect.poll(() => sc.metric('idempo_config_reloads_total', { result: 'ok' }), { timeout: 10_000 }).toBe(1);
      const b = await sendFrame(c, produceFrame(topic, 0, batch));
      expect(b.errorCode).toBe(0);
      expect(b.baseOffset).toBe(a.baseOffset);
      // Fields fixed at start: logged, counted, not applied (the copy is still recognised by content).
      rewrite(file, spec('upgrade', { dedup: { strategy: 'exact', window: '10m', maxEntries: 5000 }, producer: { deliveryTimeout: '30s' } }));
      await expect.poll(() => sc.metric('idempo_config_reloads_total', { result: 'restart_needed' }), { timeout: 10_000 }).toBe(1);
      const line = sc.logs().find((l) => l.includes('restart needed'));
      expect(line).toContain('producer.deliveryTimeout');
      expect(line).toContain('dedup.strategy');
      expect(line).toContain('dedup.window');
      const copy = await sendFrame(c, produceFrame(topic, 0, encodeBatch(threeRecords('window'), { timestamp: BigInt(Date.now() + 1_000) })));
      expect(copy.baseOffset).toBe(a.baseOffset);
      expect(await sc.metric('idempo_config_reloads_total', { result: 'ok' })).toBe(1);
    } finally {
      c.close();
    }
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual(['window-0', 'window-1', 'window-2']);
  });

  it('a YAML file works too, and --mode on the command line wins over the file', async () => {
    const topic = await newTopic('flag-wins');
    const file = path.join(tmp, 'policy.yaml');
    writeFileSync(file, `selector: {}\nmode: observe\nkafka:\n  bootstrapServers: ["${kafka.bootstrap}"]\ndedup:\n  strategy: content\n  window: 5m\n`);
    const sc = await sidecar({ upstream: kafka.bootstrap, config: file, mode: 'enforce' });
    const c = await RawConnection.connect(sc.bootstrap);
    try {
      expect((await sendFrame(c, produceFrame(topic, 0, encodeBatch([{ value: 'refused' }])))).errorCode).toBe(44);
      // A reload of the file does not override the flag either.
      rewrite(file, `selector: {}\nmode: upgrade\nkafka:\n  bootstrapServers: ["${kafka.bootstrap}"]\ndedup:\n  strategy: content\n  window: 5m\n  maxEntries: 5000\n`);
      await expect.poll(() => sc.metric('idempo_config_reloads_total', { result: 'ok' }), { timeout: 10_000 }).toBe(1);
      expect((await sendFrame(c, produceFrame(topic, 0, encodeBatch([{ value: 'refused again' }])))).errorCode).toBe(44);
    } finally {
      c.close();
    }
    expect(written(await fetchBatches(kafka.bootstrap, topic, 0))).toEqual([]);
  });

  it('a bad file at start exits non-zero with one line naming the field', async () => {
    const file = path.join(tmp, 'bad-start.json');
    writeFileSync(file, spec('enforce', { producer: { maxInFlightPerPartition: 9 } }));
    const r = await runProcess(SIDECAR_BIN, ['--upstream', kafka.bootstrap, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--config', file]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^idempo-sidecar: --config ${file}: spec\\.producer\\.maxInFlightPerPartition: `));
  });
});
