import { describe, expect, it } from 'vitest';
import { Reader } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';
import { encodeRecordBatch } from '../codec/records.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, decodeProduceRequest, encodeProduceRequest } from '../codec/generated/produce-request.js';
import { decodeProduceResponse } from '../codec/generated/produce-response.js';
import { detachFromFrame, produceErrorPayload } from './produce-frames.js';
import { framed } from './frames.js';
import { responseBodyOffset } from './headers.js';

describe('detachFromFrame', () => {
  it('a request decoded from lent memory still gets its NETWORK_EXCEPTION answer after that memory is overwritten', () => {
    for (const version of [9, 13]) {
      const req = createProduceRequest();
      req.acks = -1;
      for (const [name, id] of [['a', 1], ['b', 2]] as const) {
        const td = createTopicProduceData();
        if (version < 13) td.name = name;
        else td.topicId = Buffer.alloc(16, id);
        for (const index of [4, 1]) {
          const pd = createPartitionProduceData();
          pd.index = index;
          pd.records = encodeRecordBatch({ records: [{ value: 'v' }] });
          td.partitionData.push(pd);
        }
        req.topicData.push(td);
      }
      const w = new Writer(1024);
      encodeProduceRequest(w, req, version);
      const lent = Buffer.from(w.toBuffer());
      const decoded = detachFromFrame(decodeProduceRequest(new Reader(lent), version), version);
      lent.fill(0xa5); // the socket's next read (IDEMPO_TEST_ONLY_POISON_READS does the same)
      expect(decoded.topicData.flatMap((td) => td.partitionData.map((pd) => pd.records))).toEqual([null, null, null, null]);
      const payload = produceErrorPayload(7, version, decoded, 13);
      const resp = decodeProduceResponse(new Reader(payload, responseBodyOffset(payload, 1)), version);
      expect(resp.responses.map((tr) => [tr.name, tr.topicId.toString('hex'), tr.partitionResponses.map((pr) => [pr.index, pr.errorCode])])).toEqual(
        req.topicData.map((td) => [td.name, td.topicId.toString('hex'), [[4, 13], [1, 13]]]),
      );
    }
  });
});

describe('encodeProduceAnswer (through produceErrorPayload)', () => {
  it("the sidecar's own answer carries its size prefix in front, so the client gets one frame in one write", () => {
    for (const version of [3, 8, 9, 13]) {
      const req = createProduceRequest();
      const td = createTopicProduceData();
      td.name = 'a';
      td.topicId = Buffer.alloc(16, 3);
      const pd = createPartitionProduceData();
      pd.index = 2;
      td.partitionData.push(pd);
      req.topicData.push(td);
      const payload = produceErrorPayload(41, version, req, 13);
      const whole = framed(payload);
      expect(whole).toBeDefined();
      expect(whole!.readInt32BE(0)).toBe(payload.length);
      expect(whole!.subarray(4).equals(payload)).toBe(true);
      expect(payload.readInt32BE(0)).toBe(41); // the correlation id starts the payload
      const resp = decodeProduceResponse(new Reader(payload, responseBodyOffset(payload, version >= 9 ? 1 : 0)), version);
      expect(resp.responses[0]!.partitionResponses.map((pr) => [pr.index, pr.errorCode])).toEqual([[2, 13]]);
    }
  });
});
