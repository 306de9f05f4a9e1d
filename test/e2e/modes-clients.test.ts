// enforce (and upgrade) with clients no one here wrote: kafkajs, librdkafka (kcat) and the Java
// producer. With idempotence off they get POLICY_VIOLATION and nothing reaches the broker; with
// it on, every record is written once. Read back directly from the broker, never through the sidecar.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { kafkajsProduce } from '../support/clients/kafkajs.js';
import { kcatConsume, kcatProduce } from '../support/clients/kcat.js';
import { runJavaProducer } from '../support/clients/java.js';

const POLICY = 'clients-policy';
const REFUSAL = `policy ${POLICY} (mode enforce) refuses a non-idempotent producer: set enable.idempotence=true and acks=all`;

let kafka: KafkaCluster;
let enforce: Sidecar;
let upgrade: Sidecar;

beforeAll(async () => {
  kafka = await startKafka({ brokers: 1 });
  [enforce, upgrade] = await Promise.all([
    startSidecar({ upstream: kafka.bootstrap, mode: 'enforce', extraArgs: ['--policy-name', POLICY] }),
    startSidecar({ upstream: kafka.bootstrap, mode: 'upgrade' }),
  ]);
});

afterAll(async () => {
  await Promise.all([enforce?.stop(), upgrade?.stop()]);
  await kafka?.stop();
});

/** Every value in the partition(s), read with kcat straight from the broker. */
async function stored(topic: string): Promise<string[]> {
  return (await kcatConsume({ bootstrap: kafka.bootstrap, topic })).map((r) => r.value ?? '<null>');
}

function expectOnce(values: string[], expected: string[]): void {
  expect(values.length).toBe(expected.length);
  expect([...values].sort()).toEqual([...expected].sort());
}

const seq = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}:${i}`);

describe('enforce', () => {
  let idempotentProducers = 0;

  it('kafkajs: not idempotent -> POLICY_VIOLATION, nothing written; idempotent -> every record once', async () => {
    await kafka.createTopic('enf-kjs-off', 1, 1);
    await expect(kafkajsProduce({ bootstrap: enforce.bootstrap, topic: 'enf-kjs-off', messages: seq('off', 10).map((value) => ({ value })) })).rejects.toMatchObject({
      type: 'POLICY_VIOLATION',
    });
    expect(await stored('enf-kjs-off')).toEqual([]);
    expect(await enforce.metric('idempo_produce_batches_total', { topic: 'enf-kjs-off', outcome: 'policy_rejected' })).toBe(1);

    await kafka.createTopic('enf-kjs-on', 2, 1);
    const acks = await kafkajsProduce({ bootstrap: enforce.bootstrap, topic: 'enf-kjs-on', idempotent: true, messages: seq('on', 200).map((value, i) => ({ key: String(i), value })), batchSize: 20 });
    expect(acks.every((a) => a.errorCode === 0)).toBe(true);
    idempotentProducers++;
    expectOnce(await stored('enf-kjs-on'), seq('on', 200));
    expect(await enforce.metric('idempo_produce_batches_total', { topic: 'enf-kjs-on', outcome: 'policy_rejected' })).toBe(0);
    // kafkajs answers one RecordMetadata per partition per send(): one batch each.
    expect(await enforce.metric('idempo_produce_batches_total', { topic: 'enf-kjs-on', outcome: 'written' })).toBe(acks.length);
    await expect.poll(() => enforce.metric('idempo_producer_sessions')).toBe(idempotentProducers);
  });

  it('librdkafka (kcat): enable.idempotence=false -> delivery fails with the policy error, nothing written; =true -> every record once', async () => {
    await kafka.createTopic('enf-kcat-off', 1, 1);
    const off = await kcatProduce({ bootstrap: enforce.bootstrap, topic: 'enf-kcat-off', lines: seq('off', 20) });
    expect(off.deliveryFailures).toBe(20);
    expect(off.stderr).toMatch(/Delivery failed.*Broker: Policy violation/);
    expect(await stored('enf-kcat-off')).toEqual([]);
    expect(await enforce.metric('idempo_produce_batches_total', { topic: 'enf-kcat-off', outcome: 'policy_rejected' })).toBeGreaterThanOrEqual(1);

    await kafka.createTopic('enf-kcat-on', 2, 1);
    const on = await kcatProduce({ bootstrap: enforce.bootstrap, topic: 'enf-kcat-on', lines: seq('on', 300), props: { 'enable.idempotence': true } });
    expect(on.exitCode).toBe(0);
    expect(on.deliveryFailures).toBe(0);
    idempotentProducers++;
    expectOnce(await stored('enf-kcat-on'), seq('on', 300));
    expect(await enforce.metric('idempo_produce_batches_total', { topic: 'enf-kcat-on', outcome: 'policy_rejected' })).toBe(0);
    await expect.poll(() => enforce.metric('idempo_producer_sessions')).toBe(idempotentProducers);
  });

  it('Java: enable.idempotence=false -> PolicyViolationException naming the policy, nothing written; default -> every record once', async () => {
    await kafka.createTopic('enf-java-off', 1, 1);
    const off = await runJavaProducer({ bootstrap: enforce.bootstrap, topics: ['enf-java-off'], count: 20, props: { 'enable.idempotence': false, acks: 'all' } });
    expect(off.acked).toBe(0);
    expect(off.errors).toEqual({ PolicyViolationException: 20 });
    expect(off.errorMessages[0]).toBe(`PolicyViolationException: ${REFUSAL}`);
    expect(await stored('enf-java-off')).toEqual([]);

    await kafka.createTopic('enf-java-on', 3, 1);
    const on = await runJavaProducer({ bootstrap: enforce.bootstrap, topics: ['enf-java-on'], count: 500 });
    expect(on.fatal).toBeNull();
    expect(on.acked).toBe(500);
    idempotentProducers++;
    expectOnce(await stored('enf-java-on'), seq('enf-java-on', 500));
    expect(await enforce.metric('idempo_produce_batches_total', { topic: 'enf-java-on', outcome: 'policy_rejected' })).toBe(0);
    await expect.poll(() => enforce.metric('idempo_producer_sessions')).toBe(idempotentProducers);
  });
});

describe('upgrade', () => {
  it('kcat and Java with idempotence off: every record once, every batch upgraded', async () => {
    await kafka.createTopic('up-kcat', 2, 1);
    const k = await kcatProduce({ bootstrap: upgrade.bootstrap, topic: 'up-kcat', lines: seq('kcat', 300) });
    expect(k.exitCode).toBe(0);
    expect(k.deliveryFailures).toBe(0);
    expectOnce(await stored('up-kcat'), seq('kcat', 300));

    await kafka.createTopic('up-java', 2, 1);
    const j = await runJavaProducer({ bootstrap: upgrade.bootstrap, topics: ['up-java'], count: 300, props: { 'enable.idempotence': false, acks: 'all' } });
    expect(j.fatal).toBeNull();
    expect(j.acked).toBe(300);
    expectOnce(await stored('up-java'), seq('up-java', 300));

    for (const topic of ['up-kcat', 'up-java']) {
      const upgraded = await upgrade.metric('idempo_upgraded_batches_total', { topic });
      expect(upgraded).toBeGreaterThanOrEqual(2); // at least one batch per partition
      expect(await upgrade.metric('idempo_produce_batches_total', { topic, outcome: 'written' })).toBe(upgraded);
    }
    // Only the sidecar's own producer: the clients had none.
    await expect.poll(() => upgrade.metric('idempo_producer_sessions')).toBe(1);
  });
});
