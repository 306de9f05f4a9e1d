// Shared by the operator e2e tests: run the built idempo-operator as a child process against
// a test kube-apiserver, wait on its probes and logs, and reach the API with our own client.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeClient, isNotFound, resourcePath, type KubeObject } from '../../operator/kube/client.js';
import type { KubeEnv } from '../support/kube.js';
import { freePorts } from '../support/ports.js';
import { waitFor } from '../support/poll.js';
import { sumMetric } from '../support/prom-text.js';

export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
export const OPERATOR_NS = 'idempo-system';

export type OperatorProcess = {
  proc: ChildProcess;
  webhookPort: number;
  metricsPort: number;
  identity: () => string | undefined;
  logs: () => string;
  metrics(): Promise<string>;
  /** Value of an unlabelled or labelled sample, e.g. metric('idempo_operator_leader'). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  waitReady(timeoutMs?: number): Promise<number>;
  /** SIGTERM and wait; returns the exit code. */
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
};

export function ensureBuilt(): void {
  if (!existsSync(join(repoRoot, 'dist/operator/main.js'))) throw new Error('dist/operator/main.js is missing: run `make build` first');
}

export async function startOperator(
  kube: Pick<KubeEnv, 'kubeconfigPath'>,
  opts: { extraArgs?: string[]; name?: string; /** In-cluster style: no own webhook registration. */ noWebhookUrl?: boolean } = {},
): Promise<OperatorProcess> {
  ensureBuilt();
  const [webhookPort, metricsPort] = await freePorts(2);
  const args = [
    '--kubeconfig', kube.kubeconfigPath,
    '--namespace', OPERATOR_NS,
    '--metrics-listen', `127.0.0.1:${metricsPort}`,
    '--webhook-listen', `127.0.0.1:${webhookPort}`,
    ...(opts.noWebhookUrl ? [] : ['--webhook-url', `https://127.0.0.1:${webhookPort}/mutate-pods`]),
    ...(opts.extraArgs ?? []),
  ];
  const proc = spawn(join(repoRoot, 'bin/idempo-operator'), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, POD_NAME: opts.name ?? 'op' } });
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  // A test that fails half-way must not leave an operator behind.
  const onExit = () => proc.kill('SIGKILL');
  process.once('exit', onExit);
  const base = `http://127.0.0.1:${metricsPort}`;
  const metrics = async () => (await fetch(`${base}/metrics`)).text();
  return {
    proc,
    webhookPort,
    metricsPort,
    logs: () => out,
    identity: () => /"identity":"([^"]+)"/.exec(out)?.[1],
    metrics,
    async metric(name, labels = {}) {
      return sumMetric(await metrics(), name, labels);
    },
    async waitReady(timeoutMs = 60_000) {
      const t0 = Date.now();
      await waitFor(
        'operator /readyz',
        async () => {
          if (proc.exitCode !== null) throw new Error(`operator exited ${proc.exitCode}:\n${out}`);
          return (await fetch(`${base}/readyz`)).ok;
        },
        timeoutMs,
        50,
      );
      return Date.now() - t0;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(t);
      process.removeListener('exit', onExit);
      return code;
    },
    async kill9() {
      proc.kill('SIGKILL');
      await exited;
      process.removeListener('exit', onExit);
    },
  };
}

/** Applies the CRDs from crds/ and creates the operator's namespace; waits until the CRD is Established. */
export async function installCrds(kube: KubeEnv): Promise<void> {
  const r = await kube.kubectl(['apply', '-f', join(repoRoot, 'crds')]);
  if (r.code !== 0) throw new Error(`kubectl apply crds: ${r.stderr}`);
  await kube.waitForCondition(['crd/idempotentproducerpolicies.idempo.dev'], 'Established');
  await ensureNamespace(new KubeClient(kube.kubeConfig), OPERATOR_NS);
}

export async function ensureNamespace(client: KubeClient, name: string, labels: Record<string, string> = {}): Promise<void> {
  try {
    await client.create(resourcePath('', 'v1', 'namespaces'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
  } catch (e) {
    if (!(e as { code?: number }).code || (e as { code?: number }).code !== 409) throw e;
  }
}

export const policyPath = (ns: string, name?: string) => resourcePath('idempo.dev', 'v1alpha1', 'idempotentproducerpolicies', ns, name);

export type Policy = KubeObject & {
  spec: Record<string, unknown>;
  status?: { observedGeneration?: number; injectedPods?: number; configMapName?: string; conditions?: Array<{ type: string; status: string; reason: string; message: string; lastTransitionTime: string }> };
};

export async function getOrUndefined<T>(client: KubeClient, path: string): Promise<T | undefined> {
  try {
    return await client.get<T>(path);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

export const readyOf = (p: Policy | undefined) => p?.status?.conditions?.find((c) => c.type === 'Ready');
