// Issue 8 item 4: memory bounded in bytes. The injected container has a 256 Mi limit. A Java
// consumer fetching 50 MiB answers from 3 brokers at once, while producers write through the
// same sidecar at full speed, must leave the sidecar's peak resident set under that limit:
// answers nobody rewrites are streamed to the client, never held whole, and what the sidecar
// must hold whole is bounded by --max-buffered-bytes. (A bound, not a timing: the peak is
// printed for the record.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { kafkaLibsDir, repoRoot } from '../support/clients/java.js';
import { runProcess } from '../support/clients/run.js';
import { runProducerPerf } from '../../bench/producer-perf.js';
import { sampleProcess } from '../../bench/proc-stats.js';

const MiB = 1024 * 1024;
const CONTAINER_LIMIT = 256 * MiB;
const FETCH_BYTES = 50 * MiB;
/** Records per partition: a little over 50 MiB each, so every first fetch comes back full. */
const RECORDS_PER_PARTITION = 56 * 1024;

let kafka: KafkaCluster;
let sidecar: Sidecar;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'idempo-memory-'));
  kafka = await startKafka({ brokers: 3 });
  // One partition per broker (replication 1): the consumer fetches from all three at once.
  await kafka.createTopic('big', 3, 1);
  await kafka.createTopic('load', 3, 1);
  const leaders = new Set((await kafka.describeTopic('big')).map((p) => p.leader));
  expect(leaders.size).toBe(3);
  // Written directly to the brokers (fast, big batches): ~56 MiB per partition.
  await runProducerPerf({ bootstrap: kafka.bootstrap, topic: 'big', records: 3 * RECORDS_PER_PARTITION, recordSize: 1024, props: { 'linger.ms': 20, 'batch.size': 1 << 20, partitioner: 'org.apache.kafka.clients.producer.RoundRobinPartitioner' } });
  sidecar = await startSidecar({ upstream: kafka.bootstrap, mode: 'upgrade', logLevel: 'warn' });
}, 300_000);

afterAll(async () => {
  await sidecar?.stop();
  await kafka?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function consumeThroughSidecar(records: number): Promise<string> {
  const libs = await kafkaLibsDir();
  const config = path.join(dir, 'consumer.properties');
  writeFileSync(config, [`fetch.max.bytes=${FETCH_BYTES}`, `max.partition.fetch.bytes=${FETCH_BYTES}`, 'auto.offset.reset=earliest', 'receive.buffer.bytes=-1', ''].join('\n'));
  const r = await runProcess(
    'java',
    [
      '-Xmx768m',
      `-Dlog4j2.configurationFile=${path.join(repoRoot, 'scripts/kafka/log4j2-client.properties')}`,
      '-cp', `${libs}/*`, 'org.apache.kafka.tools.ConsumerPerformance',
      '--bootstrap-server', sidecar.bootstrap, '--topic', 'big', '--num-records', String(records),
      '--command-config', config, '--fetch-size', String(FETCH_BYTES), '--timeout', '120000', '--group', `memory-${Date.now()}`,
    ],
    { timeoutMs: 300_000 },
  );
  if (r.code !== 0) throw new Error(`ConsumerPerformance failed (${r.code}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-3000)}`);
  return r.stdout;
}

describe('memory bounded in bytes', () => {
  it('50 MiB fetches from 3 brokers plus producers at full speed keep the sidecar under the container limit', async () => {
    const records = 3 * RECORDS_PER_PARTITION;
    const [consumed] = await Promise.all([
      consumeThroughSidecar(records),
      runProducerPerf({ bootstrap: sidecar.bootstrap, topic: 'load', records: 200_000, recordSize: 1024, props: { 'linger.ms': 5 } }),
      runProducerPerf({ bootstrap: sidecar.bootstrap, topic: 'load', records: 200_000, recordSize: 1024, props: { 'linger.ms': 5, acks: 1 } }),
    ]);
    // ConsumerPerformance's result line: start, end, MB, MB/s, records, ...
    const line = consumed.trim().split('\n').pop()!;
    expect(Number(line.split(',')[4])).toBeGreaterThanOrEqual(records);
    const peak = sampleProcess(sidecar.proc.pid!).peakRssBytes;
    console.log(`sidecar peak RSS (VmHWM) with 50 MiB fetches from 3 brokers + 2 producers: ${(peak / MiB).toFixed(1)} MiB (limit ${CONTAINER_LIMIT / MiB} MiB)`);
    expect(peak).toBeLessThan(CONTAINER_LIMIT);
    // Every answer went back to its client: nothing is held after the run.
    expect(await sidecar.metric('idempo_buffered_bytes')).toBe(0);
  }, 600_000);
});
