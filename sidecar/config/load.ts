// The sidecar's effective configuration: command line + the policy spec file (as the
// operator renders it into a ConfigMap), validated by the one schema in api/.
// Reload is three steps: read and validate the new file, work out what changed (planReload),
// apply what is live. Live, applied to the next batch: mode, topics, dedup.maxEntries (nothing
// remembered is lost), sidecar.logLevel (unless --log-level was given). Fixed at start, a
// change is logged "restart needed" and not applied: producer.* (the sequencer, the sessions
// and the broker connections are built with them), dedup.strategy and dedup.header (keys made
// under the old rule could not match copies under the new one: an in-flight original's retry
// would be written again), dedup.window (it is also how long the sequencer holds a batch of
// unknown outcome for the client's retry, fixed when the sequencer is built), sidecar.maxSessions and
// sidecar.sessionIdleTimeout, and everything outside the spec's live part (addresses, ports).
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from '../log/log.js';
// api/validate.js and api/duration.js, not api/index.js: the index also loads the CRD
// renderer (and with it the YAML library), which the sidecar does not need.
import { parseJsonOrYaml, parsePolicySpec } from '../../api/validate.js';
import { parseDuration } from '../../api/duration.js';
import type { PolicySpec } from '../../api/types.js';
import type { SaslCredentials } from '../proxy/sasl.js';
import { parseHostPorts, type HostPort, type LogLevel } from '../../api/flags.js';
import type { UpstreamTls } from '../proxy/upstream-socket.js';
import type { CliOptions, EngineLimits, Mode } from './cli.js';

export class ConfigError extends Error {}

/** The settings from the policy file, as running (see the file comment for which change live). */
export interface LiveConfig {
  mode: Mode;
  logLevel: LogLevel;
  maxInFlight: number;
  deliveryTimeoutMs: number;
  requestTimeoutMs: number;
  retryBackoff: { initialMs: number; maxMs: number };
  dedup: { strategy: 'off' | 'exact' | 'content' | 'header'; header?: string; windowMs: number; maxEntries: number };
  topics: { include: string[]; exclude: string[] };
  maxSessions: number;
  sessionIdleMs: number;
}

export interface SidecarConfig {
  upstream: HostPort[];
  listen: HostPort;
  metricsListen: HostPort;
  tls?: UpstreamTls;
  sasl?: SaslCredentials;
  maxFrameBytes: number;
  limits: EngineLimits;
  maxBufferedBytes: number;
  maxConnectionBufferedBytes: number;
  /** The settings in force; replaced as a whole on reload. */
  live: LiveConfig;
}

const DEFAULT_SPEC_INPUT = { selector: {} };

function fromSpec(spec: PolicySpec, cli: CliOptions): LiveConfig {
  return {
    mode: cli.modeExplicit ? cli.mode : spec.mode,
    logLevel: cli.logLevelExplicit ? cli.logLevel : spec.sidecar.logLevel,
    maxInFlight: spec.producer.maxInFlightPerPartition,
    deliveryTimeoutMs: parseDuration(spec.producer.deliveryTimeout),
    requestTimeoutMs: parseDuration(spec.producer.requestTimeout),
    retryBackoff: { initialMs: parseDuration(spec.producer.retryBackoff.initial), maxMs: parseDuration(spec.producer.retryBackoff.max) },
    dedup: { strategy: spec.dedup.strategy, header: spec.dedup.header, windowMs: parseDuration(spec.dedup.window), maxEntries: spec.dedup.maxEntries },
    topics: { include: spec.topics.include, exclude: spec.topics.exclude },
    maxSessions: spec.sidecar.maxSessions,
    sessionIdleMs: parseDuration(spec.sidecar.sessionIdleTimeout),
  };
}

/** Reads and validates a policy file; throws ConfigError with one line naming the field. */
export function readPolicyFile(path: string, cli: CliOptions): PolicySpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`--config ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseJsonOrYaml(text);
  } catch (err) {
    throw new ConfigError(`--config ${path}: not valid JSON or YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`--config ${path}: spec: must be an object`);
  // A file written by hand for one sidecar need not carry a selector or repeat --upstream.
  const input = doc as Record<string, unknown>;
  const spec = 'spec' in input && typeof input.spec === 'object' ? (input.spec as Record<string, unknown>) : input;
  const withDefaults: Record<string, unknown> = { ...DEFAULT_SPEC_INPUT, ...spec };
  const kafka = (withDefaults.kafka ?? {}) as Record<string, unknown>;
  if (kafka.bootstrapServers === undefined && cli.upstream.length > 0) {
    withDefaults.kafka = { ...kafka, bootstrapServers: cli.upstream.map((u) => `${u.host}:${u.port}`) };
  }
  const r = parsePolicySpec(withDefaults);
  if (!r.ok) throw new ConfigError(`--config ${path}: ${r.errors[0]}${r.errors.length > 1 ? ` (and ${r.errors.length - 1} more)` : ''}`);
  return r.spec;
}

/** Reads a secret file (trailing newline dropped); the content never appears in errors or logs. */
function readSecret(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new ConfigError(`--${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? 'cannot read'}`);
  }
}

