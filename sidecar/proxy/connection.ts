// One client connection: reads the client's requests, routes each (pass-through, address
// rewriting, or the produce hook), and puts every answer in the client's FIFO. The jobs
// around it live in their own modules:
//   frames.ts         — splitting the byte stream into frames;
//   answer-queue.ts   — answers leave in request order (Kafka's per-connection order);
//   flow-control.ts   — readers paused while the other side cannot take more;
//   produce-frames.ts — produce requests and answers re-encoded after the hook decided;
//   upstream-link.ts  — the paired upstream connection (1:1 keeps SASL and per-connection
//                       broker state intact), its answers matched to requests.
import type net from 'node:net';
import type { Logger } from '../log/log.js';
import { Reader, CodecError } from '../codec/reader.js';
import { ApiKey, apiName, requestHeaderVersion } from '../codec/api.js';
import { decodeProduceRequest } from '../codec/generated/produce-request.js';
import type { ProduceResponse } from '../codec/generated/produce-response.js';
import { SUPPORTED_VERSIONS } from '../codec/supported.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import { FrameError, FrameReader, framed, ownFrame, type FrameDecision, type FrameHandler } from './frames.js';
import { ByteBudget } from './byte-budget.js';
import { framePool, type FrameLease } from './frame-pool.js';
import { parseRequestHeader, peekRequest, type RequestHeader } from './headers.js';
import type { OnProduceResponse, OnWritten, ProduceHook } from './produce-hook.js';
import type { ResponseRewriters } from './rewrite.js';
import type { ListenerRegistry, Target } from './listeners.js';
import type { ClusterView } from './cluster-view.js';
import type { TlsMaterial } from './upstream-socket.js';
import { AnswerQueue, type AnswerQueueEvents, type Slot } from './answer-queue.js';
import { ReadGate } from './flow-control.js';
import { READ_BUFFER_BYTES, readAcceptedInto, SocketReads } from './socket-reads.js';
import { detachFromFrame, encodeChangedRequest, encodeProduceAnswer, peekProduceAcks, produceAnswerNeedsWork, produceErrorPayload, transformProduceAnswer } from './produce-frames.js';
import { UpstreamLink, type LossDecision, type Outstanding } from './upstream-link.js';
import { bindsConnection, isIdempotentProduce, replayClassOf, type ReplayClass } from './replay.js';
import { ErrorCode } from '../codec/errors.js';
import type { ProduceRequest } from '../codec/generated/produce-request.js';

const PRODUCE_MIN_DECODED = SUPPORTED_VERSIONS.get(ApiKey.Produce)!.min;

/** Requests a client may have waiting for answers before the sidecar stops reading from it. */
const MAX_PENDING_SLOTS = 1024;

/**
 * How long answers are still read for a client that went away. Short: a client that timed out
 * re-sends its batches on its next connection at once, and a copy of a forwarded batch waits for
 * the original's answer; past this, the original counts as "outcome unknown" and the copy goes to
 * the broker itself (same producer id, epoch and sequence: answered as a duplicate or written once).
 */
const RETIRE_MAX_MS = 2_000;

export interface ConnectionDeps {
  log: Logger;
  metrics: SidecarMetrics;
  cluster: ClusterView;
  listeners: ListenerRegistry;
  rewriters: ResponseRewriters;
  hook: () => ProduceHook;
  tls?: TlsMaterial;
  maxFrameBytes: number;
  /** The sidecar's budget for frames held whole; each connection takes from it within its own limit. */
  budget: ByteBudget;
  maxConnectionBufferedBytes: number;
  /** A reader waits for memory (metric and rate-limited log line, by the proxy). */
  memoryLimited(scope: 'connection' | 'sidecar'): void;
  /** The sidecar's upstream request timeout: added to a request's own wait to bound its answer. */
  requestTimeoutMs: number;
  /** Picks the upstream address for a target (bootstrap: one of --upstream). */
  resolveUpstream(target: Target, attempt: number): { host: string; port: number } | undefined;
}

/** Turns the upstream answer into what the client gets. */
type Transform = (payload: Buffer) => Buffer | Promise<Buffer>;

/** A client request on the paired upstream connection, with what to do if that connection fails (replay.ts). */
interface ClientRequest extends Outstanding {
  readonly replay: ReplayClass;
  /**
   * Produce only: settles it as NETWORK_EXCEPTION through the hook's answer handler, so the
   * engine learns that the outcome is unknown (and the client, if still there, is told so).
   * Every forwarded produce gets exactly one answer: the broker's or this one.
   */
  readonly unknownOutcome?: () => void;
}

