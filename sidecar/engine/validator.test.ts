// The Validator without sockets: decisions for batches of producers that are already idempotent
// (enforce / upgrade) and what observe counts. Broker answers are handed to onResponse by hand.
import { beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Validator } from './validator.js';
import { partsOf } from './batches.js';
import { encodeRecordBatch } from '../codec/records.js';
import { SessionTable } from '../idempotence/session-table.js';
import { SidecarMetrics } from '../metrics/metrics.js';
import { ClusterView } from '../proxy/cluster-view.js';
import type { ProduceCall, ProduceDecision } from '../proxy/produce-hook.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, type ProduceRequest } from '../codec/generated/produce-request.js';
import { createPartitionProduceResponse, createProduceResponse, createTopicProduceResponse, type ProduceResponse } from '../codec/generated/produce-response.js';
import { sumMetric } from '../../test/support/prom-text.js';
import { produceCall, produceRequest } from './model-cluster.test-support.js';
import { answerOf } from '../codec/produce-answer.test-support.js';

const PID = 4000n;
const cluster = new ClusterView();

/** A v2 batch of `count` records at `seq`. */
const batch = (seq: number, count: number, epoch = 0, producerId = PID): Buffer =>
  encodeRecordBatch({ records: Array.from({ length: count }, () => ({ value: null })), producerId, producerEpoch: epoch, baseSequence: seq });

let corr = 1;
function call(parts: Array<{ topic?: string; partition?: number; records: Buffer }>, acks = -1): ProduceCall {
  const req: ProduceRequest = createProduceRequest();
  req.acks = acks;
  req.timeoutMs = 1000;
  for (const p of parts) {
    const name = p.topic ?? 't';
    let td = req.topicData.find((t) => t.name === name);
    if (!td) {
      td = createTopicProduceData();
      td.name = name;
      req.topicData.push(td);
    }
    const pd = createPartitionProduceData();
    pd.index = p.partition ?? 0;
    pd.records = p.records;
    td.partitionData.push(pd);
  }
  return { header: { apiKey: 0, apiVersion: 9, correlationId: corr++, clientId: 'unit', bodyOffset: 0 }, version: 9, request: req, frame: Buffer.alloc(0), connectionId: 1, nodeId: 1, sentAfter: Date.now() };
}

/** What the broker would answer for `req`: one result per partition, in order. */
function brokerAnswer(req: ProduceRequest, result: (topic: string, partition: number, i: number) => { errorCode: number; baseOffset?: bigint }): ProduceResponse {
  const resp = createProduceResponse();
  let i = 0;
  for (const td of req.topicData) {
    const tr = createTopicProduceResponse();
    tr.name = td.name;
    for (const pd of td.partitionData) {
      const r = result(td.name, pd.index, i++);
      const pr = createPartitionProduceResponse();
      pr.index = pd.index;
      pr.errorCode = r.errorCode;
      pr.baseOffset = r.errorCode === 0 ? (r.baseOffset ?? 0n) : -1n;
      tr.partitionResponses.push(pr);
    }
    resp.responses.push(tr);
  }
  return resp;
}

let metrics: SidecarMetrics;
let v: Validator;
const now = 1_000_000;

beforeEach(() => {
  metrics = new SidecarMetrics();
  v = new Validator(new SessionTable(), metrics, pino({ level: 'silent' }));
});

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  return sumMetric(await metrics.registry.metrics(), name, labels);
}

function enforce(c: ProduceCall): ProduceDecision {
  return v.enforce(c, partsOf(c.request, c.version, cluster), now);
}

/** Forwarded as is; the broker's answer goes through onResponse. */
async function forwardAndAnswer(d: ProduceDecision, c: ProduceCall, result: Parameters<typeof brokerAnswer>[1]): Promise<ProduceResponse | undefined> {
  expect(d.kind).toBe('forward');
  if (d.kind !== 'forward') throw new Error('not forwarded');
  return (await d.onResponse?.(answerOf(brokerAnswer(c.request, result), c.version))) ?? undefined;
}

async function answered(d: ProduceDecision): Promise<ProduceResponse> {
  expect(d.kind).toBe('answer');
  if (d.kind !== 'answer') throw new Error('not answered by the sidecar');
  const r = await d.response;
  if (!r) throw new Error('no answer');
  return r;
}

const part0 = (r: ProduceResponse) => r.responses[0].partitionResponses[0];

