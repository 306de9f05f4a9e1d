// The engine's routing on a MODEL cluster (model-cluster.test-support.ts): every part of a
// request gets one disposition, the same way in every mode; malformed parts get the broker's
// error while the rest proceeds; excluded topics are forwarded untouched; v0-2 are refused
// where the mode refuses producers that cannot be idempotent; unknown topic ids do not set
// off a metadata refresh per request; unknown topics share one label value.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StateStore } from '../state/store.js';
import { Engine } from './engine.js';
import { ModelCluster, engineConfig, produceCall, produceRequest, type ClientOutcome } from './model-cluster.test-support.js';
import { encodeRecordBatch } from '../codec/records.js';
import { computeCrc } from '../codec/record-batch.js';
import type { ProduceRequest } from '../codec/generated/produce-request.js';
import type { LiveConfig } from '../config/load.js';
import type { EngineLimits } from '../config/cli.js';
import { sumMetric } from '../../test/support/prom-text.js';

const TOPICS = [
  { name: 'orders', partitions: 2, id: Buffer.alloc(16, 1), leaders: [1, 2] },
  { name: 'audit-log', partitions: 1, id: Buffer.alloc(16, 2) },
];

const engines: Engine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

type Send = (req: ProduceRequest, version?: number, opts?: { closedBeforeAnswer?: boolean; sentAfter?: number }) => Promise<ClientOutcome>;

function setup(live: Partial<LiveConfig> = {}, limits: Partial<EngineLimits> = {}): { model: ModelCluster; engine: Engine; send: Send } {
  const model = new ModelCluster(TOPICS);
  const engine = new Engine({ ctx: model, metrics: model.metrics, log: model.log, config: engineConfig(live, limits), policyName: 'p' });
  engines.push(engine);
  const hook = engine.hook();
  const send: Send = (req, version = 9, opts = {}) => {
    const call = produceCall(req, version, 1, opts.sentAfter);
    return model.run(call, hook.onProduce(call), opts);
  };
  return { model, engine, send };
}

const plain = (value: string): Buffer => encodeRecordBatch({ records: [{ value }], baseTimestamp: 1_700_000_000_000n });
const idem = (pid: bigint, seq: number, value = `v${seq}`): Buffer => encodeRecordBatch({ records: [{ value }], producerId: pid, producerEpoch: 0, baseSequence: seq, baseTimestamp: 1_700_000_000_000n });

/** An empty batch: lastOffsetDelta -1, count 0, valid CRC (what made Sequencer.submit throw). */
function emptyBatch(): Buffer {
  const b = plain('x');
  const out = Buffer.from(b.subarray(0, 61));
  out.writeInt32BE(61 - 12, 8);
  out.writeInt32BE(-1, 23);
  out.writeInt32BE(0, 57);
  return refreshCrc(out);
}

function refreshCrc(b: Buffer): Buffer {
  b.writeUInt32BE(computeCrc(b), 17);
  return b;
}

const request = (parts: Array<[string, number, Buffer | null]>, acks = -1, topicIds = false): ProduceRequest => produceRequest(parts, { acks, topicId: topicIds ? idOf : undefined });

const idOf = (topic: string): Buffer => TOPICS.find((t) => t.name === topic)?.id ?? Buffer.alloc(16, 0xee);

function offsetOf(o: ClientOutcome): bigint {
  if (o.kind !== 'answer') throw new Error(`no answer: ${o.kind}`);
  return o.response.responses[0].partitionResponses[0].baseOffset;
}

function codes(o: ClientOutcome): number[] {
  if (o.kind !== 'answer') throw new Error(`no answer: ${o.kind}`);
  return o.response.responses.flatMap((t) => t.partitionResponses.map((p) => p.errorCode));
}

async function metric(model: ModelCluster, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sumMetric(await model.metrics.registry.metrics(), name, labels);
}

