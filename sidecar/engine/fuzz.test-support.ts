// The engine's fuzz campaign (issue 8): seeded generated and mutated Produce requests, each
// followed by a valid request that must succeed, on a MODEL cluster (model-cluster.test-support.ts).
// Invariants: no exception escapes the engine; every request gets its answer (or none for
// acks=0, or a close); a part the generator broke in a way a broker detects is never answered
// success; nothing stays in flight and the engine's byte counters return to 0 once windows
// pass; the heap returns to its baseline. Run by fuzz.test.ts (a short part of `make test`)
// and by `make fuzz` (FUZZ_ITERATIONS=1000000).
import { Engine } from './engine.js';
import { ModelCluster, engineConfig, produceCall, type ClientOutcome, type ModelTopic } from './model-cluster.test-support.js';
import { encodeRecordBatch } from '../codec/records.js';
import { mulberry32 } from '../../test/support/fault-relay.js';
import { computeCrc } from '../codec/record-batch.js';
import { Reader } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, decodeProduceRequest, encodeProduceRequest, type ProduceRequest } from '../codec/generated/produce-request.js';
import type { Mode } from '../config/cli.js';
import { ErrorCode } from '../codec/errors.js';


const TOPICS: ModelTopic[] = [
  { name: 'fz-a', partitions: 3, id: Buffer.alloc(16, 0xa1) },
  { name: 'fz-b', partitions: 1, id: Buffer.alloc(16, 0xb2) },
  { name: 'fz-excluded', partitions: 1, id: Buffer.alloc(16, 0xc3) },
];
/** The valid requests' producer id (enforce/observe): the generator never uses it. */
const VALID_PID = 9_000n;

type Mutation =
  | 'none'
  | 'empty'
  | 'count'
  | 'crc'
  | 'magic0'
  | 'magic1'
  | 'gzip_garbage'
  | 'zstd_garbage'
  | 'huge_count'
  | 'truncated'
  | 'trailing'
  | 'null'
  | 'base_offset'
  | 'control'
  | 'seq_missing'
  | 'codec7'
  | 'flip_fixed_crc';

/** Mutations a broker always detects (the part must never be answered success). */
const DETECTED = new Set<Mutation>(['empty', 'count', 'crc', 'magic0', 'magic1', 'gzip_garbage', 'zstd_garbage', 'huge_count', 'truncated', 'trailing', 'null', 'base_offset', 'control', 'seq_missing', 'codec7']);
const MUTATIONS: Mutation[] = [...DETECTED, 'flip_fixed_crc'];

const fixCrc = (b: Buffer): Buffer => (b.writeUInt32BE(computeCrc(b), 17), b);

function mutate(rng: () => number, batch: Buffer, m: Mutation): Buffer | null {
  const b = Buffer.from(batch);
  switch (m) {
    case 'none':
      return b;
    case 'empty': {
      const e = Buffer.from(b.subarray(0, 61));
      e.writeInt32BE(49, 8);
      e.writeInt32BE(-1, 23);
      e.writeInt32BE(0, 57);
      return fixCrc(e);
    }
    case 'count':
      b.writeInt32BE(b.readInt32BE(57) + 1 + Math.floor(rng() * 5), 57);
      return fixCrc(b);
    case 'crc':
      b[61 + Math.floor(rng() * (b.length - 61))] ^= 1 + Math.floor(rng() * 255);
      return b;
    case 'magic0':
    case 'magic1':
      b.writeInt8(m === 'magic0' ? 0 : 1, 16);
      return b;
    case 'gzip_garbage':
    case 'zstd_garbage':
      b.writeInt16BE(m === 'gzip_garbage' ? 1 : 4, 21);
      b[61] = 0x42; // neither a gzip nor a zstd frame start
      return fixCrc(b);
    case 'huge_count':
      b.writeInt32BE(0x7ffffffe, 23);
      b.writeInt32BE(0x7fffffff, 57);
      return fixCrc(b);
    case 'truncated':
      return b.subarray(0, Math.floor(rng() * (b.length - 1)));
    case 'trailing':
      return Buffer.concat([b, Buffer.alloc(1 + Math.floor(rng() * 80), 7)]);
    case 'null':
      return null;
    case 'base_offset':
      b.writeBigInt64BE(BigInt(1 + Math.floor(rng() * 1000)), 0);
      return fixCrc(b);
    case 'control':
      b.writeInt16BE(b.readInt16BE(21) | 0x20, 21);
      return fixCrc(b);
    case 'seq_missing':
      b.writeBigInt64BE(5_000n, 43);
      b.writeInt16BE(0, 51);
      b.writeInt32BE(-1, 53);
      return fixCrc(b);
    case 'codec7':
      b.writeInt16BE((b.readInt16BE(21) & ~7) | 7, 21);
      return fixCrc(b);
    case 'flip_fixed_crc':
      // A changed record byte with a correct CRC: a different but maybe valid batch.
      b[61 + Math.floor(rng() * (b.length - 61))] ^= 0x01;
      return fixCrc(b);
  }
}

