// Issue 3, headline test, part 2: exactly-once across broker restarts and leader moves. Three
// brokers (RF 3, min.insync.replicas 2, so acks=all writes survive one broker down), a fault
// relay in front of each (seeded resets), and three NON-idempotent clients producing at once
// through the sidecar (upgrade mode) in phases: kill -9 of a broker and its restart, leader
// moves, SIGTERM of another broker and its restart, more leader moves. Then every topic is
// read straight from the brokers: each record once, in order per partition. The same phases
// without the sidecar (clients -> relay -> brokers, same seed) must show duplicates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { sumMetric } from '../support/prom-text.js';
import { FaultRelay } from '../support/fault-relay.js';
import { kafkajsCreateTopics } from '../support/clients/kafkajs.js';
import { mergeRuns, produce, sidecarConfig, verify, type ClientName, type ClientTimeouts, type ProduceRun } from './faults-workload.js';
import { waitFor } from '../support/poll.js';

const SEED = 0xb40c3e5;
// A killed broker is fenced after broker.session.timeout.ms (6 s here); the sidecar keeps
// re-sending meanwhile, and the clients wait for it (their requests time out and are re-sent
// to the sidecar, which answers them from its dedup cache once the original is written).
const TIMEOUTS: ClientTimeouts = { requestMs: 10_000, deliveryMs: 120_000 };
const CLIENTS = ['kafkajs', 'kcat', 'java'] as const satisfies readonly ClientName[];
/** Records per topic per phase and client (2 topics each). */
const CHUNK: Record<(typeof CLIENTS)[number], number> = { kafkajs: 1500, kcat: 1000, java: 1000 };
const PHASES = 5;

let kafka: KafkaCluster | undefined;
let relay: FaultRelay | undefined;
let sidecar: Sidecar | undefined;
let config: ReturnType<typeof sidecarConfig> | undefined;

const topicsOf = (client: string, path: 'sc' | 'direct') => [`b-${client}-${path}-a`, `b-${client}-${path}-b`];
const allTopics = () => CLIENTS.flatMap((c) => [...topicsOf(c, 'sc'), ...topicsOf(c, 'direct')]);

beforeAll(async () => {
  // Resets only (no stalls: broker restarts already hold requests long enough); answers are
  // never cut for kafkajs's sake (see faults-relay.test.ts), so none are cut here at all.
  relay = new FaultRelay({
    seed: SEED,
    gapBytes: { up: [32 * 1024, 128 * 1024], down: [1024, 4096] },
    weights: { reset: 1, half_write: 1, stall: 0 },
    weightsDown: { reset: 1, half_write: 0, stall: 0 },
  });
  const r = relay;
  kafka = await startKafka({
    brokers: 3,
    serverProps: { 'min.insync.replicas': '2', 'unclean.leader.election.enable': 'false' },
    externalListener: (_id, port) => r.addLink({ host: '127.0.0.1', port }),
  });
  await kafkajsCreateTopics(kafka.bootstrap, allTopics().map((topic) => ({ topic, numPartitions: 3, replicationFactor: 3 })));
  // Default dedup (`exact`): kafkajs's re-encoded retries are recognised by the retry index.
  config = sidecarConfig({ mode: 'upgrade', producer: { requestTimeout: '5s', deliveryTimeout: '120s', retryBackoff: { initial: '100ms', max: '1s' } } });
  sidecar = await startSidecar({ upstream: kafka.externalBootstrap!, mode: 'upgrade', config: config.file });
});

afterAll(async () => {
  try {
    await sidecar?.stop();
  } finally {
    await relay?.close();
    await kafka?.stop();
    config?.cleanup();
  }
});

/** Until every partition of the topics has all 3 replicas in sync (a restarted broker caught up). */
async function waitIsrFull(k: KafkaCluster, topics: string[]): Promise<void> {
  await waitFor('every replica back in sync', async () => {
    const parts = (await Promise.all(topics.map((t) => k.describeTopic(t).catch(() => [])))).flat();
    return parts.length === topics.length * 3 && parts.every((p) => p.isr.length === 3 && p.leader >= 0);
  }, 180_000, 500);
}

/** Moves the leader of partition `partition` of each topic to the next broker (1 -> 2 -> 3 -> 1). */
async function moveLeaders(k: KafkaCluster, topics: string[], partition: number): Promise<number> {
  let moved = 0;
  for (const t of topics) {
    const p = (await k.describeTopic(t)).find((x) => x.partition === partition)!;
    await k.moveLeader(t, partition, (p.leader % 3) + 1);
    moved++;
  }
  return moved;
}

interface BrokerFaults {
  kill9: number;
  sigterm: number;
  leaderMoves: number;
}

/**
 * Runs the phases: in each, every client produces its next chunk while the phase's broker
 * fault happens. The order of faults is fixed; which batches they hit depends on timing,
 * which the assertions never do.
 */
