// CPU per produce request through one client connection of the sidecar, in one process: a
// client, the sidecar's ClientConnection with the engine, and a stub broker answering every
// Produce with a prepared success, on loopback sockets. The pass-through hook (the proxy with
// no engine) runs the same way as the floor: the difference is what the mode adds per request
// (decode, hook, engine, answer matching, metrics) — on a loaded machine a steadier figure than
// CPU per GB of a whole bench run, and one that can be profiled (--cpu-prof, heap sampling).
//
// Requests look like the Java producer's in `make bench` (enable.idempotence=false, 1 KiB
// records, 16 KiB batches, one topic of 3 partitions, Produce v13 with topic ids, acks=all,
// 5 in flight). Usage: node dist/bench/produce-path.js [--mode observe|enforce|upgrade]
// [--requests N] [--parts 1..3] [--idempotent] [--rounds N] [--dedup exact|off|content]
// [--warmup N] [--only pass-through|MODE]: one of the two, e.g. a fresh process with a short
// warm-up, as the sidecar of one bench round is (a few thousand requests, JIT not settled).
// [--alloc]: bytes allocated per request over the measured requests and the functions that
// allocated most (V8's sampling heap profiler, collected objects included, every 128 bytes; --top N of them);
// with --promoted only what did not die young (promoted, or born in old space by V8's allocation-site
// pretenuring): what fills old space and makes the mark-compacts:
// unlike CPU time on a shared machine, the same from run to run. The whole process counts
// (client, stub broker and the sidecar), so compare a mode with the pass-through hook.
import net from 'node:net';
import { once } from 'node:events';
import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';
import { Writer } from '../sidecar/codec/writer.js';
import { ApiKey } from '../sidecar/codec/api.js';
import { encodeRecordBatch } from '../sidecar/codec/records.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, encodeProduceRequest } from '../sidecar/codec/generated/produce-request.js';
import { createPartitionProduceResponse, createProduceResponse, createTopicProduceResponse, encodeProduceResponse } from '../sidecar/codec/generated/produce-response.js';
import { peekRequest, writeRequestHeader, writeResponseHeader } from '../sidecar/proxy/headers.js';
import { responseHeaderVersion } from '../sidecar/codec/api.js';
import { SUPPORTED_VERSIONS } from '../sidecar/codec/supported.js';
import { createApiVersionsResponse, encodeApiVersionsResponse } from '../sidecar/codec/generated/api-versions-response.js';
import { createInitProducerIdResponse, encodeInitProducerIdResponse } from '../sidecar/codec/generated/init-producer-id-response.js';
import { BatchOffset, batchSize } from '../sidecar/codec/record-batch.js';
import { patchCrc32c } from '../sidecar/codec/crc32c-patch.js';
import { KafkaProxy } from '../sidecar/proxy/server.js';
import { passThroughHook } from '../sidecar/proxy/produce-hook.js';
import { SidecarMetrics } from '../sidecar/metrics/metrics.js';
import { Engine } from '../sidecar/engine/engine.js';
import { DEFAULT_LIMITS } from '../sidecar/config/cli.js';
import type { LiveConfig, SidecarConfig } from '../sidecar/config/load.js';
import { createLogger } from '../sidecar/log/log.js';

const { values: opt } = parseArgs({
  options: {
    mode: { type: 'string', default: 'observe' },
    requests: { type: 'string', default: '20000' },
    parts: { type: 'string', default: '2' },
    idempotent: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '5' },
    dedup: { type: 'string', default: 'exact' },
    warmup: { type: 'string', default: '2000' },
    only: { type: 'string' },
    alloc: { type: 'boolean', default: false },
    promoted: { type: 'boolean', default: false },
    top: { type: 'string', default: '15' },
  },
});
const MODE = opt.mode as LiveConfig['mode'];
const REQUESTS = Number(opt.requests);
const PARTS = Number(opt.parts);
const ROUNDS = Number(opt.rounds);
const IN_FLIGHT = 5;
const VERSION = 13;
const TOPIC = 'bench';
const TOPIC_ID = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');

