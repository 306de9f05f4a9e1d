// Issue 2: backpressure end to end. A client that pipelines large fetches and does not read
// its socket must not make the sidecar buffer the answers: the sidecar stops reading from
// the broker while the client's socket is full, and every answer still arrives, in order,
// once the client reads.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { RawConnection } from '../support/raw-kafka.js';
import { runProducerPerf } from '../../bench/producer-perf.js';
import { sampleProcess } from '../../bench/proc-stats.js';
import { ApiKey } from '../../sidecar/codec/api.js';
import { waitFor } from '../support/poll.js';
import { tcpSockets } from '../support/sockets.js';

let kafka: KafkaCluster;
let sidecar: Sidecar;
const FETCHES = 40;
const FETCH_BYTES = 4 * 1024 * 1024;

beforeAll(async () => {
  kafka = await startKafka({ brokers: 1 });
  await kafka.createTopic('big', 1, 1);
  // 48 MiB of data so that every fetch below comes back full (4 MiB each, 160 MiB in all).
  await runProducerPerf({ bootstrap: kafka.bootstrap, topic: 'big', records: 48 * 1024, recordSize: 1024, props: { 'linger.ms': 20, 'batch.size': 262144 } });
  sidecar = await startSidecar({ upstream: kafka.bootstrap, mode: 'observe' });
});

afterAll(async () => {
  await sidecar?.stop();
  await kafka?.stop();
});

describe('backpressure', () => {
  it('a client that does not read holds back the broker, and loses nothing', async () => {
    const c = await RawConnection.connect(sidecar.bootstrap);
    c.socket.pause(); // the client stops reading: its kernel buffer fills, then the sidecar's
    const rssBefore = sampleProcess(sidecar.proc.pid!).rssBytes;
    const sent: number[] = [];
    for (let i = 0; i < FETCHES; i++) {
      sent.push(
        c.send(ApiKey.Fetch, 4, (w) => {
          w.int32(-1);
          w.int32(100); // max wait
          w.int32(1);
          w.int32(FETCH_BYTES);
          w.int8(0);
          w.int32(1);
          w.string('big');
          w.int32(1);
          w.int32(0);
          w.int64(BigInt(i * 1000)); // different offsets, each answer ~4 MiB
          w.int32(FETCH_BYTES);
        }),
      );
    }
    // Every fetch reached the broker, which has answered (or tried to): 160 MiB of answers.
    await expect.poll(() => sidecar.metric('idempo_requests_total', { api: 'Fetch' }), { timeout: 30_000 }).toBe(FETCHES);
    // The sidecar has stopped reading from the broker: answers wait in its receive queue, and
    // the queue does not move between two looks. A sidecar without backpressure reads every
    // answer into memory, its queue drains, and this wait fails.
    const brokerPort = kafka.brokers[0].port;
    const unread = () => new Map(tcpSockets().filter((t) => t.remotePort === brokerPort && t.rxQueue > 0).map((t) => [t.localPort, t.rxQueue]));
    let before = unread();
    await waitFor('the sidecar to stop reading from the broker', () => {
      const now = unread();
      const stalled = [...now].some(([port, rx]) => before.get(port) === rx);
      before = now;
      return stalled;
    }, 60_000, 500);
    const grown = sampleProcess(sidecar.proc.pid!).rssBytes - rssBefore;
    // Without backpressure the sidecar would hold most of 160 MiB of answers.
    expect(grown).toBeLessThan(64 * 1024 * 1024);

    c.socket.resume();
    const got: number[] = [];
    for (let i = 0; i < FETCHES; i++) got.push((await c.receive(ApiKey.Fetch, 4, 60_000)).correlationId);
    expect(got).toEqual(sent);
    c.close();
  });
});