describe('a malformed part gets the broker\'s error; the rest of the request and later requests proceed', () => {
  for (const mode of ['upgrade', 'enforce'] as const) {
    it(`${mode}: an empty batch (lastOffsetDelta -1) next to a valid one`, async () => {
      const { send, engine } = setup({ mode });
      const ok = mode === 'upgrade' ? plain('a') : idem(7n, 0);
      expect(codes(await send(request([['orders', 0, ok], ['orders', 1, emptyBatch()]])))).toEqual([0, 87]);
      const next = mode === 'upgrade' ? plain('b') : idem(7n, 1);
      expect(codes(await send(request([['orders', 0, next]])))).toEqual([0]);
      expect(engine.stats().inFlight).toBe(0);
    });
  }

  it('bad CRC, wrong count, magic 1, the same partition twice, garbage gzip, a too long topic name', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    const badCrc = plain('a');
    badCrc[badCrc.length - 1] ^= 0xff;
    const wrongCount = plain('b');
    wrongCount.writeInt32BE(5, 57);
    refreshCrc(wrongCount);
    const magic1 = plain('c');
    magic1.writeInt8(1, 16);
    const gzipGarbage = plain('ddddddddd');
    gzipGarbage.writeInt16BE(1, 21);
    refreshCrc(gzipGarbage);
    const out = await send(
      request([
        ['orders', 0, badCrc],
        ['orders', 1, wrongCount],
        ['audit-log', 0, magic1],
        ['x'.repeat(250), 0, plain('e')],
      ]),
    );
    expect(codes(out)).toEqual([2, 87, 87, 17]);
    expect(codes(await send(request([['orders', 0, gzipGarbage]])))).toEqual([2]);
    expect(codes(await send(request([['orders', 0, plain('f')], ['orders', 0, plain('g')]])))).toEqual([0, 87]);
    expect(codes(await send(request([['orders', 0, plain('h')]])))).toEqual([0]);
    expect(await metric(model, 'idempo_malformed_batches_total', { error: 'CORRUPT_MESSAGE' })).toBe(2);
    expect(await metric(model, 'idempo_malformed_batches_total', { error: 'INVALID_RECORD' })).toBe(3);
    // The 250-character name is no topic any broker named: one label value for all such.
    expect(await metric(model, 'idempo_produce_batches_total', { topic: '_unknown', outcome: 'failed' })).toBe(1);
  });
});

describe('covered and excluded topics in one request: excluded parts forwarded untouched, covered ones by mode', () => {
  it('upgrade: the excluded part reaches the broker without a producer id, the covered one is stamped', async () => {
    const { send, model } = setup({ mode: 'upgrade', topics: { include: ['*'], exclude: ['audit-*'] } });
    const out = await send(request([['orders', 0, plain('covered')], ['audit-log', 0, plain('excluded')]]));
    expect(codes(out)).toEqual([0, 0]);
    expect(await metric(model, 'idempo_upgraded_batches_total', { topic: 'orders' })).toBe(1);
    expect(await metric(model, 'idempo_upgraded_batches_total', { topic: 'audit-log' })).toBe(0);
    expect(model.written.get('audit-log/0')).toEqual({ idempotent: 0, plain: 1 });
    expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
  });

  it('enforce: the covered non-idempotent part is refused, the excluded one is written', async () => {
    const { send, model } = setup({ mode: 'enforce', topics: { include: ['*'], exclude: ['audit-*'] } });
    expect(codes(await send(request([['orders', 0, plain('covered')], ['audit-log', 0, plain('excluded')]])))).toEqual([44, 0]);
    expect(model.written.get('audit-log/0')).toEqual({ idempotent: 0, plain: 1 });
    expect(model.written.get('orders/0')).toBeUndefined();
  });

  it('observe: every part forwarded, nothing changed', async () => {
    const { send, model } = setup({ mode: 'observe', topics: { include: ['orders'], exclude: [] } });
    expect(codes(await send(request([['orders', 0, plain('a')], ['audit-log', 0, plain('b')]])))).toEqual([0, 0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 0, plain: 1 });
  });
});

describe('Produce v0-2 (message sets) cannot be idempotent', () => {
  it('enforce and upgrade close the connection (the answer format is not one the sidecar writes); observe forwards', () => {
    for (const mode of ['enforce', 'upgrade', 'observe'] as const) {
      const { engine } = setup({ mode });
      const d = engine.hook().onLegacyProduce!({ header: { apiKey: 0, apiVersion: 2, correlationId: 1, clientId: 'old', bodyOffset: 0 }, version: 2, connectionId: 1 });
      expect(d.kind).toBe(mode === 'observe' ? 'forward' : 'close');
    }
  });
});

describe('unknown topic ids (Produce v13)', () => {
  it('are answered UNKNOWN_TOPIC_ID while the known parts proceed, with one metadata refresh however many requests', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    for (let i = 0; i < 50; i++) {
      const req = request([['orders', 0, plain(`k${i}`)], ['no-such-topic', 0, plain('u')]], -1, true);
      expect(codes(await send(req, 13))).toEqual([0, 100]);
    }
    expect(model.metadataRefreshes).toBe(1);
  });
});