interface GenPart {
  topic: string;
  partition: number;
  records: Buffer | null;
  detected: boolean;
  mutation: Mutation;
}

interface Generated {
  req: ProduceRequest;
  version: number;
  /** Positions (t/p) of parts a broker must refuse, with the mutation that broke them. */
  mustFail: Map<string, Mutation>;
  /** Frame-level damage: the bytes were mutated after encoding. */
  frameMutated: boolean;
}

const pick = <T>(rng: () => number, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];

function genBatch(rng: () => number): Buffer {
  const n = 1 + Math.floor(rng() * 4);
  const idempotent = rng() < 0.35;
  const pid = BigInt(5_000 + Math.floor(rng() * 3));
  return encodeRecordBatch({
    records: Array.from({ length: n }, (_, i) => ({ key: rng() < 0.5 ? null : `k${i}`, value: `v${Math.floor(rng() * 1e6)}`, headers: rng() < 0.2 ? [['idempotency-key', `h${Math.floor(rng() * 50)}`]] : [] })),
    producerId: idempotent ? pid : undefined,
    producerEpoch: idempotent ? 0 : undefined,
    baseSequence: idempotent ? Math.floor(rng() * 40) : undefined,
    compression: rng() < 0.15 ? 1 : 0,
    baseTimestamp: 1_700_000_000_000n + BigInt(Math.floor(rng() * 1000)),
  });
}

export function generate(rng: () => number): Generated {
  const version = pick(rng, [3, 5, 7, 8, 9, 11, 13] as const);
  const req = createProduceRequest();
  req.acks = rng() < 0.85 ? -1 : rng() < 0.5 ? 1 : 0;
  req.timeoutMs = 1000;
  const mustFail = new Map<string, Mutation>();
  const topicNames = ['fz-a', 'fz-a', 'fz-b', 'fz-excluded', 'x'.repeat(250), 'bad name!'];
  const nTopics = 1 + Math.floor(rng() * 3);
  for (let t = 0; t < nTopics; t++) {
    const unknownId = version >= 13 && rng() < 0.1;
    const name = pick(rng, topicNames);
    const td = createTopicProduceData();
    if (version >= 13) td.topicId = unknownId ? Buffer.from(Array.from({ length: 16 }, () => Math.floor(rng() * 256))) : (TOPICS.find((x) => x.name === name)?.id ?? Buffer.alloc(16, 0xee));
    else td.name = name;
    const nParts = 1 + Math.floor(rng() * 3);
    const parts: GenPart[] = [];
    for (let p = 0; p < nParts; p++) {
      const partition = rng() < 0.9 ? Math.floor(rng() * 3) : pick(rng, [-1, 7, 1000]);
      const m: Mutation = rng() < 0.45 ? 'none' : pick(rng, MUTATIONS);
      const batch = genBatch(rng);
      // A huge count in a compressed batch cannot be told from a real one without decompressing
      // (not done on the hot path): the broker judges it when it reads the records.
      const detected = DETECTED.has(m) && !(m === 'huge_count' && batch.readInt16BE(21) !== 0);
      parts.push({ topic: name, partition, records: mutate(rng, batch, m), detected, mutation: m });
    }
    // The same partition twice in one request.
    if (rng() < 0.1) parts.push({ ...parts[0], records: parts[0].records ? Buffer.from(parts[0].records) : null });
    parts.forEach((gp, p) => {
      const pd = createPartitionProduceData();
      pd.index = gp.partition;
      pd.records = gp.records;
      td.partitionData.push(pd);
      if (gp.detected) mustFail.set(`${t}/${p}`, gp.mutation);
    });
    req.topicData.push(td);
  }
  return { req, version, mustFail, frameMutated: false };
}

