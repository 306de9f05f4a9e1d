// Reconciles one IdempotentProducerPolicy by name: validate the spec, detect policies whose
// selectors overlap in the same namespace, render the ConfigMap the sidecars mount, write status.
// Never branches on create vs update: it reads the world and makes it match.
import type { Logger } from 'pino';
import {
  API_VERSION,
  CONDITION_READY,
  ConditionReason,
  GROUP,
  KIND,
  LABEL_MANAGED_BY,
  MANAGED_BY,
  PLURAL,
  POLICY_CONFIG_KEY,
  VERSION,
  policyConfigMapName,
} from '../../api/constants.js';
import { parsePolicySpec, type PolicySpec } from '../../api/index.js';
import { isNotFound, KubeError, resourcePath, type KubeClient, type KubeObject } from '../kube/client.js';
import { setCondition, type Condition } from './conditions.js';
import { selectorsOverlap, selectorString, type LabelSelector } from './selectors.js';

export type PolicyStatus = {
  observedGeneration?: number;
  conditions?: Condition[];
  injectedPods?: number;
  configMapName?: string;
};

export type PolicyObject = KubeObject & { spec?: unknown; status?: PolicyStatus };

export type ConfigMapObject = KubeObject & { data?: Record<string, string> };

/** Label on rendered ConfigMaps naming their policy, so a ConfigMap change maps back to it. */
export const LABEL_CONFIG_POLICY = 'idempo.dev/policy';

export type PolicyReconcilerDeps = {
  client: KubeClient;
  /** Cached policies (all namespaces). */
  policies: { get(key: string): PolicyObject | undefined; list(namespace: string): PolicyObject[] };
  /** How many live pods carry `idempo.dev/injected: <policy>` in a namespace. */
  injectedPods(namespace: string, policy: string): number;
  log: Logger;
  now?: () => Date;
};

export type ReconcileOutcome = 'reconciled' | 'invalid' | 'conflict' | 'secret_not_found' | 'gone';

/**
 * The Secrets the sidecar would mount (spec.kafka.tls.caSecretRef, .clientCertSecretRef,
 * spec.kafka.sasl.secretRef) that do not exist, as "Secret X (spec path) not found". Read as
 * metadata only (PartialObjectMetadata): the operator never sees a Secret's data. Without
 * permission to read Secrets the check is skipped, not failed.
 */
async function missingSecrets(deps: PolicyReconcilerDeps, namespace: string, spec: PolicySpec): Promise<string[]> {
  const refs: Array<[string, string | undefined]> = [
    ['spec.kafka.tls.caSecretRef', spec.kafka.tls.enabled ? spec.kafka.tls.caSecretRef?.name : undefined],
    ['spec.kafka.tls.clientCertSecretRef', spec.kafka.tls.enabled ? spec.kafka.tls.clientCertSecretRef?.name : undefined],
    ['spec.kafka.sasl.secretRef', spec.kafka.sasl?.secretRef.name],
  ];
  const missing: string[] = [];
  for (const [field, name] of refs) {
    if (!name) continue;
    try {
      await deps.client.get(resourcePath('', 'v1', 'secrets', namespace, name), { accept: METADATA_ONLY });
    } catch (e) {
      if (isNotFound(e)) missing.push(`Secret ${name} (${field}) not found`);
      else if (e instanceof KubeError && e.code === 403) deps.log.debug({ namespace, secret: name }, 'no permission to check that a Secret exists; skipped');
      else throw e;
    }
  }
  return missing;
}

const METADATA_ONLY = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';

