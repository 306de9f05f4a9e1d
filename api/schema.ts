// The one definition of IdempotentProducerPolicy: an OpenAPI v3 structural schema with
// defaults and CEL rules. The CRD (scripts/gen-crds.ts), applyDefaults and parsePolicySpec
// are all derived from these objects; types.ts mirrors them (api/schema.test.ts checks).
import { DURATION_PATTERN, isDuration, parseDuration } from './duration.js';

export interface ValidationRule {
  rule: string;
  message: string;
  fieldPath?: string;
}

/** The subset of Kubernetes' JSONSchemaProps that idempo uses. */
export interface SchemaProps {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, SchemaProps>;
  additionalProperties?: SchemaProps;
  required?: string[];
  items?: SchemaProps;
  anyOf?: SchemaProps[];
  enum?: (string | number)[];
  default?: unknown;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-validations'?: ValidationRule[];
}

export const MODES = ['observe', 'enforce', 'upgrade'] as const;
export const DEDUP_STRATEGIES = ['off', 'exact', 'content', 'header'] as const;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;
/** SASL mechanisms the sidecar authenticates its own broker connections with. */
export const SASL_MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] as const;

/** host:port, host a DNS name, IPv4 or bracketed IPv6; port 1..65535. RE2-compatible. */
export const HOST_PORT_PATTERN =
  '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})$';
/** Kafka topic characters plus glob wildcards * and ?. */
export const TOPIC_GLOB_PATTERN = '^[A-Za-z0-9._*?-]+$';
export const ENV_VAR_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*$';
/** Kubernetes resource.Quantity, as in the core API's CRD schemas. */
export const QUANTITY_PATTERN =
  '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';
/** Kafka record header keys are arbitrary strings; keep them printable and bounded. */
export const HEADER_NAME_PATTERN = '^[\\x21-\\x7E]+$';

/** Human hints for ajv `pattern` failures, keyed by pattern. */
export const PATTERN_HINTS: Record<string, string> = {
  [DURATION_PATTERN]: 'must be a duration like 100ms, 30s, 5m or 1h',
  [HOST_PORT_PATTERN]: 'must be host:port with a port from 1 to 65535',
  [TOPIC_GLOB_PATTERN]: 'must be a topic name or glob (letters, digits, . _ - * ?)',
  [ENV_VAR_PATTERN]: 'must be an environment variable name',
  [QUANTITY_PATTERN]: 'must be a quantity like 100m or 64Mi',
  [HEADER_NAME_PATTERN]: 'must be printable ASCII without spaces',
};

const str = (description: string, extra: SchemaProps = {}): SchemaProps => ({ type: 'string', description, ...extra });
const dur = (description: string, def: string): SchemaProps => ({
  type: 'string',
  description,
  pattern: DURATION_PATTERN,
  maxLength: 32,
  default: def,
});
const port = (description: string, def: number): SchemaProps => ({
  type: 'integer',
  description,
  minimum: 1,
  maximum: 65535,
  default: def,
});
const obj = (description: string, properties: Record<string, SchemaProps>, extra: SchemaProps = {}): SchemaProps => ({
  type: 'object',
  description,
  properties,
  ...extra,
});
const quantityMap: SchemaProps = {
  type: 'object',
  additionalProperties: {
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    pattern: QUANTITY_PATTERN,
    'x-kubernetes-int-or-string': true,
  },
};

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** The API server's structural defaulting: fill missing (or null) fields, then recurse, so defaults get defaulted too. */
export function defaultInto(x: unknown, s: SchemaProps): void {
  if (Array.isArray(x)) {
    if (s.items) for (const item of x) defaultInto(item, s.items);
    return;
  }
  if (!isObject(x)) return;
  for (const [k, p] of Object.entries(s.properties ?? {})) {
    if (p.default !== undefined && (x[k] === undefined || x[k] === null)) x[k] = structuredClone(p.default);
  }
  for (const [k, v] of Object.entries(x)) {
    const p = s.properties?.[k] ?? s.additionalProperties;
    if (p) defaultInto(v, p);
  }
}

/**
 * Writes `default: {}` out in full. The API server checks CEL rules against a default value
 * without defaulting it first, so a rule reading self.window would fail on a bare {}.
 */
function expandDefaults(s: SchemaProps): SchemaProps {
  for (const p of Object.values(s.properties ?? {})) expandDefaults(p);
  if (s.items) expandDefaults(s.items);
  if (isObject(s.default) && s.properties) defaultInto(s.default, s);
  return s;
}

export const DEFAULT_IMAGE = 'ghcr.io/idempo/idempo-sidecar:0.1.0';
export const DEFAULT_RESOURCES = { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '256Mi' } };