describe('enforce', () => {
  it('an exact copy of an acknowledged batch is answered NONE with the original offset', async () => {
    const first = call([{ records: batch(0, 3) }]);
    await forwardAndAnswer(enforce(first), first, () => ({ errorCode: 0, baseOffset: 100n }));
    const copy = part0(await answered(enforce(call([{ records: batch(0, 3) }]))));
    expect([copy.errorCode, copy.baseOffset]).toEqual([0, 100n]);
    expect(await metric('idempo_duplicates_rejected_total', { topic: 't' })).toBe(1);
    expect(await metric('idempo_produce_batches_total', { outcome: 'duplicate' })).toBe(1);
    expect(await metric('idempo_produce_batches_total', { outcome: 'written' })).toBe(1);
  });

  it('a gap with nothing in flight is answered OUT_OF_ORDER_SEQUENCE_NUMBER by the sidecar', async () => {
    const first = call([{ records: batch(0, 3) }]);
    await forwardAndAnswer(enforce(first), first, () => ({ errorCode: 0, baseOffset: 0n }));
    const gap = part0(await answered(enforce(call([{ records: batch(10, 1) }]))));
    expect([gap.errorCode, gap.errorMessage]).toEqual([45, 'idempo: expected sequence 3, got 10']);
    expect(await metric('idempo_out_of_sequence_total', { topic: 't' })).toBe(1);
    expect(await metric('idempo_produce_batches_total', { outcome: 'out_of_sequence' })).toBe(1);
  });

  it('rule 3: a gap while an earlier batch is in flight goes to the broker; the sidecar never answers 45 then', async () => {
    const first = call([{ records: batch(0, 3) }]);
    await forwardAndAnswer(enforce(first), first, () => ({ errorCode: 0, baseOffset: 0n }));
    // seq 3..5 in flight (not answered yet), then a batch at seq 10.
    const inFlight = call([{ records: batch(3, 3) }]);
    const d1 = enforce(inFlight);
    expect(d1.kind).toBe('forward');
    const gapCall = call([{ records: batch(10, 1) }]);
    const d2 = enforce(gapCall);
    expect(d2.kind).toBe('forward'); // not an answer of the sidecar's own
    expect(await metric('idempo_out_of_sequence_total')).toBe(0);
    // The earlier batch fails (retriable); the broker judges the gap itself: counted once.
    await forwardAndAnswer(d1, inFlight, () => ({ errorCode: 6 }));
    await forwardAndAnswer(d2, gapCall, () => ({ errorCode: 45 }));
    expect(await metric('idempo_out_of_sequence_total', { topic: 't' })).toBe(1);
    // The client re-sends seq 3..5: accepted (the failed one left no state behind).
    expect(enforce(call([{ records: batch(3, 3) }])).kind).toBe('forward');
  });

  it('a copy of a batch in flight waits for the original and gets its answer', async () => {
    const first = call([{ records: batch(0, 2) }]);
    const d1 = enforce(first);
    const d2 = enforce(call([{ records: batch(0, 2) }]));
    expect(d2.kind).toBe('answer');
    let settled = false;
    const copy = answered(d2).then((r) => ((settled = true), r));
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    await forwardAndAnswer(d1, first, () => ({ errorCode: 0, baseOffset: 55n }));
    expect(part0(await copy)).toMatchObject({ errorCode: 0, baseOffset: 55n });
  });

  it('an older epoch is fenced with INVALID_PRODUCER_EPOCH', async () => {
    const first = call([{ records: batch(0, 1, 2) }]);
    await forwardAndAnswer(enforce(first), first, () => ({ errorCode: 0, baseOffset: 0n }));
    expect(part0(await answered(enforce(call([{ records: batch(1, 1, 1) }])))).errorCode).toBe(47);
  });

  it('a request mixing a copy and a new batch forwards only the new one and answers both, in request order', async () => {
    const first = call([{ partition: 0, records: batch(0, 1) }]);
    await forwardAndAnswer(enforce(first), first, () => ({ errorCode: 0, baseOffset: 9n }));
    const mixed = call([
      { partition: 0, records: batch(0, 1) },
      { partition: 1, records: batch(0, 4) },
    ]);
    const d = enforce(mixed);
    expect(d.kind).toBe('forward-modified');
    if (d.kind !== 'forward-modified') return;
    expect(d.request.topicData.map((t) => t.partitionData.map((p) => p.index))).toEqual([[1]]);
    const merged = await d.onResponse!(answerOf(brokerAnswer(d.request, () => ({ errorCode: 0, baseOffset: 70n })), mixed.version));
    expect(merged!.responses[0].partitionResponses.map((p) => [p.index, p.errorCode, p.baseOffset])).toEqual([
      [0, 0, 9n],
      [1, 0, 70n],
    ]);
  });

  it('non-idempotent batches are not the validator\'s business: forwarded', () => {
    expect(enforce(call([{ records: batch(-1, 1, -1, -1n) }])).kind).toBe('forward');
    expect(enforce(call([{ records: batch(-1, 1, -1, -1n) }])).kind).toBe('forward');
  });
});

