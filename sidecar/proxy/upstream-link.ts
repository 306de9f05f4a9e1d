// The upstream half of a client connection: one connection to the broker the client's
// listener stands for. Writes request frames, matches each answer to the request it
// answers (Kafka answers in order on a connection), and when the connection fails asks
// its owner what to do with the requests still waiting: re-send them on a new connection
// (re-dial), or give up. Frames sent while (re)connecting wait in a backlog.
import type net from 'node:net';
import type { Logger } from '../log/log.js';
import { backoffDelay, sleep } from '../../api/backoff.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import { FrameReader, framed, ownFrame, type FrameDecision } from './frames.js';
import { ReadGate } from './flow-control.js';
import { connectUpstream, type TlsMaterial } from './upstream-socket.js';
import { SocketReads } from './socket-reads.js';

/** A request written upstream whose answer has not come yet. */
export interface Outstanding {
  readonly correlationId: number;
  readonly apiKey: number;
  /**
   * The request payload as written (no size prefix), kept for a re-send on a new connection;
   * undefined for a request its owner never re-sends (written from a lent read buffer).
   */
  readonly frame: Buffer | undefined;
  /** Receives the broker's answer payload (read 'whole'). */
  answer(payload: Buffer): void;
  /**
   * How to read the answer of `size` bytes (frames.ts): 'whole' (the default) for answer(),
   * 'stream' for piece(), or 'wait' until the owner calls `resume` (the link stops reading).
   */
  receive?(size: number, resume: () => void): FrameDecision;
  /** A streamed answer's next bytes; `last` ends it. */
  piece?(bytes: Buffer, last: boolean): void;
  /**
   * How long after writing it an answer must have come (the request's own wait plus the
   * sidecar's requestTimeout); past it the answer is taken as lost and the connection as failed.
   * Undefined: no bound (requests that wait for others, e.g. JoinGroup).
   */
  readonly answerWithinMs?: number;
}

export interface UpstreamLinkOptions {
  log: Logger;
  metrics: SidecarMetrics;
  tls?: TlsMaterial;
  maxFrameBytes: number;
  /** The broker address for a dial attempt (bootstrap: one of --upstream); undefined: none. */
  resolve(attempt: number): { host: string; port: number } | undefined;
  /** Dial attempts before giving up (each goes to `resolve(attempt)`); a re-dial after a failure backs off between attempts. */
  dialAttempts?: number;
}

/** Re-dial: attempts and the backoff between them (about 6 s in all, beyond a broker's quick restart). */
/** Connections that may fail in a row, none answering anything, before the client connection is given up. */
const MAX_LOSSES_WITHOUT_ANSWER = 20;
const REDIAL_ATTEMPTS = 10;
const REDIAL_BACKOFF = { initialMs: 50, maxMs: 1000 };
/**
 * Bytes of backlog frames nothing answers (acks=0 produce) past which the owner is told `full`
 * until the link connects: answered requests hold the owner's byte budget until their answer,
 * these give it back at once, so only this bounds them while the broker is being dialled.
 */
const BACKLOG_UNANSWERED_MAX_BYTES = 1024 * 1024;

/** What the owner decides when the connection fails with requests outstanding. */
export type LossDecision = { redial: true; resend: Outstanding[] } | { redial: false; reason: string };

export interface UpstreamLinkEvents {
  /** Connected (first time or again); frames flow. */
  connected(): void;
  /** No broker could be reached; the link is closed. */
  unreachable(reason: string): void;
  /** The connection failed; `outstanding` were written and not answered, in order. */
  lost(reason: string, outstanding: Outstanding[]): LossDecision;
  /** The broker broke the protocol (bad frame, answer out of order); the link is closed. */
  broken(reason: string): void;
  /** The link closed with these requests written (or waiting) and never answered. */
  abandoned(requests: Outstanding[]): void;
  /** The socket's write buffer filled (pause the client) / drained (resume it). */
  full(): void;
  writable(): void;
}

export class UpstreamLink {
  private socket?: net.Socket;
  private readonly inflight: Outstanding[] = [];
  /** When each bounded outstanding request must have been answered (ms since epoch). */
  private readonly deadlines = new WeakMap<Outstanding, number>();
  /** One timer for the whole connection, at the oldest request's deadline (see watch). */
  private watchTimer?: NodeJS.Timeout;
  /** Requests whose answers were skipped by the broker's next answer (lost on the way). */
  private skipped: Outstanding[] = [];
  /** Connections lost in a row without an answer in between. */
  private lostSinceAnswer = 0;
  /** Frames (with their request, when one answers) waiting for a connection. */
  private backlog: { frame: Buffer; req?: Outstanding }[] = [];
  /** Bytes of backlog frames without an answer (BACKLOG_UNANSWERED_MAX_BYTES), and whether `full` was said for them. */
  private backlogUnanswered = 0;
  private backlogFull = false;
  private readonly gate = new ReadGate();
  private closed = false;
  private dialing = false;
  private retiring?: NodeJS.Timeout;
  /** The current socket's reads and frame reader, and whether an answer is being streamed to the client. */
  private reads?: SocketReads;
  private reader?: FrameReader;
  private streaming = false;
  /** Times the link was re-dialled after a failure (for logs). */
  redials = 0;

