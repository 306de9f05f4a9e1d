import { describe, expect, it } from 'vitest';
import { buildResponse, partsOf, resultsByPosition, subsetRequest, topicMatcher, type PartResult } from './batches.js';
import { ClusterView } from '../proxy/cluster-view.js';
import { Reader } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';
import { encodeRecordBatch } from '../codec/records.js';
import { BatchOffset } from '../codec/record-batch.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, type ProduceRequest } from '../codec/generated/produce-request.js';
import { createPartitionProduceResponse, createProduceResponse, createTopicProduceResponse, decodeProduceResponse, encodeProduceResponse, type ProduceResponse } from '../codec/generated/produce-response.js';
import { answerOf } from '../codec/produce-answer.test-support.js';

/** A v2 batch of `records` empty records; `magic` other than 2 overwrites the magic byte (a batch this proxy must refuse). */
function batch(o: { producerId?: bigint; baseSequence?: number; records?: number; magic?: number } = {}): Buffer {
  const b = encodeRecordBatch({
    records: Array.from({ length: o.records ?? 1 }, () => ({ value: null })),
    producerId: o.producerId,
    producerEpoch: o.producerId === undefined ? -1 : 0,
    baseSequence: o.baseSequence,
  });
  if (o.magic !== undefined) b.writeInt8(o.magic, BatchOffset.magic);
  return b;
}

function request(topics: Array<[string, Array<[number, Buffer | null]>]>): ProduceRequest {
  const req = createProduceRequest();
  req.acks = -1;
  req.timeoutMs = 1000;
  for (const [name, parts] of topics) {
    const td = createTopicProduceData();
    td.name = name;
    for (const [index, records] of parts) {
      const pd = createPartitionProduceData();
      pd.index = index;
      pd.records = records;
      td.partitionData.push(pd);
    }
    req.topicData.push(td);
  }
  return req;
}

const ok = (offset: bigint): PartResult => ({ errorCode: 0, baseOffset: offset, logAppendTimeMs: -1n });

describe('topicMatcher', () => {
  it('"*" covers every topic; exclude wins over include', () => {
    const m = topicMatcher(['*'], ['__*', 'audit']);
    expect(m('orders')).toBe(true);
    expect(m('__consumer_offsets')).toBe(false);
    expect(m('audit')).toBe(false);
    expect(m('audit-eu')).toBe(true);
  });

  it('globs are anchored; "?" is one character; regex characters are literal', () => {
    const m = topicMatcher(['orders.*', 'log-?', 'a+b'], []);
    expect(m('orders.eu')).toBe(true);
    expect(m('ordersXeu')).toBe(false); // the dot is a dot
    expect(m('my-orders.eu')).toBe(false);
    expect(m('log-1')).toBe(true);
    expect(m('log-12')).toBe(false);
    expect(m('a+b')).toBe(true);
    expect(m('aab')).toBe(false);
  });

  it('an empty include list covers nothing, and answers stay the same when cached', () => {
    const none = topicMatcher([], []);
    expect(none('orders')).toBe(false);
    const m = topicMatcher(['t*'], []);
    for (let i = 0; i < 3; i++) expect([m('t1'), m('x1')]).toEqual([true, false]);
  });
});

describe('partsOf', () => {
  it('one entry per partition with its position, topic and header; no header unless exactly one v2 batch', () => {
    const one = batch({ producerId: 7n, baseSequence: 3, records: 2 });
    const two = Buffer.concat([batch(), batch()]);
    const req = request([
      ['a', [[0, one], [5, null]]],
      ['b', [[1, batch({ magic: 1 })], [2, two], [3, Buffer.alloc(10)]]],
    ]);
    const parts = partsOf(req, 9, new ClusterView());
    expect(parts.map((p) => [p.t, p.p, p.pos, p.topic, p.partition])).toEqual([
      [0, 0, 0, 'a', 0],
      [0, 1, 1, 'a', 5],
      [1, 0, 2, 'b', 1],
      [1, 1, 3, 'b', 2],
      [1, 2, 4, 'b', 3],
    ]);
    expect(parts[0].header).toMatchObject({ producerId: 7n, baseSequence: 3, recordsCount: 2, lastOffsetDelta: 1 });
    expect(parts.slice(1).map((p) => p.header)).toEqual([undefined, undefined, undefined, undefined]);
    // What a broker answers for each malformed part (no batch, magic 1, two batches, 10 bytes).
    expect(parts.map((p) => p.invalid?.errorCode)).toEqual([undefined, 87, 87, 87, 87]);
    expect(parts[0].records).toBe(one); // a view, not a copy
  });

  it('Produce v13 names topics by id: the name comes from metadata', () => {
    const cluster = new ClusterView();
    const id = Buffer.alloc(16, 7);
    cluster.setTopic('by-id', id, [{ partition: 0, leader: 1 }]);
    const req = request([['', [[0, batch()]]]]);
    req.topicData[0].topicId = id;
    expect(partsOf(req, 13, cluster)[0].topic).toBe('by-id');
    const unknown = request([['', [[0, batch()]]]]);
    unknown.topicData[0].topicId = Buffer.alloc(16, 9);
    expect(partsOf(unknown, 13, cluster)[0].topic).toBe(`id:${'09'.repeat(16)}`);
  });
});

