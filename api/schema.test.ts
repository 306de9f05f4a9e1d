// types.ts is written by hand to match schema.ts: a fully-typed sample must pass the
// schema, and the schema's defaults must produce a value of the PolicySpec type.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  applyDefaults,
  CROSS_FIELD_RULES,
  parseDuration,
  parsePolicySpec,
  POLICY_SPEC_SCHEMA,
  type PolicySpec,
  type SchemaProps,
} from './index.js';

// Every field of PolicySpec set: if types.ts gains a field the schema lacks, ajv refuses
// it as unknown; if the schema gains a required one, the type check of this literal fails.
const full: PolicySpec = {
  selector: { matchLabels: { app: 'a' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['x'] }] },
  mode: 'enforce',
  kafka: {
    bootstrapServers: ['k1:9092', '10.0.0.1:9093', '[::1]:9094'],
    tls: { enabled: true, caSecretRef: { name: 'ca', key: 'ca.crt' }, clientCertSecretRef: { name: 'client' }, serverName: 'kafka' },
    sasl: { mechanism: 'SCRAM-SHA-512', secretRef: { name: 'kafka-user', usernameKey: 'user', passwordKey: 'pass' } },
  },
  producer: { acks: 'all', maxInFlightPerPartition: 3, deliveryTimeout: '1m', retryBackoff: { initial: '50ms', max: '2s' }, requestTimeout: '10s' },
  dedup: { strategy: 'header', header: 'idempotency-key', window: '10m', maxEntries: 1000 },
  topics: { include: ['orders.*'], exclude: ['orders.tmp?'] },
  injection: { bootstrapEnvVars: ['KAFKA_BROKERS'], listenPort: 19093, image: 'img:1', nativeSidecar: false },
  sidecar: { metricsPort: 9000, logLevel: 'debug', resources: { requests: { cpu: '10m', memory: 1024 } }, maxSessions: 5, sessionIdleTimeout: '1h' },
};

function fieldPaths(s: SchemaProps, prefix = ''): string[] {
  return Object.entries(s.properties ?? {}).flatMap(([k, p]) => {
    const path = prefix ? `${prefix}.${k}` : k;
    return p.properties ? [path, ...fieldPaths(p, path)] : [path];
  });
}

function objectPaths(v: unknown, prefix = ''): string[] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return [];
  return Object.entries(v).flatMap(([k, x]) => {
    const path = prefix ? `${prefix}.${k}` : k;
    return [path, ...objectPaths(x, path)];
  });
}

describe('schema and types agree', () => {
  it('a fully-typed sample is valid and unchanged by defaulting', () => {
    const r = parsePolicySpec(full);
    expect(r).toEqual({ ok: true, spec: full });
  });

  it('the sample sets every field the schema declares (below the free-form maps)', () => {
    const declared = fieldPaths(POLICY_SPEC_SCHEMA).filter((p) => !/^sidecar\.resources\./.test(p) && !/^selector\.match/.test(p));
    const sample = new Set(objectPaths(full));
    expect(declared.filter((p) => !sample.has(p))).toEqual([]);
  });

  it('defaults fill every non-optional PolicySpec field', () => {
    const d = applyDefaults({ selector: {}, kafka: { bootstrapServers: ['k:1'] } });
    const expected: PolicySpec = {
      selector: {},
      mode: 'upgrade',
      kafka: { bootstrapServers: ['k:1'], tls: { enabled: false } },
      producer: { acks: 'all', maxInFlightPerPartition: 5, deliveryTimeout: '120s', retryBackoff: { initial: '100ms', max: '1s' }, requestTimeout: '30s' },
      dedup: { strategy: 'exact', window: '5m', maxEntries: 100000 },
      topics: { include: ['*'], exclude: [] },
      injection: { bootstrapEnvVars: ['KAFKA_BOOTSTRAP_SERVERS'], listenPort: 19092, image: 'ghcr.io/idempo/idempo-sidecar:0.1.0', nativeSidecar: true },
      sidecar: { metricsPort: 9464, logLevel: 'info', resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '256Mi' } }, maxSessions: 10000, sessionIdleTimeout: '15m' },
    };
    expect(d).toEqual(expected);
  });

  it('applyDefaults does not touch its input and keeps explicit values', () => {
    const input = { selector: {}, kafka: { bootstrapServers: ['k:1'] }, producer: { maxInFlightPerPartition: 1 }, sidecar: { resources: {} } };
    const before = structuredClone(input);
    const d = applyDefaults(input) as PolicySpec;
    expect(input).toEqual(before);
    expect(d.producer.maxInFlightPerPartition).toBe(1);
    expect(d.producer.deliveryTimeout).toBe('120s');
    expect(d.sidecar.resources).toEqual({}); // explicit {} = no resources
  });

  it('every cross-field rule has a CEL twin and a message', () => {
    for (const r of CROSS_FIELD_RULES) {
      expect(r.rule.length).toBeGreaterThan(0);
      expect(r.message).not.toMatch(/^spec\./); // the path is added from `at` and fieldPath
    }
  });
});

describe('parseDuration', () => {
  it.each([
    ['100ms', 100],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1.5h', 5_400_000],
    ['0s', 0],
  ])('%s = %d ms', (s, ms) => expect(parseDuration(s)).toBe(ms));

  it.each(['', '5', 'm', '5 m', '-1s', '1d', '1us', '5M', ' 5m'])('rejects %j', (s) => {
    expect(() => parseDuration(s)).toThrow(/invalid duration/);
  });

  it('agrees with a sum of random parts', () => {
    const unit = fc.constantFrom(['ms', 1], ['s', 1000], ['m', 60_000], ['h', 3_600_000]);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(10_000), unit), { minLength: 1, maxLength: 4 }), (parts) => {
        const s = parts.map(([n, [u]]) => `${n}${u}`).join('');
        const ms = parts.reduce((a, [n, [, f]]) => a + n * (f as number), 0);
        expect(parseDuration(s)).toBe(ms);
      }),
    );
  });
});
