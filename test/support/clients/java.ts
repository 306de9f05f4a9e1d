// The Java test client (IdempoClient.java, on Apache Kafka's kafka-clients) and the Kafka jars.
// The client is compiled on demand into the cache and recompiled when its source changes.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runProcess, type RunResult } from './run.js';

/** Repo root, found by walking up (this file also runs compiled from dist/), else the cwd. */
export const repoRoot: string = (() => {
  for (const start of [import.meta.dirname, process.cwd()]) {
    for (let d = start; ; d = path.dirname(d)) {
      if (existsSync(path.join(d, 'scripts/kafka/fetch.sh'))) return d;
      if (path.dirname(d) === d) break;
    }
  }
  throw new Error(`cannot find the idempo repo root above ${import.meta.dirname} or ${process.cwd()}`);
})();

export const cacheDir: string = process.env.IDEMPO_CACHE ?? path.join(os.homedir(), '.cache/idempo');

let libsPromise: Promise<string> | undefined;
/** Directory of the Kafka 4.3 jars (scripts/kafka/fetch.sh downloads them once). */
export function kafkaLibsDir(): Promise<string> {
  libsPromise ??= runProcess(path.join(repoRoot, 'scripts/kafka/fetch.sh'), [], { timeoutMs: 600_000 }).then((r) => {
    if (r.code !== 0) throw new Error(`scripts/kafka/fetch.sh failed: ${r.stderr}`);
    return r.stdout.trim().split('\n').pop()!;
  });
  return libsPromise;
}

let builtPromise: Promise<{ dir: string; jar: string; libs: string }> | undefined;
/** Compiles IdempoClient.java into a jar in the cache (once per source + jar set). */
export function javaClientBuild(): Promise<{ dir: string; jar: string; libs: string }> {
  builtPromise ??= (async () => {
    const libs = await kafkaLibsDir();
    const src = path.join(repoRoot, 'test/support/clients/IdempoClient.java');
    const hash = createHash('sha256').update(readFileSync(src)).update(libs).update(readdirSync(libs).join(',') + statSync(libs).mtimeMs).digest('hex').slice(0, 16);
    const dir = path.join(cacheDir, 'java-client', hash);
    // A jar, not a class dir: class-data-sharing archives (kafka.ts) refuse directories on the classpath.
    const jar = path.join(dir, 'idempo-client.jar');
    if (!existsSync(jar)) {
      // Build in a private dir and rename: concurrent test processes never see half a build.
      const tmp = `${dir}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(path.join(tmp, 'classes'), { recursive: true });
      const r = await runProcess('javac', ['-nowarn', '-encoding', 'UTF-8', '-d', path.join(tmp, 'classes'), '-cp', `${libs}/*`, src], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`javac IdempoClient.java failed:\n${r.stderr}`);
      const j = await runProcess('jar', ['cf', path.join(tmp, 'idempo-client.jar'), '-C', path.join(tmp, 'classes'), '.'], { timeoutMs: 60_000 });
      if (j.code !== 0) throw new Error(`jar failed:\n${j.stderr}`);
      if (!existsSync(jar)) rmSync(dir, { recursive: true, force: true }); // leftovers of an interrupted build
      try {
        renameSync(tmp, dir);
      } catch {
        rmSync(tmp, { recursive: true, force: true }); // another process won the race
      }
    }
    pruneOldBuilds(dir);
    return { dir, jar, libs };
  })();
  builtPromise.catch(() => (builtPromise = undefined));
  return builtPromise;
}

// Builds of older sources (each may hold a ~50 MB class-data archive) go after a day unused.
function pruneOldBuilds(keep: string): void {
  const root = path.dirname(keep);
  for (const name of readdirSync(root)) {
    const d = path.join(root, name);
    try {
      if (d !== keep && Date.now() - statSync(d).mtimeMs > 86_400_000) rmSync(d, { recursive: true, force: true });
    } catch {
      /* raced with another process */
    }
  }
}

/** Classpath with the compiled IdempoClient and every Kafka jar. */
export async function javaClasspath(): Promise<string> {
  const b = await javaClientBuild();
  return `${b.jar}:${b.libs}/*`;
}

/** JVM flags for short-lived clients: C1 only and serial GC start noticeably faster. */
export const clientJvmOpts = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-Xmx256m', '-XX:+UnlockDiagnosticVMOptions', '-XX:-BytecodeVerificationRemote'];

/** Runs `IdempoClient ARGS`; the JVM dies with this process (stdin watch) or at the timeout. */
export async function runIdempoClient(args: string[], timeoutMs = 120_000, jvmOpts: string[] = clientJvmOpts): Promise<RunResult> {
  const cp = await javaClasspath();
  const log4j = path.join(repoRoot, 'scripts/kafka/log4j2-client.properties');
  return runProcess('java', [...jvmOpts, `-Dlog4j2.configurationFile=${log4j}`, '-cp', cp, 'IdempoClient', ...args], {
    timeoutMs,
    holdStdin: true,
    env: { ...process.env, IDEMPO_WATCH_STDIN: '1' },
  });
}

function propsArgs(props?: Record<string, string | number | boolean>): string[] {
  return Object.entries(props ?? {}).flatMap(([k, v]) => ['--prop', `${k}=${v}`]);
}

function lastJson<T>(r: RunResult, what: string): T {
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) {
    throw new Error(
      `${what}: no JSON result (exit ${r.code}${r.timedOut ? ', killed at timeout' : ''})\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-4000)}`,
    );
  }
  return JSON.parse(line) as T;
}

