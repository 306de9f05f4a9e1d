// Issue 7: one partition that cannot be written must not stall the others (upgrade mode).
// Three real brokers. `stall-dead` lives only on broker 3 and `stall-thin` on brokers 1 and 3
// with min.insync.replicas 2; `stall-ok` lives on brokers 1 and 2. Broker 3 is killed:
// - a batch to stall-dead meets a refused connection (outcome unknown), is HELD under its stamp
//   past deliveryTimeout (the client is told to retry);
// - a batch to stall-thin gets NOT_ENOUGH_REPLICAS until deliveryTimeout: it fails, a hole in
//   that partition's sequences, so the partition must move to a new epoch.
// With one producer identity for the whole sidecar, that move waited until EVERY partition had
// drained, and the held batch kept stall-dead undrained for the dedup window: stall-ok's new
// records were answered REQUEST_TIMED_OUT. Now each must be acknowledged at once. Then broker 3
// comes back: the held batch lands once (the client's retry is answered with its offset), the
// failed one is written once by the client's retry, and every log holds each record once, in order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { kafkajsClient } from '../support/clients/kafkajs.js';
import { RawConnection } from '../support/raw-kafka.js';
import { waitFor } from '../support/poll.js';
import { ErrorCode } from '../../sidecar/codec/errors.js';
import { encodeBatch, fetchBatches, produceFrame, readProduceAnswer, sendFrame, valuesOf } from './wire.js';
import { sidecarConfig } from './faults-workload.js';

let kafka: KafkaCluster | undefined;
let sc: Sidecar | undefined;
let config: ReturnType<typeof sidecarConfig> | undefined;
const conns: RawConnection[] = [];

beforeAll(async () => {
  kafka = await startKafka({
    brokers: 3,
    // The ISR drops the dead broker after 3 s (then NOT_ENOUGH_REPLICAS comes at once), and the
    // controller fences it after 6 s.
    serverProps: { 'replica.lag.time.max.ms': '3000', 'broker.session.timeout.ms': '6000', 'unclean.leader.election.enable': 'false' },
  });
  const admin = kafkajsClient(kafka.bootstrap).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      timeout: 60_000,
      topics: [
        { topic: 'stall-ok', replicaAssignment: [{ partition: 0, replicas: [1, 2] }], configEntries: [{ name: 'min.insync.replicas', value: '1' }] },
        { topic: 'stall-dead', replicaAssignment: [{ partition: 0, replicas: [3] }] },
        { topic: 'stall-thin', replicaAssignment: [{ partition: 0, replicas: [1, 3] }], configEntries: [{ name: 'min.insync.replicas', value: '2' }] },
      ],
    });
  } finally {
    await admin.disconnect();
  }
  // deliveryTimeout 6 s (the failure comes soon); the hold lasts the dedup window (5 min).
  config = sidecarConfig({ mode: 'upgrade', dedup: { strategy: 'exact', window: '5m' }, producer: { requestTimeout: '2s', deliveryTimeout: '6s', retryBackoff: { initial: '100ms', max: '500ms' } } });
  sc = await startSidecar({ upstream: kafka.bootstrap, mode: 'upgrade', config: config.file });
}, 240_000);

afterAll(async () => {
  for (const c of conns) c.close();
  try {
    await sc?.stop();
  } finally {
    await kafka?.stop();
    config?.cleanup();
  }
});

async function connect(): Promise<RawConnection> {
  const c = await RawConnection.connect(sc!.bootstrap);
  conns.push(c);
  return c;
}

const rec = (v: string) => [{ key: null, value: Buffer.from(v) }];

