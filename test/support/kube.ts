// A real Kubernetes control plane (etcd + kube-apiserver, no nodes) for end-to-end tests,
// in the spirit of controller-runtime's envtest. The shell scripts in scripts/kube/ do
// the work (one implementation of the flags and PKI for `make kube-up` and for tests);
// this module adds per-test temp dirs, typed access and cleanup.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { waitFor } from './poll.js';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const scripts = join(repoRoot, 'scripts/kube');

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubeEnv {
  /** kubeconfig file with the admin (system:masters) client certificate. */
  kubeconfigPath: string;
  /** https://127.0.0.1:PORT */
  server: string;
  /** Loaded from kubeconfigPath; `kubeConfig.makeApiClient(CoreV1Api)` etc. */
  kubeConfig: KubeConfig;
  /** The kubectl built alongside the apiserver (same version). */
  kubectlPath: string;
  /** Certs, etcd data and the etcd/apiserver logs; removed by stop(). */
  runDir: string;
  /** Runs kubectl against this control plane; never throws on a non-zero exit. */
  kubectl(args: string[], input?: string): Promise<KubectlResult>;
  /**
   * Polls until the object (kubectl's words: `['crd/NAME']`, `['-n', NS, 'ipp/NAME']`) has
   * condition `type` with status True. Not `kubectl wait`: it fails at once with "status.conditions
   * accessor error" when the object has no conditions yet, e.g. a CRD just applied.
   */
  waitForCondition(object: string[], type: string, timeoutMs?: number): Promise<void>;
  /** Stops apiserver and etcd and removes runDir. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartKubeOptions {
  /** Seconds to wait for /readyz (default 120). */
  readyTimeoutSeconds?: number;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, input?: string): Promise<KubectlResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    // kubectl may exit before reading stdin (e.g. a bad flag); that EPIPE is not our error.
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

/**
 * Builds kube-apiserver, kubectl and etcd into the cache if missing (slow the first time
 * on a machine: see scripts/kube/build.sh) and returns their directory.
 */
export async function ensureKubeBinaries(): Promise<string> {
  const r = await run(join(scripts, 'build.sh'), []);
  if (r.code !== 0) throw new Error(`scripts/kube/build.sh failed (${r.code}):\n${r.stderr.slice(-4000)}`);
  const lines = r.stdout.trim().split('\n');
  return lines[lines.length - 1];
}

/** Starts etcd + kube-apiserver on free loopback ports and waits until /readyz is ok. */
export async function startKube(opts: StartKubeOptions = {}): Promise<KubeEnv> {
  const binDir = await ensureKubeBinaries();
  const runDir = mkdtempSync(join(tmpdir(), 'idempo-kube-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    IDEMPO_KUBE_RUN_DIR: runDir,
    // up.sh's watchdog stops everything if this process dies without running 'exit' hooks.
    IDEMPO_KUBE_OWNER_PID: String(process.pid),
    IDEMPO_KUBE_TIMEOUT: String(opts.readyTimeoutSeconds ?? 120),
  };

  let stopped = false;
  const stopSync = (): void => {
    if (stopped) return;
    stopped = true;
    try {
      execFileSync(join(scripts, 'down.sh'), [], { env, stdio: 'ignore' });
    } finally {
      rmSync(runDir, { recursive: true, force: true });
    }
  };
  // 'exit' handlers must be synchronous, hence execFileSync in stopSync.
  process.once('exit', stopSync);

  const up = await run(join(scripts, 'up.sh'), [], env).catch((e: unknown) => {
    process.removeListener('exit', stopSync);
    stopSync();
    throw e;
  });
  const last = up.stdout.trim().split('\n').pop() ?? '';
  if (up.code !== 0 || !last.startsWith('KUBECONFIG=')) {
    process.removeListener('exit', stopSync);
    stopSync();
    throw new Error(`scripts/kube/up.sh failed (${up.code}):\n${up.stderr.slice(-4000)}`);
  }
  const kubeconfigPath = last.slice('KUBECONFIG='.length);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfigPath);
  const server = kubeConfig.getCurrentCluster()?.server ?? '';
  const kubectlPath = join(binDir, 'kubectl');

  const kubectl = (args: string[], input?: string): Promise<KubectlResult> =>
    run(kubectlPath, ['--kubeconfig', kubeconfigPath, ...args], { ...process.env, KUBECONFIG: kubeconfigPath }, input);
  const waitForCondition = async (object: string[], type: string, timeoutMs = 60_000): Promise<void> => {
    await waitFor(`${object.join(' ')} condition ${type}=True`, async () => {
      const r = await kubectl(['get', ...object, '-o', 'json']);
      if (r.code !== 0) throw new Error(r.stderr.trim());
      const conditions = (JSON.parse(r.stdout) as { status?: { conditions?: Array<{ type: string; status: string }> } }).status?.conditions ?? [];
      return conditions.some((c) => c.type === type && c.status === 'True');
    }, timeoutMs, 200);
  };

  return {
    kubeconfigPath,
    server,
    kubeConfig,
    kubectlPath,
    runDir,
    kubectl,
    waitForCondition,
    stop: async () => {
      if (stopped) return;
      process.removeListener('exit', stopSync);
      stopped = true;
      try {
        await new Promise<void>((res) => execFile(join(scripts, 'down.sh'), [], { env }, () => res()));
      } finally {
        rmSync(runDir, { recursive: true, force: true });
      }
    },
  };
}