export async function reconcilePolicy(deps: PolicyReconcilerDeps, key: string): Promise<ReconcileOutcome> {
  const [namespace, name] = key.split('/');
  const policy = deps.policies.get(key);
  if (!policy || policy.metadata?.deletionTimestamp) return 'gone'; // the ConfigMap goes with it (ownerReference, GC)

  const parsed = parsePolicySpec(policy.spec);
  const cmName = policyConfigMapName(name);
  let ready: Omit<Condition, 'lastTransitionTime'>;
  let outcome: ReconcileOutcome;
  let configMapName: string | undefined;

  if (!parsed.ok) {
    // Keep the last good ConfigMap: running sidecars reload it, and an edit with a typo
    // should not take their configuration away.
    ready = { type: CONDITION_READY, status: 'False', reason: ConditionReason.InvalidSpec, message: parsed.errors.join('; ') };
    outcome = 'invalid';
    configMapName = (await getConfigMap(deps.client, namespace, cmName)) ? cmName : undefined;
  } else {
    await applyConfigMap(deps, policy, cmName, canonicalJson(parsed.spec));
    configMapName = cmName;
    const selector = (parsed.spec as { selector?: LabelSelector }).selector;
    const rivals = conflictingPolicies(deps.policies.list(namespace), policy, selector);
    // The older policy keeps working; the one that introduced the overlap is the one to fix.
    const older = rivals.filter((r) => r.older);
    const newer = rivals.filter((r) => !r.older);
    const names = (rs: typeof rivals) => rs.map((r) => `policy ${r.name} (${selectorString(r.selector)})`).join(', ');
    if (older.length) {
      ready = {
        type: CONDITION_READY,
        status: 'False',
        reason: ConditionReason.ConflictingPolicies,
        message:
          `selector (${selectorString(selector)}) overlaps with older ${names(older)}; ` +
          `no pod is injected for this policy until the selectors are made disjoint or the other policy is removed`,
      };
      outcome = 'conflict';
    } else {
      const missing = await missingSecrets(deps, namespace, parsed.spec);
      if (missing.length) {
        // The sidecar would mount these: its pod could not start. Not ready, so nothing is injected.
        ready = {
          type: CONDITION_READY,
          status: 'False',
          reason: ConditionReason.SecretNotFound,
          message: `${missing.join('; ')} in namespace ${namespace}; create it (checked again when the spec changes and every --resync)`,
        };
        outcome = 'secret_not_found';
      } else {
        const note = newer.length ? `; pods also matched by newer ${names(newer)} are not injected` : '';
        ready = { type: CONDITION_READY, status: 'True', reason: ConditionReason.Reconciled, message: `sidecars read ConfigMap ${cmName}${note}` };
        outcome = 'reconciled';
      }
    }
  }

  const generation = policy.metadata?.generation;
  const prev = policy.status ?? {};
  const next: PolicyStatus = {
    observedGeneration: generation,
    conditions: setCondition(prev.conditions, { ...ready, observedGeneration: generation }, deps.now?.() ?? new Date()),
    injectedPods: deps.injectedPods(namespace, name),
    configMapName,
  };
  if (!sameJson(normalizeStatus(prev), normalizeStatus(next))) {
    try {
      // Merge patch on the status subresource: spec edits racing with us cannot be overwritten.
      await deps.client.mergePatch(resourcePath(GROUP, VERSION, PLURAL, namespace, name, 'status'), {
        status: { ...next, configMapName: next.configMapName ?? null },
      });
    } catch (e) {
      if (isNotFound(e)) return 'gone';
      throw e;
    }
    deps.log.info({ policy: key, reason: ready.reason, generation }, 'policy status updated');
  }
  const was = prev.conditions?.find((c) => c.type === CONDITION_READY);
  if (!was || was.status !== ready.status || was.reason !== ready.reason) await recordEvent(deps, policy, ready);
  return outcome;
}

/**
 * One Event per Ready transition, on the policy, with the condition's reason and message, so
 * `kubectl describe ipp` tells the story. Best effort: a failed Event never fails a reconcile.
 */
