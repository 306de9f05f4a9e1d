import { describe, expect, test } from 'vitest';
import { Reader } from './reader.js';
import { Writer } from './writer.js';
import { ProduceAnswer, topicKey } from './produce-answer.js';
import {
  createPartitionProduceResponse,
  createProduceResponse,
  createTopicProduceResponse,
  decodeProduceResponse,
  encodeProduceResponse,
  type ProduceResponse,
} from './generated/produce-response.js';

/** An answer with everything a broker may put in one: two topics, errors with messages, record errors, leaders, endpoints, unknown tags. */
function richAnswer(endpoints: boolean): ProduceResponse {
  const resp = createProduceResponse();
  resp.throttleTimeMs = 17;
  for (const [t, name] of ['orders', 'payments'].entries()) {
    const tr = createTopicProduceResponse();
    tr.name = name;
    tr.topicId = Buffer.alloc(16, 0x30 + t);
    for (const index of [2, 0, 7]) {
      const pr = createPartitionProduceResponse();
      pr.index = index;
      pr.errorCode = index === 7 ? 6 : 0;
      pr.baseOffset = index === 7 ? -1n : 1000n * BigInt(index + 1) + (1n << 40n);
      pr.logAppendTimeMs = index === 0 ? 1_700_000_000_123n : -1n;
      pr.logStartOffset = 5n;
      if (index === 7) {
        pr.errorMessage = 'not the leader';
        pr.recordErrors = [{ batchIndex: 3, batchIndexErrorMessage: 'bad record', _tagged: undefined }];
        pr.currentLeader = { leaderId: 4, leaderEpoch: 9, _tagged: undefined };
        pr._tagged = new Map([[5, Buffer.from('zz')]]);
      }
      tr.partitionResponses.push(pr);
    }
    resp.responses.push(tr);
  }
  if (endpoints) resp.nodeEndpoints = [{ nodeId: 4, host: 'b4.kafka', port: 9092, rack: 'r1', _tagged: undefined }];
  resp._tagged = new Map([[3, Buffer.from([1, 2])]]);
  return resp;
}

function encode(resp: ProduceResponse, version: number): Buffer {
  const w = new Writer(512);
  encodeProduceResponse(w, resp, version);
  return Buffer.from(w.toBuffer());
}

/** What the in-place reading gives, in the decoded objects' shape. */
function readAll(a: ProduceAnswer): unknown {
  const topics = [];
  for (let t = 0; t < a.topicCount; t++) {
    const parts = [];
    for (let p = 0; p < a.partitionCount(t); p++) {
      const e = a.entry(t, p);
      parts.push({ index: a.index(e), ...a.result(e), logStartOffset: a.logStartOffset(e) });
    }
    topics.push({ key: a.topicKey(t), parts });
  }
  return { topics, throttleTimeMs: a.throttleTimeMs, hasNodeEndpoints: a.hasNodeEndpoints };
}

function fromObjects(resp: ProduceResponse, version: number): unknown {
  return {
    topics: resp.responses.map((tr) => ({
      key: topicKey(tr, version),
      parts: tr.partitionResponses.map((pr) => ({ index: pr.index, errorCode: pr.errorCode, baseOffset: pr.baseOffset, logAppendTimeMs: pr.logAppendTimeMs, errorMessage: pr.errorMessage, logStartOffset: pr.logStartOffset })),
    })),
    throttleTimeMs: resp.throttleTimeMs,
    hasNodeEndpoints: resp.nodeEndpoints.length > 0,
  };
}

/** The generated decoder's verdict on bytes: what they decode to, or that they throw. */
function decoded(bytes: Buffer, version: number): unknown {
  try {
    return fromObjects(decodeProduceResponse(new Reader(bytes), version), version);
  } catch {
    return 'throws';
  }
}

function scanned(bytes: Buffer, version: number): unknown {
  try {
    return readAll(new ProduceAnswer(bytes, 0, version));
  } catch {
    return 'throws';
  }
}

