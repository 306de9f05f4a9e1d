// The upgrader's own Produce requests on a model cluster (model-cluster.test-support.ts): what it
// puts in one request. A broker keeps a request's partitions in a map, so a second batch of a
// partition in the same request would replace the first (never appended, and one answer for both).
import { afterEach, describe, expect, it } from 'vitest';
import { ApiKey } from '../codec/api.js';
import { Reader } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';
import { decodeProduceRequest } from '../codec/generated/produce-request.js';
import { readBatchHeader } from '../codec/record-batch.js';
import { encodeRecordBatch } from '../codec/records.js';
import { Engine } from './engine.js';
import { ModelCluster, engineConfig, produceCall, produceRequest, type ClientOutcome } from './model-cluster.test-support.js';
import { waitFor } from '../../test/support/poll.js';
import { FramePool, type FrameLease } from '../proxy/frame-pool.js';
import type { ProduceCall } from '../proxy/produce-hook.js';

const engines: Engine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

/** An engine on the model cluster, closed after the test. */
function startEngine(model: ModelCluster, config: ReturnType<typeof engineConfig>): Engine {
  const engine = new Engine({ ctx: model, metrics: model.metrics, log: model.log, config, policyName: 'p' });
  engines.push(engine);
  return engine;
}

const plain = (value: string): Buffer => encodeRecordBatch({ records: [{ value }], baseTimestamp: 1_700_000_000_000n });

function codes(o: ClientOutcome): number[] {
  if (o.kind !== 'answer') throw new Error(`no answer: ${o.kind}`);
  return o.response.responses.flatMap((t) => t.partitionResponses.map((p) => p.errorCode));
}