const labelSelector: SchemaProps = obj(
  'Pods in the policy\'s namespace that it covers (a standard LabelSelector; {} selects every pod).',
  {
    matchLabels: { type: 'object', additionalProperties: { type: 'string' } },
    matchExpressions: {
      type: 'array',
      maxItems: 32,
      items: obj(
        'A label selector requirement.',
        {
          key: str('Label key.', { minLength: 1, maxLength: 317 }),
          operator: str('In, NotIn, Exists or DoesNotExist.', { enum: [...SELECTOR_OPERATORS] }),
          values: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 63 } },
        },
        { required: ['key', 'operator'] },
      ),
    },
  },
  { 'x-kubernetes-map-type': 'atomic' },
);

export const POLICY_SPEC_SCHEMA: SchemaProps = expandDefaults(obj(
  'Which pods get the idempo sidecar and how strict it is.',
  {
    selector: labelSelector,
    mode: str(
      'observe: count only; enforce: reject non-idempotent produces; upgrade: make non-idempotent producers idempotent on the wire.',
      { enum: [...MODES], default: 'upgrade' },
    ),
    kafka: obj(
      'The real Kafka cluster.',
      {
        bootstrapServers: {
          type: 'array',
          description: 'Bootstrap brokers, host:port.',
          minItems: 1,
          maxItems: 64,
          items: { type: 'string', pattern: HOST_PORT_PATTERN, maxLength: 261 },
        },
        tls: obj(
          'TLS to the brokers.',
          {
            enabled: { type: 'boolean', default: false },
            caSecretRef: obj(
              'Secret key holding the PEM CA bundle; the system trust store when absent.',
              { name: str('Secret name.', { minLength: 1, maxLength: 253 }), key: str('Key in the Secret.', { minLength: 1, maxLength: 253 }) },
              { required: ['name', 'key'] },
            ),
            clientCertSecretRef: obj(
              'kubernetes.io/tls Secret (tls.crt, tls.key) for mutual TLS.',
              { name: str('Secret name.', { minLength: 1, maxLength: 253 }) },
              { required: ['name'] },
            ),
            serverName: str('SNI and verification name; the broker host when absent.', { maxLength: 253 }),
          },
          { default: {} },
        ),
        sasl: obj(
          'SASL for the sidecar\'s own broker connections (producer ids in upgrade mode, metadata). Clients still authenticate themselves through the sidecar. The credentials stay in the Secret: the sidecar reads them from files the webhook mounts, never from env or args.',
          {
            mechanism: str('PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.', { enum: [...SASL_MECHANISMS] }),
            secretRef: obj(
              'Secret in the pod\'s namespace holding the credentials.',
              {
                name: str('Secret name.', { minLength: 1, maxLength: 253 }),
                usernameKey: str('Key holding the username.', { minLength: 1, maxLength: 253, default: 'username' }),
                passwordKey: str('Key holding the password.', { minLength: 1, maxLength: 253, default: 'password' }),
              },
              { required: ['name'] },
            ),
          },
          { required: ['mechanism', 'secretRef'] },
        ),
      },
      { required: ['bootstrapServers'] },
    ),
    producer: obj(
      'How the sidecar produces upstream.',
      {
        acks: str('Required acks; idempotence needs all.', { enum: ['all'], default: 'all' }),
        maxInFlightPerPartition: {
          type: 'integer',
          description: 'Batches in flight per partition (Kafka bounds idempotent producers at 5).',
          minimum: 1,
          maximum: 5,
          default: 5,
        },
        deliveryTimeout: dur('How long the sidecar keeps retrying one batch.', '120s'),
        retryBackoff: obj(
          'Exponential backoff between retries of one batch.',
          { initial: dur('First backoff.', '100ms'), max: dur('Backoff cap.', '1s') },
          { default: {} },
        ),
        requestTimeout: dur('Timeout of one upstream request.', '30s'),
      },
      { default: {} },
    ),
    dedup: obj(
      'Deduplication of application-level retries.',
      {
        strategy: str(
          'How a copy the broker cannot recognise is told from a new write. exact (default): the records are byte-identical to the original, timestamps included (what a client library re-sends); two sends by the application are both written. content: key, value and headers only, timestamps ignored: also catches an application re-sending the same records, but two legitimate identical records sent to the same partition within the window are written once. header: the value of a record header (an idempotency key the application sets). off: no dedup. Quote "off" in YAML: kubectl reads a bare off as false.',
          {
          enum: [...DEDUP_STRATEGIES],
          default: 'exact',
        }),
        header: str('Record header carrying the idempotency key (strategy header).', {
          minLength: 1,
          maxLength: 256,
          pattern: HEADER_NAME_PATTERN,
        }),
        window: dur('How long a batch is remembered.', '5m'),
        maxEntries: { type: 'integer', description: 'Remembered batches per sidecar.', minimum: 1, maximum: 10_000_000, default: 100_000 },
      },
      { default: {} },
    ),
    topics: obj(
      'Topics covered (globs with * and ?); exclude wins.',
      {
        include: { type: 'array', minItems: 1, maxItems: 256, items: { type: 'string', pattern: TOPIC_GLOB_PATTERN, maxLength: 249 }, default: ['*'] },
        exclude: { type: 'array', maxItems: 256, items: { type: 'string', pattern: TOPIC_GLOB_PATTERN, maxLength: 249 }, default: [] },
      },
      { default: {} },
    ),
    injection: obj(
      'How the webhook injects the sidecar.',
      {
        bootstrapEnvVars: {
          type: 'array',
          description: 'Env vars of app containers rewritten to the sidecar listener (only when present).',
          maxItems: 32,
          items: { type: 'string', pattern: ENV_VAR_PATTERN, maxLength: 256 },
          default: ['KAFKA_BOOTSTRAP_SERVERS'],
        },
        listenPort: port('Sidecar listener on 127.0.0.1 for the first broker.', 19092),
        image: str('Sidecar image.', { minLength: 1, maxLength: 512, default: DEFAULT_IMAGE }),
        nativeSidecar: { type: 'boolean', description: 'Use a native sidecar (restartable init container) when the cluster supports it.', default: true },
      },
      { default: {} },
    ),
    sidecar: obj(
      'The sidecar process.',
      {
        metricsPort: port('Port of /metrics, /healthz and /readyz.', 9464),
        logLevel: str('Log level.', { enum: [...LOG_LEVELS], default: 'info' }),
        resources: obj(
          'Container resources; an explicit {} means none.',
          { requests: quantityMap, limits: quantityMap },
          { default: DEFAULT_RESOURCES },
        ),
        maxSessions: { type: 'integer', description: 'Producer sessions tracked at most.', minimum: 1, maximum: 1_000_000, default: 10_000 },
        sessionIdleTimeout: dur('Idle producer sessions are forgotten after this.', '15m'),
      },
      { default: {} },
    ),
  },
  { required: ['selector', 'kafka'] },
));

