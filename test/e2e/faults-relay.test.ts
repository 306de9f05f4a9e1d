// Issue 3, headline test, part 1: exactly-once under network faults. A fault relay sits
// between the sidecar and a real broker (the broker advertises the relay's port); seeded
// resets, half-written frames and stalls longer than the request timeout fire while a
// NON-idempotent producer writes numbered records through the sidecar (upgrade mode). Every
// topic is then read straight from the broker: each record once, in order per partition.
// The same workload without the sidecar (client -> relay -> broker, same seed) must show
// duplicates, or the faults were too gentle to prove anything.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { sumMetric } from '../support/prom-text.js';
import { FaultRelay, type FaultKind } from '../support/fault-relay.js';
import { kafkajsCreateTopics } from '../support/clients/kafkajs.js';
import { produce, sidecarConfig, verify, type ClientName, type ClientTimeouts } from './faults-workload.js';

const SEED = 0x1de3905;
// Client request timeout 3 s; the sidecar waits (client's produce timeout + its own 2 s) = 5 s
// upstream; a stall holds a connection 8 s, longer than both.
const TIMEOUTS: ClientTimeouts = { requestMs: 3000, deliveryMs: 30_000 };
const STALL_MS = 8000;
// Records per topic (2 topics x 3 partitions each): 2 x 10,000 = 20,000 for kafkajs.
const WEIGHTS = { reset: 2, half_write: 2, stall: 1 };
// kafkajs 2.2.4 keeps its frame buffer (Connection.chunks/bytesNeeded) across reconnects: after
// a half-written answer the next connection's bytes are parsed behind the stale half frame and
// its socket handler throws RangeError (uncaught). So answers to kafkajs are never cut; its
// requests still are, and it gets resets and stalls both ways (same plan with and without sidecar).
const KAFKAJS_DOWN = { reset: 2, half_write: 0, stall: 1 };
const PLAN: { client: ClientName; perTopic: number; stalls: number; weightsDown?: typeof WEIGHTS }[] = [
  { client: 'kafkajs', perTopic: 10_000, stalls: 2, weightsDown: KAFKAJS_DOWN },
  { client: 'kcat', perTopic: 5000, stalls: 1 },
  { client: 'java', perTopic: 5000, stalls: 1 },
];

let kafka: KafkaCluster | undefined;
let relay: FaultRelay | undefined;
let sidecar: Sidecar | undefined;
let config: ReturnType<typeof sidecarConfig> | undefined;
const limits: Partial<Record<FaultKind, number>> = { stall: 0 };

const topicsOf = (client: string, path: 'sc' | 'direct') => [`${client}-${path}-a`, `${client}-${path}-b`];

beforeAll(async () => {
  relay = new FaultRelay({
    seed: SEED,
    // Requests (up) are large: a fault every 32-128 KiB; answers (down) small: every 0.5-2 KiB.
    gapBytes: { up: [32 * 1024, 128 * 1024], down: [512, 2048] },
    weights: WEIGHTS,
    stallMs: STALL_MS,
    limits,
  });
  const r = relay;
  kafka = await startKafka({ brokers: 1, externalListener: (_id, port) => r.addLink({ host: '127.0.0.1', port }) });
  await kafkajsCreateTopics(
    kafka.bootstrap,
    PLAN.flatMap((p) => [...topicsOf(p.client, 'sc'), ...topicsOf(p.client, 'direct')]).map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })),
  );
  config = sidecarConfig({ mode: 'upgrade', producer: { requestTimeout: '2s', deliveryTimeout: '120s', retryBackoff: { initial: '50ms', max: '1s' } } });
  // The sidecar bootstraps through the relay, so every broker address it learns is a relay port.
  sidecar = await startSidecar({ upstream: kafka.externalBootstrap!, mode: 'upgrade', config: config.file, logLevel: process.env.FAULTS_LOG_LEVEL });
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

