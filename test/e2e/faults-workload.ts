// Shared by the fault tests (faults-*.test.ts): a numbered, non-idempotent workload per
// client (value "topic:seq", key "seq"), its read-back straight from the brokers, and the
// exactly-once verdict. Not a test file itself.
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { kcatConsume } from '../support/clients/kcat.js';
import { runProcess } from '../support/clients/run.js';
import { runJavaProducer } from '../support/clients/java.js';

/**
 * java: enable.idempotence=false, 5 in flight; java-idem: the Java producer's default idempotence;
 * kcat-idem / kafkajs-idem: librdkafka / kafkajs with their idempotence switched on.
 */
export type ClientName = 'kafkajs' | 'kcat' | 'java' | 'java-idem' | 'kcat-idem' | 'kafkajs-idem';

export interface ProduceRun {
  client: ClientName;
  topics: string[];
  /** Records per topic (seq 0..count-1). */
  count: number;
  sent: number;
  /** Records the client saw acknowledged / failed after its own retries. */
  acked: number;
  failed: number;
  /** Values the client saw fail (kafkajs and Java; kcat reports counts only). */
  failedValues?: Set<string>;
  /** kafkajs only: partition batches acknowledged per topic (one per partition per send call). */
  ackedBatches?: Record<string, number>;
  elapsedMs: number;
  error?: string;
  /** Why records failed, as the client put it (Java: exception classes and messages). */
  failures?: string;
}

export interface ClientTimeouts {
  /** Client request timeout (also the produce timeout it sends). */
  requestMs: number;
  /** How long a record may take overall before the client gives up on it. */
  deliveryMs: number;
}

/** Resolves at `t0 + paceMs * done / total`: spreads a workload over paceMs (no wait when 0). */
async function pace(t0: number, paceMs: number, done: number, total: number): Promise<void> {
  const wait = t0 + (paceMs * done) / total - Date.now();
  if (paceMs > 0 && wait > 0) await new Promise((r) => setTimeout(r, wait));
}