// --- the stub broker: answers every Produce with the prepared success; ApiVersions and
// InitProducerId too (upgrade mode's own connection asks for versions and a producer id).
const broker = net.createServer({ noDelay: true }, (s) => {
  // Only each request's first 12 bytes (size, API key, version, correlation id) are kept; the
  // rest is skipped as it comes, so the stub's own cost stays small and linear whatever the
  // chunking (a Buffer.concat per read of a partial frame was quadratic, and moved with timing).
  let head: Buffer | undefined; // the start of a frame, while fewer than 12 of its bytes have come
  let skip = 0; // bytes of the current frame still to come
  s.on('data', (chunk: Buffer) => {
    const out: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - at);
        skip -= n;
        at += n;
        continue;
      }
      const got = head ?? Buffer.alloc(0);
      const take = chunk.subarray(at, at + 12 - got.length);
      at += take.length;
      head = got.length === 0 ? Buffer.from(take) : Buffer.concat([got, take]);
      if (head.length < 12) break;
      const { apiKey, apiVersion, correlationId } = peekRequest(head.subarray(4));
      const answer = apiKey === ApiKey.Produce ? produceAnswer() : ownAnswer(apiKey, apiVersion);
      answer.writeInt32BE(correlationId, 4);
      out.push(answer);
      skip = 4 + head.readInt32BE(0) - 12;
      head = undefined;
    }
    if (out.length > 0) s.write(out.length === 1 ? out[0] : Buffer.concat(out));
  });
});
broker.listen(0, '127.0.0.1');
await once(broker, 'listening');
const BROKER_PORT = (broker.address() as net.AddressInfo).port;

/** The stub's answer (size prefix and header included, correlation id 0) to ApiVersions or InitProducerId. */
function ownAnswer(apiKey: number, version: number): Buffer {
  const w = new Writer(512);
  w.int32(0);
  writeResponseHeader(w, 0, responseHeaderVersion(apiKey, version));
  if (apiKey === ApiKey.ApiVersions) {
    const resp = createApiVersionsResponse();
    for (const [key, r] of SUPPORTED_VERSIONS) resp.apiKeys.push({ apiKey: key, minVersion: r.min, maxVersion: r.max, _tagged: undefined });
    encodeApiVersionsResponse(w, resp, version);
  } else if (apiKey === ApiKey.InitProducerId) {
    const resp = createInitProducerIdResponse();
    resp.producerId = 4242n;
    encodeInitProducerIdResponse(w, resp, version);
  } else throw new Error(`stub broker: API ${apiKey} not served`);
  const out = w.toBuffer();
  out.writeInt32BE(out.length - 4, 0);
  return out;
}

// --- requests and the answer.
let sequence = 0;
function batch(partition: number): Buffer {
  const records = Array.from({ length: 15 }, (_, i) => ({ value: Buffer.alloc(1024, 97 + ((i + partition) % 26)) }));
  const idem = opt.idempotent;
  const b = encodeRecordBatch({ records, producerId: idem ? 1000n + BigInt(partition) : -1n, producerEpoch: idem ? 0 : -1, baseSequence: idem ? sequence : -1 });
  return b;
}

/** A request frame and where its batches start (their timestamps change per send: every batch new). */
function requestFrame(correlationId: number): { frame: Buffer; batchAt: number[] } {
  const req = createProduceRequest();
  req.acks = -1;
  req.timeoutMs = 30_000;
  const td = createTopicProduceData();
  td.topicId = TOPIC_ID;
  for (let p = 0; p < PARTS; p++) {
    const pd = createPartitionProduceData();
    pd.index = p;
    pd.records = batch(p);
    td.partitionData.push(pd);
  }
  req.topicData.push(td);
  sequence += 15;
  const batches = td.partitionData.map((pd) => pd.records!);
  const w = new Writer(PARTS * 17_000);
  w.int32(0);
  writeRequestHeader(w, ApiKey.Produce, VERSION, correlationId, 'producer-1', 2);
  encodeProduceRequest(w, req, VERSION);
  const frame = w.toBuffer();
  frame.writeInt32BE(frame.length - 4, 0);
  return { frame, batchAt: batches.map((b) => frame.indexOf(b.subarray(0, 61))) };
}

/** Stands for each partition's base offset in ANSWER (replaced per answer: see produceAnswer). */
const OFFSET_MARK = 0x0a0b0c0d0e0f0000n;
const ANSWER = ((): Buffer => {
  const resp = createProduceResponse();
  const tr = createTopicProduceResponse();
  tr.topicId = TOPIC_ID;
  for (let p = 0; p < PARTS; p++) {
    const pr = createPartitionProduceResponse();
    pr.index = p;
    pr.baseOffset = OFFSET_MARK + BigInt(p);
    tr.partitionResponses.push(pr);
  }
  resp.responses.push(tr);
  const w = new Writer(256);
  w.int32(0);
  writeResponseHeader(w, 0, 1);
  encodeProduceResponse(w, resp, VERSION);
  const out = w.toBuffer();
  out.writeInt32BE(out.length - 4, 0);
  return out;
})();