describe('subsetRequest', () => {
  it('keeps the listed positions in order, drops emptied topics, leaves the original alone', () => {
    const req = request([
      ['a', [[0, batch()], [1, batch()]]],
      ['b', [[0, batch()]]],
      ['c', [[4, batch()], [5, batch()]]],
    ]);
    const sub = subsetRequest(req, new Set([1, 3, 4])); // positions: a/1, c/4, c/5
    expect(sub.topicData.map((t) => [t.name, t.partitionData.map((p) => p.index)])).toEqual([
      ['a', [1]],
      ['c', [4, 5]],
    ]);
    expect(sub.acks).toBe(-1);
    expect(req.topicData.map((t) => t.partitionData.length)).toEqual([2, 1, 2]);
  });
});

describe('partsOf: a topic-partition named twice in one request', () => {
  const cluster = new ClusterView();
  const repeatedOf = (req: ProduceRequest): string[] => partsOf(req, 9, cluster).filter((b) => b.repeated).map((b) => `${b.topic}-${b.partition}`);

  it('later occurrences are marked, in one topic entry or across two entries of the same topic; the same index in another topic is not', () => {
    expect(repeatedOf(request([['a', [[0, batch()], [1, batch()], [0, batch()]]]]))).toEqual(['a-0']);
    expect(repeatedOf(request([['a', [[0, batch()]]], ['b', [[0, batch()]]], ['a', [[1, batch()], [0, batch()]]]]))).toEqual(['a-0']);
    expect(repeatedOf(request([['a', [[0, batch()]]], ['b', [[0, batch()], [1, batch()]]]]))).toEqual([]);
  });

  it('the same in requests of many parts (checked through keys past the first 32), a repeat on either side of that point', () => {
    const many = (n: number): Array<[number, Buffer | null]> => Array.from({ length: n }, (_, i) => [i, batch()]);
    const b = batch();
    expect(repeatedOf(request([['a', many(40)], ['b', many(40)], ['a', [[3, b], [39, b], [40, b]]], ['b', [[0, b]]]]))).toEqual(['a-3', 'a-39', 'b-0']);
    expect(repeatedOf(request([['a', [...many(31), [5, b], [6, b], ...many(3)]]]))).toEqual(['a-5', 'a-6', 'a-0', 'a-1', 'a-2']);
    expect(repeatedOf(request([['a', many(100)]]))).toEqual([]);
  });
});

describe('buildResponse', () => {
  it('answers every partition in request order; one without a result is never a success', () => {
    const req = request([
      ['a', [[3, batch()], [1, batch()]]],
      ['b', [[0, batch()]]],
    ]);
    const results = new Map<number, PartResult>([
      [0, ok(42n)],
      [2, { errorCode: 45, baseOffset: 99n, logAppendTimeMs: -1n, errorMessage: 'idempo: expected sequence 3, got 10' }],
    ]);
    const resp = buildResponse(req, results);
    expect(resp.responses.map((t) => t.name)).toEqual(['a', 'b']);
    const [p3, p1] = resp.responses[0].partitionResponses;
    expect([p3.index, p3.errorCode, p3.baseOffset]).toEqual([3, 0, 42n]);
    expect([p1.index, p1.errorCode, p1.baseOffset]).toEqual([1, 13, -1n]); // NETWORK_EXCEPTION
    const b0 = resp.responses[1].partitionResponses[0];
    expect([b0.errorCode, b0.baseOffset, b0.errorMessage]).toEqual([45, -1n, 'idempo: expected sequence 3, got 10']); // an error never carries an offset
  });

  it('encodes and decodes at every version the sidecar answers', () => {
    const req = request([['t', [[0, batch()]]]]);
    const resp = buildResponse(req, new Map([[0, { ...ok(7n), errorMessage: null }]]));
    for (const v of [3, 8, 9, 12]) {
      const w = new Writer();
      encodeProduceResponse(w, resp, v);
      const back = decodeProduceResponse(new Reader(w.toBuffer()), v);
      expect(back.responses[0].partitionResponses[0]).toMatchObject({ index: 0, errorCode: 0, baseOffset: 7n });
    }
  });
});

describe('resultsByPosition', () => {
  it('matches answers by topic and partition, whatever their order', () => {
    const req = request([
      ['a', [[0, batch()], [1, batch()]]],
      ['b', [[2, batch()]]],
    ]);
    const resp: ProduceResponse = createProduceResponse();
    for (const [name, parts] of [
      ['b', [[2, 30n]]],
      ['a', [[1, 11n], [0, 10n]]],
    ] as const) {
      const tr = createTopicProduceResponse();
      tr.name = name;
      for (const [index, off] of parts) {
        const pr = createPartitionProduceResponse();
        pr.index = index;
        pr.baseOffset = off;
        tr.partitionResponses.push(pr);
      }
      resp.responses.push(tr);
    }
    const byPos = resultsByPosition(req, answerOf(resp, 9));
    expect([...byPos.entries()].map(([k, r]) => [k, r.baseOffset]).sort()).toEqual([
      [0, 10n],
      [1, 11n],
      [2, 30n],
    ]);
  });

  it('a partition the broker did not answer has no entry', () => {
    const req = request([['a', [[0, batch()], [1, batch()]]]]);
    const resp = createProduceResponse();
    const tr = createTopicProduceResponse();
    tr.name = 'a';
    const pr = createPartitionProduceResponse();
    pr.index = 1;
    tr.partitionResponses.push(pr);
    resp.responses.push(tr);
    expect([...resultsByPosition(req, answerOf(resp, 9)).keys()]).toEqual([1]);
  });
});
