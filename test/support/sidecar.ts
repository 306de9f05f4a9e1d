// Starts the built sidecar (bin/idempo-sidecar, as users run it) on free ports and stops it.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { freePorts } from './ports.js';
import { sumMetric } from './prom-text.js';
import { GiveUp, waitFor } from './poll.js';
import { repoRoot } from './clients/java.js';
import { collectLines } from './clients/run.js';
import { SIDECAR_NODE_FLAGS } from '../../scripts/images/spec.js';

export const SIDECAR_BIN = path.join(repoRoot, 'bin/idempo-sidecar');

export interface Sidecar {
  /** host:port clients bootstrap from. */
  bootstrap: string;
  listenPort: number;
  metricsUrl: string;
  proc: ChildProcess;
  /** Every log line (JSON) so far. */
  logs(): string[];
  metrics(): Promise<string>;
  /** Sum of a metric's samples whose labels include `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface SidecarOptions {
  upstream: string;
  mode?: 'observe' | 'enforce' | 'upgrade';
  config?: string;
  extraArgs?: string[];
  env?: Record<string, string>;
  logLevel?: string;
  /** Wait for /readyz (default) or only for /healthz (for sidecars that must not become ready). */
  waitReady?: boolean;
  /** Bind these instead of free ports (a restart that must keep its addresses). */
  listenPort?: number;
  metricsPort?: number;
  /** Run dist/sidecar/main.cjs with this Node directly instead of bin/idempo-sidecar (start-up figures without the wrapper). */
  direct?: boolean;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  // Both at once: two freePort() calls in a row once returned the same port, and the sidecar's
  // metrics listener then failed with EADDRINUSE on its own bootstrap port (CI r8b).
  const [freeListen, freeMetrics] = await freePorts(2);
  const listenPort = opts.listenPort ?? freeListen;
  const metricsPort = opts.metricsPort ?? freeMetrics;
  const args = ['--upstream', opts.upstream, '--listen', `127.0.0.1:${listenPort}`, '--metrics-listen', `127.0.0.1:${metricsPort}`, '--log-level', opts.logLevel ?? 'info'];
  if (opts.mode) args.push('--mode', opts.mode);
  if (opts.config) args.push('--config', opts.config);
  args.push(...(opts.extraArgs ?? []));
  const [cmd, pre] = opts.direct ? [process.execPath, [...SIDECAR_NODE_FLAGS, path.join(repoRoot, 'dist/sidecar/main.cjs')]] : [SIDECAR_BIN, []];
  const proc = spawn(cmd, [...pre, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  const lines = collectLines(proc);
  const exited = once(proc, 'exit').then(([code]) => {
    running.delete(proc);
    return code as number | null;
  });
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  const probe = opts.waitReady === false ? 'healthz' : 'readyz';
  try {
    await waitFor(`sidecar /${probe}`, async () => {
      if (proc.exitCode !== null) throw new GiveUp(`sidecar exited with ${proc.exitCode}:\n${lines.join('\n')}`);
      return (await fetch(`${metricsUrl}/${probe}`)).ok;
    });
  } catch (e) {
    proc.kill('SIGKILL');
    throw e instanceof GiveUp ? e : new Error(`${(e as Error).message}\n${lines.slice(-20).join('\n')}`);
  }
  const metrics = async (): Promise<string> => (await fetch(`${metricsUrl}/metrics`)).text();
  return {
    bootstrap: `127.0.0.1:${listenPort}`,
    listenPort,
    metricsUrl,
    proc,
    logs: () => lines,
    metrics,
    metric: async (name, labels = {}) => sumMetric(await metrics(), name, labels),
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null) proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

