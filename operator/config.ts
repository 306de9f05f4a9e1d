// The operator's command line. Every flag also reads IDEMPO_OPERATOR_<FLAG> (dashes become
// underscores); flags win. A bad value is reported as one line naming the flag.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseDuration } from '../api/duration.js';

export type OperatorConfig = {
  kubeconfig?: string;
  namespace: string;
  metricsListen: { host: string; port: number };
  webhookListen: { host: string; port: number };
  /** Outside a cluster: register our own MutatingWebhookConfiguration pointing here. */
  webhookUrl?: URL;
  webhookConfigName: string;
  /** In-cluster: the Service in front of the webhook (serving certificate DNS names). */
  webhookService: string;
  /** Label selector of MutatingWebhookConfigurations whose caBundle we keep current (chart mode, self-managed certs). */
  caBundleSelector: string;
  /** Serve tls.crt/tls.key from this directory (cert-manager) instead of managing our own Secret. */
  certDir?: string;
  certSecret: string;
  leaderElect: boolean;
  leaseName: string;
  leaseDurationMs: number;
  leaseRenewMs: number;
  resyncMs: number;
  nativeSidecars: 'auto' | 'true' | 'false';
  logLevel: string;
};

export const USAGE = `usage: idempo-operator [--kubeconfig FILE] [--namespace NS] [--metrics-listen HOST:PORT]
                      [--webhook-listen HOST:PORT] [--webhook-url URL] [--leader-elect]
                      [--lease-duration 15s] [--lease-renew 2s] [--lease-name NAME]
                      [--cert-dir DIR | --cert-secret NAME] [--webhook-service NAME]
                      [--webhook-config-name NAME] [--ca-bundle-selector LABELS]
                      [--resync 5m] [--native-sidecars auto|true|false] [--log-level info]
Every flag also reads IDEMPO_OPERATOR_<FLAG> (e.g. IDEMPO_OPERATOR_WEBHOOK_URL); flags win.`;

export class ConfigError extends Error {}

const OPTIONS = {
  kubeconfig: { type: 'string' },
  namespace: { type: 'string' },
  'metrics-listen': { type: 'string' },
  'webhook-listen': { type: 'string' },
  'webhook-url': { type: 'string' },
  'webhook-config-name': { type: 'string' },
  'webhook-service': { type: 'string' },
  'ca-bundle-selector': { type: 'string' },
  'cert-dir': { type: 'string' },
  'cert-secret': { type: 'string' },
  'leader-elect': { type: 'boolean' },
  'lease-name': { type: 'string' },
  'lease-duration': { type: 'string' },
  'lease-renew': { type: 'string' },
  resync: { type: 'string' },
  'native-sidecars': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** Parses argv (without node and script); throws ConfigError with one line on bad input. Returns 'help' for -h. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8')): OperatorConfig | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (e) {
    throw new ConfigError((e as Error).message.split('\n')[0]);
  }
  if (values.help) return 'help';
  const str = (flag: keyof typeof OPTIONS): string | undefined => {
    const v = values[flag];
    if (typeof v === 'string') return v;
    const e = env[`IDEMPO_OPERATOR_${flag.toUpperCase().replace(/-/g, '_')}`];
    return e === '' ? undefined : e;
  };
  const bool = (flag: keyof typeof OPTIONS): boolean => {
    if (values[flag] !== undefined) return values[flag] === true;
    const e = str(flag);
    if (e === undefined) return false;
    if (/^(true|1|yes)$/i.test(e)) return true;
    if (/^(false|0|no)$/i.test(e)) return false;
    throw new ConfigError(`--${flag}: expected true or false, got "${e}"`);
  };

  let namespace = str('namespace') ?? env.POD_NAMESPACE;
  if (!namespace) {
    try {
      namespace = readFile(SA_NAMESPACE_FILE).trim();
    } catch {
      namespace = 'idempo-system';
    }
  }
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace)) throw new ConfigError(`--namespace: "${namespace}" is not a valid namespace name`);

  let webhookUrl: URL | undefined;
  const u = str('webhook-url');
  if (u !== undefined) {
    try {
      webhookUrl = new URL(u);
    } catch {
      throw new ConfigError(`--webhook-url: "${u}" is not a URL`);
    }
    if (webhookUrl.protocol !== 'https:') throw new ConfigError(`--webhook-url: must be https (the API server only calls webhooks over TLS), got "${u}"`);
  }

  const nativeSidecars = str('native-sidecars') ?? 'auto';
  if (nativeSidecars !== 'auto' && nativeSidecars !== 'true' && nativeSidecars !== 'false') throw new ConfigError(`--native-sidecars: expected auto, true or false, got "${nativeSidecars}"`);
  const logLevel = str('log-level') ?? 'info';
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel)) throw new ConfigError(`--log-level: expected trace|debug|info|warn|error|fatal|silent, got "${logLevel}"`);

  const leaseDurationMs = duration('lease-duration', str('lease-duration') ?? '15s');
  const leaseRenewMs = duration('lease-renew', str('lease-renew') ?? '2s');
  if (leaseRenewMs >= leaseDurationMs) throw new ConfigError(`--lease-renew: must be shorter than --lease-duration`);
  if (leaseDurationMs < 1000) throw new ConfigError(`--lease-duration: must be at least 1s (Lease durations are whole seconds)`);

  return {
    kubeconfig: str('kubeconfig'),
    namespace,
    metricsListen: hostPort('metrics-listen', str('metrics-listen') ?? '0.0.0.0:8080'),
    webhookListen: hostPort('webhook-listen', str('webhook-listen') ?? '0.0.0.0:9443'),
    webhookUrl,
    webhookConfigName: str('webhook-config-name') ?? 'idempo-operator',
    webhookService: str('webhook-service') ?? 'idempo-operator-webhook',
    caBundleSelector: str('ca-bundle-selector') ?? 'idempo.dev/ca-bundle=operator',
    certDir: str('cert-dir'),
    certSecret: str('cert-secret') ?? 'idempo-operator-webhook-tls',
    leaderElect: bool('leader-elect'),
    leaseName: str('lease-name') ?? 'idempo-operator-leader',
    leaseDurationMs,
    leaseRenewMs,
    resyncMs: duration('resync', str('resync') ?? '5m'),
    nativeSidecars,
    logLevel,
  };
}

function hostPort(flag: string, v: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:]*)):(\d+)$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new ConfigError(`--${flag}: expected HOST:PORT, got "${v}"`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function duration(flag: string, v: string): number {
  let n: number;
  try {
    n = parseDuration(v.trim());
  } catch {
    throw new ConfigError(`--${flag}: expected a duration like 15s, 500ms or 5m, got "${v}"`);
  }
  if (n <= 0) throw new ConfigError(`--${flag}: must be positive`);
  return n;
}
