// Whether a pod gets the sidecar, and why: a pure function of (pod, namespace, policies),
// in the Istio/Linkerd style. Reason codes are stable snake_case values reused as the
// `reason` label of idempo_operator_admissions_total, in logs and in warnings.
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import {
  ANNOTATION_INJECT,
  ANNOTATION_INJECTED,
  ANNOTATION_POLICY,
  CONDITION_READY,
  INJECTION_ENABLED,
  LABEL_INJECTION,
  parsePolicySpec,
  SIDECAR_CONTAINER_NAME,
  type IdempotentProducerPolicy,
} from '../../api/index.js';
import { selectorMatches } from './selector.js';

/** Every reason, with the sentence that explains it. */
export const REASONS = {
  injected: 'The pod was injected with the idempo sidecar.',
  opted_out: `The pod opted out with the ${ANNOTATION_INJECT}: "false" annotation.`,
  host_network: 'The pod uses the host network, where a sidecar listener on 127.0.0.1 would clash with the node.',
  already_injected: 'The pod already carries the idempo sidecar; injection is never applied twice.',
  namespace_not_enabled: `The namespace does not have the label ${LABEL_INJECTION}: ${INJECTION_ENABLED}.`,
  no_policy: 'No IdempotentProducerPolicy in the namespace selects the pod.',
  multiple_policies: `More than one IdempotentProducerPolicy selects the pod; pick one with the ${ANNOTATION_POLICY} annotation. The pod is admitted without the sidecar.`,
  policy_not_found: `The policy named by the ${ANNOTATION_POLICY} annotation does not exist in the namespace.`,
  invalid_spec: 'The selected policy has an invalid spec.',
  policy_not_ready: 'The selected policy is not Ready.',
} as const;
export type ReasonCode = keyof typeof REASONS;
/** Reasons the handler adds for requests it cannot decide on (not produced by decide()). */
export const HANDLER_REASONS = {
  lookup_failed: 'The webhook could not read the namespace or the policies; the pod is admitted without the sidecar.',
  not_a_pod: 'The request is not a pod CREATE; nothing to do.',
  internal_error: 'Injection failed inside the webhook; the pod is admitted without the sidecar.',
} as const;
export type HandlerReasonCode = keyof typeof HANDLER_REASONS;

export interface Decision {
  inject: boolean;
  reason: ReasonCode;
  /** The reason's sentence, with names filled in where they help. */
  message: string;
  /** The chosen policy (when one was chosen, even if it turned out unusable). */
  policy?: IdempotentProducerPolicy;
}

const skip = (reason: ReasonCode, detail?: string, policy?: IdempotentProducerPolicy): Decision => ({
  inject: false,
  reason,
  message: detail ? `${REASONS[reason]} ${detail}` : REASONS[reason],
  ...(policy ? { policy } : {}),
});

function isInjected(pod: V1Pod): boolean {
  if (pod.metadata?.annotations?.[ANNOTATION_INJECTED] !== undefined) return true;
  const all = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
  return all.some((c) => c.name === SIDECAR_CONTAINER_NAME);
}

/**
 * Decides injection for a pod being created in `namespace`. `policies` may hold policies
 * of other namespaces (they are ignored) and ones being deleted (also ignored).
 */
export function decide(pod: V1Pod, namespace: V1Namespace | undefined, policies: IdempotentProducerPolicy[]): Decision {
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations[ANNOTATION_INJECT] === 'false') return skip('opted_out');
  if (pod.spec?.hostNetwork) return skip('host_network');
  if (isInjected(pod)) return skip('already_injected');
  if (namespace?.metadata?.labels?.[LABEL_INJECTION] !== INJECTION_ENABLED) return skip('namespace_not_enabled');

  const nsName = namespace.metadata?.name;
  const candidates = policies.filter(
    (p) => (nsName === undefined || p.metadata.namespace === undefined || p.metadata.namespace === nsName) && !p.metadata.deletionTimestamp,
  );

  let chosen: IdempotentProducerPolicy;
  const named = annotations[ANNOTATION_POLICY];
  if (named !== undefined) {
    // An explicit pick wins over selectors, so users can resolve overlaps per pod.
    const p = candidates.find((c) => c.metadata.name === named);
    if (!p) return skip('policy_not_found', `(${ANNOTATION_POLICY}: ${named})`);
    chosen = p;
  } else {
    const matching = candidates.filter((p) => selectorMatches(p.spec?.selector, pod.metadata?.labels));
    if (matching.length === 0) return skip('no_policy');
    if (matching.length > 1) {
      const names = matching.map((p) => p.metadata.name).sort();
      return skip('multiple_policies', `(${names.join(', ')})`);
    }
    chosen = matching[0];
  }

  const parsed = parsePolicySpec(chosen.spec);
  if (!parsed.ok) return skip('invalid_spec', `(${chosen.metadata.name}: ${parsed.errors[0]})`, chosen);
  // No status yet (the operator has not reconciled it) is not "not ready": the spec was
  // just validated here, so pods created right after their policy still get the sidecar.
  const ready = chosen.status?.conditions?.find((c) => c.type === CONDITION_READY);
  if (ready?.status === 'False') return skip('policy_not_ready', `(${chosen.metadata.name}: ${ready.reason})`, chosen);

  return {
    inject: true,
    reason: 'injected',
    message: `${REASONS.injected} (policy ${chosen.metadata.name})`,
    policy: { ...chosen, spec: parsed.spec },
  };
}