describe("the sidecar's producer id (upgrade mode)", () => {
  it('InitProducerId answered COORDINATOR_LOAD_IN_PROGRESS (a broker just started) is retried; one id serves every partition, each taking it once', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    model.initProducerIdLoading = 2;
    expect(codes(await send(request([['orders', 0, plain('a')], ['orders', 1, plain('b')], ['audit-log', 0, plain('c')]])))).toEqual([0, 0, 0]);
    expect(codes(await send(request([['orders', 0, plain('d')], ['audit-log', 0, plain('e')]])))).toEqual([0, 0]);
    expect(model.initProducerIdCalls).toBe(3);
    expect(await metric(model, 'idempo_upstream_errors_total', { error: 'init_producer_id' })).toBe(2);
    expect(await metric(model, 'idempo_producer_ids_allocated_total')).toBe(1);
    expect(await metric(model, 'idempo_producer_identities_total', { reason: 'first' })).toBe(3);
  });
});

describe('memory limits give a retriable error, a metric and a log line', () => {
  it('pending batches past --max-pending-bytes are answered REQUEST_TIMED_OUT until they drain', async () => {
    const { send, model, engine } = setup({ mode: 'upgrade' }, { maxPendingBytes: 1024 * 1024 });
    const big = encodeRecordBatch({ records: [{ value: Buffer.alloc(700 * 1024, 7) }] });
    const big2 = encodeRecordBatch({ records: [{ value: Buffer.alloc(700 * 1024, 8) }] });
    model.hold = true; // the broker has not answered the first one yet
    const first = send(request([['orders', 0, big]]));
    expect(codes(await send(request([['orders', 1, big2]])))).toEqual([7]);
    expect(await metric(model, 'idempo_limit_reached_total', { limit: 'pending_bytes' })).toBe(1);
    model.release();
    expect(codes(await first)).toEqual([0]);
    await expect.poll(() => engine.stats().pendingBytes).toBe(0);
    expect(codes(await send(request([['orders', 1, big2]])))).toEqual([0]);
  });

  it('a batch larger than --max-pending-bytes is answered MESSAGE_TOO_LARGE (it could never fit), not retried for ever', async () => {
    const { send, model, engine } = setup({ mode: 'upgrade' }, { maxPendingBytes: 512 * 1024 });
    const huge = encodeRecordBatch({ records: [{ value: Buffer.alloc(600 * 1024, 7) }] });
    expect(codes(await send(request([['orders', 0, huge], ['orders', 1, plain('small')]])))).toEqual([10, 0]);
    expect(await metric(model, 'idempo_limit_reached_total', { limit: 'pending_bytes' })).toBe(1);
    expect(await metric(model, 'idempo_produce_batches_total', { topic: 'orders', outcome: 'failed' })).toBe(1);
    expect(engine.stats().pendingBytes).toBe(0);
  });
});

describe('per-partition order across the sidecar\'s own refusals (refusal-gate.ts)', () => {
  // A client with several requests in flight: A is refused (memory limit), B of the same partition
  // was already on its way. B must not be written before A's retry, or it lands ahead of it.
  it('after a retriable refusal of A, a later B of that partition on that connection waits until A is retried', async () => {
    const { send, model, engine } = setup({ mode: 'upgrade' }, { maxPendingBytes: 1024 * 1024 });
    model.holdBroker = 2; // orders-1 (leader 2) is slow: its batch fills the pending bytes
    const x = send(request([['orders', 1, encodeRecordBatch({ records: [{ value: Buffer.alloc(700 * 1024, 1) }] })]]));
    const a = request([['orders', 0, encodeRecordBatch({ records: [{ key: 'a', value: Buffer.alloc(700 * 1024, 2) }] })]]);
    const b = request([['orders', 0, plain('b')]]);
    expect(codes(await send(a))).toEqual([7]);
    model.release();
    expect(codes(await x)).toEqual([0]);
    await expect.poll(() => engine.stats().pendingBytes).toBe(0);
    // B arrives (it was in flight): refused, nothing written, although memory is free again.
    expect(codes(await send(b))).toEqual([7]);
    // Another connection is another order: not held back.
    const other = await model.run(produceCall(request([['orders', 0, plain('c')]]), 9, 2), engine.hook().onProduce(produceCall(request([['orders', 0, plain('c')]]), 9, 2)));
    expect(codes(other)).toEqual([0]);
    // A's retry (the same records, here re-encoded with a new timestamp) opens the way; then B.
    const aAgain = request([['orders', 0, encodeRecordBatch({ records: [{ key: 'a', value: Buffer.alloc(700 * 1024, 2) }], baseTimestamp: 1_800_000_000_000n })]]);
    const ra = await send(aAgain);
    const rb = await send(b);
    expect([codes(ra), codes(rb)]).toEqual([[0], [0]]);
    expect(offsetOf(ra)).toBeLessThan(offsetOf(rb));
  });
});

