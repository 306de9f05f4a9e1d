// The sidecar's log: one JSON object per line on stdout, the lines pino wrote before —
// {"level":30,"time":<epoch ms>,"component":"idempo-sidecar",<child bindings>,<fields>,"msg":"..."}
// with pino's level numbers — from a logger of our own. pino and what it loads (its worker-thread
// transport, serializers, redaction compiler) cost ~8 MiB of resident memory and ~20 ms of
// start-up in a process that logs a few lines a minute.
import type { LogLevel } from '../../api/flags.js';

const LEVELS: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

export type LogFn = (fieldsOrMsg: object | string, msg?: string) => void;

/** What the sidecar's modules log through; a pino logger fits it too (tests use either). */
export interface Logger {
  /** The threshold, shared by a logger and all its children. */
  level: string;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

/** SASL and TLS material never reach the logs: fields with these names, at any depth. */
const REDACTED = new Set(['password', 'sasl', 'key']);

export interface LoggerOptions {
  level: LogLevel;
  /** Fields of every line, after level and time. */
  base?: Record<string, unknown>;
  /** Where lines go (with their newline); stdout by default. */
  write?: (line: string) => void;
}

export function createLogger(o: LoggerOptions): Logger {
  const shared = { threshold: LEVELS[o.level], level: o.level as string, write: o.write ?? ((line: string) => void process.stdout.write(line)) };
  return new JsonLogger(shared, o.base ? fields(o.base) : '');
}

interface Shared {
  threshold: number;
  level: string;
  write: (line: string) => void;
}

class JsonLogger implements Logger {
  constructor(
    private readonly shared: Shared,
    /** The serialized bindings: `,"k":v` for each. */
    private readonly bindings: string,
  ) {}

  get level(): string {
    return this.shared.level;
  }

  set level(name: string) {
    const value = LEVELS[name as LogLevel];
    if (value === undefined) throw new Error(`unknown log level ${name}`);
    this.shared.level = name;
    this.shared.threshold = value;
  }

  readonly debug: LogFn = (a, msg) => this.line(20, a, msg);
  readonly info: LogFn = (a, msg) => this.line(30, a, msg);
  readonly warn: LogFn = (a, msg) => this.line(40, a, msg);
  readonly error: LogFn = (a, msg) => this.line(50, a, msg);

  child(bindings: Record<string, unknown>): Logger {
    return new JsonLogger(this.shared, this.bindings + fields(bindings));
  }

  private line(level: number, a: object | string, msg?: string): void {
    if (level < this.shared.threshold) return;
    let text = `{"level":${level},"time":${Date.now()}${this.bindings}`;
    if (typeof a === 'string') msg = a;
    else text += fields(a instanceof Error ? { err: a } : (a as Record<string, unknown>));
    if (msg !== undefined) text += `,"msg":${JSON.stringify(msg)}`;
    this.shared.write(`${text}}\n`);
  }
}

/** `,"k":v` for each own field, redacted and made serializable; never throws. */
function fields(o: Record<string, unknown>): string {
  let out = '';
  for (const k of Object.keys(o)) {
    const v = o[k];
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
    out += `,${JSON.stringify(k)}:${value(REDACTED.has(k) ? '[redacted]' : v)}`;
  }
  return out;
}

function value(v: unknown): string {
  try {
    return JSON.stringify(v, replace) ?? 'null';
  } catch {
    return '"[unserializable]"'; // a cycle
  }
}

/** Errors as pino showed them; BigInts as strings; the redacted names one level down. */
function replace(this: unknown, k: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Error) return Object.assign({ type: v.constructor.name, message: v.message, stack: v.stack }, v); // and its own fields (code, errno...)
  if (k !== '' && REDACTED.has(k) && this !== null && typeof this === 'object') return '[redacted]';
  return v;
}
