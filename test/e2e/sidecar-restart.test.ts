// Issue 7.3: the sidecar's own restart, kill -9 included, changes nothing when its --state-dir
// survives (DESIGN.md "Guarantees through the sidecar"). A real broker, the sidecar as a real
// process killed with SIGKILL and started again with the same directory and ports:
//  1. a client's re-send of a batch whose answer died with the process is answered from the
//     restored state (same offset, one copy in the log), the producer id and sequences carry
//     on, and every broker is served on its old port; without --state-dir the same steps
//     write the batch twice, take a new producer id and move the broker's port (the test bites);
//  2. real clients (kafkajs, librdkafka, Java non-idempotent and idempotent) through a
//     kill -9 mid-stream: 0 duplicates, 0 lost acknowledged records, 0 reordered per partition.
// The restart-to-serving time is printed (never asserted: the machine is shared).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, sumMetric, type Sidecar } from '../support/sidecar.js';
import { freePort } from '../support/ports.js';
import { RawConnection } from '../support/raw-kafka.js';
import { kcatConsume } from '../support/clients/kcat.js';
import { kafkajsCreateTopics } from '../support/clients/kafkajs.js';
import { ApiKey } from '../../sidecar/codec/api.js';
import { Writer } from '../../sidecar/codec/writer.js';
import { computeCrc } from '../../sidecar/codec/record-batch.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, encodeProduceRequest } from '../../sidecar/codec/generated/produce-request.js';
import { decodeProduceResponse } from '../../sidecar/codec/generated/produce-response.js';
import { produce, verify, type ClientName, type ProduceRun } from './faults-workload.js';
import { runJavaProducer } from '../support/clients/java.js';

let kafka: KafkaCluster;
const dirs: string[] = [];
const sidecars: Sidecar[] = [];

beforeAll(async () => {
  kafka = await startKafka();
  await kafkajsCreateTopics(kafka.bootstrap, [
    { topic: 'restart-raw-state', numPartitions: 1, replicationFactor: 1 },
    { topic: 'restart-raw-none', numPartitions: 1, replicationFactor: 1 },
    ...STREAM_CLIENTS.map((c) => ({ topic: `restart-${c}`, numPartitions: 3, replicationFactor: 1 })),
  ]);
});

afterAll(async () => {
  for (const s of sidecars) await s.stop('SIGKILL').catch(() => undefined);
  await kafka?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function stateDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'idempo-state-'));
  dirs.push(d);
  return d;
}

/** A sidecar that can be killed and started again on the same ports (and directory). */
async function restartable(stateDirPath: string | null): Promise<{ start: () => Promise<Sidecar>; ports: { listen: number; metrics: number } }> {
  const ports = { listen: await freePort(), metrics: await freePort() };
  const start = async (): Promise<Sidecar> => {
    const s = await startSidecar({
      upstream: kafka.bootstrap,
      mode: 'upgrade',
      listenPort: ports.listen,
      metricsPort: ports.metrics,
      extraArgs: stateDirPath ? ['--state-dir', stateDirPath] : [],
    });
    sidecars.push(s);
    return s;
  };
  return { start, ports };
}

async function kill9(s: Sidecar): Promise<void> {
  s.proc.kill('SIGKILL');
  await s.stop('SIGKILL');
}

