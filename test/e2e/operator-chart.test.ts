// The Helm chart's non-templated parts and the dashboard: CRD and dashboard copies in the
// chart match their sources, the alert rules and every dashboard query pass promtool, the
// queries use only metrics idempo exports. With helm on PATH (or in the cache), the
// templates are rendered for both certificate modes and every document is checked.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { repoRoot } from './operator-harness.js';
import { findHelm } from './helm.js';
import { output, runProcess } from '../support/clients/run.js';

const chart = join(repoRoot, 'charts/idempo');
const read = (p: string) => readFileSync(join(repoRoot, p), 'utf8');

const SIDECAR_METRICS = [
  'idempo_duplicates_rejected_total',
  'idempo_out_of_sequence_total',
  'idempo_produce_batches_total',
  'idempo_upgraded_batches_total',
  'idempo_retries_total',
  'idempo_inflight_batches',
  'idempo_producer_sessions',
  'idempo_produce_latency_seconds',
  'idempo_upstream_errors_total',
];
const OPERATOR_METRICS = [
  'idempo_operator_reconciles_total',
  'idempo_operator_reconcile_duration_seconds',
  'idempo_operator_admissions_total',
  'idempo_operator_webhook_latency_seconds',
  'idempo_operator_leader',
];

type Panel = { type: string; title: string; targets?: Array<{ expr: string }>; panels?: Panel[] };
const dashboard = JSON.parse(read('dashboards/idempo.json')) as { uid: string; panels: Panel[] };
const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })));

async function promtool(file: string): Promise<{ code: number; out: string }> {
  const r = await runProcess('promtool', ['check', 'rules', file]).catch((err: Error) => {
    throw new Error(`promtool not runnable (scripts/tools/install-debian.sh installs it): ${err.message}`);
  });
  return { code: r.code ?? 1, out: r.stdout + r.stderr };
}

