// A real single-node cluster for e2e tests: scripts/cluster/up.sh (the same script as `make
// cluster-up`) in a temp run dir, with this process as the owner (a watchdog tears the node
// down if the test runner dies), the project's images built first and imported.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { buildImage } from '../../scripts/images/build.js';
import { IMAGES, type ImageKey } from '../../scripts/images/spec.js';
import { repoRoot } from '../support/clients/java.js';
import { waitFor } from '../support/poll.js';
import { runProcess } from '../support/clients/run.js';

export interface Cmd {
  code: number;
  stdout: string;
  stderr: string;
}

export interface NodeCluster {
  kubeconfig: string;
  runDir: string;
  /** The node's address on the pod bridge: pods reach the host (brokers, relays) here. */
  nodeIp: string;
  kubectlPath: string;
  /** Seconds from start to Node Ready, as up.sh measured, and its progress lines. */
  upSeconds: number;
  upLog: string;
  kubectl(args: string[], input?: string): Promise<Cmd>;
  /** kubectl that throws on a non-zero exit; returns stdout. */
  k(args: string[], input?: string): Promise<string>;
  /** kubectl get -o json, parsed. */
  json<T = any>(args: string[]): Promise<T>;
  /** containerd's ctr on this node (namespace k8s.io). */
  ctr(args: string[]): Promise<Cmd>;
  stop(): Promise<void>;
}

export const CACHE = process.env.IDEMPO_CACHE ?? path.join(homedir(), '.cache/idempo');

export async function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Cmd> {
  // Bringing the node up or down takes minutes on a loaded machine; the test's own timeouts bound it.
  const r = await runProcess(cmd, args, { env: opts.env, input: opts.input ?? '', timeoutMs: 900_000 });
  return { code: r.code ?? 128, stdout: r.stdout, stderr: r.stderr };
}

/** Builds dist/images/*.oci.tar like `make images` (skipped per image when nothing changed). */
export function buildImages(): Record<ImageKey, { archive: string; bytes: number }> {
  const out = {} as Record<ImageKey, { archive: string; bytes: number }>;
  for (const key of Object.keys(IMAGES) as ImageKey[]) out[key] = buildImage(key, path.join(repoRoot, 'dist/images'));
  return out;
}

/** True while scripts/cluster/up.sh's owner file names a run dir whose apiserver still runs. */
function otherNodeUp(): boolean {
  try {
    const dir = readFileSync('/run/idempo-cluster.owner', 'utf8').trim();
    const pid = Number(readFileSync(path.join(dir, 'apiserver.pid'), 'utf8'));
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function startNodeCluster(): Promise<NodeCluster> {
  if (process.getuid?.() !== 0) throw new Error('the node e2e test needs root (containerd, kubelet, iptables); CI runs as root');
  // One node per machine (bridge, cgroups, iptables are machine-wide): when another run holds
  // it (someone's make cluster-up, another test file), wait for it to go rather than fail.
  await waitFor('the other node on this machine to stop (scripts/cluster/down.sh)', () => !otherNodeUp(), 15 * 60_000, 2000);
  const runDir = mkdtempSync(path.join(tmpdir(), 'idempo-node-'));
  const env = { ...process.env, IDEMPO_CLUSTER_RUN_DIR: runDir, IDEMPO_CLUSTER_OWNER_PID: String(process.pid), IDEMPO_IMAGES_DIR: path.join(repoRoot, 'dist/images') };
  const up = await run(path.join(repoRoot, 'scripts/cluster/up.sh'), [], { env });
  const last = up.stdout.trim().split('\n').pop() ?? '';
  if (up.code !== 0 || !last.startsWith('KUBECONFIG=')) throw new Error(`scripts/cluster/up.sh failed (${up.code}):\n${up.stderr.slice(-6000)}`);
  const kubeconfig = last.slice('KUBECONFIG='.length);
  const vars = Object.fromEntries(readFileSync(path.join(runDir, 'env'), 'utf8').trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
  const kubectlPath = path.join(vars.KBIN, 'kubectl');
  const upSeconds = Number(/Ready in ([\d.]+)s/.exec(up.stderr)?.[1] ?? NaN);
  const kubectl = (args: string[], input?: string) => run(kubectlPath, ['--kubeconfig', kubeconfig, ...args], { input });
  const k = async (args: string[], input?: string) => {
    const r = await kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  let stopped = false;
  return {
    kubeconfig,
    runDir,
    nodeIp: vars.NODE_IP,
    kubectlPath,
    upSeconds,
    upLog: up.stderr.split('\n').filter((l) => l.startsWith('cluster/')).join('\n'),
    kubectl,
    k,
    json: async (args) => JSON.parse(await k(['get', ...args, '-o', 'json'])),
    ctr: (args) => run(path.join(vars.CBIN, 'ctr'), ['--address', path.join(runDir, 'containerd/containerd.sock'), '-n', 'k8s.io', ...args]),
    async stop() {
      if (stopped) return;
      stopped = true;
      const r = await run(path.join(repoRoot, 'scripts/cluster/down.sh'), [], { env });
      if (r.code !== 0) throw new Error(`scripts/cluster/down.sh failed: ${r.stderr}`);
    },
  };
}

/** Waits until a Deployment has `replicas` ready and up to date (polls: right after an apply there is no status yet). */
export async function waitDeploymentReady(c: NodeCluster, ns: string, name: string, replicas: number, timeoutMs = 180_000): Promise<void> {
  await waitFor(`deployment ${ns}/${name} ${replicas}/${replicas} ready`, async () => {
    const d = await c.json(['deployment', '-n', ns, name]);
    const s = d.status ?? {};
    return s.observedGeneration >= d.metadata.generation && s.readyReplicas === replicas && s.updatedReplicas === replicas && (s.replicas ?? 0) === replicas;
  }, timeoutMs, 500);
}