let nextConnectionId = 1;

/**
 * The connection is itself the handler of its request frames (FrameHandler) and of its answer
 * FIFO's events (AnswerQueueEvents): methods, not objects of closures made per connection, so the
 * reader's and the queue's calls meet the same functions on every connection and V8 keeps their
 * optimised code when a new producer connects (measured: each new connection deoptimised them).
 */
export class ClientConnection implements FrameHandler, AnswerQueueEvents {
  readonly id = nextConnectionId++;
  private readonly link: UpstreamLink;
  private readonly answers: AnswerQueue;
  private readonly clientFrames: FrameReader;
  /** Bytes of frames this connection holds whole (requests until answered, answers it rewrites). */
  private readonly budget: ByteBudget;
  /** Budget bytes of the request being handled, until a slot takes them (reserve). */
  private carry = 0;
  private readonly clientGate: ReadGate;
  private closed = false;
  /** SASL went through the paired upstream connection: it cannot be re-dialled by the sidecar. */
  private authenticatedUpstream = false;
  private draining = false;
  private drainWaiter?: () => void;
  private readonly log: Logger;
  private readonly client: net.Socket;
  private readonly clientReads: SocketReads;
  /** A request was written upstream straight from the lent read buffer during this read. */
  private wroteLent = false;
  /**
   * The upstream socket had nothing queued when this read began, so a request may be written
   * from the lent buffer. Otherwise each is copied: a queued write keeps the whole 64 KiB read
   * buffer it points into (SocketReads.keep), and a broker that stops reading would then hold one
   * such buffer per read — memory growing by reads, not by the bytes the budgets count.
   */
  private mayLendUpstream = false;
  /** The pooled buffer the frame reader is filling across reads (frame-pool.ts), until delivered. */
  private assembling?: FrameLease;
  /** The earliest send time of the bytes being read, and of the request being read (ProduceCall.sentAfter). */
  private chunkSentAfter = 0;
  private requestSentAfter = 0;
  /** The client id of the last produce request (headers.ts parseRequestHeader: decoded once). */
  private clientId: string | null = null;

  constructor(
    /** Accepted with pauseOnConnect: nothing read yet. */
    accepted: net.Socket,
    private readonly target: Target,
    private readonly deps: ConnectionDeps,
  ) {
    this.log = deps.log.child({ conn: this.id, remote: `${accepted.remoteAddress}:${accepted.remotePort}` });
    this.budget = new ByteBudget(deps.maxConnectionBufferedBytes, deps.budget);
    // Requests arrive in lent memory (socket-reads.ts): copied only when something keeps them.
    this.clientFrames = new FrameReader(deps.maxFrameBytes, this, true);
    this.clientReads = new SocketReads((bytes) => this.onClientData(bytes));
    const client = readAcceptedInto(accepted, this.clientReads.onread);
    this.client = client;
    this.clientGate = new ReadGate(client);
    client.setNoDelay(true);
    this.clientGate.pause('connecting');
    this.answers = new AnswerQueue(deps.metrics, MAX_PENDING_SLOTS, this);
    this.link = new UpstreamLink(
      { log: this.log, metrics: deps.metrics, tls: deps.tls, maxFrameBytes: deps.maxFrameBytes, resolve: (attempt) => deps.resolveUpstream(target, attempt) },
      {
        connected: () => this.clientGate.resume('connecting'),
        unreachable: (reason) => this.closeForUpstream('unreachable', reason),
        lost: (reason, outstanding) => this.onUpstreamLost(reason, outstanding),
        broken: (reason) => this.close(reason),
        abandoned: (requests) => {
          for (const r of requests as ClientRequest[]) r.unknownOutcome?.();
        },
        full: () => this.clientGate.pause('upstream-buffer'),
        writable: () => this.clientGate.resume('upstream-buffer'),
      },
    );
    // `closed` changes once per connection, when it ends. V8 treats a field it has never seen
    // change as a constant and, the first time one does, throws away every optimised function
    // that read it: with the first connection to end, the whole client path (measured in the
    // bench: the warm-up's producer leaving deoptimised it inside the measured run). Changed
    // here once, before anything is optimised, so V8 knows it as a field that changes.
    this.closed = true;
    this.closed = false;
    client.on('error', (err) => this.log.debug({ err: err.message }, 'client socket error'));
    client.on('close', () => this.clientGone());
    client.on('drain', () => this.link.resumeReading('client-buffer'));
    deps.metrics.clientConnections.inc();
  }

