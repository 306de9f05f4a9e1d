// Issue 8 item 4: memory bounded in bytes. The injected container has a 256 Mi limit. A Java
// consumer fetching 50 MiB answers from 3 brokers at once, while producers write through the
// same sidecar at full speed, must leave the sidecar's peak resident set under that limit:
// answers nobody rewrites are streamed to the client, never held whole, and what the sidecar
// must hold whole is bounded by --max-buffered-bytes. (A bound, not a timing: the peak is
// printed for the record.) And a full byte budget slows clients down, never stalls them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { kafkaLibsDir, repoRoot } from '../support/clients/java.js';
import { runProcess } from '../support/clients/run.js';
import { kafkajsClient } from '../support/clients/kafkajs.js';
import { RawConnection } from '../support/raw-kafka.js';
import { Writer } from '../../sidecar/codec/writer.js';
import { ApiKey } from '../../sidecar/codec/api.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, encodeProduceRequest } from '../../sidecar/codec/generated/produce-request.js';
import { decodeProduceResponse } from '../../sidecar/codec/generated/produce-response.js';
import { encodeRecordBatch } from '../../sidecar/codec/records.js';
import { runProducerPerf } from '../../bench/producer-perf.js';
import { sampleProcess } from '../../bench/proc-stats.js';
import { waitFor } from '../support/poll.js';

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

async function endOffsets(topic: string): Promise<number> {
  const admin = kafkajsClient(kafka.bootstrap).admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}

describe('a full byte budget', () => {
  it('makes producers wait, never stalls them: every record is written', async () => {
    // 1 MiB for the sidecar and for a connection, while the Java producer keeps 5 requests of
    // up to 256 KiB in flight per broker: requests wait for budget, and the answers that give
    // it back must still be read (they never wait for it).
    const tight = await startSidecar({ upstream: kafka.bootstrap, mode: 'observe', logLevel: 'warn', extraArgs: ['--max-buffered-bytes', '1Mi', '--max-connection-buffered-bytes', '1Mi'] });
    try {
      await kafka.createTopic('tight', 3, 1);
      const records = 60_000;
      await runProducerPerf({ bootstrap: tight.bootstrap, topic: 'tight', records, recordSize: 1024, props: { 'linger.ms': 20, 'batch.size': 262144, 'delivery.timeout.ms': 120000 } });
      expect(await endOffsets('tight')).toBe(records);
      expect(await tight.metric('idempo_memory_limit_waits_total')).toBeGreaterThan(0);
      expect(tight.logs().some((l) => l.includes('memory limit reached'))).toBe(true);
      expect(await tight.metric('idempo_buffered_bytes')).toBe(0);
    } finally {
      await tight.stop();
    }
  }, 600_000);

  it('reads the answer to a request that filled the budget to the last bytes', async () => {
    // A request of exactly the connection's limit minus 16 bytes: its answer needs more than
    // 16 bytes. An answer that waited for budget would wait for itself; the client would hang.
    const limit = 1 << 20;
    // The raw connection goes to the sidecar's bootstrap listener, which is paired with its one
    // --upstream broker: make that the partition's leader, or every produce is NOT_LEADER_OR_FOLLOWER.
    await kafka.createTopic('brim', 1, 1);
    const leaderId = (await kafka.describeTopic('brim'))[0].leader;
    const leader = kafka.brokers.find((b) => b.id === leaderId)!;
    const tight = await startSidecar({ upstream: `${leader.host}:${leader.port}`, mode: 'observe', logLevel: 'warn', extraArgs: ['--max-buffered-bytes', '2Mi', '--max-connection-buffered-bytes', '1Mi'] });
    const c = await RawConnection.connect(tight.bootstrap);
    let paused: number | undefined;
    try {
      const request = (valueBytes: number) => {
        const req = createProduceRequest();
        req.acks = -1;
        req.timeoutMs = 30_000;
        const td = createTopicProduceData();
        td.name = 'brim';
        const pd = createPartitionProduceData();
        pd.records = encodeRecordBatch({ records: [{ value: Buffer.alloc(valueBytes, 'v') }] });
        td.partitionData.push(pd);
        req.topicData.push(td);
        return req;
      };
      // The request payload (what the budget counts) for a value size: header + body.
      const header = 2 + 2 + 4 + 2 + 'raw-test'.length + 1;
      const payload = (v: number) => {
        const w = new Writer(v + 256);
        encodeProduceRequest(w, request(v), 9);
        return header + w.toBuffer().length;
      };
      // A new topic can answer NOT_LEADER_OR_FOLLOWER for a moment: produce a small record until it is taken.
      await expect
        .poll(async () => {
          const corr = c.send(ApiKey.Produce, 9, (w) => encodeProduceRequest(w, request(10), 9));
          const answer = await c.receive(ApiKey.Produce, 9, 30_000);
          expect(answer.correlationId).toBe(corr);
          return decodeProduceResponse(answer.body, 9).responses[0].partitionResponses[0].errorCode;
        }, { timeout: 30_000, interval: 200 })
        .toBe(0);
      let v = limit - 16 - payload(0);
      for (let i = 0; i < 4; i++) v += limit - 16 - payload(v);
      expect(payload(v)).toBe(limit - 16);
      // The leader is paused (SIGSTOP) while both go out, so the first request's bytes are still
      // held (until its answer is written) when the second arrives: the second must wait for
      // them — a condition, not a race with the broker's answer.
      const brokerPid = kafka.pid(leaderId)!;
      process.kill(brokerPid, 'SIGSTOP');
      paused = brokerPid;
      const first = c.send(ApiKey.Produce, 9, (w) => encodeProduceRequest(w, request(v), 9));
      const second = c.send(ApiKey.Produce, 9, (w) => encodeProduceRequest(w, request(1000), 9)); // waits for the first's bytes
      await waitFor('the second request to wait for the first one\'s budget bytes', async () => (await tight.metric('idempo_memory_limit_waits_total', { scope: 'connection' })) > 0, 30_000, 50);
      process.kill(brokerPid, 'SIGCONT');
      paused = undefined;
      for (const corr of [first, second]) {
        const answer = await c.receive(ApiKey.Produce, 9, 60_000);
        expect(answer.correlationId).toBe(corr);
        expect(decodeProduceResponse(answer.body, 9).responses[0].partitionResponses[0].errorCode).toBe(0);
      }
    } finally {
      if (paused !== undefined) process.kill(paused, 'SIGCONT');
      c.close();
      await tight.stop();
    }
  }, 300_000);
});
