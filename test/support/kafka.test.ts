// Proves the real-Kafka harness: brokers start and stop, every client can write and read back
// each record exactly once, and leadership can be moved on demand in a 3-broker cluster.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startKafka, type KafkaCluster } from './kafka.js';
import { runJavaAdmin, runJavaConsumer, runJavaProducer, type ConsumedRecord } from './clients/java.js';
import { kafkajsConsume, kafkajsProduce } from './clients/kafkajs.js';
import { kcatConsume, kcatMetadata, kcatProduce } from './clients/kcat.js';
import { runProducerPerf, parseProducerPerfLine } from '../../bench/producer-perf.js';
import { sampleProcess } from '../../bench/proc-stats.js';

// Each value once, and values of one key stay in one partition in order.
function expectExactlyOnce(records: ConsumedRecord[], expected: string[]) {
  const values = records.map((r) => r.value);
  expect(values.length).toBe(expected.length);
  expect(new Set(values).size).toBe(values.length);
  expect([...values].sort()).toEqual([...expected].sort());
}

describe('one broker', () => {
  let kafka: KafkaCluster;
  beforeAll(async () => {
    kafka = await startKafka();
    console.log(`1-broker cluster ready in ${kafka.startMs} ms at ${kafka.bootstrap}`);
  });
  afterAll(() => kafka?.stop());

  test('metadata lists the broker', async () => {
    const md = await kcatMetadata({ bootstrap: kafka.bootstrap });
    expect(md.brokers.map((b) => b.id)).toEqual([1]);
    const c = await runJavaAdmin<{ nodes: { id: number; port: number }[] }>('describe-cluster', kafka.bootstrap);
    expect(c.nodes).toEqual([{ id: 1, host: '127.0.0.1', port: kafka.brokers[0].port }]);
  });

  test('java, kcat and kafkajs each write every record once', async () => {
    await kafka.createTopic('harness', 3, 1);
    expect((await kafka.describeTopic('harness')).map((p) => p.leader)).toEqual([1, 1, 1]);

    const java = await runJavaProducer({ bootstrap: kafka.bootstrap, topics: ['harness'], count: 300, props: { acks: 'all', 'linger.ms': 5 } });
    expect(java).toMatchObject({ sent: 300, acked: 300, failed: 0, fatal: null, exitCode: 0 });
    expect(Object.keys(java.partitions).sort()).toEqual(['harness-0', 'harness-1', 'harness-2']);

    const kc = await kcatProduce({ bootstrap: kafka.bootstrap, topic: 'harness', lines: Array.from({ length: 300 }, (_, i) => `k${i}:kcat:${i}`), keyDelimiter: ':' });
    expect(kc.deliveryFailures).toBe(0);
    expect(kc.exitCode).toBe(0);

    const js = await kafkajsProduce({
      bootstrap: kafka.bootstrap,
      topic: 'harness',
      idempotent: true,
      batchSize: 50,
      messages: Array.from({ length: 300 }, (_, i) => ({ key: `j${i}`, value: `kafkajs:${i}` })),
    });
    expect(js.every((m) => m.errorCode === 0)).toBe(true);

    const expected = [
      ...Array.from({ length: 300 }, (_, i) => `harness:${i}`),
      ...Array.from({ length: 300 }, (_, i) => `kcat:${i}`),
      ...Array.from({ length: 300 }, (_, i) => `kafkajs:${i}`),
    ];
    // Read back with all three clients, lingering to catch any extra copy.
    const jc = await runJavaConsumer({ bootstrap: kafka.bootstrap, topics: ['harness'], expect: 900, lingerMs: 500 });
    expect(jc.timedOut).toBe(false);
    expectExactlyOnce(jc.records, expected);
    expect(Object.keys(jc.byPartition.harness).sort()).toEqual(['0', '1', '2']);

    const kr = await kcatConsume({ bootstrap: kafka.bootstrap, topic: 'harness' });
    expectExactlyOnce(kr, expected);
    expect(kr.find((r) => r.value === 'kcat:7')?.key).toBe('k7');

    const jr = await kafkajsConsume({ bootstrap: kafka.bootstrap, topics: ['harness'], count: 900, lingerMs: 500 });
    expect(jr.timedOut).toBe(false);
    expectExactlyOnce(jr.records, expected);
  });

  test('java producer reports per-record errors without throwing', async () => {
    // Records over max.request.size fail one by one (RecordTooLargeException, in the callback).
    const r = await runJavaProducer({ bootstrap: kafka.bootstrap, topics: ['harness-big'], count: 3, valueSize: 20_000, props: { 'max.request.size': 10_000 } });
    expect(r).toMatchObject({ sent: 3, acked: 0, failed: 3, errors: { RecordTooLargeException: 3 }, fatal: null, exitCode: 2 });
    // A bad config is fatal: the summary says why and the exit code is 1.
    const bad = await runJavaProducer({ bootstrap: kafka.bootstrap, topics: ['harness-big'], count: 1, props: { acks: 'sometimes' } });
    expect(bad.exitCode).toBe(1);
    expect(bad.fatal).toMatch(/acks/);
  });

  test('bench pieces: ProducerPerformance summary and /proc sampling', async () => {
    const pid = kafka.pid(1)!;
    const before = sampleProcess(pid);
    const r = await runProducerPerf({ bootstrap: kafka.bootstrap, topic: 'perf', records: 5000, recordSize: 1024, acks: 'all' });
    expect(r.records).toBe(5000);
    expect(r.recordsPerSec).toBeGreaterThan(0);
    expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms);
    const after = sampleProcess(pid);
    expect(after.cpuSeconds).toBeGreaterThan(before.cpuSeconds);
    expect(after.peakRssBytes).toBeGreaterThanOrEqual(after.rssBytes);
    expect(after.peakRssBytes).toBeGreaterThan(50 * 2 ** 20);
    expect(parseProducerPerfLine('1000 records sent, 2000.5 records/sec (1.95 MB/sec), 3.25 ms avg latency, 40.00 ms max latency, 2 ms 50th, 9 ms 95th, 30 ms 99th, 40 ms 99.9th.')).toMatchObject({
      records: 1000, recordsPerSec: 2000.5, mbPerSec: 1.95, avgLatencyMs: 3.25, maxLatencyMs: 40, p50Ms: 2, p95Ms: 9, p99Ms: 30, p999Ms: 40,
    });
    expect(parseProducerPerfLine('5001 records sent, 1000.2 records/sec (0.98 MB/sec), 2.1 ms avg latency, 30.0 ms max latency.')).toBeNull();
  });

  test('a stopped broker restarts with its data', async () => {
    await kafka.stopBroker(1);
    expect(kafka.isRunning(1)).toBe(false);
    await kafka.startBroker(1);
    const kr = await kcatConsume({ bootstrap: kafka.bootstrap, topic: 'harness' });
    expect(kr.length).toBe(900);
  });
});

