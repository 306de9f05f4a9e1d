// parsePolicySpec: a table of specs and the exact one-line errors users see (the sidecar
// prints them on a bad config file; the webhook logs them for an invalid policy).
import { describe, expect, it } from 'vitest';
import { parsePolicySpec, parsePolicyText } from './index.js';

const base = () => ({ selector: { matchLabels: { app: 'p' } }, kafka: { bootstrapServers: ['kafka:9092'] } }) as Record<string, any>;
const w = (patch: (s: Record<string, any>) => void) => {
  const s = base();
  patch(s);
  return s;
};

const valid: [string, unknown][] = [
  ['minimal', base()],
  ['empty selector selects all', w((s) => (s.selector = {}))],
  ['observe mode', w((s) => (s.mode = 'observe'))],
  ['header dedup', w((s) => (s.dedup = { strategy: 'header', header: 'x-id' }))],
  ['dedup off allows deliveryTimeout over window', w((s) => ((s.dedup = { strategy: 'off', window: '1m' }), (s.producer = { deliveryTimeout: '10m' })))],
  ['equal backoffs', w((s) => (s.producer = { retryBackoff: { initial: '1s', max: '1s' } }))],
  ['initial backoff 0', w((s) => (s.producer = { retryBackoff: { initial: '0ms' } }))],
  ['deliveryTimeout 1h with a longer window', w((s) => ((s.producer = { deliveryTimeout: '1h' }), (s.dedup = { window: '2h' })))],
  ['ipv6 and ip bootstrap', w((s) => (s.kafka.bootstrapServers = ['[fe80::1]:9092', '10.1.2.3:65535']))],
  ['tls with refs', w((s) => (s.kafka.tls = { enabled: true, caSecretRef: { name: 'ca', key: 'ca.crt' }, clientCertSecretRef: { name: 'c' } }))],
  ['sasl with default keys', w((s) => (s.kafka.sasl = { mechanism: 'PLAIN', secretRef: { name: 'kafka-user' } }))],
  ['sasl scram over tls', w((s) => ((s.kafka.sasl = { mechanism: 'SCRAM-SHA-256', secretRef: { name: 'u', passwordKey: 'pw' } }), (s.kafka.tls = { enabled: true })))],
  ['integer quantities', w((s) => (s.sidecar = { resources: { limits: { cpu: 1, memory: '1Gi' } } }))],
  ['no resources', w((s) => (s.sidecar = { resources: {} }))],
  ['selector expressions', w((s) => (s.selector = { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['b'] }, { key: 'c', operator: 'DoesNotExist' }] }))],
  ['null fields are defaulted like missing ones', w((s) => (s.dedup = null))],
  ['a whole policy object', { apiVersion: 'idempo.dev/v1alpha1', kind: 'IdempotentProducerPolicy', metadata: { name: 'x' }, spec: base() }],
];