export interface JavaProducerOptions {
  bootstrap: string;
  topics: string[];
  /** Records per topic: seq start..start+count-1, key = seq, value = "topic:seq" (or JSON). */
  count: number;
  start?: number;
  partition?: number;
  valueFormat?: 'text' | 'json';
  /** Pad each value with '.' to this many bytes. */
  valueSize?: number;
  /** Report the values of failed records (failedValues), not only their count. */
  reportFailed?: boolean;
  /** Pause between sends (slow producers for failover tests). */
  delayMs?: number;
  /** Every record carries this timestamp (set by the application). */
  timestamp?: number;
  /** Each record is sent this many times in a row (separate send() calls). */
  repeat?: number;
  /** Producer configs, e.g. { acks: 'all', 'enable.idempotence': false }. */
  props?: Record<string, string | number | boolean>;
  timeoutMs?: number;
}

export interface JavaProducerResult {
  sent: number;
  acked: number;
  failed: number;
  /** Failed records by exception class simple name, e.g. { PolicyViolationException: 3 }. */
  errors: Record<string, number>;
  errorMessages: string[];
  /** Values of the failed records (empty unless reportFailed). */
  failedValues: string[];
  /** "topic-partition" -> acked records and the offset range they got. */
  partitions: Record<string, { count: number; minOffset: number; maxOffset: number }>;
  elapsedMs: number;
  /** Set when the producer hit a fatal error (send() threw, e.g. fenced or bad config). */
  fatal: string | null;
  exitCode: number | null;
  stderr: string;
}

/** Java producer (kafka-clients 4.3). Resolves with the summary even when records failed. */
export async function runJavaProducer(o: JavaProducerOptions): Promise<JavaProducerResult> {
  const args = ['produce', '--bootstrap', o.bootstrap, '--topics', o.topics.join(','), '--count', String(o.count)];
  if (o.start !== undefined) args.push('--start', String(o.start));
  if (o.partition !== undefined) args.push('--partition', String(o.partition));
  if (o.valueFormat) args.push('--value-format', o.valueFormat);
  if (o.delayMs) args.push('--delay-ms', String(o.delayMs));
  if (o.valueSize) args.push('--value-size', String(o.valueSize));
  if (o.reportFailed) args.push('--report-failed', 'true');
  if (o.timestamp !== undefined) args.push('--timestamp', String(o.timestamp));
  if (o.repeat !== undefined) args.push('--repeat', String(o.repeat));
  args.push(...propsArgs(o.props));
  const r = await runIdempoClient(args, o.timeoutMs ?? 120_000);
  const s = lastJson<Omit<JavaProducerResult, 'exitCode' | 'stderr'>>(r, 'java producer');
  return { ...s, fatal: s.fatal ?? null, exitCode: r.code, stderr: r.stderr };
}

export interface ConsumedRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
}

export interface JavaConsumerOptions {
  bootstrap: string;
  topics: string[];
  /** Stop after this many records (plus lingerMs), or at timeoutMs. */
  expect: number;
  group?: string;
  timeoutMs?: number;
  /** Keep polling this long after `expect` arrived, to catch duplicates. */
  lingerMs?: number;
  props?: Record<string, string | number | boolean>;
}

export interface JavaConsumerResult {
  count: number;
  timedOut: boolean;
  elapsedMs: number;
  records: ConsumedRecord[];
  /** topic -> partition -> records in offset order. */
  byPartition: Record<string, Record<number, ConsumedRecord[]>>;
}

/** Java consumer in a consumer group (auto.offset.reset=earliest unless props say otherwise). */
export async function runJavaConsumer(o: JavaConsumerOptions): Promise<JavaConsumerResult> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  const args = ['consume', '--bootstrap', o.bootstrap, '--topics', o.topics.join(','), '--expect', String(o.expect), '--timeout-ms', String(timeoutMs)];
  if (o.group) args.push('--group', o.group);
  if (o.lingerMs) args.push('--linger-ms', String(o.lingerMs));
  args.push(...propsArgs(o.props));
  const r = await runIdempoClient(args, timeoutMs + (o.lingerMs ?? 0) + 60_000);
  const s = lastJson<{ count: number; timedOut: boolean; elapsedMs: number; records: { t: string; p: number; o: number; k: string | null; v: string | null }[]; fatal?: string }>(r, 'java consumer');
  if (s.fatal) throw new Error(`java consumer: ${s.fatal}`);
  const records = s.records.map((x) => ({ topic: x.t, partition: x.p, offset: x.o, key: x.k, value: x.v }));
  return { count: s.count, timedOut: s.timedOut, elapsedMs: s.elapsedMs, records, byPartition: groupByPartition(records) };
}

export function groupByPartition(records: ConsumedRecord[]): Record<string, Record<number, ConsumedRecord[]>> {
  const out: Record<string, Record<number, ConsumedRecord[]>> = {};
  for (const r of records) ((out[r.topic] ??= {})[r.partition] ??= []).push(r);
  for (const t of Object.values(out)) for (const l of Object.values(t)) l.sort((a, b) => a.offset - b.offset);
  return out;
}

/** Java admin op (create-topic, describe-cluster, describe-topic, move-leader); returns its JSON. Throws on failure. */
export async function runJavaAdmin<T = unknown>(op: string, bootstrap: string, args: Record<string, string | number> = {}, timeoutMs = 90_000): Promise<T> {
  const a = ['admin', op, '--bootstrap', bootstrap, ...Object.entries(args).flatMap(([k, v]) => [`--${k}`, String(v)])];
  const r = await runIdempoClient(a, timeoutMs);
  const s = lastJson<T & { fatal?: string }>(r, `java admin ${op}`);
  if (r.code !== 0 || s.fatal) throw new Error(`java admin ${op} failed (exit ${r.code}): ${s.fatal ?? r.stderr.slice(-2000)}`);
  return s;
}
