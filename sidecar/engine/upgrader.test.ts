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

const engines: Engine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

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
      return send(to, req).catch((err: unknown) => {
        lost++;
        throw err;
      });
    };
    const engine = new Engine({ ctx: model, metrics: model.metrics, log: model.log, config: engineConfig({ mode: 'upgrade' }), policyName: 'p' });
    engines.push(engine);
    const hook = engine.hook();
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