const invalid: [string, unknown, string[]][] = [
  ['not an object', 'hello', ['spec: must be an object']],
  ['array', [], ['spec: must be an object']],
  ['missing selector and kafka', {}, ['spec.selector: required', 'spec.kafka: required']],
  ['missing bootstrap', w((s) => (s.kafka = {})), ['spec.kafka.bootstrapServers: required']],
  ['empty bootstrap', w((s) => (s.kafka.bootstrapServers = [])), ['spec.kafka.bootstrapServers: must have at least 1 item']],
  ['bootstrap without port', w((s) => (s.kafka.bootstrapServers = ['kafka'])), ['spec.kafka.bootstrapServers[0]: must be host:port with a port from 1 to 65535']],
  ['bootstrap port 0', w((s) => (s.kafka.bootstrapServers = ['ok:1', 'kafka:0'])), ['spec.kafka.bootstrapServers[1]: must be host:port with a port from 1 to 65535']],
  ['bootstrap port too big', w((s) => (s.kafka.bootstrapServers = ['kafka:65536'])), ['spec.kafka.bootstrapServers[0]: must be host:port with a port from 1 to 65535']],
  ['bootstrap as string', w((s) => (s.kafka.bootstrapServers = 'kafka:9092')), ['spec.kafka.bootstrapServers: must be an array']],
  ['unknown mode', w((s) => (s.mode = 'strict')), ['spec.mode: must be one of observe, enforce, upgrade']],
  ['acks 1', w((s) => (s.producer = { acks: '1' })), ['spec.producer.acks: must be one of all']],
  ['in-flight 0', w((s) => (s.producer = { maxInFlightPerPartition: 0 })), ['spec.producer.maxInFlightPerPartition: must be at least 1']],
  ['in-flight 6', w((s) => (s.producer = { maxInFlightPerPartition: 6 })), ['spec.producer.maxInFlightPerPartition: must be at most 5']],
  ['in-flight 2.5', w((s) => (s.producer = { maxInFlightPerPartition: 2.5 })), ['spec.producer.maxInFlightPerPartition: must be an integer']],
  ['bad window', w((s) => (s.dedup = { window: '5 minutes' })), ['spec.dedup.window: must be a duration like 100ms, 30s, 5m or 1h']],
  ['duration in days', w((s) => (s.sidecar = { sessionIdleTimeout: '1d' })), ['spec.sidecar.sessionIdleTimeout: must be a duration like 100ms, 30s, 5m or 1h']],
  ['duration as number', w((s) => (s.producer = { requestTimeout: 30 })), ['spec.producer.requestTimeout: must be a string']],
  ['header strategy without header', w((s) => (s.dedup = { strategy: 'header' })), ['spec.dedup.header: required when spec.dedup.strategy is header']],
  ['empty header', w((s) => (s.dedup = { strategy: 'header', header: '' })), ['spec.dedup.header: must not be empty', 'spec.dedup.header: must be printable ASCII without spaces']],
  ['unknown strategy', w((s) => (s.dedup = { strategy: false })), ['spec.dedup.strategy: must be a string', 'spec.dedup.strategy: must be one of off, exact, content, header']],
  [
    'deliveryTimeout not below window',
    w((s) => ((s.producer = { deliveryTimeout: '5m' }), (s.dedup = { window: '5m' }))),
    ['spec.producer.deliveryTimeout: must be shorter than spec.dedup.window unless spec.dedup.strategy is off'],
  ],
  [
    'backoff initial over max',
    w((s) => (s.producer = { retryBackoff: { initial: '2s', max: '1500ms' } })),
    ['spec.producer.retryBackoff.initial: must not be longer than spec.producer.retryBackoff.max'],
  ],
  [
    'deliveryTimeout over 1h',
    w((s) => ((s.producer = { deliveryTimeout: '61m' }), (s.dedup = { window: '2h' }))),
    ['spec.producer.deliveryTimeout: must be at most 1h (brokers forget idle producer ids after a day)'],
  ],
  ['requestTimeout over deliveryTimeout', w((s) => (s.producer = { requestTimeout: '121s' })), ['spec.producer.requestTimeout: must not be longer than spec.producer.deliveryTimeout']],
  [
    'zero deliveryTimeout',
    w((s) => (s.producer = { deliveryTimeout: '0s', requestTimeout: '0s' })),
    ['spec.producer.deliveryTimeout: must be longer than 0s', 'spec.producer.requestTimeout: must be longer than 0s'],
  ],
  ['zero window with dedup off', w((s) => (s.dedup = { strategy: 'off', window: '0ms' })), ['spec.dedup.window: must be longer than 0s']],
  ['listen and metrics port clash', w((s) => (s.injection = { listenPort: 9464 })), ['spec.sidecar.metricsPort: must differ from spec.injection.listenPort']],
  ['port out of range', w((s) => (s.sidecar = { metricsPort: 70000 })), ['spec.sidecar.metricsPort: must be at most 65535']],
  ['bad log level', w((s) => (s.sidecar = { logLevel: 'verbose' })), ['spec.sidecar.logLevel: must be one of trace, debug, info, warn, error']],
  ['bad quantity', w((s) => (s.sidecar = { resources: { limits: { memory: 'lots' } } })), ['spec.sidecar.resources.limits.memory: must be a quantity like 100m or 64Mi']],
  ['quantity as boolean', w((s) => (s.sidecar = { resources: { limits: { memory: true } } })), ['spec.sidecar.resources.limits.memory: must be an integer or a string']],
  ['bad topic glob', w((s) => (s.topics = { include: ['orders/*'] })), ['spec.topics.include[0]: must be a topic name or glob (letters, digits, . _ - * ?)']],
  ['empty include', w((s) => (s.topics = { include: [] })), ['spec.topics.include: must have at least 1 item']],
  ['bad env var name', w((s) => (s.injection = { bootstrapEnvVars: ['KAFKA-SERVERS'] })), ['spec.injection.bootstrapEnvVars[0]: must be an environment variable name']],
  ['unknown field (typo)', w((s) => (s.dedup = { windw: '5m' })), ['spec.dedup.windw: unknown field']],
  ['insecureSkipVerify is not a field', w((s) => (s.kafka.tls = { enabled: true, insecureSkipVerify: true })), ['spec.kafka.tls.insecureSkipVerify: unknown field']],
  ['sasl mechanism unknown', w((s) => (s.kafka.sasl = { mechanism: 'GSSAPI', secretRef: { name: 'u' } })), ['spec.kafka.sasl.mechanism: must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512']],
  ['sasl without secret', w((s) => (s.kafka.sasl = { mechanism: 'PLAIN' })), ['spec.kafka.sasl.secretRef: required']],
  ['sasl password inline is not a field', w((s) => (s.kafka.sasl = { mechanism: 'PLAIN', secretRef: { name: 'u' }, password: 'x' })), ['spec.kafka.sasl.password: unknown field']],
  ['caSecretRef without key', w((s) => (s.kafka.tls = { enabled: true, caSecretRef: { name: 'ca' } })), ['spec.kafka.tls.caSecretRef.key: required']],
  ['In without values', w((s) => (s.selector = { matchExpressions: [{ key: 'a', operator: 'In' }] })), ['spec.selector.matchExpressions[0].values: must be non-empty for In and NotIn and empty for Exists and DoesNotExist']],
  [
    'Exists with values',
    w((s) => (s.selector = { matchExpressions: [{ key: 'a', operator: 'In', values: ['x'] }, { key: 'b', operator: 'Exists', values: ['y'] }] })),
    ['spec.selector.matchExpressions[1].values: must be non-empty for In and NotIn and empty for Exists and DoesNotExist'],
  ],
  ['bad operator', w((s) => (s.selector = { matchExpressions: [{ key: 'a', operator: 'Has' }] })), ['spec.selector.matchExpressions[0].operator: must be one of In, NotIn, Exists, DoesNotExist']],
  ['label key with a slash in the path', w((s) => (s.selector = { matchLabels: { 'app.kubernetes.io/name': 1 } })), ['spec.selector.matchLabels["app.kubernetes.io/name"]: must be a string']],
];