  constructor(
    private readonly opts: UpstreamLinkOptions,
    private readonly events: UpstreamLinkEvents,
  ) {
    // `closed` and `watchTimer` are first changed when a connection ends (close, unwatchAll). V8
    // treats a field it has never seen change as a constant and, the first time one does, throws
    // away every optimised function that read it: in a bench, the warm-up producer leaving threw
    // away the answer path (--trace-generalization; conn's note in FINDINGS). Changed once here,
    // before anything is optimised, so V8 knows them as fields that change.
    this.closed = true;
    this.closed = false;
    this.watchTimer = undefined;
    // Events reach the owner only after the constructor returned: with no address for the broker
    // (it left the metadata, e.g. killed) `unreachable` would otherwise fire from inside it,
    // before the owner holds the link, and the owner's close() would crash the sidecar.
    this.dialing = true;
    queueMicrotask(() => void this.dial());
  }

  get isConnected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed && !this.dialing;
  }

  get outstanding(): number {
    return this.inflight.length;
  }

  /** Bytes written and not yet taken by the kernel (they are still referenced), or waiting for a connection. */
  get writePending(): boolean {
    return !this.isConnected || this.socket!.writableLength > 0;
  }

  /** Writes a request frame; `req` when an answer will come (acks=0 produce: none). */
  send(frame: Buffer, req?: Outstanding): void {
    if (this.closed) return;
    if (!this.isConnected) {
      this.backlog.push({ frame, req });
      if (!req) this.backlogUnanswered += frame.length;
      if (this.backlogUnanswered > BACKLOG_UNANSWERED_MAX_BYTES && !this.backlogFull) {
        this.backlogFull = true;
        this.events.full();
      }
      return;
    }
    this.write(frame, req);
  }

  /** Frames sent until `uncork` leave in one write. */
  cork(): void {
    if (this.isConnected) this.socket!.cork();
  }

  uncork(): void {
    if (this.socket && !this.socket.destroyed && this.socket.writableCorked > 0) this.socket.uncork();
  }

  /**
   * A streamed answer's piece (lent, see socket-reads.ts) stayed queued in the client's socket:
   * the next read must not overwrite it.
   */
  keepReadBytes(): void {
    this.reads?.keep();
  }

  pauseReading(reason: string): void {
    this.gate.pause(reason);
  }

  resumeReading(reason: string): void {
    this.gate.resume(reason);
  }

  /**
   * The client is gone: send nothing more, but read the answers to what was already written
   * (so the engine learns the outcome of forwarded batches), then close; at most `maxWaitMs`.
   */
  retire(maxWaitMs: number): void {
    if (this.closed || this.retiring) return;
    const unsent = this.backlog.flatMap((b) => (b.req ? [b.req] : []));
    this.backlog = [];
    this.backlogUnanswered = 0;
    if (unsent.length > 0) this.events.abandoned(unsent);
    if (this.inflight.length === 0 || !this.isConnected) return this.close();
    this.retiring = setTimeout(() => this.close(), maxWaitMs);
    this.retiring.unref();
    this.gate.attach(this.socket!);
    this.gate.resume('client-buffer');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader?.stop();
    clearTimeout(this.retiring);
    this.unwatchAll();
    this.socket?.destroy();
    const unanswered = [...this.skipped.splice(0), ...this.inflight, ...this.backlog.flatMap((b) => (b.req ? [b.req] : []))];
    this.backlog = [];
    this.backlogUnanswered = 0;
    this.inflight.length = 0;
    if (unanswered.length > 0) this.events.abandoned(unanswered);
  }

  private write(frame: Buffer, req: Outstanding | undefined): void {
    const up = this.socket!;
    if (req) {
      // The broker handles a connection's requests one after another: this answer may come as
      // late as the previous one's plus this one's own bound. Behind an unbounded one: no bound.
      const prev = this.inflight[this.inflight.length - 1];
      const prevDeadline = prev === undefined ? Date.now() : this.deadlines.get(prev);
      this.inflight.push(req);
      if (req.answerWithinMs !== undefined && prevDeadline !== undefined) {
        const deadline = Math.max(Date.now(), prevDeadline) + req.answerWithinMs;
        this.deadlines.set(req, deadline);
        if (this.watchTimer === undefined) this.watch(up, deadline - Date.now());
      }
    }
    // A client's frame forwarded as read carries its own prefix: one write (frames.ts framed).
    const whole = framed(frame);
    let ok: boolean;
    if (whole) ok = up.write(whole);
    else {
      const prefix = Buffer.allocUnsafe(4);
      prefix.writeInt32BE(frame.length, 0);
      up.cork();
      up.write(prefix);
      ok = up.write(frame);
      up.uncork();
    }
    if (!ok) this.events.full();
  }

  /**
   * A broker answers every request; an answer that does not come in time was lost on the way
   * (or the connection is dead without saying so): the connection is treated as failed, and
   * its requests are settled like those of any lost connection (re-sent when safe).
   *
   * One timer per connection, not one per request (a timer set and cleared per request showed
   * in profiles): bounded requests are a prefix of `inflight` with deadlines in order (write()
   * chains them), so the oldest one's deadline comes first. The timer is not moved when an
   * answer comes; when it fires it checks the oldest request then, and sets itself again for
   * that one's deadline if it is not due.
   */
  private watch(socket: net.Socket, ms: number): void {
    this.watchTimer = setTimeout(() => {
      this.watchTimer = undefined;
      if (this.closed || this.socket !== socket) return;
      const head = this.inflight[0];
      const deadline = head === undefined ? undefined : this.deadlines.get(head);
      if (deadline === undefined) return; // nothing bounded in flight; write() sets the timer again
      const now = Date.now();
      if (deadline > now) return this.watch(socket, deadline - now);
      this.opts.metrics.upstreamErrors.inc({ error: 'answer_lost' });
      socket.destroy();
      this.onLost(`no answer to a ${head.apiKey === 0 ? 'Produce' : `request (api ${head.apiKey})`} by its deadline (${now - deadline} ms ago)`);
    }, Math.max(1, ms));
    this.watchTimer.unref();
  }

  private unwatchAll(): void {
    clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
  }

  private async dial(redial = false): Promise<void> {
    this.dialing = true;
    const attempts = redial ? REDIAL_ATTEMPTS : (this.opts.dialAttempts ?? 3);
    for (let attempt = 0; attempt < attempts && !this.closed; attempt++) {
      // A connection that failed again before any answer came backs off too, so a broker (or a
      // path) that drops every new connection is not hammered in a tight loop.
      const failures = attempt + (redial ? this.lostSinceAnswer - 1 : 0);
      if (redial && failures > 0) {
        await sleep(backoffDelay(REDIAL_BACKOFF, failures));
        if (this.closed) return;
      }
      const addr = this.opts.resolve(attempt);
      if (!addr) break;
      try {
        let onBytes: (bytes: Buffer) => void = () => undefined; // nothing comes before attach (Kafka brokers only answer)
        const reads = new SocketReads((bytes) => onBytes(bytes));
        const socket = await connectUpstream(addr.host, addr.port, this.opts.tls, reads.onread);
        if (this.closed) {
          socket.destroy();
          return;
        }
        onBytes = this.attach(socket, reads, `${addr.host}:${addr.port}`);
        this.dialing = false;
        // Re-sends first, in their original order, then what arrived meanwhile.
        const backlog = this.backlog;
        this.backlog = [];
        this.backlogUnanswered = 0;
        for (const b of backlog) this.write(b.frame, b.req);
        // Written: from here the socket's own 'drain' says when more may come.
        if (this.backlogFull && !socket.writableNeedDrain) this.events.writable();
        this.backlogFull = false;
        this.events.connected();
        return;
      } catch (err) {
        this.opts.metrics.upstreamErrors.inc({ error: 'connection' });
        this.opts.log.warn({ err: (err as Error).message, upstream: `${addr.host}:${addr.port}` }, 'cannot reach upstream broker');
      }
    }
    this.dialing = false;
    if (this.closed) return;
    this.close();
    this.events.unreachable('no upstream broker reachable');
  }

  /** Makes `socket` the link's connection; returns what reads its bytes. */
  private attach(socket: net.Socket, reads: SocketReads, where: string): (bytes: Buffer) => void {
    this.socket = socket;
    this.reads = reads;
    this.streaming = false;
    this.gate.attach(socket);
    // Called by an answer's owner that said 'wait' (one function per connection, not per answer).
    const resume = (): void => {
      this.gate.resume('answer-wait');
      if (!this.closed) reader.resume();
    };
    const reader: FrameReader = new FrameReader(
      this.opts.maxFrameBytes,
      {
        begin: (size, head) => this.beginAnswer(size, head, resume),
        frame: (payload, lent) => this.onAnswer(ownFrame(payload, lent)), // answers wait for their turn: owned
        piece: (bytes, last) => this.onPiece(bytes, last),
      },
      true,
    );
    this.reader = reader;
    socket.on('error', (err) => {
      this.opts.metrics.upstreamErrors.inc({ error: 'connection' });
      this.opts.log.warn({ err: err.message, upstream: where }, 'upstream connection error');
    });
    socket.on('close', () => {
      if (this.socket === socket) this.onLost('upstream closed the connection');
    });
    socket.on('drain', () => this.events.writable());
    return (chunk) => {
      if (this.socket !== socket || this.closed) return;
      try {
        reader.push(chunk);
      } catch (err) {
        this.opts.log.error({ error: (err as Error).message }, 'bad frame from upstream broker');
        this.close();
        return this.events.broken('bad frame from upstream');
      }
    };
  }

  /** An answer begins: it must answer the oldest request; its owner says how to read it. */
  private beginAnswer(size: number, head: Buffer, resume: () => void): FrameDecision {
    const correlationId = head.readInt32BE(0);
    const at = this.inflight[0]?.correlationId === correlationId ? 0 : this.inflight.findIndex((r) => r.correlationId === correlationId);
    if (at < 0) {
      this.opts.log.error({ correlationId, expected: this.inflight[0]?.correlationId }, 'upstream answered a request it was never sent; closing');
      this.close();
      this.events.broken('upstream answered out of order');
      return 'wait'; // the reader is stopped with the link
    }
    // A broker answers in request order, so answers before this one were lost on the way (a
    // middlebox dropped them; their requests were handled). This answer is read and delivered;
    // then the connection counts as failed and the skipped requests are settled like those of
    // any lost connection (re-sent when safe), see settleSkipped.
    if (at > 0) {
      this.opts.metrics.upstreamErrors.inc({ error: 'answer_lost' });
      this.skipped.push(...this.inflight.splice(0, at));
    }
    const req = this.inflight[0];
    if (!req.receive) return 'whole';
    const decision = req.receive(size, resume);
    if (decision === 'wait') this.gate.pause('answer-wait');
    this.streaming = decision === 'stream';
    return decision;
  }

  private onAnswer(payload: Buffer): void {
    this.lostSinceAnswer = 0;
    const req = this.inflight.shift()!;
    req.answer(payload);
    if (this.settleSkipped()) return;
    if (this.retiring && this.inflight.length === 0) this.close();
  }

  /** After the answer that skipped others: the connection is dropped and they go the lost-connection way. */
  private settleSkipped(): boolean {
    if (this.skipped.length === 0 || this.closed) return false;
    const n = this.skipped.length;
    this.inflight.unshift(...this.skipped);
    this.skipped = [];
    this.socket?.destroy();
    this.onLost(`${n} answer(s) from the broker went missing`);
    return true;
  }

  private onPiece(bytes: Buffer, last: boolean): void {
    this.lostSinceAnswer = 0;
    const req = this.inflight[0];
    if (last) {
      this.inflight.shift();
      this.streaming = false;
    }
    req.piece!(bytes, last);
    if (last && this.settleSkipped()) return;
    if (last && this.retiring && this.inflight.length === 0) this.close();
  }

  private onLost(reason: string): void {
    if (this.closed) return;
    this.socket = undefined;
    // Answers behind the one that skipped others may sit in the same chunk: from the dropped
    // socket they answer nothing any more (their requests are re-sent), so read no further.
    this.reader?.stop();
    this.unwatchAll(); // re-sent requests are watched again when written
    this.lostSinceAnswer++;
    if (this.lostSinceAnswer > MAX_LOSSES_WITHOUT_ANSWER && !this.retiring) {
      // The path to the broker fails every time before anything comes back: give up.
      this.skipped.length = 0;
      const outstanding = this.inflight.splice(0);
      this.close();
      if (outstanding.length > 0) this.events.abandoned(outstanding);
      return this.events.unreachable(`${reason}; ${MAX_LOSSES_WITHOUT_ANSWER} connections in a row failed before any answer`);
    }
    if (this.retiring) return this.close();
    if (this.streaming) {
      // Part of an answer already went to the client: its byte stream cannot be mended.
      this.close();
      return this.events.broken(`${reason} in the middle of an answer`);
    }
    const outstanding = [...this.skipped.splice(0), ...this.inflight.splice(0)];
    const decision = this.events.lost(reason, outstanding);
    if (!decision.redial) {
      this.close();
      if (outstanding.length > 0) this.events.abandoned(outstanding);
      return;
    }
    this.redials++;
    // The owner re-sends only requests it kept the bytes of (Outstanding.frame).
    this.backlog = [...decision.resend.map((req) => ({ frame: req.frame!, req })), ...this.backlog];
    // Everything written before the failure is drained from the old socket's point of view.
    this.events.writable();
    void this.dial(true);
  }
}