/** kafkajs 2.2.4, idempotence off unless asked, its own retries on; sequential sendBatch calls of `batch` records per topic. */
export async function produceKafkajs(bootstrap: string, topics: string[], count: number, t: ClientTimeouts, start = 0, paceMs = 0, batch = 100, idempotent = false): Promise<ProduceRun> {
  const t0 = Date.now();
  const kafka = new Kafka({
    clientId: 'faults-kafkajs',
    brokers: bootstrap.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: t.requestMs,
    // Enough retries to ride out a stall and a reconnect; a send that still fails counts as failed.
    retry: { retries: 15, initialRetryTime: 100, maxRetryTime: 2000 },
  });
  // Idempotent kafkajs keeps one request in flight per broker (its own rule).
  const producer = kafka.producer({ idempotent, maxInFlightRequests: idempotent ? 1 : undefined, createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  const run: ProduceRun = { client: idempotent ? 'kafkajs-idem' : 'kafkajs', topics, count, sent: 0, acked: 0, failed: 0, failedValues: new Set(), ackedBatches: {}, elapsedMs: 0 };
  // connect() gives up on the first Metadata timeout (a dropped answer) where sends would retry:
  // try it a few times, so a run measures the sends, not kafkajs's connect.
  for (let attempt = 1; ; attempt++) {
    try {
      await producer.connect();
      break;
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
  // kafkajs 2.2.4 loses acknowledged records when one send spans partitions of several leaders
  // and is retried across a leader change: sendMessages.js keeps one response per broker and, on
  // the retry, re-sends only to brokers without one, after regrouping partitions by their new
  // leader — a partition that moved to a broker that had already answered is never re-sent, yet
  // the send resolves (seen without the sidecar: 65-70 of 15,000 acked records missing). So each
  // send here carries one partition (all partitions' sends run together): the runs then measure
  // the sidecar, not that client bug.
  const admin = kafka.admin();
  await admin.connect();
  let partitions: Map<string, number>;
  try {
    const md = await admin.fetchTopicMetadata({ topics });
    partitions = new Map(md.topics.map((tm) => [tm.name, tm.partitions.length]));
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  try {
    for (let i = 0; i < count; i += batch) {
      const seqs = Array.from({ length: Math.min(batch, count - i) }, (_, k) => start + i + k);
      const sends = topics.flatMap((topic) => {
        const n = partitions.get(topic) ?? 1;
        return Array.from({ length: n }, (_, p) => ({ topic, messages: seqs.filter((s) => s % n === p).map((s) => ({ key: String(s), value: `${topic}:${s}`, partition: p })) })).filter((tm) => tm.messages.length > 0);
      });
      run.sent += seqs.length * topics.length;
      await Promise.all(
        sends.map(async (tm) => {
          try {
            const md = await producer.sendBatch({ topicMessages: [tm], acks: -1, timeout: t.requestMs });
            run.acked += tm.messages.length;
            for (const m of md) run.ackedBatches![m.topicName] = (run.ackedBatches![m.topicName] ?? 0) + 1;
          } catch {
            run.failed += tm.messages.length;
            for (const m of tm.messages) run.failedValues!.add(m.value);
          }
        }),
      );
      await pace(t0, paceMs, i + seqs.length, count);
    }
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
  run.elapsedMs = Date.now() - t0;
  return run;
}

/**
 * librdkafka via kcat, one process per topic (run together), enable.idempotence=false.
 * -E: kcat otherwise exits on any error event, e.g. "all broker connections are down" after
 * one lost connection to a single broker, instead of letting librdkafka reconnect and retry.
 */
export async function produceKcat(bootstrap: string, topics: string[], count: number, t: ClientTimeouts, start = 0, idempotent = false): Promise<ProduceRun> {
  const t0 = Date.now();
  const props: Record<string, string | number | boolean> = {
    'enable.idempotence': idempotent,
    acks: 'all',
    'message.send.max.retries': 1000,
    'retry.backoff.ms': 100,
    'request.timeout.ms': t.requestMs,
    'socket.timeout.ms': t.requestMs,
    'message.timeout.ms': t.deliveryMs,
    'linger.ms': 5,
    // librdkafka fills batches up to 1 MB from a fast stdin; requests that large are cut by
    // nearly every relay fault window and retried for ever. ~200 records keeps them ~10 KB.
    'batch.num.messages': 200,
  };
  const results = await Promise.all(
    topics.map(async (topic) => {
      const args = ['-P', '-E', '-b', bootstrap, '-t', topic, '-K', '|', ...Object.entries(props).flatMap(([k, v]) => ['-X', `${k}=${v}`])];
      const input = Array.from({ length: count }, (_, i) => `${start + i}|${topic}:${start + i}`).join('\n') + '\n';
      const r = await runProcess('kcat', args, { input, timeoutMs: t.deliveryMs + 120_000 });
      return { exitCode: r.code, deliveryFailures: (r.stderr.match(/Delivery failed/g) ?? []).length, stderr: r.stderr, timedOut: r.timedOut };
    }),
  );
  const failed = results.reduce((s, r) => s + r.deliveryFailures, 0);
  const bad = results.find((r) => r.timedOut || (r.exitCode !== 0 && r.deliveryFailures === 0));
  return {
    client: idempotent ? 'kcat-idem' : 'kcat',
    topics,
    count,
    sent: count * topics.length,
    acked: count * topics.length - failed,
    failed,
    elapsedMs: Date.now() - t0,
    error: bad ? `kcat exit ${bad.exitCode}: ${bad.stderr.slice(-500)}` : undefined,
  };
}

/** The Java producer (kafka-clients 4.3), acks=all, retries on, idempotence off unless asked. */
export async function produceJava(bootstrap: string, topics: string[], count: number, t: ClientTimeouts, start = 0, idempotent = false, delayMs = 0): Promise<ProduceRun> {
  const r = await runJavaProducer({
    bootstrap,
    topics,
    count,
    start,
    delayMs,
    reportFailed: true,
    props: {
      'enable.idempotence': idempotent,
      acks: 'all',
      retries: 2147483647,
      'max.in.flight.requests.per.connection': 5,
      'request.timeout.ms': t.requestMs,
      'delivery.timeout.ms': t.deliveryMs,
      'retry.backoff.ms': 100,
      'linger.ms': 5,
      'batch.size': 8192, // ~10 KB requests, as for kcat and kafkajs
    },
    timeoutMs: t.deliveryMs + 120_000,
  });
  const failures = r.failed > 0 ? `${JSON.stringify(r.errors)} ${r.errorMessages.join('; ')}` : undefined;
  return {
    client: idempotent ? 'java-idem' : 'java',
    topics,
    count,
    sent: r.sent,
    acked: r.acked,
    failed: r.failed,
    failedValues: new Set(r.failedValues),
    elapsedMs: r.elapsedMs,
    error: r.fatal ?? undefined,
    failures,
  };
}

/**
 * Produces seq start..start+count-1 to every topic. paceMs > 0 spreads the records over about
 * that long (so slow events, e.g. a broker restart, land mid-stream): Java sleeps between
 * sends, kafkajs between sendBatch calls, kcat runs 10 chunks one after the other.
 */
export async function produce(client: ClientName, bootstrap: string, topics: string[], count: number, t: ClientTimeouts, start = 0, paceMs = 0): Promise<ProduceRun> {
  if (client === 'kafkajs' || client === 'kafkajs-idem') return produceKafkajs(bootstrap, topics, count, t, start, paceMs, 100, client === 'kafkajs-idem');
  if (client === 'kcat' || client === 'kcat-idem') {
    const idem = client === 'kcat-idem';
    if (paceMs <= 0) return produceKcat(bootstrap, topics, count, t, start, idem);
    const t0 = Date.now();
    const chunks: ProduceRun[] = [];
    const chunk = Math.ceil(count / 10);
    for (let done = 0; done < count; done += chunk) {
      chunks.push(await produceKcat(bootstrap, topics, Math.min(chunk, count - done), t, start + done, idem));
      await pace(t0, paceMs, done + chunk, count);
    }
    return { ...mergeRuns(chunks), count };
  }
  const delayMs = paceMs > 0 ? Math.max(1, Math.round(paceMs / (count * topics.length))) : 0;
  return produceJava(bootstrap, topics, count, t, start, client === 'java-idem', delayMs);
}

/** One run out of consecutive chunks (seq ranges in order) of the same client and topics. */
export function mergeRuns(runs: ProduceRun[]): ProduceRun {
  const out: ProduceRun = { ...runs[0], count: 0, sent: 0, acked: 0, failed: 0, elapsedMs: 0, failedValues: runs[0].failedValues ? new Set() : undefined, ackedBatches: runs[0].ackedBatches ? {} : undefined };
  for (const r of runs) {
    out.count += r.count;
    out.sent += r.sent;
    out.acked += r.acked;
    out.failed += r.failed;
    out.elapsedMs += r.elapsedMs;
    out.error ??= r.error;
    for (const v of r.failedValues ?? []) out.failedValues?.add(v);
    for (const [t, n] of Object.entries(r.ackedBatches ?? {})) out.ackedBatches![t] = (out.ackedBatches![t] ?? 0) + n;
  }
  return out;
}

export interface Verdict {
  client: ClientName;
  records: number;
  /** Distinct values found / expected. */
  present: number;
  missing: number;
  /** Extra copies of values already present (sum over values of copies - 1). */
  duplicates: number;
  /** Records (after the first copy) whose key is not above the previous key of its partition. */
  orderViolations: number;
  /**
   * Records (first copies) landing behind a record sent after them: key below the highest key
   * already in the partition. Each producer in these workloads is one connection per broker,
   * so this is order per partition per producing connection.
   */
  reordered: number;
  /**
   * Values the client saw acknowledged and that are absent. Exact when the client reports
   * which records failed (kafkajs, Java); for kcat (counts only) missing - failed, a lower bound.
   */
  ackedMissing: number;
  /** Values the client saw fail and that are present more than once. */
  failedTwice: number;
  /** Where the copies are (for bisecting): per partition, runs of consecutive copied offsets. */
  duplicateRuns: string[];
}

/** Reads every topic of a run straight from the broker and compares with what was sent. */
export async function verify(directBootstrap: string, run: ProduceRun): Promise<Verdict> {
  const v: Verdict = { client: run.client, records: 0, present: 0, missing: 0, duplicates: 0, orderViolations: 0, reordered: 0, ackedMissing: 0, failedTwice: 0, duplicateRuns: [] };
  for (const topic of run.topics) {
    const recs = await kcatConsume({ bootstrap: directBootstrap, topic, timeoutMs: 120_000 });
    v.records += recs.length;
    const copies = new Map<string, number>();
    const firstAt = new Map<string, number>();
    const copied: { partition: number; offset: number; first: number; key: string }[] = [];
    const lastKey = new Map<number, number>();
    const maxKey = new Map<number, number>();
    for (const r of recs.sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
      const value = r.value ?? '';
      const n = (copies.get(value) ?? 0) + 1;
      copies.set(value, n);
      if (n > 1) {
        copied.push({ partition: r.partition, offset: r.offset, first: firstAt.get(value)!, key: r.key ?? '' });
        continue;
      }
      firstAt.set(value, r.offset);
      // Each producer's sequence, per partition, must appear in order (first copies only).
      const key = Number(r.key);
      const prev = lastKey.get(r.partition);
      if (prev !== undefined && key <= prev) v.orderViolations++;
      lastKey.set(r.partition, key);
      const max = maxKey.get(r.partition);
      if (max !== undefined && key < max) v.reordered++;
      else maxKey.set(r.partition, key);
    }
    v.duplicateRuns.push(...copyRuns(topic, copied));
    for (let s = 0; s < run.count; s++) {
      const value = `${topic}:${s}`;
      const n = copies.get(value) ?? 0;
      if (n === 0) {
        v.missing++;
        if (run.failedValues && !run.failedValues.has(value)) v.ackedMissing++;
      } else v.present++;
      if (n > 1) {
        v.duplicates += n - 1;
        if (run.failedValues?.has(value)) v.failedTwice++;
      }
    }
  }
  if (!run.failedValues) v.ackedMissing = Math.max(0, v.missing - run.failed);
  return v;
}

/** Copies grouped into runs of consecutive offsets: "topic-p: keys 361-397 at 1200-1236 (first copies at 1100-1136)". */
function copyRuns(topic: string, copied: { partition: number; offset: number; first: number; key: string }[]): string[] {
  const out: string[] = [];
  let run: (typeof copied)[number][] = [];
  const flush = () => {
    if (run.length === 0) return;
    const a = run[0];
    const z = run[run.length - 1];
    out.push(`${topic}-${a.partition}: ${run.length} copies, keys ${a.key}..${z.key} at offsets ${a.offset}..${z.offset} (first copies at ${a.first}..${z.first})`);
    run = [];
  };
  for (const c of copied) {
    const last = run[run.length - 1];
    if (last && (last.partition !== c.partition || last.offset + 1 !== c.offset)) flush();
    run.push(c);
  }
  flush();
  return out;
}

/** A policy file for the sidecar (JSON is YAML): short upstream timeouts so stalls are detected. */
export function sidecarConfig(spec: Record<string, unknown>): { file: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'idempo-faults-'));
  const file = path.join(dir, 'policy.json');
  writeFileSync(file, JSON.stringify(spec));
  return { file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