const logged = (s: Sidecar, msg: string): Array<Record<string, unknown>> =>
  s
    .logs()
    .filter((l) => l.includes(`"msg":"${msg}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** nodeId -> the local port the sidecar gave that broker. */
function brokerPorts(s: Sidecar): Map<number, number> {
  const m = new Map<number, number>();
  for (const l of logged(s, 'broker listener bound')) m.set(l.nodeId as number, Number(String(l.listen).split(':')[1]));
  return m;
}

/** One uncompressed RecordBatch v2 of one record, not idempotent (what a plain client sends). */
function plainBatch(value: string): Buffer {
  const rec = new Writer(64);
  rec.int8(0);
  rec.varlong(0n);
  rec.varint(0);
  rec.varint(-1); // null key
  const v = Buffer.from(value);
  rec.varint(v.length);
  rec.raw(v);
  rec.varint(0); // no headers
  const body = rec.toBuffer();
  const w = new Writer(128);
  const ts = BigInt(Date.now());
  w.int64(0n);
  w.int32(0);
  w.int32(-1);
  w.int8(2);
  w.uint32(0);
  w.int16(0);
  w.int32(0); // lastOffsetDelta
  w.int64(ts);
  w.int64(ts);
  w.int64(-1n);
  w.int16(-1);
  w.int32(-1);
  w.int32(1);
  w.varint(body.length);
  w.raw(body);
  const batch = Buffer.from(w.toBuffer());
  batch.writeInt32BE(batch.length - 12, 8);
  batch.writeUInt32BE(computeCrc(batch), 17);
  return batch;
}

const PRODUCE_V = 9;

/** A whole Produce frame: the exact bytes can be written again, as a client's retry does. */
function produceFrame(topic: string, batch: Buffer, corr: number): Buffer {
  const w = new Writer(256);
  w.int32(0);
  w.int16(ApiKey.Produce);
  w.int16(PRODUCE_V);
  w.int32(corr);
  w.nullableString('restart-test');
  w.uvarint(0);
  const req = createProduceRequest();
  req.acks = -1;
  req.timeoutMs = 10_000;
  const td = createTopicProduceData();
  td.name = topic;
  const pd = createPartitionProduceData();
  pd.index = 0;
  pd.records = batch;
  td.partitionData.push(pd);
  req.topicData.push(td);
  encodeProduceRequest(w, req, PRODUCE_V);
  const f = Buffer.from(w.toBuffer());
  f.writeInt32BE(f.length - 4, 0);
  return f;
}

async function send(bootstrap: string, frame: Buffer): Promise<{ errorCode: number; baseOffset: bigint }> {
  const c = await RawConnection.connect(bootstrap);
  try {
    c.write(frame);
    const { body } = await c.receive(ApiKey.Produce, PRODUCE_V, 60_000);
    const pr = decodeProduceResponse(body, PRODUCE_V).responses[0].partitionResponses[0];
    return { errorCode: pr.errorCode, baseOffset: pr.baseOffset };
  } finally {
    c.socket.destroy();
  }
}

/** ApiVersions v0 on `port` answered (the listener is bound and the broker behind it reached). */
async function answers(port: number): Promise<boolean> {
  let c: RawConnection | undefined;
  try {
    c = await RawConnection.connect(`127.0.0.1:${port}`);
    c.send(ApiKey.ApiVersions, 0, () => undefined);
    await c.receive(ApiKey.ApiVersions, 0, 2_000);
    return true;
  } catch {
    return false;
  } finally {
    c?.socket.destroy();
  }
}

/**
 * Starts the sidecar again and measures, from the spawn, until every broker port of the previous
 * process answers ApiVersions. Returns the sidecar and the figure (ms), or null if some port never
 * answered within the deadline (then the assertion on ports fails, not this helper).
 */
async function restartAndMeasure(start: () => Promise<Sidecar>, ports: number[]): Promise<{ sidecar: Sidecar; servingMs: number | null }> {
  const t0 = performance.now();
  const started = start();
  let servingMs: number | null = null;
  const deadline = Date.now() + 30_000;
  const left = new Set(ports);
  while (left.size > 0 && Date.now() < deadline) {
    for (const p of [...left]) if (await answers(p)) left.delete(p);
    if (left.size > 0) await new Promise((r) => setTimeout(r, 5)); // poll the listeners
  }
  if (left.size === 0) servingMs = performance.now() - t0;
  return { sidecar: await started, servingMs };
}

describe('sidecar restart (kill -9) with --state-dir', () => {
  /** The deterministic steps, with or without a state directory. */
  async function scenario(withState: boolean, topic: string) {
    const dir = withState ? stateDir() : null;
    const { start } = await restartable(dir);
    const first = await start();
    const warm = await send(first.bootstrap, produceFrame(topic, plainBatch('warm'), 1));
    expect(warm.errorCode).toBe(0);
    // The batch whose answer dies with the process: the client re-sends these exact bytes.
    const frame = produceFrame(topic, plainBatch('answer-lost'), 2);
    const original = await send(first.bootstrap, frame);
    expect(original.errorCode).toBe(0);
    const portsBefore = brokerPorts(first);
    const pidBefore = logged(first, 'sidecar producer id obtained').map((l) => l.producerId);
    await kill9(first);

    // Without a state directory nothing says which ports the brokers had: only the new sidecar's ports are checked.
    const { sidecar: second, servingMs } = await restartAndMeasure(start, withState ? [...portsBefore.values()] : []);
    const retry = await send(second.bootstrap, frame);
    const after = await send(second.bootstrap, produceFrame(topic, plainBatch('after-restart'), 3));
    const values = (await kcatConsume({ bootstrap: kafka.bootstrap, topic })).map((r) => r.value);
    const out = {
      servingMs,
      retrySameOffset: retry.errorCode === 0 && retry.baseOffset === original.baseOffset,
      copies: values.filter((v) => v === 'answer-lost').length,
      afterWritten: after.errorCode === 0 && values.includes('after-restart'),
      newProducerId: logged(second, 'sidecar producer id obtained').length > 0,
      restoredProducerId: logged(second, 'state restored').map((l) => l.producerId),
      pidBefore,
      boundMs: logged(second, 'restored broker listeners bound')[0]?.msSinceProcessStart,
      samePorts: [...portsBefore].every(([node, port]) => brokerPorts(second).get(node) === port),
    };
    await second.stop();
    return out;
  }

  it('answers a re-send from the restored state, keeps the producer id, sequences and broker ports; without it the batch is written twice', async () => {
    const withState = await scenario(true, 'restart-raw-state');
    console.log(
      `restart to serving every old broker port (kill -9, same --state-dir and --listen): ${withState.servingMs?.toFixed(0)} ms from spawn, ` +
        `listeners bound ${withState.boundMs} ms after process start`,
    );
    expect(withState).toMatchObject({ retrySameOffset: true, copies: 1, afterWritten: true, newProducerId: false, samePorts: true });
    expect(withState.servingMs).not.toBeNull();
    expect(withState.restoredProducerId).toEqual(withState.pidBefore);

    const without = await scenario(false, 'restart-raw-none');
    expect(without).toMatchObject({ retrySameOffset: false, copies: 2, newProducerId: true, samePorts: false });
  });
});

const STREAM_CLIENTS = ['kafkajs', 'kcat', 'java', 'java-idempotent'] as const;
type StreamClient = (typeof STREAM_CLIENTS)[number];
const COUNT = 5000;
const SEED = 0x5eed7a3;

/** A small seeded PRNG (mulberry32): the kill point is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function produceStream(c: StreamClient, bootstrap: string, topic: string): Promise<ProduceRun> {
  const t = { requestMs: 10_000, deliveryMs: 120_000 };
  if (c !== 'java-idempotent') return produce(c as ClientName, bootstrap, [topic], COUNT, t);
  const r = await runJavaProducer({
    bootstrap,
    topics: [topic],
    count: COUNT,
    props: { 'enable.idempotence': true, acks: 'all', 'max.in.flight.requests.per.connection': 5, 'linger.ms': 5, 'batch.size': 8192, 'request.timeout.ms': t.requestMs, 'delivery.timeout.ms': t.deliveryMs },
    timeoutMs: t.deliveryMs + 120_000,
  });
  return { client: 'java', topics: [topic], count: COUNT, sent: r.sent, acked: r.acked, failed: r.failed, elapsedMs: r.elapsedMs, error: r.fatal ?? undefined };
}

describe('sidecar kill -9 mid-stream with --state-dir, real clients', () => {
  it('0 duplicates, 0 lost acknowledged records, 0 reordered per partition, for each client', async () => {
    const { start } = await restartable(stateDir());
    let sc = await start();
    const rnd = prng(SEED);
    // Kill once every client has had this many batches answered (seeded): mid-stream for each.
    const killAt = 2 + Math.floor(rnd() * 4);
    const runs = Promise.all(STREAM_CLIENTS.map((c) => produceStream(c, sc.bootstrap, `restart-${c}`)));
    const deadline = Date.now() + 60_000;
    const answered = async (): Promise<number> => {
      const text = await sc.metrics().catch(() => '');
      return Math.min(...STREAM_CLIENTS.map((c) => sumMetric(text, 'idempo_produce_batches_total', { topic: `restart-${c}` })));
    };
    while ((await answered()) < killAt && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20)); // poll the metrics
    const ports = [...brokerPorts(sc).values()];
    await kill9(sc);
    const restarted = await restartAndMeasure(start, ports);
    sc = restarted.sidecar;
    console.log(`mid-stream restart to serving: ${restarted.servingMs?.toFixed(0)} ms (killed after >= ${killAt} answered batches per client)`);
    const done = await runs;
    const restoredLines = logged(sc, 'state restored');
    for (const [i, run] of done.entries()) {
      const v = await verify(kafka.bootstrap, run);
      const client = STREAM_CLIENTS[i];
      expect({ client, error: run.error }).toEqual({ client, error: undefined });
      expect({ client, duplicates: v.duplicates, orderViolations: v.orderViolations, ackedMissing: v.ackedMissing }).toEqual({ client, duplicates: 0, orderViolations: 0, ackedMissing: 0 });
      expect(v.missing).toBeLessThanOrEqual(run.failed);
    }
    expect(restoredLines).toHaveLength(1);
    expect(logged(sc, 'sidecar producer id obtained')).toHaveLength(0);
    await sc.stop();
  });
});
