// A real Prometheus (Debian's /usr/bin/prometheus, installed by scripts/tools/install-debian.sh)
// for tests: a local process on 127.0.0.1 with a free port, its TSDB in a temp dir, a generated
// prometheus.yml that scrapes the given targets every second and loads the given rule files.
// stop() — or this process exiting — kills it and removes the dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { GiveUp, waitFor } from './poll.js';
import { collectLines, runProcess } from './clients/run.js';
import { onProcessEnd } from './process-end.js';

export const PROMETHEUS_BIN = process.env.IDEMPO_PROMETHEUS_BIN ?? '/usr/bin/prometheus';
export const PROMTOOL_BIN = process.env.IDEMPO_PROMTOOL_BIN ?? '/usr/bin/promtool';

export interface ScrapeTarget {
  /** Scrape job name (becomes the `job` label). */
  job: string;
  /** Base URL of a metrics listener, e.g. a sidecar's metricsUrl (http://127.0.0.1:port). */
  url: string;
  metricsPath?: string;
  /**
   * Static target labels. In a cluster the PodMonitor/ServiceMonitor adds `namespace`, `pod`,
   * `policy`…; set them here so the dashboard's and alerts' label filters are exercised.
   */
  labels?: Record<string, string>;
}

export interface StartPrometheusOptions {
  targets: ScrapeTarget[];
  /** Rule files (absolute or relative to the cwd), loaded with rule_files. */
  ruleFiles?: string[];
  /** Scrape and rule evaluation interval (default 1s, so tests wait seconds, not minutes). */
  interval?: string;
  /** How long start may take until /-/ready (default 30 s). */
  timeoutMs?: number;
  /** More scrape_configs entries, as YAML lines (each starting with `  - job_name:`), e.g. Kubernetes discovery. */
  extraScrapeConfigs?: string[];
}

/** The `data` of an instant query: vector, matrix, scalar or string. */
export type QueryData =
  | { resultType: 'vector'; result: Array<{ metric: Record<string, string>; value: [number, string] }> }
  | { resultType: 'matrix'; result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }> }
  | { resultType: 'scalar' | 'string'; result: [number, string] };

export interface ActiveTarget {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
}

export interface RuleGroup {
  name: string;
  file: string;
  rules: Array<{ name: string; type: 'alerting' | 'recording'; health: string; lastError?: string; state?: string; query: string }>;
}

export interface Prometheus {
  url: string;
  port: number;
  /** Temp dir with prometheus.yml and the TSDB (removed by stop()). */
  dir: string;
  proc: ChildProcess;
  /** Every log line so far. */
  logs(): string[];
  /** GET an /api/v1 path; returns `data`, throws on a non-success status (with Prometheus' error). */
  api<T = unknown>(pathAndQuery: string): Promise<T>;
  /** Instant query at now (or `time`, unix seconds); throws on a parse/evaluation error. */
  query(expr: string, time?: number): Promise<QueryData>;
  /** Instant query that must return a vector: each sample's labels and value as a number. */
  vector(expr: string): Promise<Array<{ metric: Record<string, string>; value: number }>>;
  targets(): Promise<ActiveTarget[]>;
  /** True once every configured target has been scraped successfully (health "up"). */
  targetsUp(): Promise<boolean>;
  rules(): Promise<RuleGroup[]>;
  /** Active (pending or firing) alerts. */
  alerts(): Promise<Array<{ labels: Record<string, string>; state: string; value: string }>>;
  /** SIGTERM, wait for exit (SIGKILL after 10 s), remove the dir. Safe to call twice. */
  stop(): Promise<void>;
}