describe('three brokers', () => {
  let kafka: KafkaCluster;
  beforeAll(async () => {
    kafka = await startKafka({ brokers: 3 });
    console.log(`3-broker cluster ready in ${kafka.startMs} ms at ${kafka.bootstrap}`);
  });
  afterAll(() => kafka?.stop());

  test('moveLeader moves partition leadership, and a killed leader fails over', async () => {
    expect(kafka.brokers.map((b) => b.id)).toEqual([1, 2, 3]);
    await kafka.createTopic('rf3', 2, 3);
    const before = await kafka.describeTopic('rf3');
    expect(before[0].replicas.sort()).toEqual([1, 2, 3]);
    const target = [1, 2, 3].find((id) => id !== before[0].leader)!;
    await kafka.moveLeader('rf3', 0, target);
    const after = await kafka.describeTopic('rf3');
    expect(after[0].leader).toBe(target);
    expect(after[0].replicas[0]).toBe(target);
    expect((await kcatMetadata({ bootstrap: kafka.bootstrap, topic: 'rf3' })).topics[0].partitions.find((p) => p.partition === 0)?.leader).toBe(target);

    const p1 = await runJavaProducer({ bootstrap: kafka.bootstrap, topics: ['rf3'], count: 100 });
    expect(p1).toMatchObject({ acked: 100, failed: 0 });

    await kafka.kill(target);
    await kafka.waitReady(); // the others no longer list the killed broker (it was fenced)
    const failed = await kafka.describeTopic('rf3');
    expect(failed[0].leader).not.toBe(target);
    const p2 = await runJavaProducer({ bootstrap: kafka.bootstrap, topics: ['rf3'], count: 100, start: 100 });
    expect(p2).toMatchObject({ acked: 100, failed: 0 });

    await kafka.startBroker(target);
    const c = await runJavaConsumer({ bootstrap: kafka.bootstrap, topics: ['rf3'], expect: 200, lingerMs: 300 });
    expectExactlyOnce(c.records, Array.from({ length: 200 }, (_, i) => `rf3:${i}`));
  });
});