export function loadSidecarConfig(cli: CliOptions): SidecarConfig {
  const spec = cli.config ? readPolicyFile(cli.config, cli) : (parsePolicySpec({ selector: {}, kafka: { bootstrapServers: ['localhost:9092'] } }) as { ok: true; spec: PolicySpec }).spec;
  let upstream = cli.upstream;
  if (upstream.length === 0 && cli.config) upstream = parseHostPorts(spec.kafka.bootstrapServers.join(','), 'upstream');
  if (upstream.length === 0) throw new ConfigError('--upstream: required (HOST:PORT[,HOST:PORT...]), or kafka.bootstrapServers in --config');
  return {
    upstream,
    listen: cli.listen,
    metricsListen: cli.metricsListen,
    tls: cli.tls,
    sasl: cli.sasl
      ? {
          mechanism: cli.sasl.mechanism,
          username: cli.sasl.username ?? readSecret(cli.sasl.usernameFile!, 'upstream-sasl-username-file'),
          password: readSecret(cli.sasl.passwordFile, 'upstream-sasl-password-file'),
        }
      : undefined,
    maxFrameBytes: cli.maxFrameBytes,
    limits: cli.limits,
    maxBufferedBytes: cli.maxBufferedBytes,
    maxConnectionBufferedBytes: cli.maxConnectionBufferedBytes,
    live: fromSpec(spec, cli),
  };
}

/**
 * Watches the config file. ConfigMap volumes swap a symlink (..data) atomically, so the
 * directory is watched rather than the file, and the file is re-read and compared.
 */
export interface ReloadHandlers {
  /** A valid file with different settings; config.live already holds them. */
  changed(next: LiveConfig): void;
  /** A changed file that does not validate; the previous settings stay. */
  rejected(): void;
  /** A valid file that changes fields fixed at start (logged; those fields keep their values). */
  restartNeeded(): void;
  /** Every time the file is looked at (watch event or the 5 s poll), whatever the result. */
  checked(): void;
}

/** LiveConfig fields a reload applies; every other field keeps its start value. */
const LIVE: ReadonlyArray<keyof LiveConfig> = ['mode', 'logLevel', 'topics', 'dedup'];
/** Spec paths of the fields fixed at start, for the "restart needed" line. */
const FIXED: Record<string, string> = {
  maxInFlight: 'producer.maxInFlightPerPartition',
  deliveryTimeoutMs: 'producer.deliveryTimeout',
  requestTimeoutMs: 'producer.requestTimeout',
  retryBackoff: 'producer.retryBackoff',
  maxSessions: 'sidecar.maxSessions',
  sessionIdleMs: 'sidecar.sessionIdleTimeout',
};

export interface ReloadPlan {
  /** The settings to run with: `running` with the live fields of `next`. */
  apply: LiveConfig;
  /** Whether `apply` differs from `running`. */
  changed: boolean;
  /** Spec paths that changed in the file and wait for a restart. */
  restartNeeded: string[];
}

/** What a reload from `running` to the file's `next` does. Pure. */
export function planReload(running: LiveConfig, next: LiveConfig): ReloadPlan {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const apply: LiveConfig = { ...running };
  for (const k of LIVE) (apply as unknown as Record<string, unknown>)[k] = next[k];
  const restartNeeded = Object.keys(FIXED).filter((k) => !same(running[k as keyof LiveConfig], next[k as keyof LiveConfig])).map((k) => FIXED[k]);
  // Keys computed under one strategy (or header) cannot match copies under another; the window
  // is also the sequencer's hold time for batches of unknown outcome. Only the cap is live.
  for (const [field, path] of [['strategy', 'dedup.strategy'], ['header', 'dedup.header'], ['windowMs', 'dedup.window']] as const) {
    if (running.dedup[field] !== next.dedup[field]) restartNeeded.push(path);
  }
  apply.dedup = { ...running.dedup, maxEntries: next.dedup.maxEntries };
  return { apply, changed: !same(apply, running), restartNeeded };
}

export function watchConfig(path: string, cli: CliOptions, config: SidecarConfig, log: Logger, on: ReloadHandlers): () => void {
  let last = JSON.stringify(config.live);
  // The file text last rejected: the 5 s poll would otherwise count and log the same bad file
  // again on every tick (idempo_config_reloads_total{result="error"} counts rejections of a change).
  let rejected: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const check = (): void => {
    try {
      reload();
    } finally {
      on.checked();
    }
  };
  const reload = (): void => {
    let next: LiveConfig;
    let raw: string | undefined;
    try {
      raw = readFileSync(path, 'utf8');
    } catch {
      raw = undefined; // readPolicyFile reports it
    }
    if (raw !== undefined && raw === rejected) return;
    try {
      next = fromSpec(readPolicyFile(path, cli), cli);
    } catch (err) {
      rejected = raw;
      on.rejected();
      log.error({ err: (err as Error).message }, 'config reload rejected; keeping the previous configuration');
      return;
    }
    rejected = undefined;
    const text = JSON.stringify(next);
    if (text === last) return;
    last = text;
    const plan = planReload(config.live, next);
    if (plan.restartNeeded.length > 0) {
      on.restartNeeded();
      log.warn({ fields: plan.restartNeeded }, 'configuration changed in fields fixed at start: restart needed; running with the previous values');
    }
    if (!plan.changed) return;
    config.live = plan.apply;
    log.info({ mode: plan.apply.mode, dedup: plan.apply.dedup.strategy, topics: plan.apply.topics, logLevel: plan.apply.logLevel }, 'configuration reloaded');
    on.changed(plan.apply);
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), (_event, name) => {
      if (name && name !== basename(path) && !name.startsWith('..')) return;
      clearTimeout(timer);
      timer = setTimeout(check, 100);
    });
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'cannot watch the config file; polling instead');
  }
  // Polling as well: inotify misses some volume updates, and it is cheap.
  const poll = setInterval(check, 5_000);
  poll.unref();
  return () => {
    watcher?.close();
    clearInterval(poll);
    clearTimeout(timer);
  };
}
