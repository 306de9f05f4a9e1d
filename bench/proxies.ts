// The proxies the benchmark measures, each in its own process so /proc gives its CPU and
// memory alone: the sidecar (bin/idempo-sidecar, as users run it from a checkout) and the
// plain Node byte relay (bench/relay.ts). Ready time = spawn until the proxy can serve:
// /readyz answers 200 for the sidecar (listeners bound, upstream metadata fetched), the
// "ready" line for the relay.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { freePorts } from '../test/support/ports.js';
import { repoRoot } from '../test/support/clients/java.js';
import { collectLines, trackChild } from '../test/support/clients/run.js';
import { SIDECAR_BIN } from '../test/support/sidecar.js';

export interface ProxyProcess {
  pid: number;
  /** host:port clients bootstrap from. */
  bootstrap: string;
  readyMs: number;
  logs: string[];
  stop(): Promise<void>;
}

function stopper(proc: ChildProcess): () => Promise<void> {
  const exited = proc.exitCode !== null ? Promise.resolve() : once(proc, 'exit').then(() => undefined);
  return async () => {
    if (proc.exitCode === null) proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(t);
  };
}

export interface SidecarRunOptions {
  upstream: string;
  mode: 'observe' | 'enforce' | 'upgrade';
  /** More Node/V8 flags (bin/idempo-sidecar passes IDEMPO_NODE_FLAGS on), e.g. --cpu-prof --trace-gc. */
  nodeFlags?: string;
  /** Another checkout (built) whose bin/idempo-sidecar runs instead of this one's: a before/after in one run. */
  checkout?: string;
}

export async function startSidecarProcess(o: SidecarRunOptions): Promise<ProxyProcess> {
  const [listenPort, metricsPort] = await freePorts(2); // distinct (ports.ts)
  const args = ['--upstream', o.upstream, '--listen', `127.0.0.1:${listenPort}`, '--metrics-listen', `127.0.0.1:${metricsPort}`, '--mode', o.mode, '--log-level', 'warn'];
  const env = { ...process.env, IDEMPO_NODE_FLAGS: o.nodeFlags ?? '' };
  const t0 = performance.now();
  const bin = o.checkout ? path.join(o.checkout, 'bin/idempo-sidecar') : SIDECAR_BIN;
  const proc = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(proc);
  const logs = collectLines(proc);
  const stop = stopper(proc);
  // Polled every 5 ms, so the ready time is good to about that.
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`sidecar exited with ${proc.exitCode}:\n${logs.join('\n')}`);
    try {
      const r = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
      await r.arrayBuffer();
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (performance.now() - t0 > 30_000) {
      await stop();
      throw new Error(`sidecar not ready within 30 s:\n${logs.slice(-20).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return { pid: proc.pid!, bootstrap: `127.0.0.1:${listenPort}`, readyMs: performance.now() - t0, logs, stop };
}

/** The byte relay listening on `listenPort` (the port the broker advertises) towards `target`. */
export async function startRelayProcess(listenPort: number, target: string): Promise<ProxyProcess> {
  const t0 = performance.now();
  const proc = spawn(process.execPath, [path.join(repoRoot, 'dist/bench/relay.js'), String(listenPort), target], { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(proc);
  const logs = collectLines(proc);
  const stop = stopper(proc);
  const deadline = Date.now() + 30_000;
  while (!logs.includes('ready')) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`relay did not start:\n${logs.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  return { pid: proc.pid!, bootstrap: `127.0.0.1:${listenPort}`, readyMs: performance.now() - t0, logs, stop };
}