describe('observe', () => {
  const observe = (c: ProduceCall) => v.observe(c, partsOf(c.request, c.version, cluster), now);

  it('forwards copies and gaps; a copy counts once as duplicate, a gap once as out of sequence', async () => {
    const first = call([{ records: batch(0, 3) }]);
    await forwardAndAnswer(observe(first), first, () => ({ errorCode: 0, baseOffset: 5n }));
    const copy = call([{ records: batch(0, 3) }]);
    // The broker answers a copy NONE with the original offset: it changes nothing.
    expect(await forwardAndAnswer(observe(copy), copy, () => ({ errorCode: 0, baseOffset: 5n }))).toBeUndefined();
    const gap = call([{ records: batch(10, 1) }]);
    await forwardAndAnswer(observe(gap), gap, () => ({ errorCode: 45 }));
    expect(await metric('idempo_duplicates_rejected_total', { topic: 't' })).toBe(1);
    expect(await metric('idempo_out_of_sequence_total', { topic: 't' })).toBe(1);
    expect(await metric('idempo_produce_batches_total', { outcome: 'written' })).toBe(1);
    expect(await metric('idempo_produce_batches_total', { outcome: 'duplicate' })).toBe(1);
    expect(await metric('idempo_produce_batches_total', { outcome: 'out_of_sequence' })).toBe(1);
  });

  it('an answer in another order than the request (a broker may answer topics in any order) completes each part with its own result', async () => {
    const c = call([
      { topic: 'a', partition: 0, records: batch(0, 1) },
      { topic: 'a', partition: 1, records: batch(0, 1, 0, PID + 1n) },
      { topic: 'b', partition: 0, records: batch(0, 1, 0, PID + 2n) },
    ]);
    const d = observe(c);
    if (d.kind !== 'forward') throw new Error('not forwarded');
    const inOrder = brokerAnswer(c.request, (topic, partition) => ({ errorCode: topic === 'b' ? 46 : partition === 1 ? 45 : 0 }));
    // Topics swapped, and a's partitions swapped too.
    const resp = createProduceResponse();
    const [a, b] = inOrder.responses;
    a.partitionResponses.reverse();
    resp.responses.push(b, a);
    await d.onResponse?.(answerOf(resp, c.version));
    expect(await metric('idempo_produce_batches_total', { topic: 'a', outcome: 'written' })).toBe(1);
    expect(await metric('idempo_produce_batches_total', { topic: 'a', outcome: 'out_of_sequence' })).toBe(1);
    expect(await metric('idempo_produce_batches_total', { topic: 'b', outcome: 'duplicate' })).toBe(1);
    expect(await metric('idempo_produce_batches_total', { topic: 'a', outcome: 'duplicate' })).toBe(0);
    expect(v.table.inFlightCount).toBe(0);
  });

  it('counts every batch of an answer: runs of one topic and result, and where they change', async () => {
    const c = call([
      { topic: 'a', partition: 0, records: batch(-1, 1, -1, -1n) },
      { topic: 'a', partition: 1, records: batch(-1, 1, -1, -1n) },
      { topic: 'a', partition: 2, records: batch(-1, 1, -1, -1n) },
      { topic: 'b', partition: 0, records: batch(-1, 1, -1, -1n) },
      { topic: 'b', partition: 1, records: batch(-1, 1, -1, -1n) },
      { topic: 'b', partition: 2, records: batch(-1, 1, -1, -1n) },
    ]);
    await forwardAndAnswer(observe(c), c, (topic, partition) => ({ errorCode: topic === 'b' && partition === 1 ? 6 : 0 }));
    expect(await metric('idempo_produce_batches_total', { topic: 'a', outcome: 'written' })).toBe(3);
    expect(await metric('idempo_produce_batches_total', { topic: 'b', outcome: 'written' })).toBe(2);
    expect(await metric('idempo_produce_batches_total', { topic: 'b', outcome: 'failed' })).toBe(1);
    expect(await metric('idempo_upstream_errors_total', { error: 'NOT_LEADER_OR_FOLLOWER' })).toBe(1);
  });

  it('keeps no bytes of the call: an answer by topic id completes after the request memory is overwritten (the proxy lends it)', async () => {
    const id = Buffer.alloc(16, 7);
    cluster.setTopic('by-id', id, [{ partition: 0, leader: 1 }]);
    const c = produceCall(produceRequest([['by-id', 0, batch(0, 3)]], { topicId: () => id }), 13);
    const d = observe(c);
    c.frame.fill(0xa5); // what the next socket read does to a request observe was lent (ProduceHook.keepsNoBytes)
    if (d.kind !== 'forward') throw new Error('not forwarded');
    const resp = createProduceResponse();
    const tr = createTopicProduceResponse();
    tr.topicId = Buffer.from(id);
    const pr = createPartitionProduceResponse();
    pr.baseOffset = 0n;
    tr.partitionResponses.push(pr);
    resp.responses.push(tr);
    await d.onResponse?.(answerOf(resp, c.version));
    expect(await metric('idempo_produce_batches_total', { topic: 'by-id', outcome: 'written' })).toBe(1);
  });
});

describe('an answer the proxy gave up on', () => {
  it('NETWORK_EXCEPTION (connection given up: written or not) leaves the partition to the broker: the next batch is forwarded, never answered 45 on a guess', async () => {
    const first = call([{ records: batch(0, 3) }]);
    await forwardAndAnswer(enforce(first), first, () => ({ errorCode: 0, baseOffset: 0n }));
    const lost = call([{ records: batch(3, 1) }]);
    await forwardAndAnswer(enforce(lost), lost, () => ({ errorCode: 13 }));
    expect(v.table.inFlightCount).toBe(0);
    // The broker did write seq 3 and answered the client through another path; the client moves on.
    expect(enforce(call([{ records: batch(4, 1) }])).kind).toBe('forward');
    expect(await metric('idempo_out_of_sequence_total')).toBe(0);
  });
});
