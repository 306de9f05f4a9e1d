// A MODEL of a one-broker Kafka cluster and of the proxy around the engine, in process, for
// the engine's unit tests and its fuzz campaign (not a real broker: the e2e tests use one).
// - As the HookContext, it answers the engine's own requests (upgrade-mode Produce,
//   InitProducerId, metadata refreshes) through the real codecs.
// - `run(call)` does what the proxy does with the engine's decision: forward the original or
//   the changed request to the model broker and hand its answer to onResponse, or wait for
//   the engine's own answer, or close.
// The broker's checks are Kafka's (part-check.ts, the same facts the sidecar applies) and its
// idempotence is the ModelBroker's (KAFKA-NOTES).
import pino from 'pino';
import { ApiKey } from '../codec/api.js';
import { ErrorCode } from '../codec/errors.js';
import { Reader } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';
import { createPartitionProduceData, createProduceRequest, createTopicProduceData, decodeProduceRequest, encodeProduceRequest, type ProduceRequest } from '../codec/generated/produce-request.js';
import { createPartitionProduceResponse, createProduceResponse, createTopicProduceResponse, decodeProduceResponse, encodeProduceResponse, type ProduceResponse } from '../codec/generated/produce-response.js';
import { createInitProducerIdResponse, encodeInitProducerIdResponse } from '../codec/generated/init-producer-id-response.js';
import { isNext, lastSequence } from '../idempotence/sequence.js';
import { SidecarMetrics } from '../metrics/metrics.js';
import { ClusterView } from '../proxy/cluster-view.js';
import { UpstreamError } from '../proxy/broker-client.js';
import type { HookContext, OwnRequest, ProduceCall, ProduceDecision } from '../proxy/produce-hook.js';
import { checkPart, PartProblem } from './part-check.js';
import { DEFAULT_LIMITS, type EngineLimits } from '../config/cli.js';
import type { LiveConfig, SidecarConfig } from '../config/load.js';
import { answerOf } from '../codec/produce-answer.test-support.js';

export interface ModelTopic {
  name: string;
  partitions: number;
  id: Buffer;
  /** Leader per partition (brokers 1 and 2; default 1). */
  leaders?: number[];
}

export type ClientOutcome = { kind: 'answer'; response: ProduceResponse } | { kind: 'none' } | { kind: 'closed'; reason: string };

export class ModelCluster implements HookContext {
  readonly cluster = new ClusterView();
  readonly metrics = new SidecarMetrics();
  readonly log = pino({ level: 'silent' });
  metadataRefreshes = 0;
  /** Batches appended per "topic/partition", by whether they carried a producer id. */
  readonly written = new Map<string, { idempotent: number; plain: number }>();
  /** While true, answers to the engine's own sends wait for release(). */
  hold = false;
  /** Only sends to this broker wait for release(). */
  holdBroker: number | null = null;
  /** While true, every Produce of the engine's own is lost with its connection (outcome unknown, nothing written). */
  loseProduce = false;
  /** InitProducerId answers COORDINATOR_LOAD_IN_PROGRESS this many more times (a coordinator just started). */
  initProducerIdLoading = 0;
  /** InitProducerId requests seen. */
  initProducerIdCalls = 0;
  private held: Array<() => void> = [];
  private nextProducerId = 1_000_000n;
  private readonly byName = new Map<string, ModelTopic>();

  constructor(topics: ModelTopic[]) {
    this.cluster.setBrokers([
      { nodeId: 1, host: '127.0.0.1', port: 9092, rack: null },
      { nodeId: 2, host: '127.0.0.1', port: 9093, rack: null },
    ]);
    for (const t of topics) {
      this.byName.set(t.name, t);
      this.cluster.setTopic(
        t.name,
        t.id,
        Array.from({ length: t.partitions }, (_, partition) => ({ partition, leader: t.leaders?.[partition] ?? 1 })),
      );
    }
  }

  knowsBroker(): boolean {
    return true;
  }

  async refreshMetadata(): Promise<void> {
    this.metadataRefreshes++;
  }

  /** The engine's own requests (upgrade mode), through the real codecs both ways. */
  release(): void {
    this.hold = false;
    this.holdBroker = null;
    for (const r of this.held.splice(0)) r();
  }

  send(to: number | 'any', req: OwnRequest): void {
    this.exchange(to, req).then(
      (r) => {
        req.answered(r.version, r.payload, 0);
        r.payload.fill(0xee); // lent, as a read buffer is (broker-client.ts): bytes kept past the call read as garbage
      },
      (err: Error) => req.failed(err),
    );
  }