describe('relay faults between sidecar and a 1-broker cluster', () => {
  for (const p of PLAN) {
    it(`${p.client}: ${2 * p.perTopic} records exactly once through the sidecar; duplicates without it`, async () => {
      const k = kafka!;
      const rl = relay!;
      const sc = sidecar!;
      const m0 = await sc.metrics();

      limits.stall = p.stalls;
      rl.restart(SEED, { weightsDown: p.weightsDown });
      rl.start();
      const viaSidecar = await produce(p.client, sc.bootstrap, topicsOf(p.client, 'sc'), p.perTopic, TIMEOUTS);
      rl.stop();
      const faultsSidecar = { ...rl.counters.faults };
      const m1 = await sc.metrics();

      rl.restart(SEED, { weightsDown: p.weightsDown });
      rl.start();
      const direct = await produce(p.client, k.externalBootstrap!, topicsOf(p.client, 'direct'), p.perTopic, TIMEOUTS);
      rl.stop();
      const faultsDirect = { ...rl.counters.faults };

      const vs = await verify(k.bootstrap, viaSidecar);
      const vd = await verify(k.bootstrap, direct);

      const delta = (name: string, labels: Record<string, string> = {}) => sumMetric(m1, name, labels) - sumMetric(m0, name, labels);
      const byTopic = (name: string, labels: Record<string, string> = {}) => viaSidecar.topics.reduce((s, topic) => s + delta(name, { ...labels, topic }), 0);
      const metrics = {
        upgraded: byTopic('idempo_upgraded_batches_total'),
        written: byTopic('idempo_produce_batches_total', { outcome: 'written' }),
        duplicateAnswered: byTopic('idempo_produce_batches_total', { outcome: 'duplicate' }),
        failed: byTopic('idempo_produce_batches_total', { outcome: 'failed' }),
        duplicatesRejected: byTopic('idempo_duplicates_rejected_total'),
        retries: delta('idempo_retries_total'),
        upstreamErrors: delta('idempo_upstream_errors_total'),
      };
      console.log(
        JSON.stringify({
          test: 'faults-relay',
          client: p.client,
          seed: SEED,
          records: viaSidecar.sent,
          sidecar: { faults: faultsSidecar, acked: viaSidecar.acked, failed: viaSidecar.failed, failures: viaSidecar.failures, ms: viaSidecar.elapsedMs, ...vs, metrics },
          direct: { faults: faultsDirect, acked: direct.acked, failed: direct.failed, ms: direct.elapsedMs, ...vd },
        }),
      );

      if (viaSidecar.failed > 0 || vs.duplicates > 0 || metrics.failed > 0) {
        console.log(sc.logs().filter((l) => /"level":(40|50)/.test(l)).slice(-30).join('\n'));
        if (process.env.FAULTS_DUMP) (await import('node:fs')).writeFileSync(process.env.FAULTS_DUMP, sc.logs().join('\n'));
      }
      expect(viaSidecar.error).toBeUndefined();
      // Through the sidecar: zero duplicates, order kept, nothing acknowledged lost.
      expect(vs.duplicates).toBe(0);
      expect(vs.orderViolations).toBe(0);
      expect(vs.ackedMissing).toBe(0);
      expect(vs.missing).toBeLessThanOrEqual(viaSidecar.failed);
      expect(vs.failedTwice).toBe(0);
      // The faults did fire, and without the sidecar they do write copies.
      expect(faultsSidecar.reset + faultsSidecar.half_write + faultsSidecar.stall).toBeGreaterThan(0);
      expect(vd.duplicates).toBeGreaterThan(0);
      // The sidecar's own account of it.
      expect(metrics.upgraded).toBeGreaterThan(0);
      expect(metrics.retries).toBeGreaterThan(0);
      expect(metrics.written).toBeGreaterThanOrEqual(1);
      // Every batch it took was written, answered as a copy of one, or failed; copies are duplicates.
      expect(metrics.duplicatesRejected).toBeGreaterThanOrEqual(metrics.duplicateAnswered);
      if (p.client === 'kafkajs' && viaSidecar.failed === 0) {
        // kafkajs reports one answer per partition per send: each is one batch the sidecar wrote
        // (a kafkajs re-send of the same request is answered from the dedup cache, not written).
        const clientBatches = Object.values(viaSidecar.ackedBatches!).reduce((s, n) => s + n, 0);
        expect(metrics.written).toBe(clientBatches);
      }
    }, 300_000);
  }
});