describe('parsePolicySpec', () => {
  it.each(valid)('accepts %s', (_name, spec) => {
    const r = parsePolicySpec(spec);
    expect(r.ok ? [] : r.errors).toEqual([]);
  });

  it.each(invalid)('refuses %s', (_name, spec, errors) => {
    const r = parsePolicySpec(spec);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors).toEqual(errors);
  });

  it('reports every problem at once', () => {
    const r = parsePolicySpec(w((s) => ((s.mode = 'x'), (s.dedup = { strategy: 'header' }), (s.sidecar = { logLevel: 'loud' }))));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors).toHaveLength(3);
  });

  it('does not throw on hostile shapes', () => {
    for (const x of [null, undefined, 1, true, { selector: [], kafka: { bootstrapServers: [null, 1, {}] }, producer: [], dedup: 'x', selectorx: 1 }]) {
      const r = parsePolicySpec(x);
      expect(r.ok).toBe(false);
    }
    const r = parsePolicySpec({ selector: {}, kafka: { bootstrapServers: ['k:1'] }, producer: { retryBackoff: 'fast' }, sidecar: null });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors).toEqual(['spec.producer.retryBackoff: must be an object']);
  });
});

describe('parsePolicyText', () => {
  it('reads JSON', () => {
    expect(parsePolicyText(JSON.stringify(base())).ok).toBe(true);
  });
  it('reads YAML, where off stays a string (YAML 1.2)', () => {
    const r = parsePolicyText('selector: {}\nkafka:\n  bootstrapServers: [k:9092]\ndedup:\n  strategy: off\n');
    expect(r.ok && r.spec.dedup.strategy).toBe('off');
  });
  it('reports unparsable text as one line', () => {
    const r = parsePolicyText('{ "selector": ');
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatch(/^spec: not valid JSON or YAML: /);
    }
  });
});
