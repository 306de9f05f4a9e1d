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
// allocated most (V8's sampling heap profiler, collected objects included, every 128 bytes):
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
import { writeRequestHeader, writeResponseHeader } from '../sidecar/proxy/headers.js';
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

// --- the stub broker: answers every request frame with the prepared Produce success.
const broker = net.createServer({ noDelay: true }, (s) => {
  let pending: Buffer = Buffer.alloc(0);
  s.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    const out: Buffer[] = [];
    while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
      const size = pending.readInt32BE(0);
      const answer = Buffer.from(ANSWER);
      answer.writeInt32BE(pending.readInt32BE(8), 4);
      out.push(answer);
      pending = pending.subarray(4 + size);
    }
    if (out.length > 0) s.write(Buffer.concat(out));
  });
});
broker.listen(0, '127.0.0.1');
await once(broker, 'listening');
const BROKER_PORT = (broker.address() as net.AddressInfo).port;

// --- requests and the answer.
let sequence = 0;
function batch(partition: number): Buffer {
  const records = Array.from({ length: 15 }, (_, i) => ({ value: Buffer.alloc(1024, 97 + ((i + partition) % 26)) }));
  const idem = opt.idempotent;
  const b = encodeRecordBatch({ records, producerId: idem ? 1000n + BigInt(partition) : -1n, producerEpoch: idem ? 0 : -1, baseSequence: idem ? sequence : -1 });
  return b;
}

/** A request frame and where its batches' CRC fields are (patched per send: every batch new). */
function requestFrame(correlationId: number): { frame: Buffer; crcAt: number[] } {
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
  return { frame, crcAt: batches.map((b) => frame.indexOf(b.subarray(0, 61)) + 17) };
}

const ANSWER = ((): Buffer => {
  const resp = createProduceResponse();
  const tr = createTopicProduceResponse();
  tr.topicId = TOPIC_ID;
  for (let p = 0; p < PARTS; p++) {
    const pr = createPartitionProduceResponse();
    pr.index = p;
    pr.baseOffset = 1234n;
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
  let bytes = 0;
  app.on('data', (chunk: Buffer) => {
    // Every answer is ANSWER.length bytes: counting bytes counts answers.
    bytes += chunk.length;
    answered = Math.floor(bytes / ANSWER.length);
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
          const { frame, crcAt } = frames[correlation++ % frames.length];
          frame.writeInt32BE(correlation, 8);
          // A new CRC per send: the sidecar sees a new batch each time, as in a real run (observe
          // does not check CRCs; its copy counting keys on them).
          for (const at of crcAt) frame.writeUInt32BE((correlation * 7919 + at) >>> 0, at);
          app.write(frame);
          sent++;
        }
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
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
    for (const [where, bytes] of allocated.slice(0, 15)) console.log(`${''.padEnd(16)}${(bytes / REQUESTS).toFixed(0).padStart(6)} B  ${where}`);
  }
  return us;
}

/** Starts V8's sampling heap profiler; the function it returns stops it: bytes by allocating function, most first. */
async function startAllocationSampling(): Promise<() => Promise<Array<[string, number]>>> {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 128, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true });
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