  get nodeId(): number | undefined {
    return this.target.kind === 'broker' ? this.target.nodeId : undefined;
  }

  /** Stops reading new requests, waits until every answer has been written, then ends. */
  drain(): Promise<void> {
    this.draining = true;
    this.clientGate.pause('draining');
    if (this.answers.size === 0) {
      this.close('draining');
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.drainWaiter = resolve;
    });
  }

  /**
   * The client went away. What it already sent upstream is not abandoned: the answers are
   * still read (bounded), so the engine records each forwarded batch's outcome and a re-send
   * from the client's next connection is answered from it.
   */
  private clientGone(): void {
    if (this.closed) return;
    this.close('client closed the connection', true);
  }

  close(reason: string, keepUpstream = false): void {
    if (this.closed) return;
    this.closed = true;
    this.log.debug({ reason }, 'connection closed');
    this.deps.metrics.clientConnections.dec();
    this.answers.stop();
    this.clientFrames.stop();
    this.budget.release();
    this.client.destroy();
    if (keepUpstream) this.link.retire(RETIRE_MAX_MS);
    else this.link.close();
    this.drainWaiter?.();
  }

  /**
   * The paired upstream connection failed with `outstanding` requests unanswered. Upstream
   * faults stay upstream: the sidecar dials the broker again and the client keeps its
   * connection, unless the lost connection carried state only the client can rebuild (SASL),
   * or a request the sidecar can neither repeat nor answer was in flight (replay.ts).
   */
  private onUpstreamLost(reason: string, outstanding: Outstanding[]): LossDecision {
    if (this.closed) return { redial: false, reason };
    if (this.authenticatedUpstream) {
      this.closeForUpstream('sasl', `${reason}; it was authenticated with the client's own SASL exchange, which only the client can repeat`);
      return { redial: false, reason };
    }
    const requests = outstanding as ClientRequest[];
    const unsafe = requests.find((r) => r.replay === 'close');
    if (unsafe) {
      this.closeForUpstream('unsafe_request', `${reason} while a ${apiName(unsafe.apiKey)} request was in flight, which the sidecar cannot repeat or answer`);
      return { redial: false, reason };
    }
    const resend: Outstanding[] = [];
    let answered = 0;
    for (const r of requests) {
      if (r.replay === 'resend') resend.push(r);
      else {
        answered++;
        r.unknownOutcome?.();
      }
    }
    this.deps.metrics.upstreamRedials.inc();
    this.log.info({ reason, resent: resend.length, answeredUnknown: answered }, 'upstream connection lost; dialling the broker again, the client connection stays open');
    // The client is still read meanwhile (its requests wait in the link's backlog, bounded by the
    // byte budget): a paused socket would hide the client closing it, and the engine must see
    // that close to know the client gave up on an answer (claim.ts; docs/faults.md, seed 5).
    return { redial: true, resend };
  }

  /** Closes the client connection because of its upstream connection: a log line and a metric say why. */
  private closeForUpstream(kind: 'sasl' | 'unsafe_request' | 'unreachable', reason: string): void {
    if (this.closed) return;
    this.deps.metrics.clientConnectionsClosed.inc({ reason: kind });
    this.log.warn({ reason, kind }, `closing client connection: upstream connection failed (${reason})`);
    this.close(reason);
  }

  // ---- client -> upstream ----

  private onClientData(chunk: Buffer): void {
    this.mayLendUpstream = !this.link.writePending;
    const now = Date.now();
    this.chunkSentAfter = Math.min(now, this.clientGate.stoppedSince ?? now);
    // A short read emptied the socket: later bytes were sent after this one.
    if (chunk.length < READ_BUFFER_BYTES) this.clientGate.caughtUp();
    // Every frame of this chunk leaves in one writev.
    this.link.cork();
    try {
      this.clientFrames.push(chunk);
    } catch (err) {
      this.reject(err as Error);
    } finally {
      this.link.uncork();
      // A request written from the lent buffer that the socket did not take at once is still referenced by it.
      if (this.wroteLent && this.link.writePending) this.clientReads.keep();
      this.wroteLent = false;
    }
  }

  // ---- the client's request frames (FrameHandler) ----

  /**
   * A request begins. Requests are read whole (the sidecar decodes produce requests and keeps
   * every request for a re-send until it is answered), so its size is taken from the byte
   * budget first; without room the reader waits, paused, until answers give bytes back.
   */
  begin(size: number): FrameDecision {
    if (this.closed) return 'wait';
    // From the read holding its first bytes: the client sent all of it after that (its timer runs from then).
    this.requestSentAfter = this.chunkSentAfter;
    if (!this.budget.fits(size)) {
      this.reject(new FrameError(`frame of ${size} bytes exceeds the limit of ${Math.min(this.budget.limit, this.deps.budget.limit)} bytes a connection may buffer (--max-connection-buffered-bytes, --max-buffered-bytes)`));
      return 'wait';
    }
    if (!this.takeOrWait(size, () => this.resumeRequests())) return 'wait';
    this.carry = size;
    return 'whole';
  }

  private resumeRequests(): void {
    this.clientGate.resume('memory');
    this.clientFrames.resume();
  }

  /**
   * Takes `size` bytes from the budget, or pauses (the reader's socket, by `retry`'s owner)
   * until bytes come back, counting which limit was reached.
   */
  private takeOrWait(size: number, retry: () => void): boolean {
    if (this.budget.tryTake(size)) return true;
    this.deps.memoryLimited(this.budget.used + size > this.budget.limit ? 'connection' : 'sidecar');
    this.clientGate.pause('memory');
    this.budget.whenFreed(retry);
    return false;
  }

  /** `lent`: the frame is a view into the client's read buffer (socket-reads.ts), valid during this call. */
  frame(frame: Buffer, lent: boolean): void {
    // A frame filled across reads is in pooled memory: its lease (only a produce answered by the
    // hook gives it back; any other is left to the garbage collector).
    const assembled = !lent && this.assembling?.buf.buffer === frame.buffer ? this.assembling : undefined;
    this.assembling = undefined;
    if (this.closed) return;
    try {
      this.onRequest(frame, lent, assembled);
    } catch (err) {
      this.reject(err as Error);
    } finally {
      // No slot took the request's bytes (acks=0, refused, closed): nothing holds it any more.
      this.budget.give(this.carry);
      this.carry = 0;
    }
  }

  /** Requests are always read whole. */
  piece(): void {}

  /** A request that spans reads is assembled in pooled memory (frame-pool.ts); `frame` takes its lease. */
  alloc(bytes: number): Buffer {
    this.assembling = framePool.acquire(bytes);
    return this.assembling.buf;
  }

  // ---- the answer FIFO's events (AnswerQueueEvents) ----

  writeAnswer(payload: Buffer, raw: boolean): boolean {
    if (raw) return this.client.write(payload);
    const whole = framed(payload); // a broker answer passed on as read: one write
    if (whole) return this.client.write(whole);
    // A payload without its prefix in front: both in one writev.
    const prefix = Buffer.allocUnsafe(4);
    prefix.writeInt32BE(payload.length, 0);
    this.client.cork();
    this.client.write(prefix);
    const ok = this.client.write(payload);
    this.client.uncork();
    return ok;
  }

  corkAnswers(): void {
    this.client.cork();
  }

  uncorkAnswers(): void {
    this.client.uncork();
  }

  answerPressure(high: boolean): void {
    if (high) this.clientGate.pause('too-many-pending');
    else this.clientGate.resume('too-many-pending');
  }

  clientBufferFull(): void {
    this.link.pauseReading('client-buffer');
  }

  releaseHeld(bytes: number): void {
    this.budget.give(bytes);
  }

  answersWritten(): void {
    if (this.draining) this.close('drained');
  }

  // ---- requests ----

  /** A slot in the answer FIFO; it holds the current request's budget bytes until written. */
  private reserve(correlationId: number, apiKey: number, apiVersion: number, silent = false): Slot {
    const slot = this.answers.reserve(correlationId, apiKey, apiVersion, silent);
    slot.held = this.carry;
    this.carry = 0;
    return slot;
  }

  /** A malformed or oversized frame: one clear log line, the connection closed, nothing else disturbed. */
  private reject(err: Error): void {
    const reason = err instanceof FrameError ? (/exceeds/.test(err.message) ? 'oversized' : 'malformed') : 'malformed';
    this.deps.metrics.rejectedFrames.inc({ reason });
    this.log.warn({ reason, error: err.message }, `closing client connection: ${err.message}`);
    this.close(err.message);
  }

  private onRequest(lentFrame: Buffer, lent: boolean, assembled: FrameLease | undefined): void {
    const { apiKey, apiVersion, correlationId } = peekRequest(lentFrame);
    this.deps.metrics.forApi(apiKey, apiName(apiKey)).count.inc();
    if (apiKey === ApiKey.Produce) return this.onProduce(lentFrame, lent, apiVersion, assembled);
    // Other requests are small and most are kept for a re-send: their own copy.
    const frame = ownFrame(lentFrame, lent);
    if (bindsConnection(apiKey)) this.authenticatedUpstream = true;
    const slot = this.reserve(correlationId, apiKey, apiVersion);
    const rewrite = this.deps.rewriters.get(apiKey);
    const replay = replayClassOf(apiKey, frame, apiVersion);
    // Requests safe to repeat answer within their own wait (Fetch: maxWait) plus requestTimeout.
    const within = replay === 'resend' ? ownWaitMs(frame, apiKey, apiVersion) + this.deps.requestTimeoutMs : undefined;
    this.forward(frame, false, slot, rewrite ? (payload) => rewrite(payload, apiVersion) : undefined, replay, within);
  }

  /**
   * A produce request stays in the lent read buffer only for a hook that keeps none of its
   * bytes (ProduceHook.keepsNoBytes); forward() copies it if it must outlive the read. Else it
   * is copied into pooled memory (frame-pool.ts), given back when the hook's answer is written.
   */
  private onProduce(lentFrame: Buffer, lentIn: boolean, version: number, assembled: FrameLease | undefined): void {
    const hook = this.deps.hook();
    const lent = lentIn && hook.keepsNoBytes?.() === true;
    let lease = assembled;
    let frame = lentFrame;
    if (lentIn && !lent) {
      lease = framePool.acquire(4 + lentFrame.length);
      lease.buf.writeInt32BE(lentFrame.length, 0); // the size prefix in front, as framed() expects
      lease.buf.set(lentFrame, 4); // (TypedArray#set: a memmove without Buffer#copy's argument checks)
      frame = lease.buf.subarray(4);
    }
    const header = parseRequestHeader(frame, requestHeaderVersion(ApiKey.Produce, version), this.clientId);
    this.clientId = header.clientId;
    // Kafka 4 still advertises Produce v0-2 (for old librdkafka) and so do we; those carry
    // message sets the sidecar does not parse: the hook forwards them untouched or refuses them.
    if (version < PRODUCE_MIN_DECODED) {
      const legacy = hook.onLegacyProduce?.({ header, version, connectionId: this.id });
      if (legacy?.kind === 'close') {
        this.log.warn({ reason: legacy.reason, clientId: header.clientId }, `closing client connection: ${legacy.reason}`);
        return this.close(legacy.reason);
      }
    }
    if (!hook.needsDecoding || version < PRODUCE_MIN_DECODED) {
      const acks = peekProduceAcks(frame, header.bodyOffset, version);
      const slot = acks === 0 ? undefined : this.reserve(header.correlationId, ApiKey.Produce, version);
      // Not decoded, so the sidecar cannot tell whether repeating it is safe.
      return this.forward(frame, lent, slot, this.produceTransform(version, undefined), 'close');
    }
    const request = decodeProduceRequest(new Reader(frame, header.bodyOffset), version);
    const clientAcks = request.acks;
    const decision = hook.onProduce({ header, version, request, frame, lease, connectionId: this.id, nodeId: this.nodeId, sentAfter: this.requestSentAfter });
    switch (decision.kind) {
      case 'forward': {
        const slot = clientAcks === 0 ? undefined : this.reserve(header.correlationId, ApiKey.Produce, version);
        const transform = this.produceTransform(version, decision.onResponse);
        const replay = produceReplay(request);
        // Kept for a NETWORK_EXCEPTION answer: detached from lent memory, after everything that reads its records.
        const kept = lent ? detachFromFrame(request, version) : request;
        return this.forward(frame, lent, slot, transform, replay, request.timeoutMs + this.deps.requestTimeoutMs, kept);
      }
      case 'forward-modified': {
        const upstreamAnswers = decision.request.acks !== 0;
        const slot = upstreamAnswers ? this.reserve(header.correlationId, ApiKey.Produce, version, clientAcks === 0) : undefined;
        if (slot) slot.onWritten = decision.onWritten;
        // A changed request always goes through the hook's answer handler.
        const transform: Transform = (payload) => transformProduceAnswer(payload, version, decision.onResponse, this.deps);
        const changed = encodeChangedRequest(frame, header.bodyOffset, decision.request, version);
        const replay = produceReplay(decision.request);
        // Last: it drops the records (see 'forward').
        const kept = lent ? detachFromFrame(decision.request, version) : decision.request;
        return this.forward(changed, false, slot, transform, replay, decision.request.timeoutMs + this.deps.requestTimeoutMs, kept);
      }
      case 'answer':
        return this.answerFromHook(header, version, clientAcks, decision.response, decision.onWritten, lease);
      case 'close':
        this.log.warn({ reason: decision.reason, clientId: header.clientId }, `closing client connection: ${decision.reason}`);
        return this.close(decision.reason);
    }
  }

  /**
   * The hook answers the request itself. The request's pooled bytes (`lease`) are held until the
   * answer is decided (the engine reads its batches on the way, e.g. to index a retry) and its
   * written-or-dropped callback ran; what the engine keeps longer it holds itself (upgrader.ts).
   */
  private answerFromHook(header: RequestHeader, version: number, clientAcks: number, response: Promise<ProduceResponse | null>, onWritten?: OnWritten, lease?: FrameLease): void {
    const slot = this.reserve(header.correlationId, ApiKey.Produce, version, clientAcks === 0);
    let waits = 2;
    const done = (): void => {
      if (--waits === 0) lease?.drop();
    };
    slot.onWritten = (written) => {
      try {
        onWritten?.(written);
      } finally {
        done();
      }
    };
    response.then(
      (resp) => {
        try {
          this.answers.settle(slot, resp === null ? null : encodeProduceAnswer(header.correlationId, version, resp));
        } finally {
          done();
        }
      },
      (err: Error) => {
        this.log.error({ err: err.message }, 'produce handling failed; closing the connection');
        this.close('produce handling failed');
        done();
      },
    );
  }

  /** Below v10 a forwarded answer carries no broker address: without a hook handler its bytes go back untouched. */
  private produceTransform(version: number, onResponse: OnProduceResponse | undefined): Transform | undefined {
    if (!produceAnswerNeedsWork(version, onResponse)) return undefined;
    return (payload) => transformProduceAnswer(payload, version, onResponse, this.deps);
  }

  /**
   * Writes a request upstream; its answer (transformed when asked) fills `slot`. A lent frame
   * is copied only when it is kept: for a re-send, or until the connection is up; else it is
   * written from the read buffer (onClientData keeps that buffer if the socket queued it).
   */
  private forward(frame: Buffer, lent: boolean, slot: Slot | undefined, transform: Transform | undefined, replay: ReplayClass, answerWithinMs?: number, produce?: ProduceRequest): void {
    const owned = lent && (replay === 'resend' || !this.mayLendUpstream) ? ownFrame(frame, true) : lent ? undefined : frame;
    if (!owned) this.wroteLent = true;
    if (!slot) return this.link.send(owned ?? frame);
    this.link.send(owned ?? frame, new Forwarded(this, slot, replay === 'resend' ? owned : undefined, transform, replay, answerWithinMs, produce));
  }

  /**
   * How an upstream answer is read. One the sidecar transforms is read whole, its size counted
   * in the byte budget. Any other goes to the client as it arrives, without being
   * held, once every answer before it has been written; until then the upstream reader waits.
   */
  receiveAnswer(slot: Slot, size: number, transformed: boolean, resume: () => void): FrameDecision {
    if (this.closed) return transformed ? 'whole' : 'stream'; // client gone: read and drop
    if (transformed) {
      // Counted, never waited for: this answer gives its request's bytes back (byte-budget.ts).
      this.budget.take(size);
      slot.held += size;
      return 'whole';
    }
    if (!this.answers.isNext(slot)) {
      this.answers.whenNext(slot, resume);
      return 'wait';
    }
    if (!this.answers.beginStream(size)) this.link.pauseReading('client-buffer');
    return 'stream';
  }

  onAnswerPiece(slot: Slot, bytes: Buffer, last: boolean): void {
    // The piece is lent (socket-reads.ts). Behind bytes the client's socket has not taken yet it
    // is copied, so at most one read buffer is left to a queued write (see mayLendUpstream).
    const queued = this.client.writableLength > 0;
    if (!this.answers.writeStreamed(queued ? Buffer.from(bytes) : bytes)) this.link.pauseReading('client-buffer');
    // A write that did not take the lent piece at once still holds it.
    if (!queued && this.client.writableLength > 0) this.link.keepReadBytes();
    if (last) this.answers.endStream(slot);
  }

  // ---- upstream -> client ----

  onAnswer(slot: Slot, payload: Buffer, transform: Transform | undefined): void {
    if (slot.done) return;
    if (!transform) return this.answers.settle(slot, payload);
    let result: Buffer | Promise<Buffer>;
    try {
      result = transform(payload);
    } catch (err) {
      return this.transformFailed(slot, err as Error);
    }
    if (Buffer.isBuffer(result)) return this.answers.settle(slot, result);
    result.then(
      (out) => this.answers.settle(slot, out),
      (err: Error) => this.transformFailed(slot, err),
    );
  }

  private transformFailed(slot: Slot, err: Error): void {
    if (this.closed) return;
    const what = err instanceof CodecError ? 'cannot decode' : 'cannot rewrite';
    this.deps.metrics.upstreamErrors.inc({ error: err instanceof CodecError ? 'malformed_answer' : 'rewrite_failed' });
    this.log.error({ api: apiName(slot.apiKey), version: slot.apiVersion, err: err.message }, `${what} the broker's answer; closing the connection`);
    this.close(`${what} answer`);
  }
}

