// Sanity run of the benchmark pieces: Kafka's producer benchmark straight against a broker
// (no sidecar), with the broker's CPU and peak RSS. The baseline the sidecar runs compare to.
//   make build && node dist/bench/direct.js [records]
// Uses $KAFKA_BOOTSTRAP when set (e.g. from make kafka-up), else starts its own broker.
import { startKafka, type KafkaCluster } from '../test/support/kafka.js';
import { kafkajsCreateTopics } from '../test/support/clients/kafkajs.js';
import { sampleProcess, cpuBetween } from './proc-stats.js';
import { cacheDir } from '../test/support/clients/java.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runProducerPerf } from './producer-perf.js';

const records = Number(process.argv[2] ?? 200_000);

// The broker of scripts/kafka/up.sh, when $KAFKA_BOOTSTRAP is its address (for CPU/RSS figures).
function upPid(bootstrap: string): number | undefined {
  try {
    const run = path.join(cacheDir, 'run/kafka');
    if (readFileSync(path.join(run, 'bootstrap'), 'utf8').trim() !== bootstrap) return undefined;
    return Number(readFileSync(path.join(run, 'pid'), 'utf8').trim());
  } catch {
    return undefined;
  }
}
let kafka: KafkaCluster | undefined;
try {
  let bootstrap = process.env.KAFKA_BOOTSTRAP;
  if (!bootstrap) {
    // Full JIT and G1 for the broker: a benchmark, not a quick test.
    kafka = await startKafka({ brokers: 1, jvmOpts: ['-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20'], heap: '1g' });
    bootstrap = kafka.bootstrap;
    console.log(`broker started in ${kafka.startMs} ms at ${bootstrap}`);
  }
  const topic = `bench-direct-${Date.now()}`;
  await kafkajsCreateTopics(bootstrap, [{ topic, numPartitions: 3, replicationFactor: 1 }]);
  const pid = kafka ? kafka.pid(1) : upPid(bootstrap);

  // Warm-up so JIT compilation in broker and producer does not count in the measured run.
  await runProducerPerf({ bootstrap, topic, records: Math.min(50_000, records), recordSize: 1024, acks: 'all' });
  const before = pid ? sampleProcess(pid) : undefined;
  const r = await runProducerPerf({ bootstrap, topic, records, recordSize: 1024, acks: 'all', props: { 'linger.ms': 5 } });
  const after = pid ? sampleProcess(pid) : undefined;

  console.log(r.line);
  const figures: Record<string, number | string> = {
    records: r.records,
    recordsPerSec: r.recordsPerSec,
    mbPerSec: r.mbPerSec,
    avgLatencyMs: r.avgLatencyMs,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    maxLatencyMs: r.maxLatencyMs,
  };
  if (before && after) {
    const cpu = cpuBetween(before, after);
    figures.brokerCpuSeconds = Number(cpu.cpuSeconds.toFixed(2));
    figures.brokerCores = Number(cpu.cores.toFixed(2));
    figures.brokerPeakRssMiB = Math.round(after.peakRssBytes / 2 ** 20);
  }
  console.table(figures);
} finally {
  await kafka?.stop();
}
