// The rule above every dedup strategy (DESIGN.md): under the defaults, a write the application
// made separately is never acknowledged without being written. Each client the project tests
// with (librdkafka/kcat, kafkajs, the Java producer) sends the same records twice, seconds
// apart, and then with a timestamp the application set (byte-identical batches), one after the
// other and two in flight at once: every send is in the log. A client library's retry — the
// same bytes again after its connection closed — is still answered once and written once. The
// sidecar runs with no policy file at all (pure defaults: upgrade mode, dedup.strategy exact);
// the log is read straight from the broker.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { kcatConsume, kcatProduce } from '../support/clients/kcat.js';
import { kafkajsClient, kafkajsProduce } from '../support/clients/kafkajs.js';
import { runProcess } from '../support/clients/run.js';
import { waitFor } from '../support/poll.js';
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
  it('after its connection closed before the answer (Java and librdkafka close it at their request timeout)', async () => {
    await kafka.createTopic('retry-bytes', 1, 1);
    const batch = encodeRecordBatch({ records: [{ value: 'retried' }] });
    const gone = await RawConnection.connect(sc.bootstrap);
    gone.write(produceFrame('retry-bytes', 0, batch).frame);
    gone.close();
    // The sidecar has seen the close (so the original's answer was never written to its client).
    await waitFor('the sidecar saw the client go', async () => (await sc.metric('idempo_client_connections')) === 0);
    const c = await RawConnection.connect(sc.bootstrap);
    try {
      const retry = produceFrame('retry-bytes', 0, batch);
      c.write(retry.frame);
      expect((await answer(c, retry.corr)).errorCode).toBe(0);
      // Answered in time on a live connection: the client knows now, the same bytes again are a new write.
      const again = produceFrame('retry-bytes', 0, batch);
      c.write(again.frame);
      expect((await answer(c, again.corr)).errorCode).toBe(0);
    } finally {
      c.close();
    }
    expect((await storedWithTime('retry-bytes', 2)).map(([v]) => v)).toEqual(['retried', 'retried']);
    expect(await sc.metric('idempo_duplicates_rejected_total', { topic: 'retry-bytes' })).toBe(1);
  });
});

// ---- the same records with the timestamp the application set: byte-identical batches ----

// A recent whole second, fixed for the file: an old timestamp would be deleted by the broker's
// retention task (7 days by default) before the log is read.
const EVENT_MS = Math.floor(Date.now() / 1000) * 1000 - 60_000;
const EVENT_TIME = new Date(EVENT_MS).toISOString().slice(0, 19).replace('T', ' '); // UTC, as kcat's faketime reads it

/**
 * Values and timestamps in the log (timestamps prove the sends were byte-identical batches),
 * read once at least `expect` records are there (a consumer that starts before the partition's
 * metadata settles can read nothing on a loaded machine).
 */
async function storedWithTime(topic: string, atLeast: number): Promise<Array<[string, number]>> {
  return waitFor(`${atLeast} records in ${topic}`, async () => {
    const got = await readWithTime(topic);
    return got.length >= atLeast ? got : undefined;
  });
}

async function readWithTime(topic: string): Promise<Array<[string, number]>> {
  const r = await runProcess('kcat', ['-C', '-b', kafka.bootstrap, '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%T\t%s\n'], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`kcat -C failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const [t, v] = l.split('\t');
      return [v, Number(t)];
    });
}

describe('defaults: the same records with an application-set timestamp, sent twice separately, are written twice', () => {
  it('librdkafka (kcat, wall clock stopped): one after the other, and two batches in flight at once', async () => {
    await kafka.createTopic('same-ts-kcat', 1, 1);
    for (let i = 0; i < 2; i++) {
      const r = await kcatProduce({ bootstrap: sc.bootstrap, topic: 'same-ts-kcat', partition: 0, lines: ['tick'], frozenClock: EVENT_TIME });
      expect([r.exitCode, r.deliveryFailures]).toEqual([0, 0]);
    }
    // One batch per message, no linger: two identical batches, both sent before either is answered.
    const two = await kcatProduce({ bootstrap: sc.bootstrap, topic: 'same-ts-kcat', partition: 0, lines: ['tock', 'tock'], frozenClock: EVENT_TIME, props: { 'batch.num.messages': 1, 'linger.ms': 0 } });
    expect([two.exitCode, two.deliveryFailures]).toEqual([0, 0]);
    expect(await storedWithTime('same-ts-kcat', 4)).toEqual([
      ['tick', EVENT_MS],
      ['tick', EVENT_MS],
      ['tock', EVENT_MS],
      ['tock', EVENT_MS],
    ]);
    expect(await sc.metric('idempo_duplicates_rejected_total', { topic: 'same-ts-kcat' })).toBe(0);
  });

  it('kafkajs: send() with message.timestamp, one after the other and two at once', async () => {
    await kafka.createTopic('same-ts-kafkajs', 1, 1);
    const messages = [{ key: 'k', value: 'event', partition: 0, timestamp: String(EVENT_MS) }];
    for (let i = 0; i < 2; i++) await kafkajsProduce({ bootstrap: sc.bootstrap, topic: 'same-ts-kafkajs', messages });
    const producer = kafkajsClient(sc.bootstrap).producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      // Two requests on one connection, the second sent before the first is answered.
      const both = await Promise.all([0, 1].map(() => producer.send({ topic: 'same-ts-kafkajs', acks: -1, messages })));
      expect(both.flat().every((r) => r.errorCode === 0)).toBe(true);
      expect(both[0][0].baseOffset).not.toBe(both[1][0].baseOffset);
    } finally {
      await producer.disconnect();
    }
    expect(await storedWithTime('same-ts-kafkajs', 4)).toEqual(Array.from({ length: 4 }, () => ['event', EVENT_MS]));
    expect(await sc.metric('idempo_duplicates_rejected_total', { topic: 'same-ts-kafkajs' })).toBe(0);
  });

  it('Java (idempotence off): ProducerRecord with a timestamp, one after the other and two in flight at once', async () => {
    await kafka.createTopic('same-ts-java', 1, 1);
    // batch.size 1: every record is its own batch, so the runs' batches are byte-identical.
    const props = { 'enable.idempotence': false, acks: 'all', 'batch.size': 1, 'linger.ms': 0, 'max.in.flight.requests.per.connection': 5 };
    const base = { bootstrap: sc.bootstrap, topics: ['same-ts-java'], partition: 0, count: 2, timestamp: EVENT_MS, props };
    const a = await runJavaProducer(base);
    const b = await runJavaProducer(base);
    const c = await runJavaProducer({ ...base, count: 1, start: 7, repeat: 2 }); // send(r); send(r): two requests in flight
    expect([a.acked, b.acked, c.acked, a.failed + b.failed + c.failed]).toEqual([2, 2, 2, 0]);
    const log = await storedWithTime('same-ts-java', 6);
    expect(log.map(([v]) => v)).toEqual(['same-ts-java:0', 'same-ts-java:1', 'same-ts-java:0', 'same-ts-java:1', 'same-ts-java:7', 'same-ts-java:7']);
    expect(log.every(([, t]) => t === EVENT_MS)).toBe(true);
    expect(await sc.metric('idempo_duplicates_rejected_total', { topic: 'same-ts-java' })).toBe(0);
  });
});
