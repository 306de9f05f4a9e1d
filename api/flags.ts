// Command-line flags of both binaries, with one set of rules (DESIGN.md "command line"): every
// flag also reads an environment variable, PREFIX + the flag in upper case with dashes as
// underscores (IDEMPO_UPSTREAM, IDEMPO_OPERATOR_WEBHOOK_URL); a flag wins over its variable; an
// empty variable is unset; a boolean variable is true|1|yes or false|0|no and anything else is an
// error naming the flag. Every error is one line naming the flag.
import { parseArgs } from 'node:util';
import { parseDuration } from './duration.js';

/** A bad flag or value; the binary prints the message as one line and exits 2. */
export class FlagError extends Error {}

export type FlagType = 'string' | 'boolean';

export interface HostPort {
  host: string;
  port: number;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Flags<K extends string> {
  /** The flag's value, else its variable's, else undefined. */
  str(flag: K): string | undefined;
  /** Given as a flag: true. Else the variable (true|1|yes / false|0|no). Else false. */
  bool(flag: K): boolean;
  /** Whether the flag or its variable was given at all. */
  given(flag: K): boolean;
  /** The environment variable that feeds a flag. */
  envName(flag: K): string;
}

/**
 * Parses argv (without node and the script) against `flags`; `-h`/`--help` are always known and
 * reported by `bool('help')`.
 */
export function readFlags<K extends string>(argv: string[], env: NodeJS.ProcessEnv, envPrefix: string, flags: Record<K, FlagType>): Flags<K | 'help'> {
  const options: Record<string, { type: FlagType; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, type] of Object.entries(flags) as [K, FlagType][]) options[name] = { type };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new FlagError((err as Error).message.split('\n')[0]);
  }
  const envName = (flag: string): string => `${envPrefix}${flag.toUpperCase().replace(/-/g, '_')}`;
  const fromEnv = (flag: string): string | undefined => {
    if (flag === 'help') return undefined;
    const e = env[envName(flag)];
    return e === '' ? undefined : e;
  };
  return {
    str: (flag) => {
      const v = values[flag];
      return typeof v === 'string' ? v : fromEnv(flag);
    },
    bool: (flag) => {
      if (values[flag] !== undefined) return values[flag] === true;
      const e = fromEnv(flag);
      if (e === undefined) return false;
      if (/^(true|1|yes)$/i.test(e)) return true;
      if (/^(false|0|no)$/i.test(e)) return false;
      throw new FlagError(`--${flag}: ${envName(flag)} must be true or false, got "${e}"`);
    },
    given: (flag) => values[flag] !== undefined || fromEnv(flag) !== undefined,
    envName,
  };
}

/** HOST:PORT, [IPv6]:PORT; an empty host (":8080") means every interface. */
export function parseHostPort(value: string, flag: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new FlagError(`--${flag}: expected HOST:PORT, got "${value}"`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export function parseHostPorts(value: string, flag: string): HostPort[] {
  const parts = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new FlagError(`--${flag}: expected HOST:PORT[,HOST:PORT...]`);
  return parts.map((p) => parseHostPort(p, flag));
}

export function parseLogLevel(value: string, flag = 'log-level'): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) throw new FlagError(`--${flag}: expected one of ${LOG_LEVELS.join(', ')}, got "${value}"`);
  return value as LogLevel;
}

/** A positive duration like 15s, 500ms or 5m, in milliseconds. */
export function parseDurationFlag(value: string, flag: string): number {
  let n: number;
  try {
    n = parseDuration(value.trim());
  } catch {
    throw new FlagError(`--${flag}: expected a duration like 15s, 500ms or 5m, got "${value}"`);
  }
  if (n <= 0) throw new FlagError(`--${flag}: must be positive`);
  return n;
}

/** One of `choices`. */
export function parseChoice<T extends string>(value: string, flag: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) throw new FlagError(`--${flag}: expected one of ${choices.join(', ')}, got "${value}"`);
  return value as T;
}
