// The webhook's certificate and registration in the cluster: a TLS Secret created or
// renewed in place, and a MutatingWebhookConfiguration whose caBundle matches it. All
// writes are read-modify-replace with resourceVersion, retried on conflict, so several
// operator replicas starting at once converge on one certificate. Calls go through the
// operator's one API client (kube/client.ts); client-node contributes only its model types.
import type { V1LabelSelector, V1MutatingWebhook, V1MutatingWebhookConfiguration, V1Secret } from '@kubernetes/client-node';
import { INJECTION_ENABLED, LABEL_INJECTION, LABEL_MANAGED_BY, MANAGED_BY } from '../../api/index.js';
import { isConflict, isNotFound, resourcePath, type KubeClient, type List } from '../kube/client.js';
import { coversAndChains, issueCA, issueServing, needsRenewal, type CertKeyPair } from './issue.js';

export interface CertBundle {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface EnsureCertOptions {
  caValidityDays?: number;
  validityDays?: number;
  now?: Date;
}

/** Secret keys: the kubernetes.io/tls pair, plus the CA (its key too, to re-issue without changing the caBundle). */
export const SECRET_KEYS = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt', caKey: 'ca.key' } as const;
const WEBHOOK_NAME = 'inject.idempo.dev';
const MAX_ATTEMPTS = 5;

const secretsPath = (ns: string, name?: string) => resourcePath('', 'v1', 'secrets', ns, name);
const webhooksPath = (name?: string) => resourcePath('admissionregistration.k8s.io', 'v1', 'mutatingwebhookconfigurations', undefined, name);

async function getOrUndefined<T>(client: KubeClient, path: string): Promise<T | undefined> {
  try {
    return await client.get<T>(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

/** What to store, given what is stored (or undefined when nothing usable needs no change). */
function plan(existing: V1Secret | undefined, dnsNames: string[], ips: string[], opts: EnsureCertOptions): { bundle: CertBundle; caKeyPem: string; changed: boolean } {
  const now = opts.now ?? new Date();
  const d = existing?.data ?? {};
  const caPem = unb64(d[SECRET_KEYS.ca]);
  const caKeyPem = unb64(d[SECRET_KEYS.caKey]);
  const certPem = unb64(d[SECRET_KEYS.cert]);
  const keyPem = unb64(d[SECRET_KEYS.key]);

  let ca: CertKeyPair | undefined = caPem && caKeyPem && !needsRenewal(caPem, now) ? { certPem: caPem, keyPem: caKeyPem } : undefined;
  if (ca && certPem && keyPem && !needsRenewal(certPem, now) && coversAndChains(certPem, ca.certPem, dnsNames, ips)) {
    return { bundle: { caPem: ca.certPem, certPem, keyPem }, caKeyPem: ca.keyPem, changed: false };
  }
  ca ??= issueCA({ validityDays: opts.caValidityDays, now });
  const serving = issueServing(ca, dnsNames, ips, opts.validityDays ?? 365, now);
  return { bundle: { caPem: ca.certPem, certPem: serving.certPem, keyPem: serving.keyPem }, caKeyPem: ca.keyPem, changed: true };
}

/**
 * Returns the webhook's serving certificate from Secret `ns/name`, creating the Secret, or
 * re-issuing in place when the serving cert expires within min(30 days, a third of its
 * lifetime), lacks a requested name, or was not signed by the stored CA; the CA itself is
 * kept (so the caBundle stays valid) until it too comes due.
 */
export async function ensureCertSecret(
  client: KubeClient,
  ns: string,
  name: string,
  dnsNames: string[],
  ips: string[] = [],
  opts: EnsureCertOptions = {},
): Promise<CertBundle> {
  for (let attempt = 1; ; attempt++) {
    const existing = await getOrUndefined<V1Secret>(client, secretsPath(ns, name));
    const { bundle, caKeyPem, changed } = plan(existing, dnsNames, ips, opts);
    if (!changed) return bundle;
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace: ns,
        labels: { ...(existing?.metadata?.labels ?? {}), [LABEL_MANAGED_BY]: MANAGED_BY },
        ...(existing?.metadata?.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}),
      },
      type: 'kubernetes.io/tls',
      data: {
        [SECRET_KEYS.cert]: b64(bundle.certPem),
        [SECRET_KEYS.key]: b64(bundle.keyPem),
        [SECRET_KEYS.ca]: b64(bundle.caPem),
        [SECRET_KEYS.caKey]: b64(caKeyPem),
      },
    };
    try {
      if (existing) await client.replace(secretsPath(ns, name), body);
      else await client.create(secretsPath(ns), body);
      return bundle;
    } catch (err) {
      // Another replica wrote first: read its result and judge again.
      if (!isConflict(err) || attempt >= MAX_ATTEMPTS) throw err;
    }
  }
}

export interface RegisterWebhookOptions {
  /** Name of the MutatingWebhookConfiguration. */
  name: string;
  /** Out-of-cluster: https://host:port/mutate-pods. Exactly one of url and service. */
  url?: string;
  service?: { namespace: string; name: string; path?: string; port?: number };
  /** PEM of the CA that signed the serving certificate. */
  caBundle: string;
  /** Default: namespaces labelled idempo.dev/injection=enabled. */
  namespaceSelector?: V1LabelSelector;
  /** Default Ignore: an unavailable webhook must not stop pods from starting. */
  failurePolicy?: 'Ignore' | 'Fail';
  timeoutSeconds?: number;
}

function webhookConfiguration(o: RegisterWebhookOptions): V1MutatingWebhookConfiguration {
  if ((o.url === undefined) === (o.service === undefined)) throw new Error('registerWebhook: give exactly one of url and service');
  const webhook: V1MutatingWebhook = {
    name: WEBHOOK_NAME,
    clientConfig: {
      caBundle: b64(o.caBundle),
      ...(o.url !== undefined
        ? { url: o.url }
        : { service: { namespace: o.service!.namespace, name: o.service!.name, path: o.service!.path ?? '/mutate-pods', port: o.service!.port ?? 443 } }),
    },
    rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: o.failurePolicy ?? 'Ignore',
    matchPolicy: 'Equivalent',
    timeoutSeconds: o.timeoutSeconds ?? 5,
    reinvocationPolicy: 'Never',
    namespaceSelector: o.namespaceSelector ?? { matchLabels: { [LABEL_INJECTION]: INJECTION_ENABLED } },
  };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: o.name, labels: { [LABEL_MANAGED_BY]: MANAGED_BY } },
    webhooks: [webhook],
  };
}