/**
 * What to do with a forwarded produce if the upstream connection fails before its answer:
 * idempotent batches are re-sent (the broker answers a copy as a duplicate); others get
 * NETWORK_EXCEPTION (Forwarded.unknownOutcome), through the hook's answer handler so it learns
 * the outcome too.
 */
function produceReplay(req: ProduceRequest): ReplayClass {
  return isIdempotentProduce(req) ? 'resend' : 'produce';
}

/**
 * A request forwarded on the paired upstream connection, until its answer fills its slot. A class
 * with methods rather than an object of closures: one allocation per request on the hot path.
 */
class Forwarded implements ClientRequest {
  readonly correlationId: number;
  readonly apiKey: number;

  constructor(
    private readonly conn: ClientConnection,
    private readonly slot: Slot,
    /** Kept for a re-send ('resend' requests only). */
    readonly frame: Buffer | undefined,
    private readonly transform: Transform | undefined,
    readonly replay: ReplayClass,
    readonly answerWithinMs: number | undefined,
    /** A forwarded produce: what its NETWORK_EXCEPTION answer is built from (at the slot's version) when its outcome cannot be known. */
    private readonly produce: ProduceRequest | undefined,
  ) {
    this.correlationId = slot.correlationId;
    this.apiKey = slot.apiKey;
  }

