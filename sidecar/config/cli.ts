// The sidecar's command line (DESIGN.md): every flag also reads an IDEMPO_* env var; flags win.
import { parseArgs } from 'node:util';
import { SASL_MECHANISMS, type SaslMechanism } from '../proxy/sasl.js';

export type Mode = 'observe' | 'enforce' | 'upgrade';
export const MODES: readonly Mode[] = ['observe', 'enforce', 'upgrade'];
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export interface HostPort {
  host: string;
  port: number;
}

export interface UpstreamTls {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
}

export interface CliOptions {
  upstream: HostPort[];
  listen: HostPort;
  mode: Mode;
  /** True when --mode or IDEMPO_MODE was given, so the config file does not override it. */
  modeExplicit: boolean;
  metricsListen: HostPort;
  config?: string;
  logLevel: LogLevel;
  maxFrameBytes: number;
  tls?: UpstreamTls;
  /** The IdempotentProducerPolicy this sidecar enforces, for error messages and logs. */
  policyName?: string;
  /** --state-dir: where what must survive a restart is journalled (sidecar/state/README.md). */
  stateDir?: string;
  /** SASL for the sidecar's own broker connections (clients authenticate themselves, through it). */
  sasl?: { mechanism: SaslMechanism; username?: string; usernameFile?: string; passwordFile: string };
}

/** A bad flag or value: main prints the message as one line and exits 2. */
export class UsageError extends Error {}

const FLAGS = {
  upstream: { type: 'string', env: 'IDEMPO_UPSTREAM' },
  listen: { type: 'string', env: 'IDEMPO_LISTEN' },
  mode: { type: 'string', env: 'IDEMPO_MODE' },
  'metrics-listen': { type: 'string', env: 'IDEMPO_METRICS_LISTEN' },
  config: { type: 'string', env: 'IDEMPO_CONFIG' },
  'log-level': { type: 'string', env: 'IDEMPO_LOG_LEVEL' },
  'max-frame-bytes': { type: 'string', env: 'IDEMPO_MAX_FRAME_BYTES' },
  'upstream-tls': { type: 'boolean', env: 'IDEMPO_UPSTREAM_TLS' },
  'upstream-ca-file': { type: 'string', env: 'IDEMPO_UPSTREAM_CA_FILE' },
  'upstream-cert-file': { type: 'string', env: 'IDEMPO_UPSTREAM_CERT_FILE' },
  'upstream-key-file': { type: 'string', env: 'IDEMPO_UPSTREAM_KEY_FILE' },
  'upstream-server-name': { type: 'string', env: 'IDEMPO_UPSTREAM_SERVER_NAME' },
  'policy-name': { type: 'string', env: 'IDEMPO_POLICY_NAME' },
  'state-dir': { type: 'string', env: 'IDEMPO_STATE_DIR' },
  'upstream-sasl-mechanism': { type: 'string', env: 'IDEMPO_UPSTREAM_SASL_MECHANISM' },
  'upstream-sasl-username': { type: 'string', env: 'IDEMPO_UPSTREAM_SASL_USERNAME' },
  // From a file too: in a pod both come from a mounted Secret, never from args or env.
  'upstream-sasl-username-file': { type: 'string', env: 'IDEMPO_UPSTREAM_SASL_USERNAME_FILE' },
  'upstream-sasl-password-file': { type: 'string', env: 'IDEMPO_UPSTREAM_SASL_PASSWORD_FILE' },
  help: { type: 'boolean', env: '' },
} as const;

export const USAGE = `usage: idempo-sidecar --upstream HOST:PORT[,HOST:PORT...] [--listen 127.0.0.1:19092]
       [--mode observe|enforce|upgrade] [--metrics-listen 127.0.0.1:9464] [--config FILE]
       [--log-level info] [--max-frame-bytes 104857600] [--policy-name NAME] [--state-dir DIR]
       [--upstream-tls] [--upstream-ca-file F] [--upstream-cert-file F] [--upstream-key-file F] [--upstream-server-name N]
       [--upstream-sasl-mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 --upstream-sasl-username U|--upstream-sasl-username-file F --upstream-sasl-password-file F]
Every flag also reads IDEMPO_<FLAG> from the environment (e.g. IDEMPO_UPSTREAM); flags win.`;

