// The operator run outside a cluster with something missing ends at once with exit 1 and
// exactly one line on stderr naming what is missing and how to fix it (operator/startup.ts):
// no kubeconfig, a kubeconfig file that is not there, an API server that does not answer, no
// CRD, no namespace, no permission. Real kube-apiserver; the built bin/idempo-operator.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { startKube, type KubeEnv } from '../support/kube.js';
import { repoRoot } from '../support/clients/java.js';

const BIN = path.join(repoRoot, 'bin/idempo-operator');

function operator(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['--metrics-listen', '127.0.0.1:0', '--webhook-listen', '127.0.0.1:0', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // A start-up error ends the process by itself; one that keeps running is the failure.
    const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? 137, stderr, stdout });
    });
  });
}

/** Exit 1, one stderr line, matching `re`. */
function expectOneLine(r: { code: number; stderr: string; stdout: string }, re: RegExp): void {
  const lines = r.stderr.trim().split('\n');
  expect({ code: r.code, lines: lines.length, stdout: r.stdout }, r.stderr).toEqual({ code: 1, lines: 1, stdout: '' });
  expect(lines[0]).toMatch(/^idempo-operator: /);
  expect(lines[0]).toMatch(re);
}

describe('operator start-up errors outside a cluster', () => {
  let kube: KubeEnv | undefined;
  let dir = '';
  // A HOME without .kube/config and no KUBECONFIG: only what each case passes counts.
  let base: NodeJS.ProcessEnv = {};

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'idempo-startup-'));
    base = { PATH: process.env.PATH ?? '', HOME: dir, IDEMPO_CACHE: process.env.IDEMPO_CACHE ?? path.join(homedir(), '.cache/idempo') };
    kube = await startKube();
  });
  afterAll(async () => {
    await kube?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('no kubeconfig anywhere', async () => {
    expectOneLine(await operator([], base), /no kubeconfig: .*pass --kubeconfig FILE/);
  });

  it('a kubeconfig that does not exist', async () => {
    const missing = path.join(dir, 'nope.yaml');
    expectOneLine(await operator(['--kubeconfig', missing], base), new RegExp(`kubeconfig ${missing} \\(--kubeconfig\\) does not exist`));
    expectOneLine(await operator([], { ...base, KUBECONFIG: missing }), /\(\$KUBECONFIG\) does not exist/);
  });

  it('an API server that does not answer', async () => {
    const port = await freePort();
    const kc = path.join(dir, 'dead.yaml');
    writeFileSync(kc, `apiVersion: v1\nkind: Config\nclusters: [{ name: c, cluster: { server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true } }]\nusers: [{ name: u, user: { token: x } }]\ncontexts: [{ name: c, context: { cluster: c, user: u } }]\ncurrent-context: c\n`);
    expectOneLine(await operator(['--kubeconfig', kc], base), new RegExp(`cannot reach the API server at https://127.0.0.1:${port} \\(ECONNREFUSED\\)`));
  });

  it('no CRD, then no namespace, then no permission', async () => {
    const k = kube!;
    expectOneLine(await operator(['--kubeconfig', k.kubeconfigPath, '--namespace', 'idempo-startup'], base), /CRD is not installed: kubectl apply -f crds\//);
    const crds = await k.kubectl(['apply', '-f', path.join(repoRoot, 'crds')]);
    expect(crds.code, crds.stderr).toBe(0);
    await k.waitForCondition(['crd/idempotentproducerpolicies.idempo.dev'], 'Established');
    expectOneLine(await operator(['--kubeconfig', k.kubeconfigPath, '--namespace', 'idempo-startup'], base), /namespace idempo-startup does not exist: kubectl create namespace idempo-startup/);

    // A service account nobody granted anything: every check fails, all named in one line.
    for (const args of [['create', 'namespace', 'idempo-startup'], ['create', 'serviceaccount', 'nobody', '-n', 'idempo-startup']]) {
      const r = await k.kubectl(args);
      expect(r.code, r.stderr).toBe(0);
    }
    const tok = await k.kubectl(['create', 'token', 'nobody', '-n', 'idempo-startup', '--duration', '1h']);
    expect(tok.code, tok.stderr).toBe(0);
    const kc = path.join(dir, 'nobody.yaml');
    writeFileSync(kc, `apiVersion: v1\nkind: Config\nclusters: [{ name: c, cluster: { server: "${k.server}", insecure-skip-tls-verify: true } }]\nusers: [{ name: u, user: { token: ${tok.stdout.trim()} } }]\ncontexts: [{ name: c, context: { cluster: c, user: u } }]\ncurrent-context: c\n`);
    const r = await operator(['--kubeconfig', kc, '--namespace', 'idempo-startup', '--leader-elect'], base);
    expectOneLine(r, /permission denied: cannot list idempotentproducerpolicies\.idempo\.dev, .*update leases\.coordination\.k8s\.io\/idempo-operator-leader in namespace idempo-startup.*grant the chart's RBAC/);
  });
});
