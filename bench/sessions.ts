// The sidecar's memory with 1,000 live idempotent producer sessions (enforce mode tracks
// each one): RSS after start and with the sessions, for the benchmark report.
import { RawConnection } from '../test/support/raw-kafka.js';
import { ApiKey } from '../sidecar/codec/api.js';
import { encodeInitProducerIdRequest } from '../sidecar/codec/generated/init-producer-id-request.js';
import { decodeInitProducerIdResponse } from '../sidecar/codec/generated/init-producer-id-response.js';
import { createProduceRequest, createTopicProduceData, createPartitionProduceData, encodeProduceRequest } from '../sidecar/codec/generated/produce-request.js';
import { decodeProduceResponse } from '../sidecar/codec/generated/produce-response.js';
import { startSidecar } from '../test/support/sidecar.js';
import { sampleProcess } from './proc-stats.js';
import { encodeRecordBatch } from '../sidecar/codec/records.js';

const SESSIONS = 1000;

/** Returns one report line. */
export async function measureSessions(bootstrap: string, topic: string): Promise<string> {
  const sidecar = await startSidecar({ upstream: bootstrap, mode: 'enforce', logLevel: 'warn' });
  try {
    const idle = sampleProcess(sidecar.proc.pid!);
    const c = await RawConnection.connect(sidecar.bootstrap);
    const value = Buffer.alloc(100, 'x');
    for (let i = 0; i < SESSIONS; i++) {
      c.send(ApiKey.InitProducerId, 4, (w) => encodeInitProducerIdRequest(w, { transactionalId: null, transactionTimeoutMs: 60_000, producerId: -1n, producerEpoch: -1, enable2Pc: false, keepPreparedTxn: false }, 4));
      const init = decodeInitProducerIdResponse((await c.receive(ApiKey.InitProducerId, 4)).body, 4);
      const req = createProduceRequest();
      req.acks = -1;
      req.timeoutMs = 30_000;
      const td = createTopicProduceData();
      td.name = topic;
      const pd = createPartitionProduceData();
      pd.index = i % 3;
      pd.records = encodeRecordBatch({ records: [{ value }], producerId: init.producerId, producerEpoch: init.producerEpoch, baseSequence: 0 });
      td.partitionData.push(pd);
      req.topicData.push(td);
      c.send(ApiKey.Produce, 9, (w) => encodeProduceRequest(w, req, 9));
      const resp = decodeProduceResponse((await c.receive(ApiKey.Produce, 9)).body, 9);
      if (resp.responses[0].partitionResponses[0].errorCode !== 0) throw new Error(`produce failed: ${resp.responses[0].partitionResponses[0].errorCode}`);
    }
    c.close();
    // The gauge is refreshed once a second.
    let sessions = 0;
    for (let i = 0; i < 50 && sessions < SESSIONS; i++) {
      sessions = await sidecar.metric('idempo_producer_sessions');
      await new Promise((r) => setTimeout(r, 100));
    }
    const loaded = sampleProcess(sidecar.proc.pid!);
    const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
    return `sessions: idempo_producer_sessions=${sessions}; sidecar RSS ${mib(idle.rssBytes)} MiB after start -> ${mib(loaded.rssBytes)} MiB with ${SESSIONS} sessions (peak ${mib(loaded.peakRssBytes)} MiB)`;
  } finally {
    await sidecar.stop();
  }
}