/** Creates the MutatingWebhookConfiguration, or replaces its webhooks when it exists. */
export async function registerWebhook(client: KubeClient, o: RegisterWebhookOptions): Promise<V1MutatingWebhookConfiguration> {
  const desired = webhookConfiguration(o);
  for (let attempt = 1; ; attempt++) {
    const existing = await getOrUndefined<V1MutatingWebhookConfiguration>(client, webhooksPath(o.name));
    try {
      if (!existing) return await client.create<V1MutatingWebhookConfiguration>(webhooksPath(), desired);
      const body: V1MutatingWebhookConfiguration = {
        ...desired,
        metadata: {
          ...existing.metadata,
          labels: { ...(existing.metadata?.labels ?? {}), ...desired.metadata!.labels },
        },
      };
      return await client.replace<V1MutatingWebhookConfiguration>(webhooksPath(o.name), body);
    } catch (err) {
      if (!isConflict(err) || attempt >= MAX_ATTEMPTS) throw err;
    }
  }
}

/**
 * Sets the caBundle (PEM) of every webhook in every MutatingWebhookConfiguration matching
 * `labelSelector` (e.g. the chart's, after a CA rotation). Returns how many were changed.
 */
export async function patchCABundle(client: KubeClient, labelSelector: string, caBundle: string): Promise<number> {
  const want = b64(caBundle);
  let changed = 0;
  const list = await client.get<List<V1MutatingWebhookConfiguration>>(webhooksPath(), { query: { labelSelector } });
  for (const item of list.items) {
    const name = item.metadata?.name ?? '';
    for (let attempt = 1, cfg: V1MutatingWebhookConfiguration | undefined = item; cfg; attempt++) {
      if ((cfg.webhooks ?? []).every((w) => w.clientConfig.caBundle === want)) break;
      const body: V1MutatingWebhookConfiguration = {
        ...cfg,
        webhooks: (cfg.webhooks ?? []).map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: want } })),
      };
      try {
        await client.replace(webhooksPath(name), body);
        changed++;
        break;
      } catch (err) {
        if (isNotFound(err)) break;
        if (!isConflict(err) || attempt >= MAX_ATTEMPTS) throw err;
        cfg = await client.get<V1MutatingWebhookConfiguration>(webhooksPath(name));
      }
    }
  }
  return changed;
}
