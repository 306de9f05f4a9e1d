// Names that the operator, the webhook, the sidecar, the chart and users' manifests share.

export const GROUP = 'idempo.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'IdempotentProducerPolicy';
export const LIST_KIND = 'IdempotentProducerPolicyList';
export const PLURAL = 'idempotentproducerpolicies';
export const SINGULAR = 'idempotentproducerpolicy';
export const SHORT_NAMES = ['ipp'] as const;
export const CRD_NAME = `${PLURAL}.${GROUP}`;

/** Namespace label that opts a namespace into injection (value `enabled`). */
export const LABEL_INJECTION = 'idempo.dev/injection';
export const INJECTION_ENABLED = 'enabled';
/** Pod annotation: `"false"` opts the pod out. */
export const ANNOTATION_INJECT = 'idempo.dev/inject';
/** Pod annotation naming the policy to use (skips selector matching). */
export const ANNOTATION_POLICY = 'idempo.dev/policy';
/** Set by the webhook on injected pods: annotation = policy name; label = policy name too, for selectors. */
export const ANNOTATION_INJECTED = 'idempo.dev/injected';
export const LABEL_INJECTED = 'idempo.dev/injected';
/** Label on everything the operator creates (ConfigMaps, webhook configuration). */
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'idempo-operator';

/** Name of the sidecar container (init container when native sidecars are on). */
export const SIDECAR_CONTAINER_NAME = 'idempo-sidecar';
/** ConfigMap holding the rendered spec, one per policy, key `policy.json`. */
export const POLICY_CONFIG_KEY = 'policy.json';
export const POLICY_CONFIG_DIR = '/etc/idempo';
export const POLICY_CONFIG_PATH = `${POLICY_CONFIG_DIR}/${POLICY_CONFIG_KEY}`;
/**
 * Where the sidecar finds Kafka TLS material when spec.kafka.tls is on. Outside
 * /etc/idempo because that is a read-only ConfigMap mount (no nested mount points).
 */
export const KAFKA_CA_DIR = '/var/run/idempo/kafka-ca';
export const KAFKA_CA_FILE = 'ca.crt';
export const KAFKA_CLIENT_CERT_DIR = '/var/run/idempo/kafka-client';
/** SASL credentials of spec.kafka.sasl, one file each (the Secret's keys mapped to these names). */
export const KAFKA_SASL_DIR = '/var/run/idempo/kafka-sasl';
export const KAFKA_SASL_USERNAME_FILE = 'username';
export const KAFKA_SASL_PASSWORD_FILE = 'password';

/** Deterministic child name: the ConfigMap the operator writes for a policy. */
export function policyConfigMapName(policyName: string): string {
  return `idempo-${policyName}`;
}

/** Condition types and reasons (CamelCase, Kubernetes condition conventions). */
export const CONDITION_READY = 'Ready';
export const ConditionReason = {
  Reconciled: 'Reconciled',
  InvalidSpec: 'InvalidSpec',
  ConflictingPolicies: 'ConflictingPolicies',
  SecretNotFound: 'SecretNotFound',
} as const;
// No "ReconcileFailed" or "Pending": a failed reconcile (API error) is retried with backoff and
// counted (idempo_operator_reconciles_total{result="error"}); the status keeps the last verdict
// it could establish, and a new policy has no Ready condition until its first reconcile.
export type ConditionReason = (typeof ConditionReason)[keyof typeof ConditionReason];
