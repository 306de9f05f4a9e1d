// Broker-side state loss (issue 7.5) on real parts: a real broker forgets the sidecar producer's
// state on a partition while a client keeps producing through the sidecar (upgrade mode), and the
// network between sidecar and broker loses the first request after it. A broker without state
// for (producer id, partition) accepts ANY sequence (KIP-360), so if the sidecar pipelined its next
// two batches A and B, the broker would write B while A was lost on the way, and A's re-send
// would land behind B (or fail). The sidecar must send the first batch after such a loss alone.
//
// The losses, both real: the topic deleted and created again (the client refreshes its metadata
// through the sidecar, as clients do after the errors of the deletion), and the producer id
// expired by the broker (producer.id.expiration.ms) during an idle spell longer than the sidecar's
// session idle rule (60 s). The fault: the fault relay in front of the broker swallows the next
// Produce request the sidecar sends (a real lost request at an exact point, so the test is
// deterministic). Each case also runs with the sidecar's detection switched off by the test-only
// IDEMPO_TEST_ONLY_NO_STATE_LOSS_DETECTION (upgrader.ts): then B is written ahead of A, which
// shows the fault bites.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kafka, logLevel } from 'kafkajs';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { FaultRelay } from '../support/fault-relay.js';
import { RawConnection } from '../support/raw-kafka.js';
import { waitFor } from '../support/poll.js';
import { ApiKey } from '../../sidecar/codec/api.js';
import { ErrorCode } from '../../sidecar/codec/errors.js';
import { encodeBatch, fetchBatches, produceFrame, readProduceAnswer, valuesOf } from './wire.js';
import { sidecarConfig } from './faults-workload.js';

/** The broker forgets an idle producer after this (far below its 1-day default; above our pauses). */
const PRODUCER_EXPIRATION_MS = 15_000;
/** Longer than the sidecar's session idle rule (sequencer.ts sessionIdleMs, 60 s). */
const IDLE_MS = 65_000;
/** Enough for the broker to expire the producer (expiration + its check interval + margin). */
const EXPIRED_MS = PRODUCER_EXPIRATION_MS + 5_000;
/** Client request timeout: the sidecar waits this + its requestTimeout (2 s) for a lost request. */
const CLIENT_TIMEOUT_MS = 3_000;

let kafka: KafkaCluster;
let relay: FaultRelay;
let config: { file: string; cleanup: () => void };

beforeAll(async () => {
  relay = new FaultRelay({ seed: 1, framedUp: true, weights: {} });
  kafka = await startKafka({
    brokers: 1,
    serverProps: { 'producer.id.expiration.ms': String(PRODUCER_EXPIRATION_MS), 'producer.id.expiration.check.interval.ms': '1000' },
    externalListener: (_id, port) => relay.addLink({ host: '127.0.0.1', port }),
  });
  relay.start();
  config = sidecarConfig({ mode: 'upgrade', producer: { requestTimeout: '2s', deliveryTimeout: '120s', retryBackoff: { initial: '50ms', max: '500ms' } } });
}, 180_000);

afterAll(async () => {
  config?.cleanup();
  await relay?.close();
  await kafka?.stop();
});

/**
 * recreated: the client refreshes its metadata through the sidecar after the recreation (as after
 * the deletion's errors). recreated-quietly: it does not (it was idle meanwhile, and a client on
 * Produce < v13 names topics, so nothing fails for it). expired: producer id expired by the broker.
 */
type Loss = 'recreated' | 'recreated-quietly' | 'expired';

/** What the log of the partition holds after the loss, and what the client was answered. */
interface Outcome {
  values: string[];
  answers: { a: number[]; b: number[] };
  stateLost: number;
}

