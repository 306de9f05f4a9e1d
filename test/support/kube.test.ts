// Checks the test control plane itself: it serves the API, client-node can talk to it
// with the admin certificate, and RBAC is really enforced (the webhook and operator
// tests depend on that being true, not on an AlwaysAllow apiserver).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api } from '@kubernetes/client-node';
import { startKube, type KubeEnv } from './kube.js';
import { waitFor } from './poll.js';

// Exists and is not a zombie (some container PID 1s never reap orphans).
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

describe('test control plane (etcd + kube-apiserver)', () => {
  let kube: KubeEnv;

  beforeAll(async () => {
    kube = await startKube();
  });
  afterAll(async () => {
    await kube?.stop();
  });

  it('reports the pinned server version', async () => {
    const r = await kube.kubectl(['version', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as { serverVersion: { major: string; minor: string; gitVersion: string } };
    expect(v.serverVersion.major).toBe('1');
    expect(v.serverVersion.minor).toBe('35');
  });

  it('creates a namespace with kubectl and a ConfigMap with client-node', async () => {
    const ns = 'kube-support-test';
    const created = await kube.kubectl(['create', 'namespace', ns]);
    expect(created.code, created.stderr).toBe(0);

    const core = kube.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'hello' }, data: { greeting: 'hi' } },
    });
    const cm = await core.readNamespacedConfigMap({ name: 'hello', namespace: ns });
    expect(cm.data).toEqual({ greeting: 'hi' });

    // kubectl reading what client-node wrote: both go through the same apiserver/etcd.
    const got = await kube.kubectl(['-n', ns, 'get', 'configmap', 'hello', '-o', 'jsonpath={.data.greeting}']);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toBe('hi');
  });

  it('enforces RBAC for identities outside system:masters', async () => {
    const denied = await kube.kubectl(['get', 'secrets', '-A', '--as=someone']);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/forbidden/i);

    const can = await kube.kubectl(['auth', 'can-i', 'list', 'secrets', '--as=someone']);
    expect(can.stdout.trim()).toBe('no');

    // Granting a Role makes the same request pass, so the denial above was RBAC's doing.
    const ns = 'kube-support-rbac';
    expect((await kube.kubectl(['create', 'namespace', ns])).code).toBe(0);
    const role = await kube.kubectl(['-n', ns, 'create', 'role', 'secret-reader', '--verb=list', '--resource=secrets']);
    expect(role.code, role.stderr).toBe(0);
    const rb = await kube.kubectl(['-n', ns, 'create', 'rolebinding', 'someone-reads', '--role=secret-reader', '--user=someone']);
    expect(rb.code, rb.stderr).toBe(0);
    // The RBAC authorizer reads bindings from an informer cache, so the grant lands
    // shortly after the create returns: poll for it.
    const allowed = await waitFor('the rolebinding to take effect', async () => {
      const r = await kube.kubectl(['-n', ns, 'get', 'secrets', '--as=someone']);
      return r.code === 0 ? r : undefined;
    });
    expect(allowed.code).toBe(0);
  });

  it('stop() ends both processes and removes the run dir', async () => {
    const runDir = kube.runDir;
    const pids = ['etcd.pid', 'apiserver.pid'].map((f) => Number(readFileSync(join(runDir, f), 'utf8')));
    for (const pid of pids) expect(isAlive(pid)).toBe(true);
    await kube.stop();
    expect(existsSync(runDir)).toBe(false);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    await kube.stop(); // idempotent
  });
});