async function runPhases(k: KafkaCluster, bootstrap: (c: ClientName) => string, path: 'sc' | 'direct'): Promise<{ runs: ProduceRun[]; faults: BrokerFaults }> {
  const faults: BrokerFaults = { kill9: 0, sigterm: 0, leaderMoves: 0 };
  const chunks = new Map<ClientName, ProduceRun[]>(CLIENTS.map((c) => [c, []]));
  const moveTopics = CLIENTS.map((c) => topicsOf(c, path)[0]);
  const isrTopics = CLIENTS.flatMap((c) => topicsOf(c, path));
  const phaseFault: ((phase: number) => Promise<void>)[] = [
    async () => {}, // warm: relay resets only
    async () => {
      await k.kill(2);
      faults.kill9++;
    },
    async () => {
      faults.leaderMoves += await moveLeaders(k, moveTopics, 0);
    },
    async () => {
      await k.stopBroker(3);
      faults.sigterm++;
    },
    async () => {
      faults.leaderMoves += await moveLeaders(k, moveTopics, 1);
    },
  ];
  // What must happen before the next phase: the stopped broker back and caught up.
  const afterPhase: ((phase: number) => Promise<void>)[] = [
    async () => {},
    async () => {
      await k.startBroker(2);
      await waitIsrFull(k, isrTopics);
    },
    async () => {},
    async () => {
      await k.startBroker(3);
      await waitIsrFull(k, isrTopics);
    },
    async () => {},
  ];
  // Each phase's chunk goes in two halves: the first while the fault happens (kill/SIGTERM right
  // as it starts), the second while the broker restarts and catches up.
  const half = (c: (typeof CLIENTS)[number], phase: number, second: boolean) => {
    const n = CHUNK[c] / 2;
    return produce(c, bootstrap(c), topicsOf(c, path), n, TIMEOUTS, phase * CHUNK[c] + (second ? n : 0));
  };
  for (let phase = 0; phase < PHASES; phase++) {
    for (const second of [false, true]) {
      const produced = Promise.all(CLIENTS.map((c) => half(c, phase, second)));
      await (second ? afterPhase : phaseFault)[phase](phase);
      const runs = await produced;
      runs.forEach((r, i) => chunks.get(CLIENTS[i])!.push(r));
    }
  }
  return { runs: CLIENTS.map((c) => mergeRuns(chunks.get(c)!)), faults };
}

describe('broker restarts and leader moves on a 3-broker cluster (RF 3, min ISR 2)', () => {
  it('kafkajs, librdkafka and Java producers: every record exactly once through the sidecar; duplicates without it', async () => {
    const k = kafka!;
    const rl = relay!;
    const sc = sidecar!;
    const m0 = await sc.metrics();
    rl.restart(SEED);
    rl.start();
    const viaSidecar = await runPhases(k, () => sc.bootstrap, 'sc');
    rl.stop();
    const relaySidecar = { ...rl.counters.faults };
    const m1 = await sc.metrics();

    rl.restart(SEED);
    rl.start();
    const direct = await runPhases(k, () => k.externalBootstrap!, 'direct');
    rl.stop();
    const relayDirect = { ...rl.counters.faults };

    const vs = await Promise.all(viaSidecar.runs.map((r) => verify(k.bootstrap, r)));
    const vd = await Promise.all(direct.runs.map((r) => verify(k.bootstrap, r)));
    const delta = (name: string, labels: Record<string, string> = {}) => sumMetric(m1, name, labels) - sumMetric(m0, name, labels);
    const metrics = {
      upgraded: delta('idempo_upgraded_batches_total'),
      written: delta('idempo_produce_batches_total', { outcome: 'written' }),
      duplicateAnswered: delta('idempo_produce_batches_total', { outcome: 'duplicate' }),
      failed: delta('idempo_produce_batches_total', { outcome: 'failed' }),
      duplicatesRejected: delta('idempo_duplicates_rejected_total'),
      retries: delta('idempo_retries_total'),
      retriesByReason: Object.fromEntries(['timeout', 'connection_lost', 'not_leader_or_follower', 'leader_not_available', 'not_enough_replicas', 'out_of_order_sequence_number'].map((r) => [r, delta('idempo_retries_total', { reason: r })])),
    };
    const row = (runs: ProduceRun[], v: typeof vs) =>
      runs.map((r, i) => ({ client: r.client, records: r.sent, acked: r.acked, failed: r.failed, ms: r.elapsedMs, duplicates: v[i].duplicates, missing: v[i].missing, orderViolations: v[i].orderViolations }));
    console.log(
      JSON.stringify({
        test: 'faults-brokers',
        seed: SEED,
        records: viaSidecar.runs.reduce((s, r) => s + r.sent, 0),
        sidecar: { brokerFaults: viaSidecar.faults, relayFaults: relaySidecar, clients: row(viaSidecar.runs, vs), metrics },
        direct: { brokerFaults: direct.faults, relayFaults: relayDirect, clients: row(direct.runs, vd) },
      }),
    );

    for (let i = 0; i < CLIENTS.length; i++) {
      const run = viaSidecar.runs[i];
      const v = vs[i];
      expect({ client: run.client, error: run.error }).toEqual({ client: run.client, error: undefined });
      expect({ client: run.client, duplicates: v.duplicates, orderViolations: v.orderViolations, ackedMissing: v.ackedMissing, failedTwice: v.failedTwice }).toEqual({
        client: run.client,
        duplicates: 0,
        orderViolations: 0,
        ackedMissing: 0,
        failedTwice: 0,
      });
      expect(v.missing).toBeLessThanOrEqual(run.failed);
    }
    expect(viaSidecar.faults).toEqual({ kill9: 1, sigterm: 1, leaderMoves: 6 });
    expect(vd.reduce((s, v) => s + v.duplicates, 0)).toBeGreaterThan(0);
    expect(metrics.upgraded).toBeGreaterThan(0);
    expect(metrics.written).toBeGreaterThan(0);
    expect(metrics.retries).toBeGreaterThan(0);
    expect(metrics.duplicatesRejected).toBeGreaterThanOrEqual(metrics.duplicateAnswered);
  }, 400_000);
});