describe('upgrade mode: one partition that cannot be written does not stall the others', () => {
  it('stall-ok keeps being acknowledged while stall-dead is held and stall-thin had a hole; after recovery every record is in its log once, in order', async () => {
    const k = kafka!;
    const s = sc!;
    const ok = await connect();
    const dead = await connect();
    const thin = await connect();
    const okValues: string[] = [];
    const writeOk = async (v: string): Promise<number> => {
      const a = await sendFrame(ok, produceFrame('stall-ok', 0, encodeBatch(rec(v))));
      if (a.errorCode === ErrorCode.NONE) okValues.push(v);
      return a.errorCode;
    };

    // Everything works: each partition has its producer identity and is confirmed.
    expect(await writeOk('ok-0')).toBe(0);
    expect((await sendFrame(dead, produceFrame('stall-dead', 0, encodeBatch(rec('dead-0'))))).errorCode).toBe(0);
    expect((await sendFrame(thin, produceFrame('stall-thin', 0, encodeBatch(rec('thin-0'))))).errorCode).toBe(0);

    await k.kill(3);
    // At once, before the controller fences broker 3: the sidecar's attempt meets a refused
    // connection, so this batch may have been written as far as it knows (held at its deadline).
    const deadFrame = produceFrame('stall-dead', 0, encodeBatch(rec('dead-1')));
    dead.write(deadFrame.frame);
    const deadAnswer = readProduceAnswer(dead, deadFrame.corr);

    await waitFor('stall-thin has only broker 1 in sync', async () => (await k.describeTopic('stall-thin'))[0]?.isr.join() === '1', 60_000, 250);
    const thinBatch = encodeBatch(rec('thin-1'));
    const thinFrame = produceFrame('stall-thin', 0, thinBatch);
    thin.write(thinFrame.frame);
    const thinAnswer = readProduceAnswer(thin, thinFrame.corr);

    // The hole: stall-thin-0's batch failed for good (NOT_ENOUGH_REPLICAS, not written).
    await waitFor('the stall-thin batch failed', async () => (await s.metric('idempo_produce_batches_total', { topic: 'stall-thin', outcome: 'failed' })) >= 1, 60_000, 250);
    // The client heard a retriable error (REQUEST_TIMED_OUT at its own deadline, or the broker's code).
    expect([ErrorCode.REQUEST_TIMED_OUT, ErrorCode.NOT_ENOUGH_REPLICAS]).toContain((await thinAnswer).errorCode);
    // stall-dead's batch is undecided past its deadline and held (the client is told to retry).
    expect((await deadAnswer).errorCode).toBe(ErrorCode.REQUEST_TIMED_OUT);
    await waitFor('the stall-dead batch is held', async () => s.logs().some((l) => l.includes('held under its stamp') && l.includes('stall-dead')), 60_000, 250);

    // The healthy partition: every record acknowledged, one after the other, while stall-dead is held.
    for (let i = 1; i <= 20; i++) expect(await writeOk(`ok-${i}`)).toBe(0);
    expect(await s.metric('idempo_produce_batches_total', { topic: 'stall-dead', outcome: 'written' })).toBe(1); // still undecided

    // stall-thin moves alone to a new epoch with its next batch (still refused while broker 3 is down).
    const thin2 = produceFrame('stall-thin', 0, encodeBatch(rec('thin-2')));
    thin.write(thin2.frame);
    const thin2Answer = readProduceAnswer(thin, thin2.corr);
    await waitFor('stall-thin moved to a new epoch', async () => (await s.metric('idempo_producer_identities_total', { reason: 'sequence_hole' })) >= 1, 60_000, 250);
    expect(await s.metric('idempo_producer_ids_allocated_total')).toBe(1); // an epoch of the same id, no new id
    expect([ErrorCode.REQUEST_TIMED_OUT, ErrorCode.NOT_ENOUGH_REPLICAS]).toContain((await thin2Answer).errorCode);
    expect(await writeOk('ok-21')).toBe(0);

    // Broker 3 comes back: the held batch is decided (written once), its client's retry gets its offset.
    await k.startBroker(3);
    await waitFor('the held stall-dead batch written', async () => (await s.metric('idempo_produce_batches_total', { topic: 'stall-dead', outcome: 'written' })) >= 2, 120_000, 500);
    const retry = await sendFrame(dead, { frame: deadFrame.frame, corr: deadFrame.corr });
    expect(retry.errorCode).toBe(0);
    // stall-thin: the client's retries of its failed records are written, once each, in order.
    await waitFor('stall-thin in sync again', async () => (await k.describeTopic('stall-thin'))[0]?.isr.length === 2, 120_000, 500);
    for (const f of [thinFrame, thin2]) {
      await waitFor(`retry of ${f.corr} written`, async () => (await sendFrame(thin, f)).errorCode === 0, 120_000, 500);
    }
    expect(await writeOk('ok-22')).toBe(0);

    /** The partition's log, read from its leader. */
    const stored = async (topic: string): Promise<string[]> => {
      const leader = (await k.describeTopic(topic))[0].leader;
      const b = k.brokers.find((x) => x.id === leader)!;
      return valuesOf(await fetchBatches(`${b.host}:${b.port}`, topic, 0));
    };
    expect(await stored('stall-ok')).toEqual(okValues);
    expect(okValues).toHaveLength(23);
    expect(await stored('stall-dead')).toEqual(['dead-0', 'dead-1']);
    expect(await stored('stall-thin')).toEqual(['thin-0', 'thin-1', 'thin-2']);
  }, 600_000);
});
