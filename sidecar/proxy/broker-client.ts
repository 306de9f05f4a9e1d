// The sidecar's own connection to one broker: used for its Metadata refreshes,
// InitProducerId and the upgrade engine's produce sends and re-sends. Requests are
// pipelined; Kafka answers in order on a connection, so each answer is the oldest pending
// request's, whose correlation id it must carry. A closed or timed-out connection fails every pending request
// with an UpstreamError whose outcome is unknown (the broker may have written it).
import type net from 'node:net';
import type { Logger } from '../log/log.js';
import { Reader } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';
import { requestHeaderVersion, responseHeaderVersion } from '../codec/api.js';
import { FrameReader } from './frames.js';
import { responseBodyOffset, writeRequestHeader } from './headers.js';
import { connectUpstream, type TlsMaterial } from './upstream-socket.js';
import { SocketReads } from './socket-reads.js';
import { authenticate, type SaslCredentials } from './sasl.js';
import type { OwnRequest } from './produce-hook.js';

export class UpstreamError extends Error {
  constructor(
    message: string,
    /** connection: the socket failed or closed; timeout: no answer in time. Either way the outcome is unknown. */
    readonly kind: 'connection' | 'timeout',
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

/** Byte strings at least this long go to the socket by reference (see send). */
const REFERENCE_MIN_BYTES = 1024;

function writeChunks(socket: net.Socket, chunks: Array<Buffer | Uint8Array>): void {
  if (chunks.length === 1) {
    socket.write(chunks[0]);
    return;
  }
  socket.cork();
  for (let i = 0; i < chunks.length; i++) socket.write(chunks[i]); // (for...of: an iterator per send until optimised)
  socket.uncork();
}

/** A request sent and not yet answered, in send order (Kafka answers a connection's requests in order). */
interface Pending {
  readonly correlationId: number;
  readonly req: OwnRequest;
  readonly version: number;
  /** When the request counts as unanswered (performance.now(): a monotonic clock, so a step of the wall clock moves no deadline). */
  readonly deadline: number;
}

export class BrokerClient {
  private socket?: net.Socket;
  private connecting?: Promise<net.Socket>;
  /** Oldest first: an answer is the head's, or the connection is out of step. */
  private pending: Pending[] = [];
  private nextCorrelation = 1;
  private closed = false;
  /** One timer for the connection, due at or before the earliest pending deadline (see watch). */
  private watchTimer?: NodeJS.Timeout;
  private watchAt = Infinity;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly opts: { tls?: TlsMaterial; sasl?: SaslCredentials; clientId: string; maxFrameBytes: number; log: Logger; connectTimeoutMs?: number },
  ) {}

  /**
   * Sends `req` at `version` (connecting first if need be); it is told its answer or failure
   * once, never from within send.
   */
  send(req: OwnRequest, version: number): void {
    const socket = this.socket;
    // Connected: no promise per request (the upgrader's sends go this way).
    if (socket && !socket.destroyed && !this.closed) return this.write(socket, req, version);
    this.connect().then(
      (s) => this.write(s, req, version),
      (err: Error) => tell(this.opts.log, req, err),
    );
  }

  /** The same, as a promise of the answer's body (metadata, versions, SASL: not per produce). */
  request(apiKey: number, version: number, encode: (w: Writer) => void, timeoutMs: number): Promise<Reader> {
    return new Promise((resolve, reject) => this.send(asked(apiKey, encode, timeoutMs, resolve, reject), version));
  }

  private write(socket: net.Socket, req: OwnRequest, version: number): void {
    const correlationId = this.nextCorrelation;
    this.nextCorrelation = (this.nextCorrelation + 1) & 0x7fffffff;
    const w = new Writer(req.sizeHint ?? 256);
    // Record batches are written from the caller's buffers (one writev, no copy): they do not
    // change while a request is pending. The upgrader stamps a batch before its first send and
    // stamps it again only after that send's outcome is known: its answer came (so every byte had
    // been written) or its connection was destroyed (so nothing queued on it goes out).
    w.keepLarge(REFERENCE_MIN_BYTES);
    w.int32(0); // size, patched below
    writeRequestHeader(w, req.apiKey, version, correlationId, this.opts.clientId, requestHeaderVersion(req.apiKey, version));
    try {
      req.encode(w, version);
    } catch (err) {
      queueMicrotask(() => tell(this.opts.log, req, err as Error));
      return;
    }
    w.buf.writeInt32BE(w.length - 4, 0);
    const deadline = performance.now() + req.timeoutMs;
    this.pending.push({ correlationId, req, version, deadline });
    if (deadline < this.watchAt) this.watch(deadline);
    writeChunks(socket, w.toChunks());
  }

  /**
   * One timer per connection instead of one set and cleared per request (they showed in
   * profiles): it fires at `at`, fails the connection if a pending request is past its deadline
   * (a request without an answer leaves the connection's order unknowable), else waits for the
   * earliest deadline still pending. Answers do not move it.
   */
  private watch(at: number): void {
    clearTimeout(this.watchTimer);
    this.watchAt = at;
    this.watchTimer = setTimeout(() => {
      this.watchTimer = undefined;
      this.watchAt = Infinity;
      const now = performance.now();
      let next = Infinity;
      for (const p of this.pending) {
        if (p.deadline <= now) {
          return this.fail(new UpstreamError(`no answer from broker ${this.host}:${this.port} by its deadline (${now - p.deadline} ms ago)`, 'timeout'));
        }
        next = Math.min(next, p.deadline);
      }
      if (next < Infinity) this.watch(next);
    }, Math.max(0, at - performance.now()));
    this.watchTimer.unref();
  }

  close(): void {
    this.closed = true;
    this.fail(new UpstreamError('connection closed by the sidecar', 'connection'));
  }

  private connect(): Promise<net.Socket> {
    if (this.closed) return Promise.reject(new UpstreamError('client closed', 'connection'));
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    if (!this.connecting) {
      let current: net.Socket | undefined;
      // Each answer is handled as it is read, from the read buffer (lent: no copy per answer).
      const frames = new FrameReader(
        this.opts.maxFrameBytes,
        {
          begin: () => 'whole',
          frame: (payload) => {
            // An answer's handler may have dropped this connection (the rest is not for anyone now).
            if (!current!.destroyed) this.onResponse(payload);
          },
          piece: () => undefined,
        },
        true,
      );
      const reads = new SocketReads((bytes) => this.onBytes(current!, frames, bytes));
      this.connecting = connectUpstream(this.host, this.port, this.opts.tls, reads.onread, this.opts.connectTimeoutMs ?? 10_000)
        .then(async (socket) => {
          current = socket;
          this.attach(socket);
          // Requests only go out on an authenticated connection: this.socket is set after SASL.
          const sasl = this.opts.sasl;
          if (sasl) await authenticate((k, v, enc) => new Promise((resolve, reject) => this.write(socket, asked(k, enc, this.opts.connectTimeoutMs ?? 10_000, resolve, reject), v)), sasl);
          if (socket.destroyed) throw new Error('connection closed during authentication');
          this.socket = socket;
          return socket;
        })
        .catch((err: Error) => {
          throw new UpstreamError(`connect to ${this.host}:${this.port} failed: ${err.message}`, 'connection');
        })
        .finally(() => {
          this.connecting = undefined;
        });
    }
    return this.connecting;
  }

  /** A read's bytes (lent): its answers are handled before it returns. */
  private onBytes(socket: net.Socket, frames: FrameReader, bytes: Buffer): void {
    try {
      frames.push(bytes);
    } catch (err) {
      this.fail(new UpstreamError(`bad frame from broker: ${(err as Error).message}`, 'connection'), socket);
    }
  }

  private attach(socket: net.Socket): void {
    socket.on('error', (err) => this.fail(new UpstreamError(`broker ${this.host}:${this.port}: ${err.message}`, 'connection'), socket));
    socket.on('close', () => this.fail(new UpstreamError(`broker ${this.host}:${this.port} closed the connection`, 'connection'), socket));
  }

  private onResponse(payload: Buffer): void {
    if (payload.length < 4) return this.fail(new UpstreamError('short response frame from broker', 'connection'));
    const correlationId = payload.readInt32BE(0);
    const p = this.pending[0];
    if (p?.correlationId !== correlationId) {
      this.opts.log.warn({ correlationId, expected: p?.correlationId }, 'answer out of order or for an unknown correlation id from broker; dropping the connection');
      return this.fail(new UpstreamError('unexpected correlation id', 'connection'));
    }
    this.pending.shift();
    let bodyAt: number;
    try {
      bodyAt = responseBodyOffset(payload, responseHeaderVersion(p.req.apiKey, p.version));
    } catch (err) {
      return tell(this.opts.log, p.req, err as Error);
    }
    try {
      p.req.answered(p.version, payload, bodyAt);
    } catch (err) {
      this.opts.log.error({ apiKey: p.req.apiKey, err: (err as Error).message }, 'handling a broker answer failed');
    }
  }

  /**
   * Fails every pending request; with `from`, only if that socket is still the current one (or
   * the one connecting). Their handlers run in a microtask: fail() is also reached from within a
   * send (BrokerPool closes a broker's client whose address changed).
   */
  private fail(err: UpstreamError, from?: net.Socket): void {
    if (from && this.socket && this.socket !== from) return;
    from?.destroy();
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
    const all = this.pending;
    this.pending = [];
    clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
    this.watchAt = Infinity;
    if (all.length > 0) queueMicrotask(() => {
      for (const p of all) tell(this.opts.log, p.req, err);
    });
  }
}

/** Tells a request it failed; a handler's own error is logged (it must not stop the others). */
function tell(log: Logger, req: OwnRequest, err: Error): void {
  try {
    req.failed(err);
  } catch (e) {
    log.error({ apiKey: req.apiKey, err: (e as Error).message }, 'handling a failed broker request failed');
  }
}

/** A request whose answer's body resolves a promise (request()). */
function asked(apiKey: number, encode: (w: Writer) => void, timeoutMs: number, resolve: (body: Reader) => void, reject: (err: Error) => void): OwnRequest {
  return {
    apiKey,
    timeoutMs,
    encode: (w) => encode(w),
    answered: (_version, payload, bodyAt) => resolve(new Reader(Buffer.from(payload), bodyAt)), // (lent: read later)
    failed: reject,
  };
}
