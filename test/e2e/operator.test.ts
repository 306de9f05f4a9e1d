// The built idempo-operator against a real kube-apiserver: it registers its own webhook,
// the API server calls it for every pod, and policies get ConfigMaps and status.
// We assert the state of the world (stored pods, ConfigMaps, status), not calls made.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient, resourcePath, type KubeObject } from '../../operator/kube/client.js';
import { startKube, type KubeEnv } from '../support/kube.js';
import {
  OPERATOR_NS,
  ensureNamespace,
  getOrUndefined,
  installCrds,
  policyPath,
  readyOf,
  startOperator,
  type OperatorProcess,
  type Policy,
} from './operator-harness.js';
import { waitFor } from '../support/poll.js';
import { runProcess } from '../support/clients/run.js';

type Container = { name: string; image?: string; args?: string[]; env?: Array<{ name: string; value?: string }>; restartPolicy?: string };
type Pod = KubeObject & { spec: { containers: Container[]; initContainers?: Container[]; hostNetwork?: boolean } };

const NS = 'shop';
const NS_OFF = 'plain'; // not labelled for injection
const NS_TWO = 'twins'; // two overlapping policies

let kube: KubeEnv;
let client: KubeClient;
let op: OperatorProcess;
const figures: Record<string, number> = {};

const policy = (ns: string, name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'idempo.dev/v1alpha1',
  kind: 'IdempotentProducerPolicy',
  metadata: { name, namespace: ns },
  spec: { kafka: { bootstrapServers: ['kafka.kafka:9092'] }, ...spec },
});

let podSeq = 0;
async function createPod(ns: string, o: { labels?: Record<string, string>; annotations?: Record<string, string>; hostNetwork?: boolean } = {}): Promise<Pod> {
  const name = `p${++podSeq}`;
  return client.create<Pod>(resourcePath('', 'v1', 'pods', ns), {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: o.labels ?? {}, annotations: o.annotations ?? {} },
    spec: {
      hostNetwork: o.hostNetwork,
      containers: [{ name: 'app', image: 'example/app:1', env: [{ name: 'KAFKA_BOOTSTRAP_SERVERS', value: 'kafka.kafka:9092' }] }],
    },
  });
}

const injected = (p: Pod) => [...(p.spec.initContainers ?? []), ...p.spec.containers].some((c) => c.name === 'idempo-sidecar');

async function waitPolicy(ns: string, name: string, pred: (p: Policy) => boolean, what: string): Promise<Policy> {
  return waitFor(what, async () => {
    const p = await getOrUndefined<Policy>(client, policyPath(ns, name));
    return p && pred(p) ? p : undefined;
  });
}

beforeAll(async () => {
  kube = await startKube();
  client = new KubeClient(kube.kubeConfig);
  await installCrds(kube);
  await ensureNamespace(client, NS, { 'idempo.dev/injection': 'enabled' });
  await ensureNamespace(client, NS_OFF);
  await ensureNamespace(client, NS_TWO, { 'idempo.dev/injection': 'enabled' });
  const t0 = Date.now();
  op = await startOperator(kube, { extraArgs: ['--leader-elect', '--lease-duration', '4s', '--lease-renew', '1s'] });
  await op.waitReady();
  figures.startToReadyMs = Date.now() - t0;
});

afterAll(async () => {
  console.log('operator e2e figures', figures);
  if (op) await op.stop();
  await kube?.stop();
});