/** Where ANSWER holds each partition's base offset. */
const OFFSETS_AT = Array.from({ length: PARTS }, (_, p) => {
  const mark = Buffer.alloc(8);
  mark.writeBigInt64BE(OFFSET_MARK + BigInt(p));
  return ANSWER.indexOf(mark);
});
let nextOffset = 0;

/** ANSWER with base offsets that grow from answer to answer, as a log's do (upgrade mode notices a
 * broker that answers an offset at or below one it acknowledged before: lost producer state). */
function produceAnswer(): Buffer {
  const answer = Buffer.from(ANSWER);
  for (const at of OFFSETS_AT) {
    answer.writeUInt32BE(0, at);
    answer.writeUInt32BE(nextOffset, at + 4);
    nextOffset = (nextOffset + 1000) % 2 ** 32;
  }
  return answer;
}

// --- the sidecar: a proxy that never listens; one client connection accepted by hand.
const log = createLogger({ level: 'silent' });
const metrics = new SidecarMetrics();
const proxy = new KafkaProxy({
  upstream: [{ host: '127.0.0.1', port: BROKER_PORT }],
  listen: { host: '127.0.0.1', port: 0 },
  maxFrameBytes: 100 << 20,
  maxBufferedBytes: 64 << 20,
  maxConnectionBufferedBytes: 32 << 20,
  requestTimeoutMs: 30_000,
  log,
  metrics,
});
proxy.cluster.setBrokers([{ nodeId: 1, host: '127.0.0.1', port: BROKER_PORT, rack: null }]);
proxy.cluster.setTopic(TOPIC, TOPIC_ID, [0, 1, 2].map((partition) => ({ partition, leader: 1 })));
const config: SidecarConfig = {
  upstream: [{ host: '127.0.0.1', port: 9 }],
  listen: { host: '127.0.0.1', port: 0 },
  metricsListen: { host: '127.0.0.1', port: 0 },
  maxFrameBytes: 100 << 20,
  maxBufferedBytes: 64 << 20,
  maxConnectionBufferedBytes: 32 << 20,
  limits: { ...DEFAULT_LIMITS },
  live: {
    mode: MODE,
    logLevel: 'warn',
    maxInFlight: 5,
    deliveryTimeoutMs: 120_000,
    requestTimeoutMs: 30_000,
    retryBackoff: { initialMs: 100, maxMs: 1_000 },
    dedup: { strategy: opt.dedup as LiveConfig['dedup']['strategy'], windowMs: 300_000, maxEntries: 100_000 },
    topics: { include: ['*'], exclude: [] },
    maxSessions: 10_000,
    sessionIdleMs: 15 * 60_000,
  },
};
const engine = new Engine({ ctx: proxy.hookContext(), metrics, log, config, policyName: 'bench' });

/** The sidecar's side: connections accepted as its listeners accept them (paused, read into reused memory). */
const sidecar = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => {
  (proxy as unknown as { accept(s: net.Socket, t: { kind: 'broker'; nodeId: number }): void }).accept(socket, { kind: 'broker', nodeId: 1 });
});
sidecar.listen(0, '127.0.0.1');
await once(sidecar, 'listening');

