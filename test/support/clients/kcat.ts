// kcat (librdkafka's CLI) helpers: the C client many non-JVM producers use.
// Each call runs one kcat process with a hard timeout (SIGKILL) and waits for it to exit.
import { existsSync } from 'node:fs';
import { runProcess } from './run.js';
import type { ConsumedRecord } from './java.js';

type Props = Record<string, string | number | boolean>;
const xArgs = (props?: Props) => Object.entries(props ?? {}).flatMap(([k, v]) => ['-X', `${k}=${v}`]);

export interface KcatProduceOptions {
  bootstrap: string;
  topic: string;
  partition?: number;
  /** One record per line. With keyDelimiter, "key<delim>value". */
  lines: string[];
  keyDelimiter?: string;
  /** librdkafka configs; enable.idempotence=false and acks=all unless overridden. */
  props?: Props;
  timeoutMs?: number;
  /**
   * Runs kcat with its wall clock stopped at this UTC time ("YYYY-MM-DD hh:mm:ss", libfaketime):
   * every message gets the same timestamp, as when an application sets it (kcat cannot).
   */
  frozenClock?: string;
}

const FAKETIME_LIBS = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'];

/** The environment that stops a child's wall clock (timers keep the monotonic clock). */
function frozenClockEnv(at: string): NodeJS.ProcessEnv {
  const lib = FAKETIME_LIBS.find((p) => existsSync(p));
  if (!lib) throw new Error('libfaketime not found: run scripts/tools/install-debian.sh (Debian package faketime)');
  return { ...process.env, TZ: 'UTC', LD_PRELOAD: lib, FAKETIME: at, FAKETIME_DONT_FAKE_MONOTONIC: '1', FAKETIME_NO_CACHE: '1' };
}

export interface KcatProduceResult {
  exitCode: number | null;
  /** Messages librdkafka reported as not delivered. */
  deliveryFailures: number;
  stderr: string;
}

export async function kcatProduce(o: KcatProduceOptions): Promise<KcatProduceResult> {
  const args = ['-P', '-b', o.bootstrap, '-t', o.topic];
  if (o.partition !== undefined) args.push('-p', String(o.partition));
  if (o.keyDelimiter) args.push('-K', o.keyDelimiter);
  args.push(...xArgs({ 'enable.idempotence': false, acks: 'all', ...o.props }));
  const env = o.frozenClock === undefined ? undefined : frozenClockEnv(o.frozenClock);
  let r = await runProcess('kcat', args, { input: o.lines.join('\n') + '\n', timeoutMs: o.timeoutMs ?? 60_000, env });
  // With the wall clock stopped in the past, librdkafka's start-up wait for its own threads
  // sometimes ends at once ("Failed to initialize ... did not initialize within 60 seconds",
  // about half the runs): no client was made and nothing was sent, so it is started again.
  for (let i = 0; env && r.code !== 0 && /Failed to initialize/.test(r.stderr) && i < 50; i++) {
    r = await runProcess('kcat', args, { input: o.lines.join('\n') + '\n', timeoutMs: o.timeoutMs ?? 60_000, env });
  }
  if (r.timedOut) throw new Error(`kcat -P timed out: ${r.stderr.slice(-2000)}`);
  const deliveryFailures = (r.stderr.match(/Delivery failed/g) ?? []).length;
  return { exitCode: r.code, deliveryFailures, stderr: r.stderr };
}

export interface KcatConsumeOptions {
  bootstrap: string;
  topic: string;
  /** Stop after this many records. */
  count?: number;
  partition?: number;
  /** Exit at the end of every partition (-e); default true. With false, waits for `count`. */
  untilEnd?: boolean;
  props?: Props;
  timeoutMs?: number;
}

/** Reads from the beginning (no group); values must not contain tabs or newlines. */
export async function kcatConsume(o: KcatConsumeOptions): Promise<ConsumedRecord[]> {
  const args = ['-C', '-b', o.bootstrap, '-t', o.topic, '-o', 'beginning', '-q', '-f', '%p\t%o\t%k\t%s\n'];
  if (o.untilEnd !== false) args.push('-e');
  if (o.count !== undefined) args.push('-c', String(o.count));
  if (o.partition !== undefined) args.push('-p', String(o.partition));
  args.push(...xArgs(o.props));
  const r = await runProcess('kcat', args, { timeoutMs: o.timeoutMs ?? 30_000 });
  if (r.timedOut) throw new Error(`kcat -C timed out (got ${r.stdout.split('\n').length - 1} records): ${r.stderr.slice(-2000)}`);
  if (r.code !== 0) throw new Error(`kcat -C failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const [p, off, k, ...v] = l.split('\t');
      return { topic: o.topic, partition: Number(p), offset: Number(off), key: k === '' ? null : k, value: v.join('\t') };
    });
}

export interface KcatMetadata {
  originatingBroker: { id: number; name: string };
  brokers: { id: number; name: string }[];
  topics: { topic: string; partitions: { partition: number; leader: number; replicas: { id: number }[]; isrs: { id: number }[] }[] }[];
}

/** `kcat -L -J`: brokers and topics as librdkafka sees them (optionally one topic). */
export async function kcatMetadata(o: { bootstrap: string; topic?: string; props?: Props; timeoutMs?: number }): Promise<KcatMetadata> {
  const args = ['-L', '-J', '-b', o.bootstrap, ...xArgs(o.props)];
  if (o.topic) args.push('-t', o.topic);
  const r = await runProcess('kcat', args, { timeoutMs: o.timeoutMs ?? 30_000 });
  if (r.code !== 0) throw new Error(`kcat -L failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  const md = JSON.parse(r.stdout) as { originating_broker: { id: number; name: string }; brokers: { id: number; name: string }[]; topics: KcatMetadata['topics'] };
  return { originatingBroker: md.originating_broker, brokers: md.brokers, topics: md.topics };
}
