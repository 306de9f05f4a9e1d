// The chart's RBAC is enough, and the in-cluster code path works: render the chart, apply
// its ServiceAccount, roles, bindings and webhook configuration to a real API server, and
// run the operator with the Deployment's own arguments and a token of that ServiceAccount
// (no --webhook-url: it patches the chart's caBundle). Needs helm (make tools installs it; missing, the file fails).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { KubeClient, resourcePath, type KubeObject } from '../../operator/kube/client.js';
import { startKube, type KubeEnv } from '../support/kube.js';
import { OPERATOR_NS, ensureNamespace, installCrds, policyPath, readyOf, repoRoot, startOperator, type OperatorProcess, type Policy } from './operator-harness.js';
import { waitFor } from '../support/poll.js';
import { output } from '../support/clients/run.js';
import { findHelm } from './helm.js';

const helm = await findHelm();

type Doc = KubeObject & { kind: string; spec?: any; webhooks?: Array<{ clientConfig: { caBundle?: string } }> };

describe('chart RBAC against a real API server', () => {
  let kube: KubeEnv;
  let admin: KubeClient;
  let op: OperatorProcess;
  let tmp: string;
  let docs: Doc[];

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'idempo-rbac-'));
    kube = await startKube();
    admin = new KubeClient(kube.kubeConfig);
    await installCrds(kube);
    await ensureNamespace(admin, 'rbac', { 'idempo.dev/injection': 'enabled' });
    const out = await output(helm, ['template', 'idempo', join(repoRoot, 'charts/idempo'), '--namespace', OPERATOR_NS, '--kube-version', '1.35.0']);
    docs = parseAllDocuments(out).map((d) => d.toJS()).filter(Boolean) as Doc[];
    const wanted = ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'MutatingWebhookConfiguration'];
    const apply = await kube.kubectl(['apply', '-f', '-'], docs.filter((d) => wanted.includes(d.kind)).map((d) => stringify(d)).join('---\n'));
    expect(apply.code, apply.stderr).toBe(0);

    // A kubeconfig that is the operator's ServiceAccount and nothing more.
    const sa = docs.find((d) => d.kind === 'ServiceAccount')!.metadata!.name!;
    const tok = await kube.kubectl(['create', 'token', sa, '-n', OPERATOR_NS, '--duration', '1h']);
    expect(tok.code, tok.stderr).toBe(0);
    const cluster = kube.kubeConfig.getCurrentCluster()!;
    const kubeconfig = join(tmp, 'sa.kubeconfig');
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: cluster.server, 'certificate-authority-data': cluster.caData } }],
        users: [{ name: 'sa', user: { token: tok.stdout.trim() } }],
        contexts: [{ name: 'sa', context: { cluster: 'c', user: 'sa', namespace: OPERATOR_NS } }],
        'current-context': 'sa',
      }),
    );

    // The Deployment's arguments, minus the listen addresses (free ports here) and the namespace env expansion.
    const dep = docs.find((d) => d.kind === 'Deployment')!;
    const args: string[] = dep.spec.template.spec.containers[0].args
      .filter((a: string) => !a.startsWith('--webhook-listen=') && !a.startsWith('--metrics-listen=') && !a.startsWith('--namespace='))
      .map((a: string) => a.replace(/^--lease-duration=.*/, '--lease-duration=4s').replace(/^--lease-renew=.*/, '--lease-renew=1s'));
    op = await startOperator({ ...kube, kubeconfigPath: kubeconfig }, { noWebhookUrl: true, extraArgs: args });
    await op.waitReady();
  });

  afterAll(async () => {
    await op?.stop();
    await kube?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('renders manifests the API server accepts (server-side dry run)', async () => {
    const core = docs.filter((d) => ['Deployment', 'Service', 'PodDisruptionBudget', 'ConfigMap'].includes(d.kind));
    expect(core.length).toBeGreaterThanOrEqual(3);
    const r = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], core.map((d) => stringify(d)).join('---\n'));
    expect(r.code, r.stderr).toBe(0);
  });

  it('manages its certificate Secret and patches the chart webhook caBundle', async () => {
    const mwcName = docs.find((d) => d.kind === 'MutatingWebhookConfiguration')!.metadata!.name!;
    const secret = await admin.get<KubeObject & { data: Record<string, string> }>(resourcePath('', 'v1', 'secrets', OPERATOR_NS, 'idempo-webhook-tls'));
    const mwc = await admin.get<Doc>(resourcePath('admissionregistration.k8s.io', 'v1', 'mutatingwebhookconfigurations', undefined, mwcName));
    expect(mwc.webhooks![0].clientConfig.caBundle).toBe(secret.data['ca.crt']);
  });

  it('holds its Lease and reconciles policies with only the chart RBAC', async () => {
    const lease = await waitFor('lease held', async () => {
      const l = await admin.get<KubeObject & { spec: { holderIdentity?: string } }>(resourcePath('coordination.k8s.io', 'v1', 'leases', OPERATOR_NS, 'idempo-operator-leader'));
      return l.spec.holderIdentity || undefined;
    });
    expect(lease).toBe(op.identity());
    await admin.create(policyPath('rbac'), { apiVersion: 'idempo.dev/v1alpha1', kind: 'IdempotentProducerPolicy', metadata: { name: 'p', namespace: 'rbac' }, spec: { selector: {}, kafka: { bootstrapServers: ['k:9092'] } } });
    await waitFor('policy Ready', async () => readyOf(await admin.get<Policy>(policyPath('rbac', 'p')))?.status === 'True');
    await admin.get(resourcePath('', 'v1', 'configmaps', 'rbac', 'idempo-p'));
    expect(op.logs()).not.toMatch(/forbidden/i);
  });

  it('releases the Lease on SIGTERM', async () => {
    expect(await op.stop()).toBe(0);
    const l = await admin.get<KubeObject & { spec: { holderIdentity?: string } }>(resourcePath('coordination.k8s.io', 'v1', 'leases', OPERATOR_NS, 'idempo-operator-leader'));
    expect(l.spec.holderIdentity ?? '').toBe('');
    expect(op.logs()).not.toMatch(/forbidden/i);
  });
});
