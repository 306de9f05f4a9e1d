// One client socket through the sidecar's own connection code (ClientConnection) to a broker
// stand-in on loopback: for tests of what the connection does with real sockets.
import net from 'node:net';
import { once } from 'node:events';
import type { SidecarMetrics } from '../metrics/metrics.js';
import type { Logger } from '../log/log.js';
import { ByteBudget } from './byte-budget.js';
import { ClusterView } from './cluster-view.js';
import { ClientConnection } from './connection.js';
import { ListenerRegistry } from './listeners.js';
import type { ProduceHook } from './produce-hook.js';
import { buildRewriters } from './rewrite.js';
import { ApiKey } from '../codec/api.js';
import { Writer } from '../codec/writer.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, encodeProduceRequest } from '../codec/generated/produce-request.js';
import { encodeRecordBatch } from '../codec/records.js';
import { writeRequestHeader } from './headers.js';

export interface Through {
  client: net.Socket;
  /** The sidecar side of `client` (one per accepted connection). */
  conns: ClientConnection[];
  /** Closes the client, the connections and the sidecar listener (not the broker). */
  close(): void;
}

export async function connectThrough(o: { brokerPort: number; hook: ProduceHook; log: Logger; metrics: SidecarMetrics }): Promise<Through> {
  const cluster = new ClusterView();
  const listeners = new ListenerRegistry('127.0.0.1', () => {}, o.log);
  const conns: ClientConnection[] = [];
  const sidecar = net.createServer({ pauseOnConnect: true }, (socket) => {
    conns.push(
      new ClientConnection(socket, { kind: 'bootstrap' }, {
        log: o.log,
        metrics: o.metrics,
        cluster,
        listeners,
        rewriters: buildRewriters({ cluster, listeners, log: o.log }),
        hook: () => o.hook,
        maxFrameBytes: 1 << 20,
        budget: new ByteBudget(8 << 20),
        maxConnectionBufferedBytes: 4 << 20,
        memoryLimited: () => {},
        requestTimeoutMs: 30_000,
        resolveUpstream: () => ({ host: '127.0.0.1', port: o.brokerPort }),
      }),
    );
  });
  sidecar.listen(0, '127.0.0.1');
  await once(sidecar, 'listening');
  const client = net.connect({ host: '127.0.0.1', port: (sidecar.address() as net.AddressInfo).port });
  client.on('error', () => {});
  await once(client, 'connect');
  return {
    client,
    conns,
    close: () => {
      client.destroy();
      for (const c of conns) c.close('test over');
      sidecar.close();
    },
  };
}

/** A whole Produce request frame (size prefix included) of one record to topic `t`, partition 0. */
export function produceFrame(o: { value: string; acks: number; version: number; correlationId: number }): Buffer {
  const req = createProduceRequest();
  req.acks = o.acks;
  req.timeoutMs = 30_000;
  const td = createTopicProduceData();
  td.name = 't';
  const pd = createPartitionProduceData();
  pd.records = encodeRecordBatch({ records: [{ value: o.value }] });
  td.partitionData.push(pd);
  req.topicData.push(td);
  const w = new Writer(o.value.length + 256);
  w.int32(0);
  writeRequestHeader(w, ApiKey.Produce, o.version, o.correlationId, 'unit', 2);
  encodeProduceRequest(w, req, o.version);
  const b = Buffer.from(w.toBuffer());
  b.writeInt32BE(b.length - 4, 0);
  return b;
}
