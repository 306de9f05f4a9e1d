import { describe, expect, test } from 'vitest';
import { Writer } from './writer.js';
import { Reader } from './reader.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, decodeProduceRequest, encodeProduceRequest, type ProduceRequest } from './generated/produce-request.js';
import { produceEnd, produceHead, producePartition, produceTopic, produceTopicEnd } from './produce-request-writer.js';

/** A seeded generator (mulberry32): the same requests on every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Requests as the upgrader sends them: no transactional id, acks -1, batches small and large (≥ 1 KiB: by reference), names ASCII and not, long ones (a 2-byte compact length). */
function requests(seed: number, n: number): ProduceRequest[] {
  const rnd = random(seed);
  const int = (max: number) => Math.floor(rnd() * max);
  const names = ['orders', 'é-topic-ü', 'x'.repeat(200), 'a'];
  const out: ProduceRequest[] = [];
  for (let i = 0; i < n; i++) {
    const req = createProduceRequest();
    req.acks = -1;
    req.timeoutMs = int(2 ** 31);
    for (let t = int(4); t > 0; t--) {
      const td = createTopicProduceData();
      td.name = names[int(names.length)];
      td.topicId = Buffer.from(Array.from({ length: 16 }, () => int(256)));
      for (let p = int(5); p > 0; p--) {
        const pd = createPartitionProduceData();
        pd.index = int(1000);
        pd.records = Buffer.alloc([0, 61, 200, 1023, 1024, 16_384][int(6)], int(256));
        td.partitionData.push(pd);
      }
      req.topicData.push(td);
    }
    out.push(req);
  }
  return out;
}

function bytesOf(write: (w: Writer) => void): Buffer {
  const w = new Writer(64);
  w.keepLarge(1024);
  write(w);
  return Buffer.concat(w.toChunks());
}

/** The request written with the hand-written writer. */
function written(w: Writer, req: ProduceRequest, v: number): void {
  produceHead(w, v, req.acks, req.timeoutMs, req.topicData.length);
  for (const td of req.topicData) {
    produceTopic(w, v, td.name, td.topicId, td.partitionData.length);
    for (const pd of td.partitionData) producePartition(w, v, pd.index, pd.records!);
    produceTopicEnd(w, v);
  }
  produceEnd(w, v);
}

describe('the hand-written Produce request writer', () => {
  test('writes the generated encoder’s bytes, v3-13', () => {
    const all = requests(7, 300);
    for (let v = 3; v <= 13; v++) {
      for (const req of all) {
        const mine = bytesOf((w) => written(w, req, v));
        expect(mine.equals(bytesOf((w) => encodeProduceRequest(w, req, v))), `v${v}`).toBe(true);
        // and the generated decoder reads it back
        const back = decodeProduceRequest(new Reader(mine), v);
        expect(back.topicData.map((t) => t.partitionData.map((p) => p.index))).toEqual(req.topicData.map((t) => t.partitionData.map((p) => p.index)));
      }
    }
  });

  test('sends large batches by reference, like the generated encoder', () => {
    const big = Buffer.alloc(4096, 1);
    const w = new Writer(64);
    w.keepLarge(1024);
    produceHead(w, 13, -1, 30_000, 1);
    produceTopic(w, 13, 'orders', Buffer.alloc(16, 2), 1);
    producePartition(w, 13, 0, big);
    produceTopicEnd(w, 13);
    produceEnd(w, 13);
    expect(w.toChunks().some((c) => c === big)).toBe(true);
  });

  test('refuses a version it does not know', () => {
    expect(() => produceHead(new Writer(16), 2, -1, 0, 0)).toThrow(/outside the supported range/);
    expect(() => produceHead(new Writer(16), 14, -1, 0, 0)).toThrow(/outside the supported range/);
  });
});

// Client requests encoded into one buffer and decoded as views (as the sidecar holds them); the
// upgrader's request written from those views joins neighbouring chunks (Writer.joinLast): the
// bytes must still be the generated encoder's.
describe('written from views into client frames (as the upgrader holds batches)', () => {
  test('same bytes as the generated encoder, v3-13, client v3-13, subsets and reorders', () => {
    const rnd = random(11);
    const int = (m: number) => Math.floor(rnd() * m);
    const names = ['orders', 'é-ü', 'x'.repeat(130), 'a'];
    let joined = 0;
    for (let iter = 0; iter < 400; iter++) {
      const cv = 3 + int(11);
      const client = createProduceRequest();
      client.acks = -1;
      client.timeoutMs = 30000;
      const used = new Set<string>();
      for (let t = 1 + int(3); t > 0; t--) {
        const name = names[int(names.length)];
        if (used.has(name)) continue;
        used.add(name);
        const td = createTopicProduceData();
        td.name = name;
        td.topicId = Buffer.from(Array.from({ length: 16 }, () => int(256)));
        for (let p = 1 + int(4); p > 0; p--) {
          const pd = createPartitionProduceData();
          pd.index = int(300);
          pd.records = Buffer.alloc([1024, 1100, 3000, 200][int(4)], int(256));
          td.partitionData.push(pd);
        }
        client.topicData.push(td);
      }
      const cw = new Writer(64);
      encodeProduceRequest(cw, client, cv);
      const frame = Buffer.from(cw.toBuffer());
      const decoded = decodeProduceRequest(new Reader(frame), cv);
      // the upgrader's request: a subset, sometimes reordered
      const items: Array<{ topic: string; id: Buffer; index: number; records: Buffer }> = [];
      for (const td of decoded.topicData) for (const pd of td.partitionData) if (int(5) > 0) items.push({ topic: td.name || names[0], id: td.topicId, index: pd.index, records: pd.records! });
      if (items.length === 0) continue;
      if (int(4) === 0) items.reverse();
      for (let v = 3; v <= 13; v++) {
        const topics = [...new Set(items.map((i) => i.topic))];
        const w = new Writer(64);
        w.keepLarge(1024);
        produceHead(w, v, -1, 30000, topics.length);
        const ref = createProduceRequest();
        ref.acks = -1;
        ref.timeoutMs = 30000;
        for (const t of topics) {
          const mine = items.filter((i) => i.topic === t);
          produceTopic(w, v, t, mine[0].id, mine.length);
          const td = createTopicProduceData();
          td.name = t;
          td.topicId = mine[0].id;
          for (const i of mine) {
            producePartition(w, v, i.index, i.records);
            const pd = createPartitionProduceData();
            pd.index = i.index;
            pd.records = i.records;
            td.partitionData.push(pd);
          }
          produceTopicEnd(w, v);
          ref.topicData.push(td);
        }
        produceEnd(w, v);
        const chunks = w.toChunks();
        if (chunks.length < items.length * 2 + 1) joined++;
        const rw = new Writer(64);
        encodeProduceRequest(rw, ref, v);
        expect(Buffer.concat(chunks).equals(rw.toBuffer()), `iter ${iter} v${v} cv${cv}`).toBe(true);
        expect(w.length).toBe(rw.toBuffer().length);
      }
    }
    expect(joined).toBeGreaterThan(0);
  });
});
