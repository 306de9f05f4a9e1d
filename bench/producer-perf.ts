// Runs Apache Kafka's own producer benchmark (org.apache.kafka.tools.ProducerPerformance, the
// Java producer) against any bootstrap string, and parses its final summary line.
import { kafkaLibsDir, repoRoot } from '../test/support/clients/java.js';
import { runProcess } from '../test/support/clients/run.js';
import path from 'node:path';

export interface ProducerPerfOptions {
  bootstrap: string;
  topic: string;
  records: number;
  /** Bytes per record (default 1024). */
  recordSize?: number;
  /** Producer acks (default 'all'). */
  acks?: 'all' | '-1' | '1' | '0';
  /** Records/s cap; -1 (default) = as fast as possible. */
  throughput?: number;
  /** More producer configs (linger.ms, batch.size, enable.idempotence, ...). */
  props?: Record<string, string | number | boolean>;
  /** JVM flags for the load generator (default: full JIT, G1, 512 MiB heap). */
  jvmOpts?: string[];
  timeoutMs?: number;
}

export interface ProducerPerfResult {
  records: number;
  recordsPerSec: number;
  mbPerSec: number;
  avgLatencyMs: number;
  maxLatencyMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  p999Ms: number;
  /** The summary line as printed. */
  line: string;
  elapsedMs: number;
}

// e.g. "100000 records sent, 25361.399 records/sec (24.77 MB/sec), 980.12 ms avg latency,
//       1420.00 ms max latency, 1011 ms 50th, 1339 ms 95th, 1399 ms 99th, 1416 ms 99.9th."
const SUMMARY =
  /(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th/;

/** Parses ProducerPerformance's final summary line; null for progress lines. */
export function parseProducerPerfLine(line: string): Omit<ProducerPerfResult, 'elapsedMs'> | null {
  const m = SUMMARY.exec(line);
  if (!m) return null;
  const n = m.slice(1).map(Number);
  return {
    records: n[0], recordsPerSec: n[1], mbPerSec: n[2], avgLatencyMs: n[3], maxLatencyMs: n[4],
    p50Ms: n[5], p95Ms: n[6], p99Ms: n[7], p999Ms: n[8], line: line.trim(),
  };
}

export async function runProducerPerf(o: ProducerPerfOptions): Promise<ProducerPerfResult> {
  const libs = await kafkaLibsDir();
  const props = { acks: o.acks ?? 'all', 'client.id': 'idempo-bench', ...o.props };
  const args = [
    ...(o.jvmOpts ?? ['-Xmx512m', '-XX:+UseG1GC']),
    `-Dlog4j2.configurationFile=${path.join(repoRoot, 'scripts/kafka/log4j2-client.properties')}`,
    '-cp', `${libs}/*`, 'org.apache.kafka.tools.ProducerPerformance',
    '--bootstrap-server', o.bootstrap, '--topic', o.topic, '--num-records', String(o.records),
    '--record-size', String(o.recordSize ?? 1024), '--throughput', String(o.throughput ?? -1),
    '--command-property', ...Object.entries(props).map(([k, v]) => `${k}=${v}`),
  ];
  const r = await runProcess('java', args, { timeoutMs: o.timeoutMs ?? 600_000 });
  const lines = r.stdout.trim().split('\n');
  const parsed = lines.map(parseProducerPerfLine).filter((x) => x !== null).pop();
  if (r.code !== 0 || !parsed) {
    throw new Error(`ProducerPerformance failed (exit ${r.code}${r.timedOut ? ', killed at timeout' : ''}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-3000)}`);
  }
  return { ...parsed, elapsedMs: r.ms };
}