// Synchronous cleanup for a test process that exits without calling stop() (process-end.ts).
const live = new Map<ChildProcess, string>();
function killAll(): void {
  for (const [p, dir] of live) {
    p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  live.clear();
}
onProcessEnd(killAll);

function yamlString(s: string): string {
  return JSON.stringify(s); // a JSON string is a valid YAML double-quoted scalar
}

function renderConfig(o: StartPrometheusOptions): string {
  const interval = o.interval ?? '1s';
  const lines = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    `  evaluation_interval: ${interval}`,
  ];
  if (o.ruleFiles?.length) {
    lines.push('rule_files:');
    for (const f of o.ruleFiles) lines.push(`  - ${yamlString(path.resolve(f))}`);
  }
  lines.push('scrape_configs:');
  for (const t of o.targets) {
    const u = new URL(t.url);
    lines.push(
      `  - job_name: ${yamlString(t.job)}`,
      `    scheme: ${u.protocol.replace(':', '')}`,
      `    metrics_path: ${yamlString(t.metricsPath ?? '/metrics')}`,
      '    static_configs:',
      `      - targets: [${yamlString(u.host)}]`,
    );
    if (t.labels && Object.keys(t.labels).length) {
      lines.push('        labels:');
      for (const [k, v] of Object.entries(t.labels)) lines.push(`          ${k}: ${yamlString(v)}`);
    }
  }
  lines.push(...(o.extraScrapeConfigs ?? []));
  return lines.join('\n') + '\n';
}

export async function startPrometheus(o: StartPrometheusOptions): Promise<Prometheus> {
  if (!existsSync(PROMETHEUS_BIN)) throw new Error(`${PROMETHEUS_BIN} missing: run scripts/tools/install-debian.sh`);
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'idempo-prom-'));
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(configFile, renderConfig(o));
  // Fail early with promtool's message rather than a process that exits at once.
  const check = await runProcess(PROMTOOL_BIN, ['check', 'config', configFile]);
  if (check.code !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`generated prometheus.yml is invalid:\n${check.stdout}${check.stderr}\n${renderConfig(o)}`);
  }
  const proc = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=info',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  live.set(proc, dir);
  const lines = collectLines(proc);
  const exited = once(proc, 'exit').then(() => undefined);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    live.delete(proc);
    rmSync(dir, { recursive: true, force: true });
  };

  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor('prometheus /-/ready', async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new GiveUp(`prometheus exited (${proc.exitCode ?? proc.signalCode}):\n${lines.slice(-30).join('\n')}`);
      return (await fetch(`${url}/-/ready`)).ok;
    }, o.timeoutMs ?? 30_000);
  } catch (e) {
    await stop();
    throw e instanceof GiveUp ? e : new Error(`${(e as Error).message}\n${lines.slice(-30).join('\n')}`);
  }

  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const r = await fetch(`${url}/api/v1/${pathAndQuery}`);
    // Errors come as JSON with a 4xx/5xx status: read the body either way.
    const text = await r.text();
    let body: { status?: string; data?: T; errorType?: string; error?: string };
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`prometheus ${pathAndQuery}: HTTP ${r.status}: ${text.slice(0, 500)}`);
    }
    if (body.status !== 'success') throw new Error(`prometheus ${pathAndQuery}: ${body.errorType ?? `HTTP ${r.status}`}: ${body.error ?? text.slice(0, 500)}`);
    return body.data as T;
  };
  const query = async (expr: string, time?: number): Promise<QueryData> => {
    const q = new URLSearchParams({ query: expr });
    if (time !== undefined) q.set('time', String(time));
    try {
      return await api<QueryData>(`query?${q}`);
    } catch (e) {
      throw new Error(`query ${JSON.stringify(expr)} failed: ${(e as Error).message}`);
    }
  };
  const targets = async (): Promise<ActiveTarget[]> => (await api<{ activeTargets: ActiveTarget[] }>('targets?state=active')).activeTargets;

  return {
    url,
    port,
    dir,
    proc,
    logs: () => lines,
    api,
    query,
    vector: async (expr) => {
      const d = await query(expr);
      if (d.resultType !== 'vector') throw new Error(`query ${JSON.stringify(expr)}: expected a vector, got ${d.resultType}`);
      return d.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
    },
    targets,
    targetsUp: async () => {
      const t = await targets();
      return t.length === o.targets.length && t.every((x) => x.health === 'up');
    },
    rules: async () => (await api<{ groups: RuleGroup[] }>('rules')).groups,
    alerts: async () => (await api<{ alerts: Array<{ labels: Record<string, string>; state: string; value: string }> }>('alerts')).alerts,
    stop,
  };
}