  answer(payload: Buffer): void {
    this.conn.onAnswer(this.slot, payload, this.transform);
  }

  receive(size: number, resume: () => void): FrameDecision {
    return this.conn.receiveAnswer(this.slot, size, this.transform !== undefined, resume);
  }

  piece(bytes: Buffer, last: boolean): void {
    this.conn.onAnswerPiece(this.slot, bytes, last);
  }

  /** Produce only (else nothing): settles it as NETWORK_EXCEPTION, see ClientRequest. */
  unknownOutcome(): void {
    if (!this.produce) return;
    this.conn.onAnswer(this.slot, produceErrorPayload(this.slot.correlationId, this.slot.apiVersion, this.produce, ErrorCode.NETWORK_EXCEPTION), this.transform);
  }
}

/** How long a broker may rightly hold a request before answering: Fetch waits up to its maxWait. */
function ownWaitMs(frame: Buffer, apiKey: number, version: number): number {
  if (apiKey !== ApiKey.Fetch) return 0;
  try {
    const header = parseRequestHeader(frame, requestHeaderVersion(apiKey, version));
    // replica_id (int32) precedes max_wait_ms before v15 (then it moved into a tagged field).
    const off = header.bodyOffset + (version < 15 ? 4 : 0);
    return Math.max(0, frame.readInt32BE(off));
  } catch {
    return 0;
  }
}