describe('chart files', () => {
  it('ships the generated CRD unchanged', () => {
    expect(readFileSync(join(chart, 'crds/idempo.dev_idempotentproducerpolicies.yaml'), 'utf8')).toBe(read('crds/idempo.dev_idempotentproducerpolicies.yaml'));
  });

  it('ships dashboards/idempo.json unchanged', () => {
    expect(readFileSync(join(chart, 'files/dashboards/idempo.json'), 'utf8')).toBe(read('dashboards/idempo.json'));
  });

  it('has parseable Chart.yaml and values.yaml with the documented defaults', () => {
    const c = parse(readFileSync(join(chart, 'Chart.yaml'), 'utf8'));
    expect(c).toMatchObject({ apiVersion: 'v2', name: 'idempo' });
    const v = parse(readFileSync(join(chart, 'values.yaml'), 'utf8'));
    expect(v).toMatchObject({ replicas: 2, leaderElect: true, webhook: { failurePolicy: 'Ignore' }, certs: { mode: 'self-managed' } });
    expect(v.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(v.podSecurityContext.runAsNonRoot).toBe(true);
    for (const k of ['serviceMonitor', 'podMonitor', 'prometheusRule', 'grafanaDashboard']) expect(typeof v[k].enabled).toBe('boolean');
  });
});

describe('alert rules', () => {
  it('pass promtool check rules', async () => {
    const r = await promtool(join(chart, 'files/alerts.yaml'));
    expect(r.code, r.out).toBe(0);
  });

  it('has the documented alerts, each with a severity and a summary', () => {
    const rules = (parse(readFileSync(join(chart, 'files/alerts.yaml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; labels: Record<string, string>; annotations: Record<string, string> }> }> }).groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert).sort()).toEqual(['IdempoDuplicatesRising', 'IdempoOperatorReconcileErrors', 'IdempoOutOfSequence', 'IdempoStateJournalCorrupt', 'IdempoStateJournalFailing', 'IdempoUpstreamErrors', 'IdempoWebhookFailures']);
    for (const r of rules) {
      expect(r.labels.severity, r.alert).toMatch(/^(warning|critical)$/);
      expect(r.annotations.summary, r.alert).toBeTruthy();
    }
  });
});

describe('dashboard', () => {
  it('covers every sidecar metric of DESIGN.md and the operator metrics', () => {
    const all = exprs.map((e) => e.expr).join('\n');
    for (const m of [...SIDECAR_METRICS, ...OPERATOR_METRICS]) expect(all, m).toContain(m);
    expect(all).toContain('histogram_quantile(0.99');
    expect(all).toContain('histogram_quantile(0.5');
  });

  it('queries only metrics idempo exports', () => {
    const known = new Set([...SIDECAR_METRICS, ...OPERATOR_METRICS].flatMap((m) => [m, `${m}_bucket`, `${m}_count`, `${m}_sum`]));
    for (const { title, expr } of exprs) for (const m of expr.match(/idempo_[a-z_]+/g) ?? []) expect(known.has(m), `${title}: ${m}`).toBe(true);
  });

  it('has PromQL that promtool accepts (Grafana variables substituted)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'idempo-dash-'));
    try {
      const rules = exprs.map((e, i) => ({
        record: `idempo:dashboard_query:${i}`,
        expr: e.expr.replaceAll('$__rate_interval', '5m').replaceAll('$namespace', '.*').replaceAll('$topic', '.*'),
      }));
      const file = join(dir, 'dashboard-rules.yaml');
      writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
      const r = await promtool(file);
      expect(r.code, r.out).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const helm = await findHelm();

describe('helm template', () => {
  type Doc = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };
  const render = async (...set: string[]): Promise<Doc[]> => {
    const out = await output(helm, ['template', 'idempo', chart, '--namespace', 'idempo-system', '--kube-version', '1.35.0', '--include-crds', ...set.flatMap((s) => ['--set', s])]);
    return parseAllDocuments(out).map((d) => d.toJS()).filter(Boolean) as Doc[];
  };
  const find = (docs: Doc[], kind: string) => docs.filter((d) => d.kind === kind);

  it('renders the self-managed default: non-root operator, least-privilege RBAC, labelled webhook', async () => {
    const docs = await render();
    const dep = find(docs, 'Deployment')[0];
    expect(dep.spec.replicas).toBe(2);
    const c = dep.spec.template.spec.containers[0];
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(dep.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    expect(c.args).toContain('--leader-elect');
    const mwc = find(docs, 'MutatingWebhookConfiguration')[0];
    const selArg = c.args.find((a: string) => a.startsWith('--ca-bundle-selector='));
    const [k, v] = selArg.slice('--ca-bundle-selector='.length).split('=');
    expect(mwc.metadata.labels?.[k]).toBe(v);
    expect(mwc.webhooks[0].failurePolicy).toBe('Ignore');
    expect(mwc.webhooks[0].clientConfig.service.name).toBe(find(docs, 'Service')[0].metadata.name);
    const cr = find(docs, 'ClusterRole')[0];
    expect(cr.rules.flatMap((r: any) => r.verbs)).not.toContain('*');
    expect(find(docs, 'CustomResourceDefinition')).toHaveLength(1);
    expect(find(docs, 'ServiceMonitor')).toHaveLength(0);
  });

  it('renders cert-manager mode with Certificate, Issuer and the inject-ca-from annotation', async () => {
    const docs = await render('certs.mode=cert-manager');
    const mwc = find(docs, 'MutatingWebhookConfiguration')[0];
    const cert = find(docs, 'Certificate')[0];
    expect(mwc.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe(`idempo-system/${cert.metadata.name}`);
    expect(find(docs, 'Issuer')).toHaveLength(1);
    const c = find(docs, 'Deployment')[0].spec.template.spec.containers[0];
    expect(c.args.some((a: string) => a.startsWith('--cert-dir='))).toBe(true);
  });

  it('renders the monitoring toggles: ServiceMonitor, PodMonitor, PrometheusRule, dashboard ConfigMap', async () => {
    const docs = await render('serviceMonitor.enabled=true', 'podMonitor.enabled=true', 'prometheusRule.enabled=true', 'grafanaDashboard.enabled=true');
    expect(find(docs, 'ServiceMonitor')).toHaveLength(1);
    expect(find(docs, 'PodMonitor')).toHaveLength(1);
    const rule = find(docs, 'PrometheusRule')[0];
    expect(rule.spec).toEqual(parse(readFileSync(join(chart, 'files/alerts.yaml'), 'utf8')));
    const cm = find(docs, 'ConfigMap').find((d) => d.metadata.labels?.grafana_dashboard === '1')!;
    expect(JSON.parse(cm.data['idempo.json'])).toEqual(dashboard);
  });
});

// Where a sidecar image the webhook injects exposes its metrics port by name, the PodMonitor must use that name.
it('PodMonitor port name matches the name the webhook gives the sidecar metrics port', async () => {
  const { METRICS_PORT_NAME } = await import('../../operator/webhook/mutate.js');
  const v = parse(readFileSync(join(chart, 'values.yaml'), 'utf8'));
  expect(v.podMonitor.portName).toBe(METRICS_PORT_NAME);
});

