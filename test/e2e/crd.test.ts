// The generated CRD against a real kube-apiserver: it is accepted and Established, the
// server fills the schema's defaults, and the server itself refuses invalid policies with
// messages naming the field (the same rules parsePolicySpec applies in TS).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { CRD_NAME, parsePolicySpec } from '../../api/index.js';
import { startKube, type KubeEnv } from '../support/kube.js';

const NS = 'crd-test';
const minimalSpec = { selector: { matchLabels: { app: 'payments' } }, kafka: { bootstrapServers: ['kafka.kafka:9092'] } };

function policy(name: string, spec: unknown): string {
  // YAML 1.1 output quotes values like off, which kubectl (YAML 1.1) would read as booleans.
  return stringify({ apiVersion: 'idempo.dev/v1alpha1', kind: 'IdempotentProducerPolicy', metadata: { name, namespace: NS }, spec }, { version: '1.1' });
}

const withSpec = (patch: (s: Record<string, any>) => void) => {
  const s: Record<string, any> = structuredClone(minimalSpec);
  patch(s);
  return s;
};

// Each case: the spec and fragments the API server's error must contain (field path first).
const invalid: { name: string; spec: unknown; expect: string[] }[] = [
  { name: 'missing-kafka', spec: { selector: {} }, expect: ['spec.kafka', 'Required value'] },
  { name: 'empty-bootstrap', spec: withSpec((s) => (s.kafka.bootstrapServers = [])), expect: ['spec.kafka.bootstrapServers', 'at least 1'] },
  { name: 'bad-host-port', spec: withSpec((s) => (s.kafka.bootstrapServers = ['kafka'])), expect: ['spec.kafka.bootstrapServers[0]', 'should match'] },
  { name: 'bad-mode', spec: withSpec((s) => (s.mode = 'strict')), expect: ['spec.mode', 'Unsupported value: "strict"'] },
  { name: 'bad-acks', spec: withSpec((s) => (s.producer = { acks: '1' })), expect: ['spec.producer.acks', 'Unsupported value'] },
  { name: 'inflight-6', spec: withSpec((s) => (s.producer = { maxInFlightPerPartition: 6 })), expect: ['spec.producer.maxInFlightPerPartition', 'less than or equal to 5'] },
  { name: 'bad-duration', spec: withSpec((s) => (s.dedup = { window: '5 minutes' })), expect: ['spec.dedup.window', 'should match'] },
  { name: 'header-without-name', spec: withSpec((s) => (s.dedup = { strategy: 'header' })), expect: ['spec.dedup.header', 'required when spec.dedup.strategy is header'] },
  {
    name: 'delivery-over-window',
    spec: withSpec((s) => ((s.producer = { deliveryTimeout: '10m' }), (s.dedup = { window: '5m' }))),
    expect: ['spec.producer.deliveryTimeout', 'must be shorter than spec.dedup.window'],
  },
  {
    name: 'backoff-inverted',
    spec: withSpec((s) => (s.producer = { retryBackoff: { initial: '2s', max: '1s' } })),
    expect: ['spec.producer.retryBackoff.initial', 'must not be longer than spec.producer.retryBackoff.max'],
  },
  {
    name: 'delivery-too-long',
    spec: withSpec((s) => ((s.producer = { deliveryTimeout: '2h' }), (s.dedup = { strategy: 'off' }))),
    expect: ['spec.producer.deliveryTimeout', 'must be at most 1h'],
  },
  {
    name: 'request-over-delivery',
    spec: withSpec((s) => (s.producer = { requestTimeout: '3m' })),
    expect: ['spec.producer.requestTimeout', 'must not be longer than spec.producer.deliveryTimeout'],
  },
  { name: 'zero-window', spec: withSpec((s) => (s.dedup = { strategy: 'off', window: '0s' })), expect: ['spec.dedup.window', 'must be longer than 0s'] },
  { name: 'same-ports', spec: withSpec((s) => (s.sidecar = { metricsPort: 19092 })), expect: ['spec.sidecar.metricsPort', 'must differ from spec.injection.listenPort'] },
  {
    name: 'in-without-values',
    spec: withSpec((s) => (s.selector = { matchExpressions: [{ key: 'app', operator: 'In' }] })),
    expect: ['spec.selector.matchExpressions[0].values', 'must be non-empty for In and NotIn'],
  },
  { name: 'bad-log-level', spec: withSpec((s) => (s.sidecar = { logLevel: 'verbose' })), expect: ['spec.sidecar.logLevel', 'Unsupported value'] },
  { name: 'bad-quantity', spec: withSpec((s) => (s.sidecar = { resources: { limits: { memory: 'lots' } } })), expect: ['spec.sidecar.resources.limits.memory', 'should match'] },
  {
    name: 'bare-off',
    spec: withSpec((s) => (s.dedup = { strategy: false })),
    expect: ['spec.dedup.strategy', 'must be of type string'],
  },
  { name: 'bad-topic-glob', spec: withSpec((s) => (s.topics = { include: ['orders/*'] })), expect: ['spec.topics.include[0]', 'should match'] },
];