const condition: SchemaProps = obj(
  'A Kubernetes condition.',
  {
    type: str('CamelCase condition type.', { minLength: 1, maxLength: 316 }),
    status: str('True, False or Unknown.', { enum: ['True', 'False', 'Unknown'] }),
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    lastTransitionTime: str('When status last changed.', { format: 'date-time' }),
    reason: str('CamelCase reason.', { maxLength: 1024 }),
    message: str('Human-readable detail.', { maxLength: 32768 }),
  },
  { required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'] },
);

export const POLICY_STATUS_SCHEMA: SchemaProps = obj('Observed state, written by the operator.', {
  observedGeneration: { type: 'integer', format: 'int64' },
  conditions: {
    type: 'array',
    items: condition,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
  },
  injectedPods: { type: 'integer', format: 'int32', minimum: 0, description: 'Running pods injected for this policy.' },
  configMapName: str('ConfigMap holding the rendered spec for the sidecars.'),
});

/**
 * A rule the schema alone cannot say. `at` is the path below spec of the object the CEL
 * rule sits on ('*' = each array item); `check` is the same rule in TS for parsePolicySpec.
 * Checks return true when their inputs are malformed: the schema already reports those.
 */
export interface CrossFieldRule {
  at: string[];
  rule: string;
  fieldPath?: string;
  message: string;
  // Untyped on purpose: it runs on unvalidated input.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  check(self: any): boolean;
}

/** CEL guard so a malformed duration yields only the pattern error, not an evaluation error too. */
const celDur = (e: string) => `${e}.matches(r'${DURATION_PATTERN}')`;
const ms = (v: unknown): number | undefined => (isDuration(v) ? parseDuration(v) : undefined);
const positive = (at: string[]): CrossFieldRule => ({
  at,
  rule: `!${celDur('self')} || duration(self) > duration('0s')`,
  message: 'must be longer than 0s',
  check: (s) => (ms(s) ?? 1) > 0,
});

export const CROSS_FIELD_RULES: CrossFieldRule[] = [
  {
    at: ['dedup'],
    rule: "self.strategy != 'header' || has(self.header)",
    fieldPath: '.header',
    message: 'required when spec.dedup.strategy is header',
    check: (d) => d?.strategy !== 'header' || d?.header !== undefined,
  },
  {
    // The dedup cache must outlive the sidecar's own retries of a batch, or an app retry
    // arriving after the sidecar gave up could be written twice.
    at: [],
    rule:
      `self.dedup.strategy == 'off' || !(${celDur('self.producer.deliveryTimeout')} && ${celDur('self.dedup.window')})` +
      ' || duration(self.producer.deliveryTimeout) < duration(self.dedup.window)',
    fieldPath: '.producer.deliveryTimeout',
    message: 'must be shorter than spec.dedup.window unless spec.dedup.strategy is off',
    check: (s) => {
      if (s?.dedup?.strategy === 'off') return true;
      const d = ms(s?.producer?.deliveryTimeout);
      const w = ms(s?.dedup?.window);
      return d === undefined || w === undefined || d < w;
    },
  },
  {
    at: ['producer', 'retryBackoff'],
    rule: `!(${celDur('self.initial')} && ${celDur('self.max')}) || duration(self.initial) <= duration(self.max)`,
    fieldPath: '.initial',
    message: 'must not be longer than spec.producer.retryBackoff.max',
    check: (b) => {
      const i = ms(b?.initial);
      const m = ms(b?.max);
      return i === undefined || m === undefined || i <= m;
    },
  },
  {
    // Brokers drop idle producer-id state after producer.id.expiration.ms (1 day by default);
    // retrying a batch anywhere near that long could lose its sequence state.
    at: ['producer'],
    rule: `!${celDur('self.deliveryTimeout')} || duration(self.deliveryTimeout) <= duration('1h')`,
    fieldPath: '.deliveryTimeout',
    message: 'must be at most 1h (brokers forget idle producer ids after a day)',
    check: (p) => (ms(p?.deliveryTimeout) ?? 0) <= 3_600_000,
  },
  {
    // Kafka's own producer config check: delivery.timeout.ms >= request.timeout.ms.
    at: ['producer'],
    rule: `!(${celDur('self.requestTimeout')} && ${celDur('self.deliveryTimeout')}) || duration(self.requestTimeout) <= duration(self.deliveryTimeout)`,
    fieldPath: '.requestTimeout',
    message: 'must not be longer than spec.producer.deliveryTimeout',
    check: (p) => {
      const r = ms(p?.requestTimeout);
      const d = ms(p?.deliveryTimeout);
      return r === undefined || d === undefined || r <= d;
    },
  },
  {
    at: [],
    rule: 'self.sidecar.metricsPort != self.injection.listenPort',
    fieldPath: '.sidecar.metricsPort',
    message: 'must differ from spec.injection.listenPort',
    check: (s) => s?.sidecar?.metricsPort === undefined || s.sidecar.metricsPort !== s?.injection?.listenPort,
  },
  {
    at: ['selector', 'matchExpressions', '*'],
    rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
    fieldPath: '.values',
    message: 'must be non-empty for In and NotIn and empty for Exists and DoesNotExist',
    check: (e) => {
      const n = Array.isArray(e?.values) ? e.values.length : 0;
      if (e?.operator === 'In' || e?.operator === 'NotIn') return n > 0;
      return n === 0;
    },
  },
  positive(['producer', 'deliveryTimeout']),
  positive(['producer', 'requestTimeout']),
  positive(['producer', 'retryBackoff', 'max']),
  positive(['dedup', 'window']),
  positive(['sidecar', 'sessionIdleTimeout']),
];

/** Rules on the whole object (metadata is visible only here). */
export const ROOT_RULES: ValidationRule[] = [
  {
    // The webhook labels injected pods with the policy name; label values stop at 63.
    rule: 'size(self.metadata.name) <= 63',
    message: 'metadata.name must be at most 63 characters (injected pods carry it as a label value)',
  },
];

function schemaAt(root: SchemaProps, at: string[]): SchemaProps {
  let s = root;
  for (const seg of at) {
    const next = seg === '*' ? s.items : s.properties?.[seg];
    if (!next) throw new Error(`CROSS_FIELD_RULES: no schema at spec.${at.join('.')}`);
    s = next;
  }
  return s;
}

/** The spec schema with CROSS_FIELD_RULES attached as x-kubernetes-validations. */
export function specSchemaWithRules(): SchemaProps {
  const root = structuredClone(POLICY_SPEC_SCHEMA);
  for (const r of CROSS_FIELD_RULES) {
    const s = schemaAt(root, r.at);
    const v: ValidationRule = { rule: r.rule, message: r.message };
    if (r.fieldPath) v.fieldPath = r.fieldPath;
    (s['x-kubernetes-validations'] ??= []).push(v);
  }
  return root;
}

/** openAPIV3Schema of the CRD's v1alpha1 version. */
export const POLICY_SCHEMA: SchemaProps = {
  type: 'object',
  description: 'IdempotentProducerPolicy makes the Kafka producers in the selected pods idempotent through the idempo sidecar.',
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: { type: 'object' },
    spec: specSchemaWithRules(),
    status: POLICY_STATUS_SCHEMA,
  },
  required: ['spec'],
  'x-kubernetes-validations': ROOT_RULES,
};
