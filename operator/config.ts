// The operator's command line, read with the rules both binaries share (api/flags.ts): every
// flag also reads IDEMPO_OPERATOR_<FLAG> (dashes become underscores); flags win; a bad value is
// reported as one line naming the flag.
import { readFileSync } from 'node:fs';
import { FlagError, parseChoice, parseDurationFlag, parseHostPort, parseLogLevel, readFlags, type HostPort, type LogLevel } from '../api/flags.js';

export type OperatorConfig = {
  kubeconfig?: string;
  namespace: string;
  metricsListen: HostPort;
  webhookListen: HostPort;
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
  logLevel: LogLevel;
  /** Injects this image instead of each policy's spec.injection.image (development, tests, air-gapped mirrors). */
  sidecarImage?: string;
};

export const USAGE = `usage: idempo-operator [--kubeconfig FILE] [--namespace NS] [--metrics-listen HOST:PORT]
                      [--webhook-listen HOST:PORT] [--webhook-url URL] [--leader-elect]
                      [--lease-duration 15s] [--lease-renew 2s] [--lease-name NAME]
                      [--cert-dir DIR | --cert-secret NAME] [--webhook-service NAME]
                      [--webhook-config-name NAME] [--ca-bundle-selector LABELS]
                      [--resync 5m] [--native-sidecars auto|true|false] [--log-level info]
                      [--sidecar-image IMAGE]
Every flag also reads IDEMPO_OPERATOR_<FLAG> (e.g. IDEMPO_OPERATOR_WEBHOOK_URL); flags win.`;

const FLAGS = {
  kubeconfig: 'string',
  namespace: 'string',
  'metrics-listen': 'string',
  'webhook-listen': 'string',
  'webhook-url': 'string',
  'webhook-config-name': 'string',
  'webhook-service': 'string',
  'ca-bundle-selector': 'string',
  'cert-dir': 'string',
  'cert-secret': 'string',
  'leader-elect': 'boolean',
  'lease-name': 'string',
  'lease-duration': 'string',
  'lease-renew': 'string',
  resync: 'string',
  'native-sidecars': 'string',
  'log-level': 'string',
  'sidecar-image': 'string',
} as const;

const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** Parses argv (without node and script); throws FlagError with one line on bad input. Returns 'help' for -h. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8')): OperatorConfig | 'help' {
  const flags = readFlags(argv, env, 'IDEMPO_OPERATOR_', FLAGS);
  if (flags.bool('help')) return 'help';
  const str = flags.str;

  let namespace = str('namespace') ?? env.POD_NAMESPACE;
  if (!namespace) {
    try {
      namespace = readFile(SA_NAMESPACE_FILE).trim();
    } catch {
      namespace = 'idempo-system';
    }
  }
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace)) throw new FlagError(`--namespace: "${namespace}" is not a valid namespace name`);

  let webhookUrl: URL | undefined;
  const u = str('webhook-url');
  if (u !== undefined) {
    try {
      webhookUrl = new URL(u);
    } catch {
      throw new FlagError(`--webhook-url: "${u}" is not a URL`);
    }
    if (webhookUrl.protocol !== 'https:') throw new FlagError(`--webhook-url: must be https (the API server only calls webhooks over TLS), got "${u}"`);
  }

  const nativeSidecars = parseChoice(str('native-sidecars') ?? 'auto', 'native-sidecars', ['auto', 'true', 'false'] as const);
  const logLevel = parseLogLevel(str('log-level') ?? 'info');

  const leaseDurationMs = parseDurationFlag(str('lease-duration') ?? '15s', 'lease-duration');
  const leaseRenewMs = parseDurationFlag(str('lease-renew') ?? '2s', 'lease-renew');
  if (leaseRenewMs >= leaseDurationMs) throw new FlagError(`--lease-renew: must be shorter than --lease-duration`);
  if (leaseDurationMs < 1000) throw new FlagError(`--lease-duration: must be at least 1s (Lease durations are whole seconds)`);

  return {
    kubeconfig: str('kubeconfig'),
    namespace,
    metricsListen: parseHostPort(str('metrics-listen') ?? '0.0.0.0:8080', 'metrics-listen'),
    webhookListen: parseHostPort(str('webhook-listen') ?? '0.0.0.0:9443', 'webhook-listen'),
    webhookUrl,
    webhookConfigName: str('webhook-config-name') ?? 'idempo-operator',
    webhookService: str('webhook-service') ?? 'idempo-operator-webhook',
    caBundleSelector: str('ca-bundle-selector') ?? 'idempo.dev/ca-bundle=operator',
    certDir: str('cert-dir'),
    certSecret: str('cert-secret') ?? 'idempo-operator-webhook-tls',
    leaderElect: flags.bool('leader-elect'),
    leaseName: str('lease-name') ?? 'idempo-operator-leader',
    leaseDurationMs,
    leaseRenewMs,
    resyncMs: parseDurationFlag(str('resync') ?? '5m', 'resync'),
    nativeSidecars,
    logLevel,
    sidecarImage: str('sidecar-image'),
  };
}
