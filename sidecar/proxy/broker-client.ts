// The sidecar's own connection to one broker: used for its Metadata refreshes,
// InitProducerId and the upgrade engine's produce sends and re-sends. Requests are
// pipelined; Kafka answers in order on a connection, and each answer is matched to its
// request by correlation id. A closed or timed-out connection fails every pending request
// with an UpstreamError whose outcome is unknown (the broker may have written it).
import type net from 'node:net';
import type { Logger } from '../log/log.js';
import { Reader } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';
import { requestHeaderVersion, responseHeaderVersion } from '../codec/api.js';
import { FrameSplitter } from './frames.js';
import { responseBodyOffset, writeRequestHeader } from './headers.js';
import { connectUpstream, type TlsMaterial } from './upstream-socket.js';
import { SocketReads } from './socket-reads.js';
import { authenticate, type SaslCredentials } from './sasl.js';

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
  for (const c of chunks) socket.write(c);
  socket.uncork();
}

interface Pending {
  correlationId: number;
  apiKey: number;
  apiVersion: number;
  resolve: (body: Reader) => void;
  reject: (err: Error) => void;
  /** When the request counts as unanswered (performance.now(): a monotonic clock, so a step of the wall clock moves no deadline). */
  deadline: number;
}

export class BrokerClient {
  private socket?: net.Socket;
  private connecting?: Promise<net.Socket>;
  private readonly pending = new Map<number, Pending>();
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

  get isConnected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Sends one request. With expectResponse=false (acks=0) it resolves once written.
   * The body is written by `encode` after the request header.
   */
  request(apiKey: number, apiVersion: number, encode: (w: Writer) => void, timeoutMs: number, expectResponse = true, sizeHint = 256): Promise<Reader> {
    const socket = this.socket;
    // Connected: no extra promise per request (the upgrader's sends go this way).
    if (socket && !socket.destroyed && !this.closed) return this.send(socket, apiKey, apiVersion, encode, timeoutMs, expectResponse, sizeHint);
    return this.connect().then((s) => this.send(s, apiKey, apiVersion, encode, timeoutMs, expectResponse, sizeHint));
  }

  private send(socket: net.Socket, apiKey: number, apiVersion: number, encode: (w: Writer) => void, timeoutMs: number, expectResponse = true, sizeHint = 256): Promise<Reader> {
    const correlationId = this.nextCorrelation;
    this.nextCorrelation = (this.nextCorrelation + 1) & 0x7fffffff;
    const w = new Writer(sizeHint);
    // Record batches are written from the caller's buffers (one writev, no copy): they do not
    // change while a request is pending. The upgrader stamps a batch before its first send and
    // stamps it again only after that send's outcome is known: its answer came (so every byte had
    // been written) or its connection was destroyed (so nothing queued on it goes out).
    w.keepLarge(REFERENCE_MIN_BYTES);
    w.int32(0); // size, patched below
    writeRequestHeader(w, apiKey, apiVersion, correlationId, this.opts.clientId, requestHeaderVersion(apiKey, apiVersion));
    encode(w);
    w.buf.writeInt32BE(w.length - 4, 0);
    const chunks = w.toChunks();
    if (!expectResponse) {
      writeChunks(socket, chunks);
      return Promise.resolve(new Reader(Buffer.alloc(0)));
    }
    return new Promise<Reader>((resolve, reject) => {
      const deadline = performance.now() + timeoutMs;
      this.pending.set(correlationId, { correlationId, apiKey, apiVersion, resolve, reject, deadline });
      if (deadline < this.watchAt) this.watch(deadline);
      writeChunks(socket, chunks);
    });
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
      for (const p of this.pending.values()) {
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
      const frames = new FrameSplitter(this.opts.maxFrameBytes, true);
      let current: net.Socket | undefined;
      const reads = new SocketReads((bytes) => this.onBytes(current!, frames, bytes));
      this.connecting = connectUpstream(this.host, this.port, this.opts.tls, reads.onread, this.opts.connectTimeoutMs ?? 10_000)
        .then(async (socket) => {
          current = socket;
          this.attach(socket);
          // Requests only go out on an authenticated connection: this.socket is set after SASL.
          const sasl = this.opts.sasl;
          if (sasl) await authenticate((k, v, enc) => this.send(socket, k, v, enc, this.opts.connectTimeoutMs ?? 10_000), sasl);
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

  /** A read's bytes (lent: the splitter copies every frame it returns). */
  private onBytes(socket: net.Socket, frames: FrameSplitter, bytes: Buffer): void {
    let list: Buffer[];
    try {
      list = frames.push(bytes);
    } catch (err) {
      this.fail(new UpstreamError(`bad frame from broker: ${(err as Error).message}`, 'connection'), socket);
      return;
    }
    for (const payload of list) this.onResponse(payload);
  }

  private attach(socket: net.Socket): void {
    socket.on('error', (err) => this.fail(new UpstreamError(`broker ${this.host}:${this.port}: ${err.message}`, 'connection'), socket));
    socket.on('close', () => this.fail(new UpstreamError(`broker ${this.host}:${this.port} closed the connection`, 'connection'), socket));
  }

  private onResponse(payload: Buffer): void {
    if (payload.length < 4) return this.fail(new UpstreamError('short response frame from broker', 'connection'));
    const correlationId = payload.readInt32BE(0);
    const p = this.pending.get(correlationId);
    if (!p) {
      this.opts.log.warn({ correlationId }, 'answer for an unknown correlation id from broker; dropping the connection');
      return this.fail(new UpstreamError('unexpected correlation id', 'connection'));
    }
    this.pending.delete(correlationId);
    try {
      const off = responseBodyOffset(payload, responseHeaderVersion(p.apiKey, p.apiVersion));
      p.resolve(new Reader(payload, off));
    } catch (err) {
      p.reject(err as Error);
    }
  }

  /** Fails every pending request; with `from`, only if that socket is still the current one (or the one connecting). */
  private fail(err: UpstreamError, from?: net.Socket): void {
    if (from && this.socket && this.socket !== from) return;
    from?.destroy();
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
    const all = [...this.pending.values()];
    this.pending.clear();
    clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
    this.watchAt = Infinity;
    for (const p of all) p.reject(err);
  }
}