describe('CRD on a real kube-apiserver', () => {
  let kube: KubeEnv;

  beforeAll(async () => {
    kube = await startKube();
    const applied = await kube.kubectl(['apply', '-f', 'crds/']);
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    await kube.waitForCondition([`crd/${CRD_NAME}`], 'Established');
    const ns = await kube.kubectl(['create', 'namespace', NS]);
    expect(ns.code, ns.stderr).toBe(0);
  });
  afterAll(async () => {
    await kube?.stop();
  });

  it('accepts a minimal policy and fills the same defaults as applyDefaults', async () => {
    const r = await kube.kubectl(['apply', '-f', '-'], policy('minimal', minimalSpec));
    expect(r.code, r.stderr).toBe(0);
    const got = await kube.kubectl(['get', '-n', NS, 'ipp', 'minimal', '-o', 'json']);
    expect(got.code, got.stderr).toBe(0);
    const stored = JSON.parse(got.stdout) as { spec: unknown };
    const local = parsePolicySpec(minimalSpec);
    expect(local.ok).toBe(true);
    if (local.ok) expect(stored.spec).toEqual(local.spec);
    // Spot checks so a defaulting bug on both sides still fails.
    expect(stored.spec).toMatchObject({
      mode: 'upgrade',
      producer: { acks: 'all', maxInFlightPerPartition: 5, deliveryTimeout: '120s', retryBackoff: { initial: '100ms', max: '1s' } },
      dedup: { strategy: 'exact', window: '5m', maxEntries: 100000 },
      kafka: { tls: { enabled: false } },
      sidecar: { resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '256Mi' } } },
    });
  });

  it('shows the printer columns', async () => {
    const r = await kube.kubectl(['get', '-n', NS, 'ipp']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/NAME\s+MODE\s+READY\s+INJECTED\s+AGE/);
  });

  it('accepts a full policy with header dedup and TLS', async () => {
    const spec = withSpec((s) => {
      s.mode = 'enforce';
      s.kafka.tls = { enabled: true, caSecretRef: { name: 'kafka-ca', key: 'ca.crt' }, serverName: 'kafka.example' };
      s.dedup = { strategy: 'header', header: 'idempotency-key', window: '10m' };
      s.selector = { matchExpressions: [{ key: 'tier', operator: 'Exists' }, { key: 'app', operator: 'In', values: ['a', 'b'] }] };
    });
    const r = await kube.kubectl(['apply', '-f', '-'], policy('full', spec));
    expect(r.code, r.stderr).toBe(0);
  });

  it('refuses a name longer than 63 characters', async () => {
    const r = await kube.kubectl(['apply', '-f', '-'], policy('p'.repeat(64), minimalSpec));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('metadata.name must be at most 63 characters');
  });

  for (const c of invalid) {
    it(`refuses ${c.name}`, async () => {
      const r = await kube.kubectl(['apply', '-f', '-'], policy(c.name, c.spec));
      expect(r.code, r.stdout).not.toBe(0);
      for (const frag of c.expect) expect(r.stderr).toContain(frag);
      // The TS twin refuses it too, naming the same field.
      const local = parsePolicySpec(c.spec);
      expect(local.ok).toBe(false);
      if (!local.ok) expect(local.errors.join('\n')).toContain(c.expect[0]);
    });
  }
});