  private async exchange(_to: number | 'any', req: OwnRequest): Promise<{ version: number; payload: Buffer }> {
    const version = req.version ?? (req.apiKey === ApiKey.InitProducerId ? 4 : 9);
    const w = new Writer(req.sizeHint ?? 256);
    req.encode(w, version);
    const bytes = Buffer.from(w.toBuffer());
    if (this.hold || (this.holdBroker !== null && _to === this.holdBroker)) await new Promise<void>((r) => this.held.push(r));
    if (this.loseProduce && req.apiKey === ApiKey.Produce) throw new UpstreamError('model: connection lost', 'connection');
    const out = new Writer(256);
    if (req.apiKey === ApiKey.Produce) {
      encodeProduceResponse(out, this.answer(decodeProduceRequest(new Reader(bytes), version), version), version);
    } else if (req.apiKey === ApiKey.InitProducerId) {
      const r = createInitProducerIdResponse();
      this.initProducerIdCalls++;
      if (this.initProducerIdLoading > 0) {
        this.initProducerIdLoading--;
        r.errorCode = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS;
        r.producerId = -1n;
        r.producerEpoch = -1;
      } else {
        r.producerId = this.nextProducerId++;
        r.producerEpoch = 0;
      }
      encodeInitProducerIdResponse(out, r, version);
    } else throw new Error(`model cluster: API ${req.apiKey} not modelled`);
    return { version, payload: Buffer.from(out.toBuffer()) };
  }

  /** What the model broker answers for a Produce request (v3+). */
  answer(req: ProduceRequest, version: number): ProduceResponse {
    const resp = createProduceResponse();
    for (const td of req.topicData) {
      const tr = createTopicProduceResponse();
      tr.name = td.name;
      tr.topicId = td.topicId;
      const name = version >= 13 ? this.cluster.topicName(td.topicId) : td.name;
      const topic = name === undefined ? undefined : this.byName.get(name);
      for (const pd of td.partitionData) {
        const pr = createPartitionProduceResponse();
        pr.index = pd.index;
        pr.baseOffset = -1n;
        if (!topic || pd.index < 0 || pd.index >= topic.partitions) {
          pr.errorCode = version >= 13 && !topic ? ErrorCode.UNKNOWN_TOPIC_ID : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
        } else {
          const c = checkPart(pd.records, version);
          if (c instanceof PartProblem) pr.errorCode = c.errorCode;
          else {
            const a = this.append(`${topic.name}/${pd.index}`, c.producerId, c.producerEpoch, c.baseSequence, c.recordsCount);
            pr.errorCode = a.errorCode;
            pr.baseOffset = a.baseOffset;
          }
        }
        tr.partitionResponses.push(pr);
      }
      resp.responses.push(tr);
    }
    return resp;
  }

  /**
   * The broker's idempotence (KAFKA-NOTES): per (producerId, partition) the epoch, the last
   * sequence and the last 5 batches; a copy of one of them is answered with its offset; no state
   * means any sequence. Only offsets are kept, not records, so a long campaign stays small.
   */
  private append(tp: string, producerId: bigint, epoch: number, firstSeq: number, count: number): { errorCode: number; baseOffset: bigint } {
    const end = this.logEnd.get(tp) ?? 0n;
    const lastSeq = producerId >= 0n ? lastSequence(firstSeq, count) : -1;
    if (producerId >= 0n) {
      const key = `${producerId}/${tp}`;
      const e = this.producers.get(key);
      if (e) {
        if (epoch < e.epoch) return { errorCode: ErrorCode.INVALID_PRODUCER_EPOCH, baseOffset: -1n };
        if (epoch === e.epoch) {
          const d = e.cache.find((m) => m.firstSeq === firstSeq && m.lastSeq === lastSeq);
          if (d) return { errorCode: 0, baseOffset: d.offset };
          if (!isNext(e.lastSeq, firstSeq)) return { errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, baseOffset: -1n };
        } else if (firstSeq !== 0) return { errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, baseOffset: -1n };
      }
      const next = e && e.epoch === epoch ? e : { epoch, lastSeq: -1, cache: [] as Array<{ firstSeq: number; lastSeq: number; offset: bigint }> };
      next.lastSeq = lastSeq;
      next.cache.push({ firstSeq, lastSeq, offset: end });
      if (next.cache.length > 5) next.cache.shift();
      this.producers.set(key, next);
    }
    this.logEnd.set(tp, end + BigInt(count));
    const w = this.written.get(tp) ?? { idempotent: 0, plain: 0 };
    if (producerId >= 0n) w.idempotent++;
    else w.plain++;
    this.written.set(tp, w);
    return { errorCode: 0, baseOffset: end };
  }

  private readonly logEnd = new Map<string, bigint>();
  private readonly producers = new Map<string, { epoch: number; lastSeq: number; cache: Array<{ firstSeq: number; lastSeq: number; offset: bigint }> }>();