async function run(loss: Loss, detection: boolean): Promise<Outcome> {
  const topic = `state-loss-${loss}-${detection ? 'on' : 'off'}`;
  await kafka.createTopic(topic, 1, 1);
  const sidecar = await startSidecar({
    upstream: kafka.externalBootstrap!,
    mode: 'upgrade',
    config: config.file,
    env: detection ? {} : { IDEMPO_TEST_ONLY_NO_STATE_LOSS_DETECTION: '1' },
  });
  const c = await RawConnection.connect(sidecar.bootstrap);
  try {
    // The sidecar's producer has written to the partition: its session there is confirmed, so it
    // would pipeline the next batches.
    const warm = produceFrame(topic, 0, encodeBatch([{ key: 'w', value: 'warm-up' }]), -1, CLIENT_TIMEOUT_MS);
    c.write(warm.frame);
    expect((await readProduceAnswer(c, warm.corr)).errorCode).toBe(ErrorCode.NONE);

    if (loss !== 'expired') {
      await recreate(topic);
      // As a client does after the deletion's errors: metadata through the sidecar (it learns the new topic id).
      if (loss === 'recreated') await metadataThrough(sidecar, topic);
    } else {
      // Quiet past the broker's producer.id.expiration.ms (with the detection on: past the sidecar's idle rule too).
      await new Promise((r) => setTimeout(r, detection ? IDLE_MS : EXPIRED_MS)); // the idle spell IS the test's subject
    }

    // The next Produce request the sidecar sends to the broker is lost on the way.
    const lost = relay.dropNextRequest((payload) => payload.readInt16BE(0) === ApiKey.Produce);
    const a = produceFrame(topic, 0, encodeBatch([1, 2, 3].map((i) => ({ key: `a${i}`, value: `A${i}` }))), -1, CLIENT_TIMEOUT_MS);
    const b = produceFrame(topic, 0, encodeBatch([1, 2, 3].map((i) => ({ key: `b${i}`, value: `B${i}` }))), -1, CLIENT_TIMEOUT_MS);
    c.write(a.frame);
    c.write(b.frame); // pipelined, as a client with several requests in flight sends them
    const answers = { a: [(await readProduceAnswer(c, a.corr, 30_000)).errorCode], b: [(await readProduceAnswer(c, b.corr, 30_000)).errorCode] };
    await lost;
    if (detection) {
      // A client's retries (the same bytes, as Java and librdkafka re-send) until both are decided.
      await waitFor(
        'A and B acknowledged',
        async () => {
          for (const [f, list] of [[a, answers.a], [b, answers.b]] as const) {
            if (list[list.length - 1] === ErrorCode.NONE) continue;
            c.write(f.frame);
            list.push((await readProduceAnswer(c, f.corr, 30_000)).errorCode);
          }
          return answers.a.at(-1) === ErrorCode.NONE && answers.b.at(-1) === ErrorCode.NONE;
        },
        90_000,
        200,
      );
    }
    const values = valuesOf(await fetchBatches(kafka.bootstrap, topic, 0)).filter((v) => v !== 'warm-up');
    const stateLost = await sidecar.metric('idempo_upstream_errors_total', { error: 'producer_state_lost' });
    console.log(JSON.stringify({ test: 'faults-state-loss', loss, detection, values, answers, stateLost }));
    return { values, answers, stateLost };
  } finally {
    c.close();
    await sidecar.stop();
  }
}

async function recreate(topic: string): Promise<void> {
  const admin = new Kafka({ clientId: 'state-loss-admin', brokers: [kafka.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics: [topic], timeout: 30_000 });
    await waitFor(`${topic} deleted`, async () => !(await admin.listTopics()).includes(topic), 60_000, 200);
  } finally {
    await admin.disconnect();
  }
  // Right after a deletion, creating the name again can fail for a moment (the deletion is still
  // spreading in the metadata): try again until it is there.
  await waitFor(`${topic} created again`, () => kafka.createTopic(topic, 1, 1).then(() => true, () => false), 60_000, 500);
}

/** Metadata v12 for one topic through the sidecar (what a client sends before producing again). */
async function metadataThrough(sidecar: Sidecar, topic: string): Promise<void> {
  const m = await RawConnection.connect(sidecar.bootstrap);
  try {
    m.send(ApiKey.Metadata, 12, (w) => {
      w.uvarint(2); // one topic (compact array)
      w.uuid(Buffer.alloc(16));
      w.compactNullableString(topic);
      w.uvarint(0);
      w.bool(false); // allow auto topic creation
      w.bool(false); // include topic authorized operations
      w.uvarint(0);
    });
    await m.receive(ApiKey.Metadata, 12);
  } finally {
    m.close();
  }
}

const A = ['A1', 'A2', 'A3'];
const B = ['B1', 'B2', 'B3'];

describe('broker-side state loss (KIP-360) with the first request after it lost on the way', () => {
  it('topic deleted and created again, the client refreshes metadata through the sidecar: the first batch goes alone, A and B land once, in order', async () => {
    const o = await run('recreated', true);
    expect(o.values).toEqual([...A, ...B]);
    expect(o.stateLost).toBeGreaterThan(0);
  }, 180_000);

  // Found by this test: the sidecar sent Produce with the client's version (v9 here, as kafkajs
  // and librdkafka use: topics by name), so a topic recreated while its producer was idle took
  // the pipelined batches with no producer state: B1-B3 then A1-A3, and the client got
  // OUT_OF_ORDER_SEQUENCE_NUMBER for A. Now the sidecar names topics by id (v13).
  it('topic deleted and created again while the client was idle (no metadata through the sidecar): A and B land once, in order', async () => {
    const o = await run('recreated-quietly', true);
    expect(o.values).toEqual([...A, ...B]);
  }, 180_000);

  it('topic deleted and created again quietly, detection switched off (test-only): B is written ahead of A', async () => {
    const o = await run('recreated-quietly', false);
    expect(o.answers.b).toEqual([ErrorCode.NONE]);
    expect(o.values.slice(0, 3)).toEqual(B);
  }, 180_000);

  it(`producer id expired by the broker (idle ${IDLE_MS / 1000} s > producer.id.expiration.ms): the first batch goes alone, A and B land once, in order`, async () => {
    const o = await run('expired', true);
    expect(o.values).toEqual([...A, ...B]);
  }, 240_000);

  it('producer id expired, detection switched off (test-only): B is written ahead of A', async () => {
    const o = await run('expired', false);
    expect(o.answers.b).toEqual([ErrorCode.NONE]);
    expect(o.values.slice(0, 3)).toEqual(B);
  }, 240_000);
});
