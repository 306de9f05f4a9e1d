// One client connection, paired 1:1 with an upstream connection to the broker its
// listener stands for (1:1 keeps SASL and per-connection broker state intact).
//
// Concurrency rules: clients pipeline requests; Kafka answers in request order on a
// connection, and clients (the Java NetworkClient in particular) rely on that. So every
// request that expects an answer takes a slot in a FIFO at arrival, and answers leave
// strictly in slot order, whether they come from upstream, from a rewriter, or from the
// idempotence engine. acks=0 produce requests take no slot.
import type net from 'node:net';
import type { Logger } from 'pino';
import { Reader, CodecError } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';
import { ApiKey, apiName, requestHeaderVersion, responseHeaderVersion } from '../codec/api.js';
import { decodeProduceRequest, encodeProduceRequest } from '../codec/generated/produce-request.js';
import { decodeProduceResponse, encodeProduceResponse, type ProduceResponse } from '../codec/generated/produce-response.js';
import { SUPPORTED_VERSIONS } from '../codec/supported.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import { FrameError, FrameSplitter } from './frames.js';
import { parseRequestHeader, peekRequest, responseBodyOffset, writeResponseHeader } from './headers.js';
import type { OnProduceResponse, ProduceHook } from './produce-hook.js';
import type { ResponseRewriters } from './rewrite.js';
import { rewriteProduceResponse } from './rewrite.js';
import type { ListenerRegistry, Target } from './listeners.js';
import type { ClusterView } from './cluster-view.js';
import { connectUpstream, type TlsMaterial } from './upstream-socket.js';

const PRODUCE_MIN_DECODED = SUPPORTED_VERSIONS.get(ApiKey.Produce)!.min;

/** Requests a client may have waiting for answers before the sidecar stops reading from it. */
const MAX_PENDING_SLOTS = 1024;

export interface ConnectionDeps {
  log: Logger;
  metrics: SidecarMetrics;
  cluster: ClusterView;
  listeners: ListenerRegistry;
  rewriters: ResponseRewriters;
  hook: () => ProduceHook;
  tls?: TlsMaterial;
  maxFrameBytes: number;
  /** Picks the upstream address for a target (bootstrap: one of --upstream). */
  resolveUpstream(target: Target, attempt: number): { host: string; port: number } | undefined;
}

interface Slot {
  correlationId: number;
  apiKey: number;
  apiVersion: number;
  start: bigint;
  /** Answer payload (no size prefix) once known. */
  out?: Buffer;
  done: boolean;
  /** The client expects nothing (acks=0) but upstream will answer: swallow it. */
  silent: boolean;
  /** Turns the upstream answer into what the client gets. */
  transform?: (payload: Buffer) => Buffer | Promise<Buffer>;
}

let nextConnectionId = 1;

export class ClientConnection {
  readonly id = nextConnectionId++;
  private upstream?: net.Socket;
  private readonly slots: Slot[] = [];
  /** Slots whose answers will come from the paired upstream connection, in order. */
  private readonly upstreamSlots: Slot[] = [];
  private readonly clientFrames: FrameSplitter;
  private readonly upstreamFrames: FrameSplitter;
  private readonly pauseReasons = new Set<string>();
  private closed = false;
  private draining = false;
  private drainWaiter?: () => void;
  private readonly log: Logger;

  constructor(
    private readonly client: net.Socket,
    private readonly target: Target,
    private readonly deps: ConnectionDeps,
  ) {
    this.log = deps.log.child({ conn: this.id, remote: `${client.remoteAddress}:${client.remotePort}` });
    this.clientFrames = new FrameSplitter(deps.maxFrameBytes);
    this.upstreamFrames = new FrameSplitter(deps.maxFrameBytes);
    client.setNoDelay(true);
    this.pause('connecting');
    client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    client.on('error', (err) => this.log.debug({ err: err.message }, 'client socket error'));
    client.on('close', () => this.close('client closed the connection'));
    client.on('drain', () => this.resumeUpstream('client-buffer'));
    deps.metrics.clientConnections.inc();
    void this.connect();
  }

