import { describe, expect, it } from 'vitest';
import { Reader } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';
import { encodeRecordBatch } from '../codec/records.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, decodeProduceRequest, encodeProduceRequest } from '../codec/generated/produce-request.js';
import { decodeProduceResponse } from '../codec/generated/produce-response.js';
import { detachFromFrame, produceErrorPayload } from './produce-frames.js';
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