/** Encodes a request, damages its bytes, decodes it again; null when the codec refuses it (the proxy then closes the connection). */
export function damageFrame(rng: () => number, g: Generated): Generated | null {
  const w = new Writer(256);
  encodeProduceRequest(w, g.req, g.version);
  const bytes = Buffer.from(w.toBuffer());
  const cut = rng() < 0.5;
  const damaged = cut ? bytes.subarray(0, Math.floor(rng() * bytes.length)) : Buffer.from(bytes);
  if (!cut) for (let i = 0; i < 1 + Math.floor(rng() * 4); i++) damaged[Math.floor(rng() * damaged.length)] ^= 1 + Math.floor(rng() * 255);
  try {
    return { req: decodeProduceRequest(new Reader(damaged), g.version), version: g.version, mustFail: new Map(), frameMutated: true };
  } catch {
    return null;
  }
}

export interface CampaignResult {
  mode: Mode;
  requests: number;
  frameRejected: number;
  closed: number;
  failures: string[];
  /** Valid requests answered with a retriable error and sent again (same bytes). */
  retried: number;
  stats: ReturnType<Engine['stats']>;
  heapGrowthBytes: number;
}

/** One campaign in one mode. `iterations` fuzzed requests, each followed by a valid one. */
export async function campaign(mode: Mode, iterations: number, seed: number): Promise<CampaignResult> {
  const rng = mulberry32(seed);
  const model = new ModelCluster(TOPICS);
  const config = engineConfig(
    {
      mode,
      deliveryTimeoutMs: 5_000,
      topics: { include: ['fz-*', '*'], exclude: ['fz-excluded'] },
      dedup: { strategy: pick(rng, ['exact', 'content', 'header'] as const), header: 'idempotency-key', windowMs: 6_000, maxEntries: 100_000 },
    },
    { maxPendingBytes: 8 * 1024 * 1024 },
  );
  const engine = new Engine({ ctx: model, metrics: model.metrics, log: model.log, config, policyName: 'fuzz' });
  const hook = engine.hook();
  const failures: string[] = [];
  const fail = (what: string): void => {
    if (failures.length < 20) failures.push(what);
  };
  const pending = new Set<Promise<void>>();
  const seqs = [0, 0, 0];
  let frameRejected = 0;
  let retried = 0;
  let closed = 0;
  const gcNow = (globalThis as { gc?: () => void }).gc;
  gcNow?.();
  const baseline = process.memoryUsage().heapUsed;

  for (let i = 0; i < iterations && failures.length === 0; i++) {
    let g: Generated | null = generate(rng);
    if (rng() < 0.1) g = damageFrame(rng, g);
    if (!g) frameRejected++;
    else {
      const call = produceCall(g.req, g.version, 1 + (i % 4));
      let outcome: Promise<ClientOutcome>;
      try {
        outcome = model.run(call, hook.onProduce(call));
      } catch (err) {
        fail(`#${i} threw: ${(err as Error).stack}`);
        break;
      }
      const mustFail = g.mustFail;
      const acks = g.req.acks;
      const version = g.version;
      const p: Promise<void> = outcome.then(
        (o) => {
          if (o.kind === 'closed') closed++;
          if (o.kind !== 'answer' || acks === 0) return;
          o.response.responses.forEach((tr, t) =>
            tr.partitionResponses.forEach((pr, pi) => {
              if (pr.errorCode === 0 && mustFail.has(`${t}/${pi}`)) fail(`#${i} (v${version}): a broken part (${t}/${pi}, ${mustFail.get(`${t}/${pi}`)}, topic ${tr.name}) was answered success`);
            }),
          );
        },
        (err: Error) => fail(`#${i} answer rejected: ${err.stack}`),
      );
      pending.add(p);
      void p.finally(() => pending.delete(p));
      if (pending.size > 256) await Promise.race(pending);
    }
    // The valid request that must succeed.
    const part = i % 3;
    const req = createProduceRequest();
    req.acks = -1;
    req.timeoutMs = 5000;
    const td = createTopicProduceData();
    td.name = 'fz-a';
    const pd = createPartitionProduceData();
    pd.index = part;
    pd.records =
      mode === 'upgrade'
        ? encodeRecordBatch({ records: [{ value: `ok-${i}` }], baseTimestamp: BigInt(i) })
        : encodeRecordBatch({ records: [{ value: `ok-${i}` }], producerId: VALID_PID, producerEpoch: 0, baseSequence: seqs[part], baseTimestamp: BigInt(i) });
    td.partitionData.push(pd);
    req.topicData.push(td);
    // A retriable answer is retried with the same bytes, as a client does until its delivery
    // timeout (30 s here); the request must succeed within it.
    let code: number | string = -1;
    let message: string | null = null;
    const giveUp = Date.now() + 30_000;
    for (let attempt = 0; Date.now() < giveUp; attempt++) {
      const call = produceCall(req, 9, 99);
      let o: ClientOutcome;
      try {
        o = await model.run(call, hook.onProduce(call));
      } catch (err) {
        fail(`#${i} valid request threw: ${(err as Error).stack}`);
        break;
      }
      const pr = o.kind === 'answer' ? o.response.responses[0].partitionResponses[0] : undefined;
      code = pr ? pr.errorCode : o.kind;
      message = pr?.errorMessage ?? null;
      if (code !== ErrorCode.REQUEST_TIMED_OUT && code !== ErrorCode.NETWORK_EXCEPTION) break;
      retried++;
    }
    if (code !== 0) fail(`#${i} valid request (${mode}, fz-a/${part}) answered ${code} ${message ?? ''}`);
    else seqs[part]++;
  }
  // Everything settles within the deadlines (deliveryTimeout 5 s; held batches: the window).
  const deadline = Date.now() + 60_000;
  while (pending.size > 0 && Date.now() < deadline) await Promise.race([...pending, new Promise((r) => setTimeout(r, 100))]);
  if (pending.size > 0) fail(`${pending.size} requests never answered`);
  // Windows pass (dedup 6 s), then the engine holds nothing.
  const until = Date.now() + 30_000;
  for (;;) {
    engine.sweep();
    const s = engine.stats();
    if ((s.inFlight === 0 && s.pendingBytes === 0 && s.dedupEntries === 0 && s.retryEntries === 0) || Date.now() > until) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const stats = engine.stats();
  engine.close();
  if (stats.inFlight !== 0) fail(`${stats.inFlight} batches still in flight`);
  if (stats.pendingBytes !== 0) fail(`${stats.pendingBytes} pending bytes left`);
  if (stats.dedupEntries !== 0 || stats.dedupBytes !== 0) fail(`dedup holds ${stats.dedupEntries} entries / ${stats.dedupBytes} bytes after its window`);
  if (stats.retryEntries !== 0) fail(`the retry index holds ${stats.retryEntries} entries after the window`);
  gcNow?.();
  const heapGrowthBytes = process.memoryUsage().heapUsed - baseline;
  return { mode, requests: iterations, frameRejected, closed, failures, retried, stats, heapGrowthBytes };
}

