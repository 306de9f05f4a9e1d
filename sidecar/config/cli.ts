// The sidecar's command line (DESIGN.md), read with the rules both binaries share (api/flags.ts):
// every flag also reads IDEMPO_<FLAG>; flags win; a bad value is one line naming the flag.
import { FlagError, parseChoice, parseHostPort, parseHostPorts, parseLogLevel, readFlags, type HostPort, type LogLevel } from '../../api/flags.js';
import { SASL_MECHANISMS, type SaslMechanism } from '../proxy/sasl.js';
import type { UpstreamTls } from '../proxy/upstream-socket.js';

export type Mode = 'observe' | 'enforce' | 'upgrade';
export const MODES: readonly Mode[] = ['observe', 'enforce', 'upgrade'];

export interface CliOptions {
  upstream: HostPort[];
  listen: HostPort;
  mode: Mode;
  /** True when --mode or IDEMPO_MODE was given, so the config file does not override it. */
  modeExplicit: boolean;
  metricsListen: HostPort;
  config?: string;
  logLevel: LogLevel;
  /** True when --log-level or IDEMPO_LOG_LEVEL was given, so the config file does not override it. */
  logLevelExplicit: boolean;
  maxFrameBytes: number;
  /** Byte limits of the engine's state (defaults fit the injected container's 256Mi). */
  limits: EngineLimits;
  /** Bytes of frames held whole (decoded or rewritten ones), for the sidecar and per client connection. */
  maxBufferedBytes: number;
  maxConnectionBufferedBytes: number;
  tls?: UpstreamTls;
  /** The IdempotentProducerPolicy this sidecar enforces, for error messages and logs. */
  policyName?: string;
  /** --state-dir: where what must survive a restart is journalled (sidecar/state/README.md). */
  stateDir?: string;
  /** SASL for the sidecar's own broker connections (clients authenticate themselves, through it). */
  sasl?: { mechanism: SaslMechanism; username?: string; usernameFile?: string; passwordFile: string };
}

export interface EngineLimits {
  /** The dedup cache's entries (estimated heap bytes). */
  maxDedupBytes: number;
  /** One batch's records decompressed (content/header dedup); larger ones are not decoded. */
  maxDecompressBytes: number;
  /** Client batches held by the engine until answered (upgrade-mode sends and re-sends). */
  maxPendingBytes: number;
  /** Producer sessions of idempotent clients (estimated heap bytes). */
  maxSessionBytes: number;
}

const MiB = 1024 * 1024;
export const DEFAULT_LIMITS: EngineLimits = { maxDedupBytes: 16 * MiB, maxDecompressBytes: 8 * MiB, maxPendingBytes: 64 * MiB, maxSessionBytes: 16 * MiB };

const FLAGS = {
  upstream: 'string',
  listen: 'string',
  mode: 'string',
  'metrics-listen': 'string',
  config: 'string',
  'log-level': 'string',
  'max-frame-bytes': 'string',
  'max-dedup-bytes': 'string',
  'max-decompress-bytes': 'string',
  'max-pending-bytes': 'string',
  'max-session-bytes': 'string',
  'max-buffered-bytes': 'string',
  'max-connection-buffered-bytes': 'string',
  'upstream-tls': 'boolean',
  'upstream-ca-file': 'string',
  'upstream-cert-file': 'string',
  'upstream-key-file': 'string',
  'upstream-server-name': 'string',
  'policy-name': 'string',
  'state-dir': 'string',
  'upstream-sasl-mechanism': 'string',
  'upstream-sasl-username': 'string',
  // From a file too: in a pod both come from a mounted Secret, never from args or env.
  'upstream-sasl-username-file': 'string',
  'upstream-sasl-password-file': 'string',
} as const;

export const USAGE = `usage: idempo-sidecar --upstream HOST:PORT[,HOST:PORT...] [--listen 127.0.0.1:19092]
       [--mode observe|enforce|upgrade] [--metrics-listen 127.0.0.1:9464] [--config FILE]
       [--log-level info] [--max-frame-bytes 104857600] [--policy-name NAME] [--state-dir DIR]
       [--max-dedup-bytes 16Mi] [--max-decompress-bytes 8Mi] [--max-pending-bytes 64Mi] [--max-session-bytes 16Mi]
       [--max-buffered-bytes 64Mi] [--max-connection-buffered-bytes 32Mi]
       [--upstream-tls] [--upstream-ca-file F] [--upstream-cert-file F] [--upstream-key-file F] [--upstream-server-name N]
       [--upstream-sasl-mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 --upstream-sasl-username U|--upstream-sasl-username-file F --upstream-sasl-password-file F]
Every flag also reads IDEMPO_<FLAG> from the environment (e.g. IDEMPO_UPSTREAM); flags win.`;