/** A client connection to the sidecar, with a function sending `n` requests (5 in flight) until all are answered. */
async function connect(): Promise<{ app: net.Socket; run(n: number): Promise<void> }> {
  const app = net.connect({ host: '127.0.0.1', port: (sidecar.address() as net.AddressInfo).port, noDelay: true });
  await once(app, 'connect');
  let answered = 0;
  let wake: (() => void) | undefined;
  let skip = 0; // bytes of an answer begun in an earlier read, still to come
  let head: Buffer | undefined; // the start of a size prefix split across reads
  app.on('data', (data: Buffer) => {
    // Answers are counted by their frames (the sidecar's own answers need not be ANSWER's size).
    const chunk = head ? Buffer.concat([head, data]) : data;
    head = undefined;
    let at = skip;
    while (at < chunk.length) {
      if (chunk.length - at < 4) {
        head = Buffer.from(chunk.subarray(at));
        at = chunk.length;
        break;
      }
      at += 4 + chunk.readInt32BE(at);
      answered++;
    }
    skip = at - chunk.length;
    wake?.();
  });
  const frames = Array.from({ length: 64 }, (_, i) => requestFrame(i));
  let correlation = 0;
  return {
    app,
    async run(n: number): Promise<void> {
      const target = answered + n;
      let sent = answered;
      while (answered < target) {
        while (sent < target && sent - answered < IN_FLIGHT) {
          const { frame, batchAt } = frames[correlation++ % frames.length];
          frame.writeInt32BE(correlation, 8);
          // New timestamps per send, the CRC kept valid (upgrade checks it): the sidecar sees a new
          // batch each time, as in a real run (its copy counting and dedup key on these bytes).
          for (const at of batchAt) renew(frame.subarray(at, at + batchSize(frame, at)), correlation);
          app.write(frame);
          sent++;
        }
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

const STAMP = Buffer.alloc(16);
/** Sets both timestamps of the batch at the start of `b` to `n` and patches its CRC. */
function renew(b: Buffer, n: number): void {
  STAMP.writeUInt32BE(n, 4); // (no BigInt: the harness's own allocations count too)
  STAMP.writeUInt32BE(n, 12);
  const fields = b.subarray(BatchOffset.baseTimestamp, BatchOffset.producerId);
  b.writeUInt32BE(patchCrc32c(b.readUInt32BE(BatchOffset.crc), fields, STAMP, b.length - BatchOffset.producerId), BatchOffset.crc);
  STAMP.copy(fields);
}

async function measure(label: string, hook: 'engine' | 'pass-through'): Promise<number> {
  proxy.setHook(hook === 'engine' ? engine.hook() : passThroughHook);
  const c = await connect();
  await c.run(Number(opt.warmup)); // JIT warm-up
  const profiler = opt.alloc ? await startAllocationSampling() : undefined;
  const before = process.cpuUsage();
  await c.run(REQUESTS);
  const used = process.cpuUsage(before);
  const allocated = await profiler?.();
  c.app.destroy();
  const us = (used.user + used.system) / REQUESTS;
  console.log(`${label.padEnd(14)} ${us.toFixed(1).padStart(6)} µs CPU per request (${(us / PARTS).toFixed(1)} per batch)`);
  if (allocated) {
    const total = allocated.reduce((sum, [, bytes]) => sum + bytes, 0);
    console.log(`${''.padEnd(14)} ${(total / REQUESTS / 1024).toFixed(2).padStart(6)} KiB allocated per request; most by:`);
    for (const [where, bytes] of allocated.slice(0, Number(opt.top))) console.log(`${''.padEnd(16)}${(bytes / REQUESTS).toFixed(0).padStart(6)} B  ${where}`);
  }
  return us;
}

/** Starts V8's sampling heap profiler; the function it returns stops it: bytes by allocating function, most first. */
async function startAllocationSampling(): Promise<() => Promise<Array<[string, number]>>> {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 128, includeObjectsCollectedByMinorGC: !opt.promoted, includeObjectsCollectedByMajorGC: true });
  return async () => {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    session.disconnect();
    // Each node of the allocation tree carries the bytes sampled in that function at that stack.
    const bytes = new Map<string, number>();
    const walk = (n: (typeof profile)['head']): void => {
      const f = n.callFrame;
      const where = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/dist\//, '')}:${f.lineNumber + 1}`;
      bytes.set(where, (bytes.get(where) ?? 0) + n.selfSize);
      n.children.forEach(walk);
    };
    walk(profile.head);
    return [...bytes].sort((a, b) => b[1] - a[1]);
  };
}

console.log(`${REQUESTS} Produce v${VERSION} requests of ${PARTS} × ${batch(0).length} B batches, ${opt.idempotent ? 'idempotent' : 'non-idempotent'} client, ${IN_FLIGHT} in flight`);
const base: number[] = [];
const mode: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  if (opt.only !== MODE) base.push(await measure('pass-through', 'pass-through'));
  if (opt.only !== 'pass-through') mode.push(await measure(MODE, 'engine'));
}
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
if (base.length > 0 && mode.length > 0) console.log(`median: pass-through ${med(base).toFixed(1)}, ${MODE} ${med(mode).toFixed(1)}; ${MODE} adds ${(med(mode) - med(base)).toFixed(1)} µs per request`);
engine.close();
process.exit(0);