  /** Carries out the engine's decision as the proxy does; resolves with what the client gets. */
  /**
   * `closedBeforeAnswer`: the client's connection closes before the answer is written (the
   * proxy then tells the engine so through onWritten(false)); otherwise the answer is written.
   */
  async run(call: ProduceCall, decision: ProduceDecision, opts: { closedBeforeAnswer?: boolean } = {}): Promise<ClientOutcome> {
    switch (decision.kind) {
      case 'close':
        return { kind: 'closed', reason: decision.reason };
      case 'answer': {
        const r = await decision.response;
        decision.onWritten?.(!opts.closedBeforeAnswer);
        if (opts.closedBeforeAnswer) return { kind: 'closed', reason: 'client went away' };
        return r === null || call.request.acks === 0 ? { kind: 'none' } : { kind: 'answer', response: roundTrip(r, call.version) };
      }
      case 'forward':
      case 'forward-modified': {
        const sent = decision.kind === 'forward' ? call.request : roundTripRequest(decision.request, call.version);
        const fromBroker = this.answer(sent, call.version);
        if (sent.acks === 0) return { kind: 'none' };
        const changed = decision.onResponse ? await decision.onResponse(answerOf(fromBroker, call.version)) : undefined;
        if (decision.kind === 'forward-modified') decision.onWritten?.(!opts.closedBeforeAnswer);
        if (opts.closedBeforeAnswer) return { kind: 'closed', reason: 'client went away' };
        if (call.request.acks === 0) return { kind: 'none' };
        return { kind: 'answer', response: roundTrip(changed ?? fromBroker, call.version) };
      }
    }
  }
}

/** Through the wire format and back: what the client would decode. */
function roundTrip(r: ProduceResponse, version: number): ProduceResponse {
  const w = new Writer(256);
  encodeProduceResponse(w, r, version);
  return decodeProduceResponse(new Reader(Buffer.from(w.toBuffer())), version);
}

function roundTripRequest(r: ProduceRequest, version: number): ProduceRequest {
  const w = new Writer(256);
  encodeProduceRequest(w, r, version);
  return decodeProduceRequest(new Reader(Buffer.from(w.toBuffer())), version);
}

/** An engine on a model cluster, with the settings a test or the fuzz campaign asks for. */
export function engineConfig(live: Partial<LiveConfig> = {}, limits: Partial<EngineLimits> = {}): SidecarConfig {
  return {
    upstream: [{ host: '127.0.0.1', port: 9092 }],
    listen: { host: '127.0.0.1', port: 19092 },
    metricsListen: { host: '127.0.0.1', port: 9464 },
    maxFrameBytes: 100 * 1024 * 1024,
    maxBufferedBytes: 64 * 1024 * 1024,
    maxConnectionBufferedBytes: 32 * 1024 * 1024,
    limits: { ...DEFAULT_LIMITS, ...limits },
    live: {
      mode: 'upgrade',
      logLevel: 'silent',
      maxInFlight: 5,
      deliveryTimeoutMs: 1_000,
      requestTimeoutMs: 500,
      retryBackoff: { initialMs: 10, maxMs: 50 },
      dedup: { strategy: 'exact', windowMs: 2_000, maxEntries: 100_000 },
      topics: { include: ['*'], exclude: [] },
      maxSessions: 10_000,
      sessionIdleMs: 15 * 60_000,
      ...live,
    },
  };
}

/**
 * A client's Produce request: one part per [topic, partition, records], topics by name (or by id,
 * given `topicId`), acks=all and a 1 s timeout unless told otherwise.
 */
export function produceRequest(parts: Array<[string, number, Buffer | null]>, opts: { acks?: number; timeoutMs?: number; topicId?: (topic: string) => Buffer } = {}): ProduceRequest {
  const req = createProduceRequest();
  req.acks = opts.acks ?? -1;
  req.timeoutMs = opts.timeoutMs ?? 1000;
  for (const [topic, partition, records] of parts) {
    const id = opts.topicId?.(topic);
    let td = req.topicData.find((t) => (id ? t.topicId.equals(id) : t.name === topic));
    if (!td) {
      td = createTopicProduceData();
      if (id) td.topicId = id;
      else td.name = topic;
      req.topicData.push(td);
    }
    const pd = createPartitionProduceData();
    pd.index = partition;
    pd.records = records;
    td.partitionData.push(pd);
  }
  return req;
}

let nextCorrelation = 1;

/** A client request as the proxy hands it to the hook (decoded from its encoded bytes). */
export function produceCall(req: ProduceRequest, version = 9, connectionId = 1, sentAfter = Date.now()): ProduceCall {
  const w = new Writer(256);
  encodeProduceRequest(w, req, version);
  const body = Buffer.from(w.toBuffer());
  return {
    header: { apiKey: 0, apiVersion: version, correlationId: nextCorrelation++, clientId: 'model', bodyOffset: 0 },
    version,
    request: decodeProduceRequest(new Reader(body), version),
    frame: body,
    connectionId,
    nodeId: 1,
    sentAfter,
  };
}
