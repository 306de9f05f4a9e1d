// A dedup config reload moves the originals in flight to the new cache (1e2983a: each original's
// waiter lives in its cache entry, DedupCache.inFlight). The promise across that move: a copy
// attached to an original is answered with the original's own outcome, so it is acknowledged only
// if the original was written; an original that fails leaves no entry behind (the next send of
// the same bytes is written), and never acknowledges its copies.
import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from './engine.js';
import { ModelCluster, engineConfig, produceCall, produceRequest, type ClientOutcome } from './model-cluster.test-support.js';
import { encodeRecordBatch } from '../codec/records.js';
import { ErrorCode } from '../codec/errors.js';
import type { ProduceRequest } from '../codec/generated/produce-request.js';
import type { LiveConfig } from '../config/load.js';

const TOPICS = [{ name: 'orders', partitions: 2, id: Buffer.alloc(16, 1), leaders: [1, 2] }];

const engines: Engine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

const live = (maxEntries: number): LiveConfig => {
  const l = engineConfig({ mode: 'upgrade', dedup: { strategy: 'content', windowMs: 2_000, maxEntries: 100_000 } }).live;
  return { ...l, dedup: { ...l.dedup, maxEntries } };
};

function setup(): { model: ModelCluster; engine: Engine; send: (r: ProduceRequest) => Promise<ClientOutcome> } {
  const model = new ModelCluster(TOPICS);
  const engine = new Engine({ ctx: model, metrics: model.metrics, log: model.log, config: engineConfig({ mode: 'upgrade', dedup: { strategy: 'content', windowMs: 2_000, maxEntries: 100_000 } }), policyName: 'p' });
  engines.push(engine);
  const hook = engine.hook();
  return { model, engine, send: (req) => { const call = produceCall(req, 9, 1); return model.run(call, hook.onProduce(call), {}); } };
}

function codes(o: ClientOutcome): number[] {
  if (o.kind !== 'answer') throw new Error(`no answer: ${o.kind}`);
  return o.response.responses.flatMap((t) => t.partitionResponses.map((p) => p.errorCode));
}

const same = (): ProduceRequest => {
  const r = produceRequest([['orders', 0, encodeRecordBatch({ records: [{ key: 'k', value: 'pay-1' }], baseTimestamp: 1_700_000_000_000n })]], { acks: -1 });
  r.timeoutMs = 300;
  return r;
};

/** The model broker refuses the next Produce's batches for good (INVALID_RECORD: never written). */
function refuseNext(model: ModelCluster): void {
  const answer = model.answer.bind(model);
  model.answer = (req, version) => {
    model.answer = answer;
    const resp = answer({ ...req, topicData: [] }, version);
    resp.responses = req.topicData.map((td) => ({ name: td.name, topicId: td.topicId, partitionResponses: td.partitionData.map((pd) => ({ index: pd.index, errorCode: ErrorCode.INVALID_RECORD, baseOffset: -1n, logAppendTimeMs: -1n, logStartOffset: -1n, recordErrors: [], errorMessage: null, currentLeader: { leaderId: -1, leaderEpoch: -1, _tagged: undefined }, _tagged: undefined })), _tagged: undefined }));
    return resp;
  };
}

describe('a dedup reload while an original is undecided (content)', () => {
  for (const reload of [false, true]) {
    it(`${reload ? 'after a reload' : 'without a reload'}: the original fails for good, its attached copy hears the failure, nothing is written; the next send is written`, async () => {
      const { send, model, engine } = setup();
      model.hold = true;
      expect(codes(await send(same()))).toEqual([ErrorCode.REQUEST_TIMED_OUT]); // undecided at the client's deadline
      if (reload) engine.reconfigure(live(5_000));
      const copy = send(same()); // attaches to the original (held)
      refuseNext(model);
      model.release();
      expect(codes(await copy)).toEqual([ErrorCode.INVALID_RECORD]);
      expect(model.written.get('orders/0')?.idempotent ?? 0).toBe(0);
      // The failed original left no entry: the same bytes again are a new write.
      expect(codes(await send(same()))).toEqual([ErrorCode.NONE]);
      expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
    });

    it(`${reload ? 'after a reload' : 'without a reload'}: the original is written, its copy is answered with its offset, the bytes are written once`, async () => {
      const { send, model, engine } = setup();
      model.hold = true;
      expect(codes(await send(same()))).toEqual([ErrorCode.REQUEST_TIMED_OUT]);
      if (reload) engine.reconfigure(live(5_000));
      const copy = send(same());
      model.release();
      const o = await copy;
      expect(codes(o)).toEqual([ErrorCode.NONE]);
      expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
      // content: every later copy within the window is the original's (the application sent it again).
      expect(codes(await send(same()))).toEqual([ErrorCode.NONE]);
      expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
    });
  }
});