describe('a client retry re-encoded with a new timestamp (kafkajs) under the default exact dedup', () => {
  const at = (value: string, ts: bigint): Buffer => encodeRecordBatch({ records: [{ key: 'k', value }], baseTimestamp: ts });

  it('after the sidecar answered REQUEST_TIMED_OUT (undecided): attached to the original, written once', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    model.hold = true; // the broker is slow
    const req = (ts: bigint): ProduceRequest => {
      const r = request([['orders', 0, at('pay-1', ts)]]);
      r.timeoutMs = 300;
      return r;
    };
    // The client is told to retry before its own timeout (300 ms - 10 %).
    expect(codes(await send(req(1_000n)))).toEqual([7]);
    // Its retry carries a new timestamp: not an exact copy, but the same records.
    const retry = send(req(1_400n));
    model.release();
    const o = await retry;
    expect(codes(o)).toEqual([0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
    expect(await metric(model, 'idempo_duplicates_rejected_total', { topic: 'orders' })).toBe(1);
    // The client has its answer now: the same records sent again are a new write.
    expect(codes(await send(req(1_800n)))).toEqual([0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 2, plain: 0 });
  });

  it('two copies at once: one attaches to the original, the other is another send and is written (never two acks for one record)', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    model.hold = true;
    const req = (ts: bigint): ProduceRequest => {
      const r = request([['orders', 0, at('beat', ts)]]);
      r.timeoutMs = 300;
      return r;
    };
    expect(codes(await send(req(1_000n)))).toEqual([7]);
    const copies = [send(req(1_400n)), send(req(1_401n))];
    model.release();
    const outcomes = await Promise.all(copies);
    expect(outcomes.map(codes)).toEqual([[0], [0]]);
    // Two successes, two records: the original (answered 7, then written) and the second copy.
    expect(model.written.get('orders/0')).toEqual({ idempotent: 2, plain: 0 });
    expect(await metric(model, 'idempo_duplicates_rejected_total', { topic: 'orders' })).toBe(1);
  });

  it('the same records sent again after a success are written again (a legitimate repeat)', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    expect(codes(await send(request([['orders', 0, at('again', 1n)]])))).toEqual([0]);
    expect(codes(await send(request([['orders', 0, at('again', 2n)]])))).toEqual([0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 2, plain: 0 });
  });
});

describe('a request with a timed-out part and a successful one', () => {
  const at = (value: string, ts: bigint): Buffer => encodeRecordBatch({ records: [{ key: 'k', value }], baseTimestamp: ts });
  const two = (ts: bigint, parts: number[] = [0, 1]): ProduceRequest => {
    const r = request(parts.map((p) => ['orders', p, at(`p${p}`, ts)] as [string, number, Buffer]));
    r.timeoutMs = 300;
    return r;
  };

  it('kafkajs re-sends the whole request: the successful part is answered from the first time, not written again', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    model.holdBroker = 2; // the leader of partition 1 is slow
    expect(codes(await send(two(1n)))).toEqual([0, 7]);
    const retry = send(two(2n));
    model.release();
    expect(codes(await retry)).toEqual([0, 0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
    expect(model.written.get('orders/1')).toEqual({ idempotent: 1, plain: 0 });
  });

  it('Java and librdkafka re-send only the failed part: a later repeat of the successful one is written', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    model.holdBroker = 2;
    expect(codes(await send(two(1n)))).toEqual([0, 7]);
    const retry = send(two(2n, [1]));
    model.release();
    expect(codes(await retry)).toEqual([0]);
    expect(codes(await send(two(3n, [0])))).toEqual([0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 2, plain: 0 });
    expect(model.written.get('orders/1')).toEqual({ idempotent: 1, plain: 0 });
  });
});

