// The whole /metrics text of a running sidecar (upgrade mode, real Kafka, a kafkajs producer
// through it), read as Prometheus reads it: every line valid text exposition 0.0.4, every
// family with its HELP and TYPE, histograms cumulative. The metrics DESIGN.md promises ("Metrics":
// names dashboards and alerts rely on) have their type and exactly their label names, and
// every family the sidecar exposes has the name, type and labels it had (a renamed metric or
// label breaks the scrapes of people's dashboards without any error).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { kafkajsProduce } from '../support/clients/kafkajs.js';
import { parseExposition, type Family } from '../support/prom-text.js';

type Type = Family['type'];

/** DESIGN.md "Metrics": name → type and label names. */
const PROMISED: Record<string, [Type, string[]]> = {
  idempo_duplicates_rejected_total: ['counter', ['topic']],
  idempo_out_of_sequence_total: ['counter', ['topic']],
  idempo_produce_batches_total: ['counter', ['topic', 'outcome']],
  idempo_upgraded_batches_total: ['counter', ['topic']],
  idempo_retries_total: ['counter', ['reason']],
  idempo_inflight_batches: ['gauge', []],
  idempo_producer_sessions: ['gauge', []],
  idempo_produce_latency_seconds: ['histogram', []],
  idempo_upstream_errors_total: ['counter', ['error']],
};
/** DESIGN.md: idempo_produce_batches_total's outcomes. */
const OUTCOMES = ['written', 'duplicate', 'out_of_sequence', 'policy_rejected', 'failed'];

/** Every family the sidecar exposes (the dashboard, the alert rules and README name many of them). */
const EXPOSED: Record<string, [Type, string[]]> = {
  ...PROMISED,
  idempo_requests_total: ['counter', ['api']],
  idempo_request_latency_seconds: ['histogram', ['api']],
  idempo_malformed_batches_total: ['counter', ['error']],
  idempo_limit_reached_total: ['counter', ['limit']],
  idempo_producer_ids_allocated_total: ['counter', []],
  idempo_producer_identities_total: ['counter', ['reason']],
  idempo_producer_sessions_evicted_total: ['counter', []],
  idempo_client_connections: ['gauge', []],
  idempo_rejected_frames_total: ['counter', ['reason']],
  idempo_upstream_redials_total: ['counter', []],
  idempo_client_connections_closed_total: ['counter', ['reason']],
  idempo_config_reloads_total: ['counter', ['result']],
  idempo_config_checks_total: ['counter', []],
  idempo_state_restores_total: ['counter', ['result']],
  idempo_state_write_errors_total: ['counter', ['then']],
  idempo_state_journal_bytes: ['gauge', []],
  idempo_memory_limit_waits_total: ['counter', ['scope']],
  idempo_buffered_bytes: ['gauge', []],
  idempo_process_cpu_seconds_total: ['counter', []],
  idempo_process_resident_memory_bytes: ['gauge', []],
  idempo_process_heap_used_bytes: ['gauge', []],
  idempo_process_open_fds: ['gauge', []],
  idempo_process_start_time_seconds: ['gauge', []],
};

const TOPIC = 'exposition';

describe('the /metrics text of a running sidecar', () => {
  let kafka: KafkaCluster | undefined;
  let sidecar: Sidecar | undefined;
  let families: Map<string, Family>;

  beforeAll(async () => {
    kafka = await startKafka({ brokers: 1 });
    await kafka.createTopic(TOPIC, 2);
    sidecar = await startSidecar({ upstream: kafka.bootstrap, mode: 'upgrade' });
    await kafkajsProduce({ bootstrap: sidecar.bootstrap, topic: TOPIC, messages: Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })), batchSize: 5 });
    families = parseExposition(await sidecar.metrics());
  });

  afterAll(async () => {
    await sidecar?.stop();
    await kafka?.stop();
  });

  /** Label names of a family's samples (histograms without `le`); [] when it has no samples yet. */
  const labelNames = (f: Family): string[][] => [...new Set(f.samples.map((s) => JSON.stringify(Object.keys(s.labels).filter((k) => k !== 'le'))))].map((j) => JSON.parse(j) as string[]);

  it('has exactly the families it had, each with its type and label names, and a help text', () => {
    expect([...families.keys()].sort()).toEqual(Object.keys(EXPOSED).sort());
    for (const [name, [type, labels]] of Object.entries(EXPOSED)) {
      const f = families.get(name)!;
      expect(f.type, name).toBe(type);
      expect(f.help.length, name).toBeGreaterThan(10);
      for (const got of labelNames(f)) expect(got, name).toEqual(labels);
    }
  });

  it("DESIGN.md's metrics: written batches counted by topic and outcome, latency observed, labels as promised", () => {
    for (const [name, [type]] of Object.entries(PROMISED)) expect(families.get(name)?.type, name).toBe(type);
    const batches = families.get('idempo_produce_batches_total')!.samples;
    expect(batches.filter((s) => s.labels.topic === TOPIC && s.labels.outcome === 'written').reduce((a, s) => a + s.value, 0)).toBeGreaterThanOrEqual(4);
    for (const s of batches) expect(OUTCOMES).toContain(s.labels.outcome);
    expect(families.get('idempo_upgraded_batches_total')!.samples.some((s) => s.labels.topic === TOPIC && s.value > 0)).toBe(true);
    const latency = families.get('idempo_produce_latency_seconds')!.samples;
    expect(latency.find((s) => s.name === 'idempo_produce_latency_seconds_count')!.value).toBeGreaterThanOrEqual(4);
    // Unlabelled metrics have one sample each, with no labels.
    for (const name of ['idempo_inflight_batches', 'idempo_producer_sessions']) expect(families.get(name)!.samples.map((s) => s.labels)).toEqual([{}]);
  });

  it('per-API requests and latencies for what the producer sent', () => {
    const requests = families.get('idempo_requests_total')!.samples;
    expect(requests.find((s) => s.labels.api === 'Produce')?.value).toBeGreaterThanOrEqual(4);
    expect(requests.find((s) => s.labels.api === 'Metadata')?.value).toBeGreaterThanOrEqual(1);
    const count = families.get('idempo_request_latency_seconds')!.samples.find((s) => s.name === 'idempo_request_latency_seconds_count' && s.labels.api === 'Produce');
    expect(count?.value).toBeGreaterThanOrEqual(4);
  });
});