describe("the upgrader's own Produce requests", () => {
  it('pipelined re-sends after a lost connection: one batch of a partition per request, in sequence order', async () => {
    const model = new ModelCluster([{ name: 'orders', partitions: 1, id: Buffer.alloc(16, 1) }]);
    // Every Produce the engine sends, as (partition, base sequence) per part.
    const sent: Array<Array<{ partition: number; seq: number }>> = [];
    let lost = 0;
    const send = model.send.bind(model);
    model.send = (to, req) => {
      if (req.apiKey === ApiKey.Produce) {
        const w = new Writer(256);
        req.encode(w, 9);
        const r = decodeProduceRequest(new Reader(Buffer.from(w.toBuffer())), 9);
        sent.push(r.topicData.flatMap((td) => td.partitionData.map((pd) => ({ partition: pd.index, seq: readBatchHeader(pd.records!).baseSequence }))));
      }
      send(to, {
        apiKey: req.apiKey,
        version: req.version,
        timeoutMs: req.timeoutMs,
        sizeHint: req.sizeHint,
        encode: (w, v) => req.encode(w, v),
        answered: (v, payload, bodyAt) => req.answered(v, payload, bodyAt),
        failed: (err) => {
          lost++;
          req.failed(err);
        },
      });
    };
    const hook = startEngine(model, engineConfig({ mode: 'upgrade' })).hook();
    const client = (value: string): Promise<ClientOutcome> => {
      const call = produceCall(produceRequest([['orders', 0, plain(value)]]));
      return model.run(call, hook.onProduce(call));
    };

    // The partition's first batch goes alone; once acknowledged the next ones are pipelined.
    expect(codes(await client('a'))).toEqual([0]);
    model.hold = true;
    const later = ['b', 'c', 'd'].map(client);
    await waitFor('three pipelined sends', () => sent.length === 4);
    // Their connection is lost (outcome unknown): a probe goes alone, then the rest together.
    model.loseProduce = true;
    model.release();
    await waitFor('the three sends lost', () => lost >= 3);
    model.loseProduce = false;
    expect((await Promise.all(later)).map(codes)).toEqual([[0], [0], [0]]);

    const resends = sent.slice(4);
    expect(resends.flat().length).toBeGreaterThanOrEqual(3);
    for (const parts of resends) expect(new Set(parts.map((p) => p.partition)).size).toBe(parts.length);
    // Every batch went in sequence order (the probe, maybe more than once, then the others).
    const seqs = resends.flat().map((p) => p.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(model.written.get('orders/0')).toEqual({ idempotent: 4, plain: 0 });
  });
});

/** `call` as the proxy hands it to the hook from pooled memory (connection.ts onProduce): its frame and batches in a lease. */
function pooledCall(call: ProduceCall, pool: FramePool): ProduceCall & { lease: FrameLease } {
  const lease = pool.acquire(call.frame.length);
  call.frame.copy(lease.buf);
  return { ...call, frame: lease.buf, request: decodeProduceRequest(new Reader(lease.buf, call.header.bodyOffset), call.version), lease };
}

describe('a batch held undecided after its client was answered', () => {
  it("keeps only its own bytes (what --max-pending-bytes counts): its request's pooled buffer goes back while it is held, and its re-send carries the same bytes", async () => {
    const model = new ModelCluster([{ name: 'orders', partitions: 1, id: Buffer.alloc(16, 1) }]);
    // Undecided at its 400 ms deadline, the batch is held under its stamp for the dedup window.
    const config = engineConfig({ mode: 'upgrade', deliveryTimeoutMs: 400, dedup: { strategy: 'exact', windowMs: 120_000, maxEntries: 1000 } });
    const engine = startEngine(model, config);
    const hook = engine.hook();
    const pool = new FramePool();
    const batch = plain('x'.repeat(6000)); // large enough to be pooled
    const request = (): ReturnType<typeof produceRequest> => {
      const r = produceRequest([['orders', 0, batch]]);
      r.timeoutMs = 60_000; // the client's own deadline comes long after the batch's
      return r;
    };

    model.loseProduce = true; // every send's outcome is unknown: nothing written
    const call = pooledCall(produceCall(request()), pool);
    // Told to retry when the batch is held (its deadline passed, outcome unknown).
    expect(codes(await model.run(call, hook.onProduce(call)))).toEqual([7]);
    call.lease.drop(); // the connection's hold: its answer was written
    // Held, it no longer pins its client request's buffer: it is back in the pool.
    await waitFor("the request's pooled buffer given back", () => pool.idleBytes > 0, 30_000, 20);
    expect(call.lease.buf.length).toBe(0);
    expect(engine.stats().pendingBytes).toBe(batch.length);

    // The client retries: the held batch is sent again now, from its own copy (valid CRC, same stamp), written once.
    model.loseProduce = false;
    const retry = produceCall(request());
    expect(codes(await model.run(retry, hook.onProduce(retry)))).toEqual([0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
    await waitFor('the held batch finished', () => engine.stats().pendingBytes === 0, 30_000, 20);
  });
});

// A send in flight keeps its batch's pooled bytes while the batch is answered early (ownBytes) and
// its client request is let go; the pool gets the memory back only after the send ends.
describe('pooled bytes of a send in flight', () => {
  it('stay intact while the batch is answered early and its request let go; go back after the send ends', async () => {
    expect(process.env.IDEMPO_TEST_ONLY_POISON_READS).toBe('1');
    const model = new ModelCluster([{ name: 'orders', partitions: 2, id: Buffer.alloc(16, 1) }]);
    const config = engineConfig({ mode: 'upgrade', deliveryTimeoutMs: 60_000, dedup: { strategy: 'exact', windowMs: 120_000, maxEntries: 1000 } });
    const engine = startEngine(model, config);
    const hook = engine.hook();
    const pool = new FramePool();
    // What each Produce put on the wire by reference (as BrokerClient does), and a copy taken at the send.
    const wire: Array<{ chunks: Array<Buffer | Uint8Array>; atSend: Buffer }> = [];
    const send = model.send.bind(model);
    model.send = (to, req) => {
      if (req.apiKey === ApiKey.Produce) {
        const w = new Writer(64);
        w.keepLarge(1024);
        req.encode(w, 9);
        const chunks = w.toChunks();
        wire.push({ chunks, atSend: Buffer.concat(chunks) });
      }
      send(to, req);
    };
    model.holdBroker = 1; // Produce sends to the leader stay in flight (InitProducerId goes to any)
    const r = produceRequest([
      ['orders', 0, plain('a'.repeat(6000))],
      ['orders', 1, plain('b'.repeat(6000))],
    ]);
    r.timeoutMs = 400; // answered REQUEST_TIMED_OUT at ~360 ms, the batches go on
    const call = pooledCall(produceCall(r), pool);
    const outcome = model.run(call, hook.onProduce(call));
    await waitFor('the first send', () => wire.length > 0, 30_000, 20);
    expect(codes(await outcome)).toEqual([7, 7]);
    call.lease.drop(); // the connection's hold: the sends in flight are the only holders left
    // A last drop gives the memory back in a setImmediate (frame-pool.ts); ours runs after it.
    await new Promise((res) => setImmediate(res));
    expect(pool.idleBytes).toBe(0);
    for (const x of wire) expect(Buffer.concat(x.chunks).equals(x.atSend)).toBe(true);
    expect(call.lease.buf.length).toBeGreaterThan(0);
    model.release();
    await waitFor('finished', () => engine.stats().pendingBytes === 0, 30_000, 20);
    await waitFor("the request's buffer back", () => pool.idleBytes > 0, 30_000, 20);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
    expect(model.written.get('orders/1')).toEqual({ idempotent: 1, plain: 0 });
  });
});
