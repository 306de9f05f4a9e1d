// The rule above every dedup strategy (DESIGN.md): under the defaults, a write the application
// made separately is never acknowledged without being written. Each client the project tests
// with (librdkafka/kcat, kafkajs, the Java producer) sends the same records twice, seconds
// apart: both sends are in the log. A client library's retry — the same bytes again — is still
// answered once and written once. The sidecar runs with no policy file at all (pure defaults:
// upgrade mode, dedup.strategy exact); the log is read straight from the broker.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { kcatConsume, kcatProduce } from '../support/clients/kcat.js';
import { kafkajsProduce } from '../support/clients/kafkajs.js';
import { runJavaProducer } from '../support/clients/java.js';
import { RawConnection } from '../support/raw-kafka.js';
import { ApiKey } from '../../sidecar/codec/api.js';
import { encodeRecordBatch } from '../../sidecar/codec/records.js';
import { PRODUCE_V, produceFrame } from './wire.js';
import { decodeProduceResponse, type PartitionProduceResponse } from '../../sidecar/codec/generated/produce-response.js';

let kafka: KafkaCluster;
let sc: Sidecar;

beforeAll(async () => {
  kafka = await startKafka({ brokers: 1 });
  sc = await startSidecar({ upstream: kafka.bootstrap });
});

afterAll(async () => {
  await sc?.stop();
  await kafka?.stop();
});

const stored = async (topic: string): Promise<string[]> => (await kcatConsume({ bootstrap: kafka.bootstrap, topic })).map((r) => r.value ?? '<null>');

/** The second send comes seconds later, as in the report that found the defect. */
async function secondsLater(since: number, ms = 2000): Promise<void> {
  while (Date.now() - since < ms) await new Promise((r) => setTimeout(r, 50));
}

const counters = (n: number): string[] => Array.from({ length: n }, () => 'counter:+1');

describe('defaults: the same records sent twice by the application are written twice', () => {
  it('librdkafka (kcat): 50 identical records, then the same 50 again', async () => {
    await kafka.createTopic('legit-kcat', 1, 1);
    const t0 = Date.now();
    const first = await kcatProduce({ bootstrap: sc.bootstrap, topic: 'legit-kcat', lines: counters(50) });
    expect(first.deliveryFailures).toBe(0);
    await secondsLater(t0);
    const second = await kcatProduce({ bootstrap: sc.bootstrap, topic: 'legit-kcat', lines: counters(50) });
    expect(second.deliveryFailures).toBe(0);
    expect(await stored('legit-kcat')).toEqual(counters(100));
    expect(await sc.metric('idempo_duplicates_rejected_total', { topic: 'legit-kcat' })).toBe(0);
  });

  it('kafkajs: send() with the same messages twice', async () => {
    await kafka.createTopic('legit-kafkajs', 1, 1);
    const messages = [0, 1, 2].map((i) => ({ key: `k${i}`, value: `same-${i}`, partition: 0, headers: { trace: `t${i}` } }));
    const t0 = Date.now();
    const a = await kafkajsProduce({ bootstrap: sc.bootstrap, topic: 'legit-kafkajs', messages });
    await secondsLater(t0);
    const b = await kafkajsProduce({ bootstrap: sc.bootstrap, topic: 'legit-kafkajs', messages });
    expect([...a, ...b].every((r) => r.errorCode === 0)).toBe(true);
    expect(b[0].baseOffset).not.toBe(a[0].baseOffset);
    expect(await stored('legit-kafkajs')).toEqual(['same-0', 'same-1', 'same-2', 'same-0', 'same-1', 'same-2']);
  });

  it('Java, idempotence off and on: the same keys and values twice', async () => {
    for (const [topic, props] of [
      ['legit-java-off', { 'enable.idempotence': false, acks: 'all' }],
      ['legit-java-on', {}],
    ] as const) {
      await kafka.createTopic(topic, 1, 1);
      const t0 = Date.now();
      const a = await runJavaProducer({ bootstrap: sc.bootstrap, topics: [topic], count: 20, props });
      await secondsLater(t0);
      const b = await runJavaProducer({ bootstrap: sc.bootstrap, topics: [topic], count: 20, props });
      expect([a.acked, b.acked, a.failed + b.failed]).toEqual([20, 20, 0]);
      const values = await stored(topic);
      expect(values).toHaveLength(40);
      expect(values.slice(0, 20)).toEqual(values.slice(20));
    }
  });
});

// ---- a client library's own retry: the same bytes again ----

async function answer(c: RawConnection, want: number): Promise<PartitionProduceResponse> {
  const { correlationId, body } = await c.receive(ApiKey.Produce, PRODUCE_V);
  expect(correlationId).toBe(want);
  return decodeProduceResponse(body, PRODUCE_V).responses[0].partitionResponses[0];
}

describe('defaults: a client library retry (the same bytes) is answered once', () => {
  it('after the original was answered, and while it is still in flight', async () => {
    await kafka.createTopic('retry-bytes', 1, 1);
    const batch = encodeRecordBatch({ records: [{ value: 'retried' }] });
    const c = await RawConnection.connect(sc.bootstrap);
    try {
      const a = produceFrame('retry-bytes', 0, batch);
      c.write(a.frame);
      const ra = await answer(c, a.corr);
      expect(ra.errorCode).toBe(0);
      const b = produceFrame('retry-bytes', 0, batch);
      c.write(b.frame);
      const rb = await answer(c, b.corr);
      expect([rb.errorCode, rb.baseOffset]).toEqual([0, ra.baseOffset]);
      // In flight: two copies of another batch in one write.
      const other = encodeRecordBatch({ records: [{ value: 'twin' }] });
      const x = produceFrame('retry-bytes', 0, other);
      const y = produceFrame('retry-bytes', 0, other);
      c.write(Buffer.concat([x.frame, y.frame]));
      const rx = await answer(c, x.corr);
      const ry = await answer(c, y.corr);
      expect([rx.errorCode, ry.errorCode, ry.baseOffset]).toEqual([0, 0, rx.baseOffset]);
    } finally {
      c.close();
    }
    expect(await stored('retry-bytes')).toEqual(['retried', 'twin']);
    expect(await sc.metric('idempo_duplicates_rejected_total', { topic: 'retry-bytes' })).toBe(2);
  });
});
