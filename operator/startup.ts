// What the operator checks before it starts anything, so that a missing kubeconfig,
// namespace, CRD or permission ends the process with one line naming what is missing and
// how to fix it, instead of an HTTP dump or a retry loop that never says why.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { API_VERSION, GROUP, PLURAL } from '../api/index.js';
import type { OperatorConfig } from './config.js';
import { KubeError, type KubeClient } from './kube/client.js';

/** A start-up failure the user can fix; main prints its message as one line and exits 1. */
export class StartupError extends Error {}

/** The operator's kubeconfig: --kubeconfig, else in-cluster, else $KUBECONFIG, else ~/.kube/config. */
export function loadKubeConfig(cfg: Pick<OperatorConfig, 'kubeconfig'>, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  const fromFile = (file: string, via: string) => {
    if (!existsSync(file)) throw new StartupError(`kubeconfig ${file} (${via}) does not exist: pass --kubeconfig with an existing file`);
    try {
      kc.loadFromFile(file);
    } catch (e) {
      throw new StartupError(`kubeconfig ${file} (${via}) cannot be read: ${(e as Error).message.split('\n')[0]}`);
    }
  };
  if (cfg.kubeconfig) fromFile(cfg.kubeconfig, '--kubeconfig');
  else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else if (env.KUBECONFIG) fromFile(env.KUBECONFIG.split(':')[0], '$KUBECONFIG');
  else {
    const file = join(env.HOME ?? homedir(), '.kube/config');
    if (!existsSync(file)) {
      throw new StartupError(`no kubeconfig: not in a cluster, no --kubeconfig, $KUBECONFIG unset and ${file} missing; pass --kubeconfig FILE`);
    }
    fromFile(file, 'default');
  }
  if (!kc.getCurrentCluster()) throw new StartupError('kubeconfig has no current cluster: set current-context (kubectl config use-context NAME)');
  return kc;
}

interface AccessCheck {
  verb: string;
  group: string;
  resource: string;
  namespace?: string;
  name?: string;
}

/** The permissions the operator cannot run without (the chart's rbac.yaml grants them). */
export function requiredAccess(cfg: OperatorConfig): AccessCheck[] {
  const ns = cfg.namespace;
  const checks: AccessCheck[] = [
    { verb: 'list', group: GROUP, resource: PLURAL },
    { verb: 'watch', group: GROUP, resource: PLURAL },
    { verb: 'patch', group: GROUP, resource: `${PLURAL}/status` },
    { verb: 'list', group: '', resource: 'namespaces' },
    { verb: 'create', group: '', resource: 'configmaps' },
    { verb: 'list', group: '', resource: 'pods' },
  ];
  if (cfg.leaderElect) checks.push({ verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: ns, name: cfg.leaseName });
  if (!cfg.certDir) checks.push({ verb: 'get', group: '', resource: 'secrets', namespace: ns, name: cfg.certSecret });
  if (cfg.webhookUrl) checks.push({ verb: 'update', group: 'admissionregistration.k8s.io', resource: 'mutatingwebhookconfigurations', name: cfg.webhookConfigName });
  return checks;
}

const what = (c: AccessCheck) =>
  `${c.verb} ${c.group ? `${c.resource}.${c.group}` : c.resource}${c.name ? `/${c.name}` : ''}${c.namespace ? ` in namespace ${c.namespace}` : ''}`;

/**
 * API server reachable, CRD installed, namespace present, permissions granted: the first that
 * fails throws a StartupError. SelfSubjectAccessReview needs no permission of its own.
 */
export async function preflight(client: KubeClient, cfg: OperatorConfig, server: string): Promise<void> {
  try {
    await client.get('/version', { timeoutMs: 10_000 });
  } catch (e) {
    if (e instanceof KubeError && (e.code === 401 || e.code === 403)) {
      throw new StartupError(`the API server at ${server} refuses our credentials (${e.code} ${e.reason}): check the kubeconfig's user`);
    }
    if (!(e instanceof KubeError)) {
      const cause = (e as NodeJS.ErrnoException).code ?? (e as Error).message.split('\n')[0];
      throw new StartupError(`cannot reach the API server at ${server} (${cause}): is the cluster up, and the kubeconfig's server right?`);
    }
  }
  try {
    await client.get(`/apis/${API_VERSION}`);
  } catch (e) {
    if (e instanceof KubeError && e.code === 404) {
      throw new StartupError(`the ${PLURAL}.${GROUP} CRD is not installed: kubectl apply -f crds/ (or helm install charts/idempo)`);
    }
  }
  const denied: string[] = [];
  for (const c of requiredAccess(cfg)) {
    const review = await client.create<{ status?: { allowed?: boolean } }>('/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { verb: c.verb, group: c.group, resource: c.resource.split('/')[0], subresource: c.resource.split('/')[1], namespace: c.namespace, name: c.name } },
    });
    if (!review.status?.allowed) denied.push(what(c));
  }
  if (denied.length) {
    throw new StartupError(
      `permission denied: cannot ${denied.join(', ')}; grant the chart's RBAC (charts/idempo/templates/rbac.yaml) to this identity, e.g. helm install charts/idempo, or use an admin kubeconfig`,
    );
  }
  try {
    await client.get(`/api/v1/namespaces/${cfg.namespace}`);
  } catch (e) {
    if (e instanceof KubeError && e.code === 404) {
      throw new StartupError(`namespace ${cfg.namespace} does not exist: kubectl create namespace ${cfg.namespace}, or pass --namespace NS (where the Lease and the certificate Secret live)`);
    }
    // 403 on get (RBAC grants list/watch only in some setups): the list check above covered it.
    if (!(e instanceof KubeError && e.code === 403)) throw e;
  }
}