async function recordEvent(deps: PolicyReconcilerDeps, policy: PolicyObject, ready: Omit<Condition, 'lastTransitionTime'>): Promise<void> {
  const { namespace, name, uid } = policy.metadata ?? {};
  const now = (deps.now?.() ?? new Date()).toISOString();
  try {
    await deps.client.create(resourcePath('', 'v1', 'events', namespace), {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${name}.`, namespace },
      involvedObject: { apiVersion: API_VERSION, kind: KIND, name, namespace, uid },
      type: ready.status === 'True' ? 'Normal' : 'Warning',
      reason: ready.reason,
      message: ready.message,
      source: { component: MANAGED_BY },
      reportingComponent: MANAGED_BY,
      reportingInstance: process.env.HOSTNAME ?? MANAGED_BY,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    });
  } catch (e) {
    deps.log.warn({ policy: `${namespace}/${name}`, err: (e as Error).message }, 'cannot record event');
  }
}

/**
 * Valid policies in the namespace, other than `self`, whose selector can match a pod that
 * `selector` matches (see selectors.ts). `older` orders by creationTimestamp, then name,
 * so exactly one of any two overlapping policies is the older.
 */
export function conflictingPolicies(
  all: PolicyObject[],
  self: PolicyObject,
  selector: LabelSelector | undefined,
): Array<{ name: string; selector: LabelSelector | undefined; older: boolean }> {
  const name = self.metadata?.name ?? '';
  const age = (p: PolicyObject) => [p.metadata?.creationTimestamp ?? '', p.metadata?.name ?? ''] as const;
  const [myTs] = age(self);
  const out: Array<{ name: string; selector: LabelSelector | undefined; older: boolean }> = [];
  for (const p of all) {
    const n = p.metadata?.name ?? '';
    if (n === name || p.metadata?.deletionTimestamp) continue;
    // An invalid policy never gets a ConfigMap or pods, so it cannot take pods away from this one.
    const r = parsePolicySpec(p.spec);
    if (!r.ok) continue;
    const s = (r.spec as { selector?: LabelSelector }).selector;
    if (!selectorsOverlap(selector, s)) continue;
    const [ts] = age(p);
    const older = ts < myTs || (ts === myTs && n < name);
    out.push({ name: n, selector: s, older });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

async function getConfigMap(client: KubeClient, namespace: string, name: string): Promise<ConfigMapObject | undefined> {
  try {
    return await client.get<ConfigMapObject>(resourcePath('', 'v1', 'configmaps', namespace, name));
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

async function applyConfigMap(deps: PolicyReconcilerDeps, policy: PolicyObject, cmName: string, json: string): Promise<void> {
  const namespace = policy.metadata!.namespace!;
  const owner = {
    apiVersion: API_VERSION,
    kind: KIND,
    name: policy.metadata!.name!,
    uid: policy.metadata!.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
  const labels = { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_CONFIG_POLICY]: owner.name };
  const current = await getConfigMap(deps.client, namespace, cmName);
  if (!current) {
    await deps.client.create(resourcePath('', 'v1', 'configmaps', namespace), {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: cmName, namespace, labels, ownerReferences: [owner] },
      data: { [POLICY_CONFIG_KEY]: json },
    });
    deps.log.info({ configMap: `${namespace}/${cmName}` }, 'configmap created');
    return;
  }
  // Other owners stay; a controller reference to an older incarnation of the policy is replaced.
  const otherOwners = (current.metadata?.ownerReferences ?? []).filter((r) => !r.controller && r.uid !== owner.uid);
  const desired: ConfigMapObject = {
    ...current,
    metadata: { ...current.metadata, labels: { ...current.metadata?.labels, ...labels }, ownerReferences: [owner, ...otherOwners] },
    data: { [POLICY_CONFIG_KEY]: json },
  };
  const same =
    sameJson(current.data ?? {}, desired.data) &&
    sameJson(current.metadata?.labels ?? {}, desired.metadata!.labels) &&
    sameJson(current.metadata?.ownerReferences ?? [], desired.metadata!.ownerReferences);
  if (same) return;
  // PUT carries the resourceVersion we read: a concurrent writer makes this a 409 and a retry.
  await deps.client.replace(resourcePath('', 'v1', 'configmaps', namespace, cmName), desired);
  deps.log.info({ configMap: `${namespace}/${cmName}` }, 'configmap updated');
}

/** JSON with sorted object keys: the same spec always renders to the same bytes. */
export function canonicalJson(v: unknown): string {
  const sort = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sort);
    if (x && typeof x === 'object') return Object.fromEntries(Object.keys(x as object).sort().map((k) => [k, sort((x as Record<string, unknown>)[k])]));
    return x;
  };
  return JSON.stringify(sort(v), null, 2) + '\n';
}

function normalizeStatus(s: PolicyStatus): unknown {
  return {
    observedGeneration: s.observedGeneration ?? null,
    conditions: s.conditions ?? [],
    injectedPods: s.injectedPods ?? 0,
    configMapName: s.configMapName ?? null,
  };
}

const sameJson = (a: unknown, b: unknown): boolean => canonicalJson(a) === canonicalJson(b);
