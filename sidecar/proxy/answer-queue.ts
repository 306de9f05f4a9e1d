// The answer FIFO of one client connection. Kafka answers in request order on a
// connection and clients (the Java NetworkClient in particular) rely on it, so every
// request that expects an answer takes a slot when it arrives, and answers leave strictly
// in slot order, whether they come from upstream, from a rewriter, or from the engine.
import { ApiKey, apiName } from '../codec/api.js';
import type { SidecarMetrics } from '../metrics/metrics.js';

export interface Slot {
  readonly correlationId: number;
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly start: bigint;
  /** Answer payload (no size prefix) once known; undefined with done = nothing to write. */
  out?: Buffer;
  done: boolean;
  /** The client expects nothing (acks=0) but an answer will come: swallow it. */
  silent: boolean;
}

export interface AnswerQueueEvents {
  /** Writes one answer payload; false when the socket's buffer is full. */
  write(payload: Buffer): boolean;
  cork(): void;
  uncork(): void;
  /** The number of pending slots crossed the high (true) or low (false) water mark. */
  pressure(high: boolean): void;
  /** The client's socket buffer filled up while writing answers. */
  full(): void;
  /** The last pending slot was written. */
  empty(): void;
}

export class AnswerQueue {
  private readonly slots: Slot[] = [];
  private stopped = false;

  constructor(
    private readonly metrics: SidecarMetrics,
    /** Requests a client may have waiting for answers before its reader is paused. */
    private readonly maxPending: number,
    private readonly events: AnswerQueueEvents,
  ) {}

  get size(): number {
    return this.slots.length;
  }

  reserve(correlationId: number, apiKey: number, apiVersion: number, silent = false): Slot {
    const slot: Slot = { correlationId, apiKey, apiVersion, start: process.hrtime.bigint(), done: false, silent };
    this.slots.push(slot);
    if (this.slots.length >= this.maxPending) this.events.pressure(true);
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

  /** The connection closed: nothing more is written. */
  stop(): void {
    this.stopped = true;
  }

  /** Writes every finished answer at the head of the FIFO, in order. */
  private flush(): void {
    if (this.stopped) return;
    let wrote = false;
    while (this.slots.length > 0 && this.slots[0].done) {
      const slot = this.slots.shift()!;
      const seconds = Number(process.hrtime.bigint() - slot.start) / 1e9;
      this.metrics.forApi(slot.apiKey, apiName(slot.apiKey)).latency.observe(seconds);
      if (slot.apiKey === ApiKey.Produce) this.metrics.produceLatency.observe(seconds);
      if (slot.silent || !slot.out) continue;
      if (!wrote) this.events.cork();
      wrote = true;
      if (!this.events.write(slot.out)) this.events.full();
    }
    if (wrote) this.events.uncork();
    if (this.slots.length < this.maxPending / 2) this.events.pressure(false);
    if (this.slots.length === 0) this.events.empty();
  }
}
