// Two operator processes share one Lease: exactly one reconciles; kill -9 the leader and the
// other takes over within the lease duration and reconciles the next policy change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient, resourcePath, type KubeObject } from '../../operator/kube/client.js';
import { startKube, type KubeEnv } from '../support/kube.js';
import { OPERATOR_NS, ensureNamespace, getOrUndefined, installCrds, policyPath, readyOf, startOperator, type OperatorProcess, type Policy } from './operator-harness.js';
import { waitFor } from '../support/poll.js';

type Lease = KubeObject & { spec: { holderIdentity?: string; leaseTransitions?: number } };

let kube: KubeEnv;
let client: KubeClient;
const ops: OperatorProcess[] = [];
const NS = 'election';
const LEASE_ARGS = ['--leader-elect', '--lease-duration', '3s', '--lease-renew', '500ms'];

const lease = () => getOrUndefined<Lease>(client, resourcePath('coordination.k8s.io', 'v1', 'leases', OPERATOR_NS, 'idempo-operator-leader'));

beforeAll(async () => {
  kube = await startKube();
  client = new KubeClient(kube.kubeConfig);
  await installCrds(kube);
  await ensureNamespace(client, NS, { 'idempo.dev/injection': 'enabled' });
  // Each process registers its own webhook configuration so they do not overwrite each other's URL.
  for (const name of ['op-a', 'op-b']) ops.push(await startOperator(kube, { name, extraArgs: [...LEASE_ARGS, '--webhook-config-name', `idempo-${name}`] }));
  await Promise.all(ops.map((o) => o.waitReady()));
});

afterAll(async () => {
  await Promise.all(ops.map((o) => o.stop()));
  await kube?.stop();
});

describe('leader election', () => {
  let leader: OperatorProcess;
  let standby: OperatorProcess;

  it('elects exactly one leader, and only it reconciles', async () => {
    const l = await waitFor('a lease holder', async () => (await lease())?.spec.holderIdentity || undefined);
    leader = ops.find((o) => o.identity() === l)!;
    standby = ops.find((o) => o !== leader)!;
    expect(leader).toBeDefined();
    await waitFor('leader gauge', async () => (await leader.metric('idempo_operator_leader')) === 1);
    expect(await standby.metric('idempo_operator_leader')).toBe(0);

    await client.create(policyPath(NS), { apiVersion: 'idempo.dev/v1alpha1', kind: 'IdempotentProducerPolicy', metadata: { name: 'p', namespace: NS }, spec: { selector: {}, kafka: { bootstrapServers: ['k:9092'] } } });
    await waitFor('policy Ready', async () => readyOf(await client.get<Policy>(policyPath(NS, 'p')))?.status === 'True');
    expect(await leader.metric('idempo_operator_reconciles_total')).toBeGreaterThan(0);
    expect(await standby.metric('idempo_operator_reconciles_total')).toBe(0);
    expect(standby.logs()).not.toContain('policy controller started');
  });

  it('fails over when the leader is killed with SIGKILL', async () => {
    const before = (await lease())!.spec.leaseTransitions ?? 0;
    const t0 = Date.now();
    await leader.kill9();
    await waitFor('standby takes the lease', async () => (await lease())?.spec.holderIdentity === standby.identity(), 20_000);
    const takeoverMs = Date.now() - t0;
    console.log('leader failover after SIGKILL (ms)', takeoverMs);
    expect((await lease())!.spec.leaseTransitions).toBe(before + 1);
    await waitFor('standby leader gauge', async () => (await standby.metric('idempo_operator_leader')) === 1);

    await client.mergePatch(policyPath(NS, 'p'), { spec: { mode: 'observe' } });
    const p = await waitFor('new leader reconciles the change', async () => {
      const p = await getOrUndefined<Policy>(client, policyPath(NS, 'p'));
      return p?.status?.observedGeneration === 2 ? p : undefined;
    });
    expect(readyOf(p)?.status).toBe('True');
    const cm = await client.get<KubeObject & { data: Record<string, string> }>(resourcePath('', 'v1', 'configmaps', NS, 'idempo-p'));
    expect(JSON.parse(cm.data['policy.json']).mode).toBe('observe');
    expect(await standby.metric('idempo_operator_reconciles_total')).toBeGreaterThan(0);
  });

  it('a paused leader loses the Lease, and stands down when it wakes up', async () => {
    const third = await startOperator(kube, { name: 'op-c', extraArgs: [...LEASE_ARGS, '--webhook-config-name', 'idempo-op-c'] });
    ops.push(third);
    await third.waitReady();
    const paused = standby; // the leader since the failover
    paused.proc.kill('SIGSTOP');
    try {
      await waitFor('the third takes the lease', async () => (await lease())?.spec.holderIdentity === third.identity(), 20_000);
      await client.mergePatch(policyPath(NS, 'p'), { spec: { mode: 'enforce' } });
      await waitFor('the third reconciles', async () => (await getOrUndefined<Policy>(client, policyPath(NS, 'p')))?.status?.observedGeneration === 3);
    } finally {
      paused.proc.kill('SIGCONT');
    }
    await waitFor('the woken leader stands down', async () => (await paused.metric('idempo_operator_leader')) === 0, 10_000);
    expect(paused.logs()).toContain('stopped leading');
    expect((await lease())!.spec.holderIdentity).toBe(third.identity());
    expect(await third.metric('idempo_operator_leader')).toBe(1);
  });
});