describe('idempo-operator on a real API server', () => {
  it('reconciles a policy: ConfigMap owned by the policy, status Ready', async () => {
    await client.create(policyPath(NS), policy(NS, 'payments', { selector: { matchLabels: { app: 'payments' } }, mode: 'upgrade' }));
    const p = await waitPolicy(NS, 'payments', (p) => readyOf(p)?.status === 'True', 'payments Ready');
    expect(p.status).toMatchObject({ observedGeneration: 1, configMapName: 'idempo-payments', injectedPods: 0 });
    expect(readyOf(p)).toMatchObject({ reason: 'Reconciled', observedGeneration: 1 });
    const cm = await client.get<KubeObject & { data: Record<string, string> }>(resourcePath('', 'v1', 'configmaps', NS, 'idempo-payments'));
    const spec = JSON.parse(cm.data['policy.json']);
    expect(spec.mode).toBe('upgrade');
    expect(spec.selector).toEqual({ matchLabels: { app: 'payments' } });
    expect(spec.producer.maxInFlightPerPartition).toBe(5); // defaults filled in
    expect(cm.metadata?.ownerReferences).toEqual([
      { apiVersion: 'idempo.dev/v1alpha1', kind: 'IdempotentProducerPolicy', name: 'payments', uid: p.metadata?.uid, controller: true, blockOwnerDeletion: true },
    ]);
  });

  it('a Secret the policy names that does not exist: Ready False, SecretNotFound, until it is created', async () => {
    const sasl = { mechanism: 'SCRAM-SHA-512', secretRef: { name: 'kafka-user' } };
    await client.create(policyPath(NS), policy(NS, 'secured', { selector: { matchLabels: { app: 'secured' } }, kafka: { bootstrapServers: ['kafka.kafka:9092'], sasl } }));
    const p = await waitPolicy(NS, 'secured', (p) => readyOf(p)?.reason === 'SecretNotFound', 'secured SecretNotFound');
    expect(readyOf(p)).toMatchObject({ status: 'False' });
    expect(readyOf(p)?.message).toContain('Secret kafka-user (spec.kafka.sasl.secretRef) not found in namespace shop');
    await client.create(resourcePath('', 'v1', 'secrets', NS), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'kafka-user' }, stringData: { username: 'u', password: 'p' } });
    // Checked again on the next change of the policy's spec (or the next resync).
    await client.mergePatch(policyPath(NS, 'secured'), { spec: { mode: 'observe' } });
    await waitPolicy(NS, 'secured', (p) => readyOf(p)?.status === 'True', 'secured Ready once the Secret exists');
    await client.delete(policyPath(NS, 'secured'));
  });

  it('injects the sidecar into a matching pod', async () => {
    // The API server picks up a new webhook configuration asynchronously: the first pods
    // may slip through uninjected; keep creating until one is injected and time that.
    const t0 = Date.now();
    const pod = await waitFor('an injected pod', async () => {
      const p = await createPod(NS, { labels: { app: 'payments' } });
      return injected(p) ? p : undefined;
    }, 30_000, 100);
    figures.firstInjectionAfterReadyMs = Date.now() - t0;
    const t1 = performance.now();
    const again = await createPod(NS, { labels: { app: 'payments' } });
    figures.podCreateWithInjectionMs = Math.round(performance.now() - t1);
    expect(injected(again)).toBe(true);

    expect(pod.metadata?.annotations?.['idempo.dev/injected']).toBe('payments');
    expect(pod.metadata?.labels?.['idempo.dev/injected']).toBe('payments'); // the chart's PodMonitor selects on it
    const sidecar = pod.spec.initContainers?.[0] ?? pod.spec.containers.find((c) => c.name === 'idempo-sidecar')!;
    expect(sidecar.name).toBe('idempo-sidecar');
    expect(sidecar.restartPolicy).toBe('Always'); // a native sidecar: starts before the app, outlives it
    const args = (sidecar.args ?? []).join(' ');
    expect(args).toContain('--upstream');
    expect(args).toContain('kafka.kafka:9092');
    // The mode and the rest of the policy reach the sidecar through the mounted ConfigMap.
    expect(args).toMatch(/--config[ =]\/etc\/idempo\/policy\.json/);
    const app = pod.spec.containers.find((c) => c.name === 'app')!;
    const boot = app.env?.find((e) => e.name === 'KAFKA_BOOTSTRAP_SERVERS')?.value;
    expect(boot).toMatch(/^(127\.0\.0\.1|localhost):19092$/);

    // status.injectedPods follows the pods carrying the annotation.
    await waitPolicy(NS, 'payments', (p) => (p.status?.injectedPods ?? 0) >= 2, 'injectedPods >= 2');
  });

  it('does not inject: opt-out, unlabelled namespace, no matching policy, already injected, hostNetwork', async () => {
    await client.create(policyPath(NS_OFF), policy(NS_OFF, 'any', { selector: {} }));
    await waitPolicy(NS_OFF, 'any', (p) => readyOf(p)?.status === 'True', 'plain/any Ready');
    const cases: Array<[string, Promise<Pod>]> = [
      ['opt-out annotation', createPod(NS, { labels: { app: 'payments' }, annotations: { 'idempo.dev/inject': 'false' } })],
      ['unlabelled namespace', createPod(NS_OFF, { labels: { app: 'payments' } })],
      ['no matching policy', createPod(NS, { labels: { app: 'other' } })],
      ['already injected', createPod(NS, { labels: { app: 'payments' }, annotations: { 'idempo.dev/injected': 'payments' } })],
      ['hostNetwork', createPod(NS, { labels: { app: 'payments' }, hostNetwork: true })],
    ];
    for (const [what, p] of cases) expect(injected(await p), what).toBe(false);
    const admissions = await op.metric('idempo_operator_admissions_total', { decision: 'skipped' });
    expect(admissions).toBeGreaterThanOrEqual(3); // the unlabelled namespace never reaches the webhook
  });

  it('marks the newer of two overlapping policies ConflictingPolicies; pods matching both are not injected', async () => {
    await client.create(policyPath(NS_TWO), policy(NS_TWO, 'a', { selector: { matchLabels: { app: 'x' } } }));
    await waitPolicy(NS_TWO, 'a', (p) => readyOf(p)?.status === 'True', 'twins/a Ready');
    await client.create(policyPath(NS_TWO), policy(NS_TWO, 'b', { selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['x', 'y'] }] } }));
    const b = await waitPolicy(NS_TWO, 'b', (p) => readyOf(p)?.reason === 'ConflictingPolicies', 'twins/b ConflictingPolicies');
    expect(readyOf(b)).toMatchObject({ status: 'False', observedGeneration: 1 });
    expect(readyOf(b)?.message).toContain('policy a (app=x)');
    // The transition is also an Event on the policy (kubectl describe ipp b).
    const events = await waitFor('a ConflictingPolicies event on b', async () => {
      const list = await client.get<{ items: Array<{ reason: string; type: string; message: string; involvedObject: { name: string; kind: string } }> }>(resourcePath('', 'v1', 'events', NS_TWO));
      const mine = list.items.filter((e) => e.involvedObject.kind === 'IdempotentProducerPolicy' && e.involvedObject.name === 'b' && e.reason === 'ConflictingPolicies');
      return mine.length ? mine : undefined;
    }, 10_000, 100);
    expect(events[0]).toMatchObject({ type: 'Warning' });
    expect(events[0].message).toContain('policy a (app=x)');
    // The older policy keeps working, and says which pods it loses.
    const a = await waitPolicy(NS_TWO, 'a', (p) => (readyOf(p)?.message ?? '').includes('newer policy b'), 'twins/a notes the overlap');
    expect(readyOf(a)).toMatchObject({ status: 'True', reason: 'Reconciled' });

    expect(injected(await createPod(NS_TWO, { labels: { app: 'x' } })), 'matches a and b').toBe(false);
    expect(injected(await createPod(NS_TWO, { labels: { app: 'y' } })), 'matches only the conflicting b').toBe(false);

    // Remove the older one: b flips to Ready (new transition time) and gets pods.
    const before = readyOf(b)!;
    await client.delete(policyPath(NS_TWO, 'a'));
    const after = readyOf(await waitPolicy(NS_TWO, 'b', (p) => readyOf(p)?.status === 'True', 'twins/b Ready'))!;
    expect(after.reason).toBe('Reconciled');
    expect(after.lastTransitionTime >= before.lastTransitionTime).toBe(true);
    // The webhook's policy cache sees the new status a moment after we do.
    await waitFor('a pod matching b is injected', async () => injected(await createPod(NS_TWO, { labels: { app: 'y' } })) || undefined, 10_000, 50);
  });

  it('follows spec changes: ConfigMap content and observedGeneration', async () => {
    const cur = await client.get<Policy>(policyPath(NS, 'payments'));
    const ltt = readyOf(cur)!.lastTransitionTime;
    await client.mergePatch(policyPath(NS, 'payments'), { spec: { mode: 'observe', dedup: { window: '10m' } } });
    const p = await waitPolicy(NS, 'payments', (p) => p.status?.observedGeneration === 2, 'observedGeneration 2');
    expect(readyOf(p)).toMatchObject({ status: 'True', observedGeneration: 2, lastTransitionTime: ltt });
    const cm = await client.get<KubeObject & { data: Record<string, string> }>(resourcePath('', 'v1', 'configmaps', NS, 'idempo-payments'));
    const spec = JSON.parse(cm.data['policy.json']);
    expect(spec.mode).toBe('observe');
    expect(spec.dedup.window).toBe('10m');
  });

  it('repairs a ConfigMap someone edited or deleted', async () => {
    const path = resourcePath('', 'v1', 'configmaps', NS, 'idempo-payments');
    const good = (await client.get<KubeObject & { data: Record<string, string> }>(path)).data['policy.json'];
    await client.mergePatch(path, { data: { 'policy.json': '{}' } });
    await waitFor('edited ConfigMap restored', async () => (await client.get<KubeObject & { data: Record<string, string> }>(path)).data['policy.json'] === good);
    await client.delete(path);
    await waitFor('deleted ConfigMap recreated', async () => (await getOrUndefined<KubeObject & { data: Record<string, string> }>(client, path))?.data['policy.json'] === good);
  });

  it('exports its metrics and holds the Lease', async () => {
    expect(await op.metric('idempo_operator_leader')).toBe(1);
    expect(await op.metric('idempo_operator_reconciles_total', { result: 'reconciled' })).toBeGreaterThan(0);
    expect(await op.metric('idempo_operator_reconcile_duration_seconds_count')).toBeGreaterThan(0);
    expect(await op.metric('idempo_operator_admissions_total', { decision: 'injected' })).toBeGreaterThanOrEqual(2);
    expect(await op.metric('idempo_operator_webhook_latency_seconds_count')).toBeGreaterThan(0);
    const lease = await client.get<KubeObject & { spec: { holderIdentity?: string } }>(resourcePath('coordination.k8s.io', 'v1', 'leases', OPERATOR_NS, 'idempo-operator-leader'));
    expect(lease.spec.holderIdentity).toBe(op.identity());
  });

  it('stops on SIGTERM with exit 0 and hands the Lease back', async () => {
    expect(await op.stop()).toBe(0);
    const lease = await client.get<KubeObject & { spec: { holderIdentity?: string } }>(resourcePath('coordination.k8s.io', 'v1', 'leases', OPERATOR_NS, 'idempo-operator-leader'));
    expect(lease.spec.holderIdentity ?? '').toBe('');
  });
});

describe('idempo-operator command line', () => {
  it('exits 2 with one line naming the flag on bad input', async () => {
    const { join } = await import('node:path');
    const { repoRoot } = await import('./operator-harness.js');
    for (const [args, re] of [
      [['--bogus'], /bogus/],
      [['--webhook-listen', 'nope'], /--webhook-listen/],
    ] as const) {
      const r = await runProcess(join(repoRoot, 'bin/idempo-operator'), [...args]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(re);
    }
  });
});