export function parseHostPort(value: string, flag: string): HostPort {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 0 || port > 65535) throw new UsageError(`--${flag}: expected HOST:PORT, got "${value}"`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

export function parseHostPorts(value: string, flag: string): HostPort[] {
  const parts = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new UsageError(`--${flag}: expected HOST:PORT[,HOST:PORT...]`);
  return parts.map((p) => parseHostPort(p, flag));
}

export function parseCli(argv: string[], env: NodeJS.ProcessEnv): CliOptions & { help: boolean; upstreamGiven: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: Object.fromEntries(Object.entries(FLAGS).map(([k, v]) => [k, { type: v.type }])) as Record<string, { type: 'string' | 'boolean' }>,
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const get = (flag: keyof typeof FLAGS): string | undefined => {
    const fromFlag = v[flag];
    if (typeof fromFlag === 'string') return fromFlag;
    const e = FLAGS[flag].env;
    return e && env[e] !== undefined && env[e] !== '' ? env[e] : undefined;
  };
  const bool = (flag: keyof typeof FLAGS): boolean => {
    if (v[flag] === true) return true;
    const e = FLAGS[flag].env;
    return e !== '' && /^(1|true|yes)$/i.test(env[e] ?? '');
  };

  const modeRaw = get('mode');
  if (modeRaw !== undefined && !MODES.includes(modeRaw as Mode)) {
    throw new UsageError(`--mode: expected one of observe, enforce, upgrade, got "${modeRaw}"`);
  }
  const level = get('log-level') ?? 'info';
  if (!LOG_LEVELS.includes(level as LogLevel)) throw new UsageError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  const maxFrameRaw = get('max-frame-bytes') ?? '104857600';
  const maxFrameBytes = Number(maxFrameRaw);
  if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1024 || maxFrameBytes > 1 << 30) {
    throw new UsageError(`--max-frame-bytes: expected an integer between 1024 and 1073741824, got "${maxFrameRaw}"`);
  }
  const upstreamRaw = get('upstream');
  const tlsOn = bool('upstream-tls') || ['upstream-ca-file', 'upstream-cert-file', 'upstream-key-file'].some((f) => get(f as keyof typeof FLAGS) !== undefined);
  const certFile = get('upstream-cert-file');
  const keyFile = get('upstream-key-file');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError('--upstream-cert-file and --upstream-key-file must be given together');
  }
  const saslMechanism = get('upstream-sasl-mechanism');
  let sasl: CliOptions['sasl'];
  if (saslMechanism !== undefined) {
    if (!SASL_MECHANISMS.includes(saslMechanism as SaslMechanism)) {
      throw new UsageError(`--upstream-sasl-mechanism: expected one of ${SASL_MECHANISMS.join(', ')}, got "${saslMechanism}"`);
    }
    const username = get('upstream-sasl-username');
    const usernameFile = get('upstream-sasl-username-file');
    const passwordFile = get('upstream-sasl-password-file');
    if ((!username && !usernameFile) || !passwordFile) {
      throw new UsageError('--upstream-sasl-mechanism needs --upstream-sasl-username (or --upstream-sasl-username-file) and --upstream-sasl-password-file');
    }
    if (username && usernameFile) throw new UsageError('--upstream-sasl-username and --upstream-sasl-username-file: give one');
    sasl = { mechanism: saslMechanism as SaslMechanism, ...(username ? { username } : { usernameFile }), passwordFile };
  }
  return {
    help: v.help === true,
    sasl,
    upstream: upstreamRaw !== undefined ? parseHostPorts(upstreamRaw, 'upstream') : [],
    upstreamGiven: upstreamRaw !== undefined,
    listen: parseHostPort(get('listen') ?? '127.0.0.1:19092', 'listen'),
    mode: (modeRaw as Mode | undefined) ?? 'upgrade',
    modeExplicit: modeRaw !== undefined,
    metricsListen: parseHostPort(get('metrics-listen') ?? '127.0.0.1:9464', 'metrics-listen'),
    config: get('config'),
    logLevel: level as LogLevel,
    maxFrameBytes,
    policyName: get('policy-name'),
    stateDir: get('state-dir'),
    tls: tlsOn
      ? { caFile: get('upstream-ca-file'), certFile, keyFile, serverName: get('upstream-server-name') }
      : undefined,
  };
}
