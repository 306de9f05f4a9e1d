// Mid-stream events (broker kill -9, leader move, sidecar kill -9) at seeded points of the
// stream. A point is a count of bytes the relay has carried towards the brokers, so an event
// lands at the same place of the workload whatever the machine's speed; the kind of each
// event and its target (which broker, which partition) come from the seed too.
import { mulberry32 } from '../support/fault-relay.js';
import type { EventKind } from './faults.js';

export interface FiredEvent {
  kind: EventKind;
  /** What was done, e.g. "kill -9 broker 2, back in 4.1 s". */
  detail: string;
  atBytes: number;
  ms: number;
}

export type EventAction = (kind: EventKind, rng: () => number) => Promise<string>;

const POLL_MS = 50; // how often the relay's byte count is looked at

/**
 * Fires `events` in order, event i once `bytesUp()` passes its threshold: thresholds are drawn
 * in equal slots over 10%..70% of `expectedBytes` (the stream must still be flowing when the
 * last one fires). One event at a time; finish() waits for the running one.
 */
export class EventDriver {
  private readonly thresholds: number[];
  private readonly rng: () => number;
  private next = 0;
  private running?: Promise<void>;
  private timer?: NodeJS.Timeout;
  readonly fired: FiredEvent[] = [];
  readonly errors: string[] = [];

  constructor(
    private readonly events: readonly EventKind[],
    seed: number,
    expectedBytes: number,
    private readonly bytesUp: () => number,
    private readonly act: EventAction,
  ) {
    this.rng = mulberry32(seed);
    const n = events.length;
    this.thresholds = events.map((_, i) => Math.round(expectedBytes * (0.1 + (0.6 * (i + this.rng())) / Math.max(n, 1))));
  }

  start(): void {
    if (this.events.length === 0) return;
    this.timer = setInterval(() => this.tick(), POLL_MS);
  }

  /** Stops firing; resolves once a running event is done. Events not reached are not fired. */
  async finish(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  get unfired(): number {
    return this.events.length - this.fired.length - this.errors.length;
  }

  private tick(): void {
    if (this.running || this.next >= this.events.length) return;
    const at = this.bytesUp();
    if (at < this.thresholds[this.next]) return;
    const kind = this.events[this.next++];
    const t0 = Date.now();
    this.running = this.act(kind, this.rng)
      .then(
        (detail) => void this.fired.push({ kind, detail, atBytes: at, ms: Date.now() - t0 }),
        (e: Error) => void this.errors.push(`${kind}: ${e.message.split('\n')[0]}`),
      )
      .finally(() => (this.running = undefined));
  }
}