export function parseCli(argv: string[], env: NodeJS.ProcessEnv): CliOptions & { help: boolean; upstreamGiven: boolean } {
  const f = readFlags(argv, env, 'IDEMPO_', FLAGS);
  const get = f.str;
  const bool = f.bool;

  const modeRaw = get('mode');
  if (modeRaw !== undefined) parseChoice(modeRaw, 'mode', MODES);
  const levelRaw = get('log-level');
  const level = parseLogLevel(levelRaw ?? 'info');
  const maxFrameRaw = get('max-frame-bytes') ?? '104857600';
  const maxFrameBytes = Number(maxFrameRaw);
  if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1024 || maxFrameBytes > 1 << 30) {
    throw new FlagError(`--max-frame-bytes: expected an integer between 1024 and 1073741824, got "${maxFrameRaw}"`);
  }
  const bytes = (flag: keyof typeof FLAGS, dflt: number, min: number): number => {
    const raw = get(flag);
    if (raw === undefined) return dflt;
    const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(raw.trim());
    const n = m ? Number(m[1]) * (m[2] === 'Ki' ? 1024 : m[2] === 'Mi' ? MiB : m[2] === 'Gi' ? 1024 * MiB : 1) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > 4096 * MiB) throw new FlagError(`--${flag}: expected a byte count like 16Mi (between ${min} and 4Gi), got "${raw}"`);
    return n;
  };
  const limits: EngineLimits = {
    maxDedupBytes: bytes('max-dedup-bytes', DEFAULT_LIMITS.maxDedupBytes, 64 * 1024),
    maxDecompressBytes: bytes('max-decompress-bytes', DEFAULT_LIMITS.maxDecompressBytes, 64 * 1024),
    maxPendingBytes: bytes('max-pending-bytes', DEFAULT_LIMITS.maxPendingBytes, MiB),
    maxSessionBytes: bytes('max-session-bytes', DEFAULT_LIMITS.maxSessionBytes, 64 * 1024),
  };
  // Frames the proxy holds whole (requests until answered, answers it rewrites), for all
  // connections and for one. Streamed answers (a Fetch) take nothing. Partly the same bytes as
  // the engine's pending batches: with the limits above and the process itself (~80 MiB) the
  // sum stays under the injected container's 256 Mi.
  const maxBufferedBytes = bytes('max-buffered-bytes', 64 * MiB, MiB);
  const maxConnectionBufferedBytes = bytes('max-connection-buffered-bytes', 32 * MiB, MiB);
  const upstreamRaw = get('upstream');
  const tlsOn = bool('upstream-tls') || (['upstream-ca-file', 'upstream-cert-file', 'upstream-key-file'] as const).some((flag) => get(flag) !== undefined);
  const certFile = get('upstream-cert-file');
  const keyFile = get('upstream-key-file');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new FlagError('--upstream-cert-file and --upstream-key-file must be given together');
  }
  const saslMechanism = get('upstream-sasl-mechanism');
  let sasl: CliOptions['sasl'];
  if (saslMechanism !== undefined) {
    if (!SASL_MECHANISMS.includes(saslMechanism as SaslMechanism)) {
      throw new FlagError(`--upstream-sasl-mechanism: expected one of ${SASL_MECHANISMS.join(', ')}, got "${saslMechanism}"`);
    }
    const username = get('upstream-sasl-username');
    const usernameFile = get('upstream-sasl-username-file');
    const passwordFile = get('upstream-sasl-password-file');
    if ((!username && !usernameFile) || !passwordFile) {
      throw new FlagError('--upstream-sasl-mechanism needs --upstream-sasl-username (or --upstream-sasl-username-file) and --upstream-sasl-password-file');
    }
    if (username && usernameFile) throw new FlagError('--upstream-sasl-username and --upstream-sasl-username-file: give one');
    sasl = { mechanism: saslMechanism as SaslMechanism, ...(username ? { username } : { usernameFile }), passwordFile };
  }
  return {
    help: f.bool('help'),
    sasl,
    upstream: upstreamRaw !== undefined ? parseHostPorts(upstreamRaw, 'upstream') : [],
    upstreamGiven: upstreamRaw !== undefined,
    listen: parseHostPort(get('listen') ?? '127.0.0.1:19092', 'listen'),
    mode: (modeRaw as Mode | undefined) ?? 'upgrade',
    modeExplicit: modeRaw !== undefined,
    metricsListen: parseHostPort(get('metrics-listen') ?? '127.0.0.1:9464', 'metrics-listen'),
    config: get('config'),
    logLevel: level,
    logLevelExplicit: levelRaw !== undefined,
    maxFrameBytes,
    limits,
    maxBufferedBytes,
    maxConnectionBufferedBytes,
    policyName: get('policy-name'),
    stateDir: get('state-dir'),
    tls: tlsOn
      ? { caFile: get('upstream-ca-file'), certFile, keyFile, serverName: get('upstream-server-name') }
      : undefined,
  };
}
