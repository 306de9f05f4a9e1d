// The answer FIFO of one client connection. Kafka answers in request order on a
// connection and clients (the Java NetworkClient in particular) rely on it, so every
// request that expects an answer takes a slot when it arrives, and answers leave strictly
// in slot order, whether they come from upstream, from a rewriter, or from the engine.
// An upstream answer nobody transforms is streamed to the client as it arrives, once its
// slot is next (beginStream .. endStream); until then its reader waits (whenNext).
import { ApiKey, apiName } from '../codec/api.js';
import type { SidecarMetrics } from '../metrics/metrics.js';

/**
 * A request's place in the FIFO. A class whose constructor sets every field: every slot has one
 * object shape, whatever is set on it later, so the code that reads slots stays optimised (an
 * object literal grew a different shape per order of later assignments, and V8 threw that code
 * away when a new connection's first requests took another order).
 */
export class Slot {
  /** performance.now() when the request came (a double: no BigInt per request). */
  readonly start = performance.now();
  /** Answer payload (no size prefix) once known; undefined with done = nothing to write. */
  out: Buffer | undefined = undefined;
  done = false;
  /** Budget bytes the request or answer holds until the slot is written (byte-budget.ts). */
  held = 0;
  /** Called once when the slot becomes next to write (a streamed answer waiting for its turn). */
  onNext: (() => void) | undefined = undefined;
  /**
   * Called once: true when the answer was handed to the client's socket, false when the
   * connection closed before (the produce hook learns whether its client can know the outcome).
   */
  onWritten: ((written: boolean) => void) | undefined = undefined;

  constructor(
    readonly correlationId: number,
    readonly apiKey: number,
    readonly apiVersion: number,
    /** The client expects nothing (acks=0) but an answer will come: swallow it. */
    public silent: boolean,
  ) {}
}

/**
 * What the queue asks of its connection. The connection implements it with its own methods (not
 * an object of closures made per connection): the queue's calls then meet the same functions on
 * every connection and V8 keeps their optimised code when a new client connects.
 */
export interface AnswerQueueEvents {
  /** Writes one answer payload (raw: bytes of a streamed answer, no size prefix added); false when the socket's buffer is full. */
  writeAnswer(payload: Buffer, raw: boolean): boolean;
  corkAnswers(): void;
  uncorkAnswers(): void;
  /** The number of pending slots crossed the high (true) or low (false) water mark. */
  answerPressure(high: boolean): void;
  /** The client's socket buffer filled up while writing answers. */
  clientBufferFull(): void;
  /** The last pending slot was written. */
  answersWritten(): void;
  /** A written slot's held bytes go back to the budget. */
  releaseHeld(bytes: number): void;
}

export class AnswerQueue {
  private readonly slots: Slot[] = [];
  private stopped = false;

  constructor(
    private readonly metrics: SidecarMetrics,
    /** Requests a client may have waiting for answers before its reader is paused. */
    private readonly maxPending: number,
    private readonly events: AnswerQueueEvents,
  ) {
    // `stopped` changes once per connection, when it ends. V8 treats a field it has never seen change as a constant
    // and, the first time one does, throws away every optimised function that read it (here: flush, on every answer
    // of every connection). Changed once here, before anything is optimised (see FrameReader's).
    this.stopped = true;
    this.stopped = false;
  }

  get size(): number {
    return this.slots.length;
  }

  reserve(correlationId: number, apiKey: number, apiVersion: number, silent = false): Slot {
    const slot = new Slot(correlationId, apiKey, apiVersion, silent);
    this.slots.push(slot);
    if (this.slots.length >= this.maxPending) this.events.answerPressure(true);
    return slot;
  }

  /** Fills a slot; `out` null = the client gets nothing for it (acks=0). Writes what is ready. */
  settle(slot: Slot, out: Buffer | null): void {
    if (slot.done) return;
    if (out === null) slot.silent = true;
    else slot.out = out;
    slot.done = true;
    this.flush();
  }

  /** Whether `slot` is the next answer to write: every answer before it has been written. */
  isNext(slot: Slot): boolean {
    return this.slots[0] === slot && !this.stopped;
  }

  /** Calls `cb` once `slot` is next (see isNext); at once if it is. */
  whenNext(slot: Slot, cb: () => void): void {
    if (this.isNext(slot)) return cb();
    slot.onNext = cb;
  }

  /** Starts writing a streamed answer of `size` bytes for the next slot: the size prefix. */
  beginStream(size: number): boolean {
    if (this.stopped) return true;
    const prefix = Buffer.allocUnsafe(4);
    prefix.writeInt32BE(size, 0);
    return this.events.writeAnswer(prefix, true);
  }

  /** The next bytes of a streamed answer; false when the client's socket buffer is full. */
  writeStreamed(bytes: Buffer): boolean {
    if (this.stopped) return true;
    return this.events.writeAnswer(bytes, true);
  }

  /** The streamed answer of `slot` is complete: the answers after it may leave. */
  endStream(slot: Slot): void {
    slot.done = true;
    this.flush();
  }

  /** The connection closed: nothing more is written. */
  stop(): void {
    this.stopped = true;
    for (const slot of this.slots) {
      const cb = slot.onWritten;
      slot.onWritten = undefined;
      cb?.(false);
    }
  }

  /** How many answers flush() would write now (finished, at the head, not swallowed): it stops counting at 2. */
  private readyAnswers(): number {
    let n = 0;
    for (let i = 0; i < this.slots.length && n < 2; i++) {
      const slot = this.slots[i];
      if (!slot.done) break;
      if (!slot.silent && slot.out) n++;
    }
    return n;
  }

  /** Writes every finished answer at the head of the FIFO, in order. */
  private flush(): void {
    if (this.stopped) return;
    // Several answers leave in one writev (corked); a single one is a plain write: corking it
    // only sent it through the stream's buffered writev path.
    const cork = this.readyAnswers() > 1;
    let wrote = false;
    let now = 0;
    while (this.slots.length > 0 && this.slots[0].done) {
      const slot = this.slots.shift()!;
      if (slot.held > 0) this.events.releaseHeld(slot.held);
      if (now === 0) now = performance.now();
      const seconds = (now - slot.start) / 1e3;
      this.metrics.forApi(slot.apiKey, apiName(slot.apiKey)).latency.observe(seconds);
      if (slot.apiKey === ApiKey.Produce) this.metrics.produceLatency.observe(seconds);
      if (slot.silent || !slot.out) continue;
      if (!wrote && cork) this.events.corkAnswers();
      wrote = true;
      if (!this.events.writeAnswer(slot.out, false)) this.events.clientBufferFull();
      const cb = slot.onWritten;
      slot.onWritten = undefined;
      cb?.(true);
    }
    if (wrote && cork) this.events.uncorkAnswers();
    const next = this.slots[0];
    if (next?.onNext) {
      const cb = next.onNext;
      next.onNext = undefined;
      cb();
    }
    if (this.slots.length < this.maxPending / 2) this.events.answerPressure(false);
    if (this.slots.length === 0) this.events.answersWritten();
  }
}