describe('ProduceAnswer', () => {
  test('reads what the generated decoder reads, at every version, with and without node endpoints', () => {
    for (let v = 3; v <= 13; v++) {
      for (const endpoints of [false, true]) {
        const bytes = encode(richAnswer(endpoints), v);
        const a = new ProduceAnswer(bytes, 0, v);
        expect(readAll(a)).toEqual(fromObjects(decodeProduceResponse(new Reader(bytes), v), v));
        expect(a.hasNodeEndpoints).toBe(endpoints && v >= 10);
        expect(a.decode()).toEqual(decodeProduceResponse(new Reader(bytes), v));
      }
    }
  });

  test('reads from a body offset inside a larger frame', () => {
    const body = encode(richAnswer(true), 11);
    const frame = Buffer.concat([Buffer.from([9, 9, 9, 9, 9]), body]);
    expect(readAll(new ProduceAnswer(frame, 5, 11))).toEqual(readAll(new ProduceAnswer(body, 0, 11)));
  });

  test('malformed answers throw exactly where the generated decoder throws: every truncation, seeded byte changes', () => {
    let seed = 0x9e3779b9;
    const random = (n: number): number => {
      seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      return seed % n;
    };
    let throwing = 0;
    for (const v of [3, 5, 8, 9, 10, 13]) {
      const good = encode(richAnswer(true), v);
      for (let len = 0; len < good.length; len++) {
        const cut = good.subarray(0, len);
        expect(scanned(cut, v), `v${v} cut at ${len}`).toEqual(decoded(cut, v));
      }
      for (let i = 0; i < 1500; i++) {
        const bad = Buffer.from(good);
        for (let k = 1 + random(3); k > 0; k--) bad[random(bad.length)] = random(4) === 0 ? 0xff : random(256);
        const want = decoded(bad, v);
        if (want === 'throws') throwing++;
        expect(scanned(bad, v), `v${v} mutation ${i}: ${bad.toString('hex')}`).toEqual(want);
      }
    }
    expect(throwing).toBeGreaterThan(1000); // the mutations do reach the checks
  });

  test('topicIs agrees with topicKey(t) === key: ids, ASCII and non-ASCII names, near misses', () => {
    for (let v = 3; v <= 13; v++) {
      const resp = richAnswer(false);
      resp.responses[1].name = 'zählung'; // UTF-8 longer than its characters
      const a = new ProduceAnswer(encode(resp, v), 0, v);
      const keys = ['orders', 'payments', 'order', 'orderz', 'zählung', 'zahlung', 'zählunG', '', 'x'.repeat(16)];
      for (let t = 0; t < a.topicCount; t++) keys.push(a.topicKey(t), a.topicKey(t).slice(0, 15) + '\u0001');
      for (let t = 0; t < a.topicCount; t++) for (const k of keys) expect(a.topicIs(t, k), `v${v} topic ${t} key ${JSON.stringify(k)}`).toBe(a.topicKey(t) === k);
    }
  });

  test('topicIdIs: the topic ids of a v13 answer, byte for byte; never before v13', () => {
    for (let v = 3; v <= 13; v++) {
      const resp = richAnswer(false);
      const a = new ProduceAnswer(encode(resp, v), 0, v);
      const near = Buffer.from(resp.responses[0].topicId);
      near[15] ^= 1;
      for (let t = 0; t < a.topicCount; t++) {
        expect(a.topicIdIs(t, resp.responses[t].topicId)).toBe(v >= 13);
        expect(a.topicIdIs(t, resp.responses[1 - t].topicId)).toBe(false);
        expect(a.topicIdIs(t, near)).toBe(false);
      }
    }
  });

  test('an unsupported version throws', () => {
    expect(() => new ProduceAnswer(Buffer.alloc(8), 0, 2)).toThrow(/not supported/);
  });
});