describe('exact dedup: the same bytes sent separately by the application are written (the same millisecond, or timestamps it set)', () => {
  const same = (): ProduceRequest => {
    const r = request([['orders', 0, encodeRecordBatch({ records: [{ key: 'k', value: 'tick' }], baseTimestamp: 1_700_000_000_000n })]]);
    r.timeoutMs = 300;
    return r;
  };

  it('one after the other: the first was acknowledged in time, so the second is a new write', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    const a = await send(same());
    const b = await send(same());
    expect([codes(a), codes(b)]).toEqual([[0], [0]]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 2, plain: 0 });
    expect(await metric(model, 'idempo_duplicates_rejected_total', { topic: 'orders' })).toBe(0);
  });

  it('two in flight at once (the first still awaited by its client): both written, each with its own offset', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    model.hold = true;
    const both = [send(same()), send(same())];
    model.release();
    const [a, b] = await Promise.all(both);
    expect([codes(a), codes(b)]).toEqual([[0], [0]]);
    const offsets = [a, b].map((o) => (o.kind === 'answer' ? o.response.responses[0].partitionResponses[0].baseOffset : -1n));
    expect(offsets[0]).not.toBe(offsets[1]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 2, plain: 0 });
  });

  it('a retry after the client was told REQUEST_TIMED_OUT is still the original: written once', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    model.hold = true;
    expect(codes(await send(same()))).toEqual([7]);
    const retry = send(same());
    model.release();
    expect(codes(await retry)).toEqual([0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
    // Its success reached the client in time: the same bytes once more are a new write.
    expect(codes(await send(same()))).toEqual([0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 2, plain: 0 });
  });

  it('a dedup cap reload while the original is undecided: its retry still attaches to it (the original moves to the new cache), written once', async () => {
    // (`content`: the dedup cache alone recognises the copy; with `exact` the retry index would too.)
    const { send, model, engine } = setup({ mode: 'upgrade', dedup: { strategy: 'content', windowMs: 2_000, maxEntries: 100_000 } });
    model.hold = true;
    expect(codes(await send(same()))).toEqual([7]);
    const live = engineConfig({ mode: 'upgrade', dedup: { strategy: 'content', windowMs: 2_000, maxEntries: 100_000 } }).live;
    engine.reconfigure({ ...live, dedup: { ...live.dedup, maxEntries: 5_000 } });
    const retry = send(same());
    model.release();
    expect(codes(await retry)).toEqual([0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
  });

  it('a retry after the connection closed before the answer (Java, librdkafka at their timeout) is the original: written once', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    expect((await send(same(), 9, { closedBeforeAnswer: true })).kind).toBe('closed');
    expect(codes(await send(same()))).toEqual([0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
    // ... and re-encoded (kafkajs: a new timestamp) too.
    const reencoded = request([['orders', 0, encodeRecordBatch({ records: [{ key: 'k', value: 'gone' }], baseTimestamp: 1n })]]);
    expect((await send(reencoded, 9, { closedBeforeAnswer: true })).kind).toBe('closed');
    const again = request([['orders', 0, encodeRecordBatch({ records: [{ key: 'k', value: 'gone' }], baseTimestamp: 2n })]]);
    expect(codes(await send(again))).toEqual([0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 2, plain: 0 });
  });

  it('a request read late (its connection paused) counts from when reads stopped: its client may have given up already, so the same bytes again are its retry', async () => {
    // Faults seed 5 (docs/faults.md): the sidecar read Java's copy ~0.8 s after Java sent it; Java
    // timed it out 3 s after ITS send and re-sent on another connection, which the sidecar,
    // counting 3 s from its own read, took for a new write.
    const { send, model } = setup({ mode: 'upgrade' });
    model.hold = true;
    const late = send(same(), 9, { sentAfter: Date.now() - 1_000 }); // timeoutMs 300: given up on already
    const retry = send(same());
    model.release();
    await late;
    expect(codes(await retry)).toEqual([0]);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
    expect(await metric(model, 'idempo_duplicates_rejected_total', { topic: 'orders' })).toBe(1);
  });

  it('acks=0: nothing is answered, so nothing is a retry: every send is written', async () => {
    const { send, model } = setup({ mode: 'upgrade' });
    const r = (): ProduceRequest => {
      const q = same();
      q.acks = 0;
      return q;
    };
    await send(r());
    await send(r());
    await expect.poll(() => model.written.get('orders/0')?.idempotent).toBe(2);
  });
});

describe('a batch that ends with its outcome unknown (held, then given up): its retries are never written', () => {
  it('the same bytes and a re-encoded copy are answered REQUEST_TIMED_OUT for the window (tombstone), never 45', async () => {
    // deliveryTimeout 1 s, then held for the dedup window (1 s), then final with outcome unknown.
    const { send, model, engine } = setup({ mode: 'upgrade', deliveryTimeoutMs: 400, dedup: { strategy: 'exact', windowMs: 1_500, maxEntries: 100_000 } });
    const batch = (ts: bigint): ProduceRequest => {
      const r = request([['orders', 0, encodeRecordBatch({ records: [{ key: 'k', value: 'maybe' }], baseTimestamp: ts })]]);
      r.timeoutMs = 300;
      return r;
    };
    model.loseProduce = true; // every send's outcome is unknown
    expect(codes(await send(batch(1n)))).toEqual([7]);
    await expect.poll(() => engine.stats().pendingBytes, { timeout: 10_000, interval: 50 }).toBe(0); // given up
    model.loseProduce = false;
    expect(codes(await send(batch(1n)))).toEqual([7]); // the same bytes
    expect(codes(await send(batch(2n)))).toEqual([7]); // re-encoded (kafkajs)
    expect(model.written.get('orders/0')).toBeUndefined();
    expect(await metric(model, 'idempo_duplicates_rejected_total', { topic: 'orders' })).toBe(2);
    expect(engine.stats().dedupEntries).toBe(1);
  });
});

type StartedWithState = { engine: Engine; send: Send; store: StateStore };

/** An upgrade-mode engine on `dir` as its --state-dir: each call is one start of the sidecar. */
function startWithState(model: ModelCluster, dir: string): StartedWithState {
  const state = StateStore.open(dir, { log: model.log, metrics: model.metrics, dedupWindowMs: 60_000 });
  const engine = new Engine({ ctx: model, metrics: model.metrics, log: model.log, config: engineConfig({ mode: 'upgrade' }), state });
  engines.push(engine);
  const hook = engine.hook();
  const send: Send = (req, version = 9, opts = {}) => {
    const call = produceCall(req, version, 1, opts.sentAfter);
    return model.run(call, hook.onProduce(call), opts);
  };
  return { engine, store: state.store, send };
}

describe('--state-dir: after a restart, copies match only originals whose clients may not know their outcome', () => {
  it('a success answered in time is journalled as known: the same bytes after the restart are written; an unanswered one is matched', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-dedup-'));
    try {
      const model = new ModelCluster(TOPICS);
      const start = (): StartedWithState => startWithState(model, dir);
      const batch = (value: string): ProduceRequest => request([['orders', 0, encodeRecordBatch({ records: [{ key: 'k', value }], baseTimestamp: 1_700_000_000_000n })]]);
      const first = start();
      expect(codes(await first.send(batch('answered')))).toEqual([0]);
      expect((await first.send(batch('unanswered'), 9, { closedBeforeAnswer: true })).kind).toBe('closed');
      first.engine.close();
      await first.store.close();

      const second = start();
      expect(codes(await second.send(batch('answered')))).toEqual([0]); // a new write of the application
      expect(codes(await second.send(batch('unanswered')))).toEqual([0]); // the retry: answered from the original
      expect(model.written.get('orders/0')).toEqual({ idempotent: 3, plain: 0 });
      second.engine.close();
      await second.store.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('--state-dir: a finished original whose success never reached its client (killed before the answer was written)', () => {
  it('is matched after the restart by a re-encoded retry (kafkajs: new timestamp), once', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-dedup-'));
    try {
      const model = new ModelCluster(TOPICS);
      const start = (): StartedWithState => startWithState(model, dir);
      const at = (ts: bigint): ProduceRequest => request([['orders', 0, encodeRecordBatch({ records: [{ key: 'k', value: 'queued' }], baseTimestamp: ts })]]);
      const first = start();
      // Written and decided, but its answer never left (the model drops it as a killed process would).
      expect((await first.send(at(1n), 9, { closedBeforeAnswer: true })).kind).toBe('closed');
      first.engine.close();
      await first.store.close();

      const second = start();
      expect(codes(await second.send(at(2n)))).toEqual([0]); // the client's retry, re-encoded: answered from the original
      expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
      expect(codes(await second.send(at(3n)))).toEqual([0]); // it got the success in time: a new write now
      expect(model.written.get('orders/0')).toEqual({ idempotent: 2, plain: 0 });
      second.engine.close();
      await second.store.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
