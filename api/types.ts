// TS types of the policy, written to match schema.ts field for field (api/schema.test.ts
// checks a fully-typed sample against the schema and the schema's defaults against these).
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { DEDUP_STRATEGIES, LOG_LEVELS, MODES, SASL_MECHANISMS, SELECTOR_OPERATORS } from './schema.js';

export type Mode = (typeof MODES)[number];
export type DedupStrategy = (typeof DEDUP_STRATEGIES)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];
export type SelectorOperator = (typeof SELECTOR_OPERATORS)[number];
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export interface LabelSelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface SecretKeyRef {
  name: string;
  key: string;
}

export interface SecretRef {
  name: string;
}

export interface KafkaTls {
  enabled: boolean;
  caSecretRef?: SecretKeyRef;
  clientCertSecretRef?: SecretRef;
  serverName?: string;
}

export interface SaslSecretRef {
  name: string;
  usernameKey: string;
  passwordKey: string;
}

export interface KafkaSasl {
  mechanism: SaslMechanism;
  secretRef: SaslSecretRef;
}

export interface KafkaSpec {
  bootstrapServers: string[];
  tls: KafkaTls;
  sasl?: KafkaSasl;
}

export interface RetryBackoff {
  initial: string;
  max: string;
}

export interface ProducerSpec {
  acks: 'all';
  maxInFlightPerPartition: number;
  deliveryTimeout: string;
  retryBackoff: RetryBackoff;
  requestTimeout: string;
}

export interface DedupSpec {
  strategy: DedupStrategy;
  header?: string;
  window: string;
  maxEntries: number;
}

export interface TopicsSpec {
  include: string[];
  exclude: string[];
}

export interface InjectionSpec {
  bootstrapEnvVars: string[];
  listenPort: number;
  image: string;
  nativeSidecar: boolean;
}

/** Quantities as Kubernetes accepts them: "64Mi", "50m" or a bare integer. */
export type Quantity = string | number;

export interface ResourceRequirements {
  requests?: Record<string, Quantity>;
  limits?: Record<string, Quantity>;
}

export interface SidecarSpec {
  metricsPort: number;
  logLevel: LogLevel;
  resources: ResourceRequirements;
  maxSessions: number;
  sessionIdleTimeout: string;
}

/** A spec after defaulting: every defaulted field is present. */
export interface PolicySpec {
  selector: LabelSelector;
  mode: Mode;
  kafka: KafkaSpec;
  producer: ProducerSpec;
  dedup: DedupSpec;
  topics: TopicsSpec;
  injection: InjectionSpec;
  sidecar: SidecarSpec;
}

type DeepPartial<T> = T extends (infer U)[] ? U[] : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/** What users write: only selector and kafka.bootstrapServers are required. */
export type PolicySpecInput = DeepPartial<PolicySpec> & {
  selector: LabelSelector;
  kafka: DeepPartial<KafkaSpec> & { bootstrapServers: string[] };
};

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface PolicyStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  injectedPods?: number;
  configMapName?: string;
}

export interface IdempotentProducerPolicy {
  apiVersion: 'idempo.dev/v1alpha1';
  kind: 'IdempotentProducerPolicy';
  metadata: V1ObjectMeta;
  /** As stored by the API server (defaulted); code that needs certainty re-checks with parsePolicySpec. */
  spec: PolicySpec;
  status?: PolicyStatus;
}

export interface IdempotentProducerPolicyList {
  apiVersion: 'idempo.dev/v1alpha1';
  kind: 'IdempotentProducerPolicyList';
  metadata?: { resourceVersion?: string; continue?: string };
  items: IdempotentProducerPolicy[];
}