  get nodeId(): number | undefined {
    return this.target.kind === 'broker' ? this.target.nodeId : undefined;
  }

  /** Stops reading new requests, waits until every answer has been written, then ends. */
  drain(): Promise<void> {
    this.draining = true;
    this.pause('draining');
    if (this.slots.length === 0) {
      this.close('draining');
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.drainWaiter = resolve;
    });
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.log.debug({ reason }, 'connection closed');
    this.deps.metrics.clientConnections.dec();
    this.client.destroy();
    this.upstream?.destroy();
    this.drainWaiter?.();
  }

  private async connect(): Promise<void> {
    for (let attempt = 0; attempt < 3 && !this.closed; attempt++) {
      const addr = this.deps.resolveUpstream(this.target, attempt);
      if (!addr) break;
      try {
        const socket = await connectUpstream(addr.host, addr.port, this.deps.tls);
        if (this.closed) {
          socket.destroy();
          return;
        }
        this.upstream = socket;
        socket.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
        socket.on('error', (err) => {
          this.deps.metrics.upstreamErrors.inc({ error: 'connection' });
          this.log.warn({ err: err.message, upstream: `${addr.host}:${addr.port}` }, 'upstream connection error');
        });
        socket.on('close', () => this.close('upstream closed the connection'));
        socket.on('drain', () => this.resumeClient('upstream-buffer'));
        this.resumeClient('connecting');
        return;
      } catch (err) {
        this.deps.metrics.upstreamErrors.inc({ error: 'connection' });
        this.log.warn({ err: (err as Error).message, upstream: `${addr.host}:${addr.port}` }, 'cannot reach upstream broker');
      }
    }
    this.close('no upstream broker reachable');
  }

  // ---- client -> upstream ----

  private onClientData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.clientFrames.push(chunk);
    } catch (err) {
      return this.reject(err as Error);
    }
    // Every frame of this chunk leaves in one writev.
    const up = this.upstream;
    up?.cork();
    try {
      for (const f of frames) {
        if (this.closed) return;
        try {
          this.onRequest(f);
        } catch (err) {
          return this.reject(err as Error);
        }
      }
    } finally {
      up?.uncork();
    }
  }

  /** A malformed or oversized frame: one clear log line, the connection closed, nothing else disturbed. */
  private reject(err: Error): void {
    const reason = err instanceof FrameError ? (/exceeds/.test(err.message) ? 'oversized' : 'malformed') : 'malformed';
    this.deps.metrics.rejectedFrames.inc({ reason });
    this.log.warn({ reason, error: err.message }, `closing client connection: ${err.message}`);
    this.close(err.message);
  }

  private onRequest(frame: Buffer): void {
    const { apiKey, apiVersion, correlationId } = peekRequest(frame);
    this.deps.metrics.forApi(apiKey, apiName(apiKey)).count.inc();
    if (apiKey === ApiKey.Produce) return this.onProduce(frame, apiVersion);
    const slot = this.newSlot(correlationId, apiKey, apiVersion);
    const rewrite = this.deps.rewriters.get(apiKey);
    if (rewrite) slot.transform = (payload) => rewrite(payload, apiVersion);
    this.forward(frame, slot);
  }

  private onProduce(frame: Buffer, version: number): void {
    const header = parseRequestHeader(frame, requestHeaderVersion(ApiKey.Produce, version));
    const hook = this.deps.hook();
    const body = new Reader(frame, header.bodyOffset);
    // Kafka 4 still advertises Produce v0-2 (for old librdkafka) and so do we; those carry
    // message sets the sidecar does not parse, so they go through untouched.
    if (!hook.needsDecoding || version < PRODUCE_MIN_DECODED) {
      const acks = peekProduceAcks(body, version);
      const slot = acks === 0 ? undefined : this.newSlot(header.correlationId, ApiKey.Produce, version);
      // Below v10 an answer carries no broker address: its bytes go back untouched.
      if (slot && version >= 10) slot.transform = (payload) => this.produceAnswer(payload, version, undefined);
      return this.forward(frame, slot);
    }
    const request = decodeProduceRequest(body, version);
    const clientAcks = request.acks;
    const decision = hook.onProduce({ header, version, request, frame, connectionId: this.id, nodeId: this.nodeId });
    switch (decision.kind) {
      case 'forward': {
        const slot = clientAcks === 0 ? undefined : this.newSlot(header.correlationId, ApiKey.Produce, version);
        if (slot && (version >= 10 || decision.onResponse)) slot.transform = (payload) => this.produceAnswer(payload, version, decision.onResponse);
        return this.forward(frame, slot);
      }
      case 'forward-modified': {
        const w = new Writer(frame.length + 64);
        w.raw(frame.subarray(0, header.bodyOffset));
        encodeProduceRequest(w, decision.request, version);
        const upstreamAnswers = decision.request.acks !== 0;
        const slot = upstreamAnswers ? this.newSlot(header.correlationId, ApiKey.Produce, version, clientAcks === 0) : undefined;
        if (slot) slot.transform = (payload) => this.produceAnswer(payload, version, decision.onResponse);
        return this.forward(w.toBuffer(), slot);
      }
      case 'answer': {
        const slot = this.newSlot(header.correlationId, ApiKey.Produce, version, clientAcks === 0);
        decision.response.then(
          (resp) => {
            if (resp === null) slot.silent = true;
            else slot.out = encodeAnswer(header.correlationId, version, resp);
            slot.done = true;
            this.flush();
          },
          (err: Error) => {
            this.log.error({ err: err.message }, 'produce handling failed; closing the connection');
            this.close('produce handling failed');
          },
        );
        return;
      }
      case 'close':
        this.log.warn({ reason: decision.reason, clientId: header.clientId }, `closing client connection: ${decision.reason}`);
        return this.close(decision.reason);
    }
  }

  private async produceAnswer(payload: Buffer, version: number, onResponse: OnProduceResponse | undefined): Promise<Buffer> {
    // Produce v10+ answers may carry broker endpoints (KIP-951); older ones need decoding only for the hook.
    if (version < 10 && !onResponse) return payload;
    const headerVersion = responseHeaderVersion(ApiKey.Produce, version);
    const off = responseBodyOffset(payload, headerVersion);
    const resp = decodeProduceResponse(new Reader(payload, off), version);
    const changed = await onResponse?.(resp);
    const final = changed ?? resp;
    const rewritten = await rewriteProduceResponse(final, this.deps);
    if (!rewritten && !changed) return payload;
    const w = new Writer(payload.length + 64);
    w.raw(payload.subarray(0, off));
    encodeProduceResponse(w, final, version);
    return w.toBuffer();
  }

  private newSlot(correlationId: number, apiKey: number, apiVersion: number, silent = false): Slot {
    const slot: Slot = { correlationId, apiKey, apiVersion, start: process.hrtime.bigint(), done: false, silent };
    this.slots.push(slot);
    if (this.slots.length >= MAX_PENDING_SLOTS) this.pause('too-many-pending');
    return slot;
  }

  private forward(frame: Buffer, slot: Slot | undefined): void {
    const up = this.upstream;
    if (!up || up.destroyed) return this.close('upstream not connected');
    if (slot) this.upstreamSlots.push(slot);
    const prefix = Buffer.allocUnsafe(4);
    prefix.writeInt32BE(frame.length, 0);
    up.cork();
    up.write(prefix);
    const ok = up.write(frame);
    up.uncork();
    if (!ok) this.pause('upstream-buffer');
  }

  // ---- upstream -> client ----

  private onUpstreamData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.upstreamFrames.push(chunk);
    } catch (err) {
      this.log.error({ error: (err as Error).message }, 'bad frame from upstream broker');
      return this.close('bad frame from upstream');
    }
    for (const payload of frames) {
      if (this.closed) return;
      this.onResponse(payload);
    }
  }

  private onResponse(payload: Buffer): void {
    if (payload.length < 4) return this.close('short answer from upstream');
    const correlationId = payload.readInt32BE(0);
    const slot = this.upstreamSlots.shift();
    if (!slot || slot.correlationId !== correlationId) {
      this.log.error({ correlationId, expected: slot?.correlationId }, 'upstream answered out of order; closing');
      return this.close('upstream answered out of order');
    }
    if (!slot.transform) {
      slot.out = payload;
      slot.done = true;
      return this.flush();
    }
    let result: Buffer | Promise<Buffer>;
    try {
      result = slot.transform(payload);
    } catch (err) {
      return this.transformFailed(slot, err as Error);
    }
    if (Buffer.isBuffer(result)) {
      slot.out = result;
      slot.done = true;
      return this.flush();
    }
    result.then(
      (out) => {
        slot.out = out;
        slot.done = true;
        this.flush();
      },
      (err: Error) => this.transformFailed(slot, err),
    );
  }

  private transformFailed(slot: Slot, err: Error): void {
    const what = err instanceof CodecError ? 'cannot decode' : 'cannot rewrite';
    this.log.error({ api: apiName(slot.apiKey), version: slot.apiVersion, err: err.message }, `${what} the broker's answer; closing the connection`);
    this.close(`${what} answer`);
  }

  /** Writes every finished answer at the head of the FIFO, in order. */
  private flush(): void {
    if (this.closed) return;
    let wrote = false;
    while (this.slots.length > 0 && this.slots[0].done) {
      const slot = this.slots.shift()!;
      const seconds = Number(process.hrtime.bigint() - slot.start) / 1e9;
      this.deps.metrics.forApi(slot.apiKey, apiName(slot.apiKey)).latency.observe(seconds);
      if (slot.apiKey === ApiKey.Produce) this.deps.metrics.produceLatency.observe(seconds);
      if (slot.silent || !slot.out) continue;
      if (!wrote) this.client.cork();
      wrote = true;
      const prefix = Buffer.allocUnsafe(4);
      prefix.writeInt32BE(slot.out.length, 0);
      this.client.write(prefix);
      if (!this.client.write(slot.out)) this.pauseUpstream('client-buffer');
    }
    if (wrote) this.client.uncork();
    if (this.slots.length < MAX_PENDING_SLOTS / 2) this.resumeClient('too-many-pending');
    if (this.draining && this.slots.length === 0) this.close('drained');
  }

  // ---- backpressure: a reader is paused while any reason holds ----

  private pause(reason: string): void {
    this.pauseReasons.add(reason);
    this.client.pause();
  }

  private resumeClient(reason: string): void {
    this.pauseReasons.delete(reason);
    if (this.pauseReasons.size === 0 && !this.closed) this.client.resume();
  }

  private upstreamPaused = false;

  private pauseUpstream(_reason: string): void {
    this.upstreamPaused = true;
    this.upstream?.pause();
  }

  private resumeUpstream(_reason: string): void {
    if (!this.upstreamPaused) return;
    this.upstreamPaused = false;
    this.upstream?.resume();
  }
}

function encodeAnswer(correlationId: number, version: number, resp: ProduceResponse): Buffer {
  const w = new Writer(256);
  writeResponseHeader(w, correlationId, responseHeaderVersion(ApiKey.Produce, version));
  encodeProduceResponse(w, resp, version);
  return w.toBuffer();
}

/** Reads acks without decoding the rest: (transactional_id from v3, then) acks (int16). */
function peekProduceAcks(r: Reader, version: number): number {
  if (version < 3) return r.int16('acks');
  if (version >= 9) r.compactNullableString('transactional id');
  else r.nullableString('transactional id');
  return r.int16('acks');
}
