// Mid-stream events (broker kill -9, leader move, sidecar kill -9) at seeded points of the
// stream. A point is a fraction of the (paced) workload's planned duration: the workloads of
// event cells are spread over a fixed time, so slow events (a broker restart takes seconds)
// land mid-stream on any machine. The target of each event (which broker, which partition)
// comes from the seed too.
import { mulberry32 } from '../support/fault-relay.js';
import type { EventKind } from './faults.js';

export interface FiredEvent {
  kind: EventKind;
  /** What was done, e.g. "kill -9 broker 2, back in 4.1 s". */
  detail: string;
  /** Progress (0..1) of the workload when it fired. */
  at: number;
  ms: number;
}

export type EventAction = (kind: EventKind, rng: () => number) => Promise<string>;

const POLL_MS = 50; // how often the relay's byte count is looked at

/**
 * Fires `events` in order, event i once `progress()` passes its point: points are drawn in
 * equal slots over 10%..70% of the workload (the stream must still be flowing when the last
 * one has done its work). One event at a time; finish() waits for the running one.
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
    private readonly progress: () => number,
    private readonly act: EventAction,
  ) {
    this.rng = mulberry32(seed);
    const n = events.length;
    this.thresholds = events.map((_, i) => 0.1 + (0.6 * (i + this.rng())) / Math.max(n, 1));
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
    const at = this.progress();
    if (at < this.thresholds[this.next]) return;
    const kind = this.events[this.next++];
    const t0 = Date.now();
    this.running = this.act(kind, this.rng)
      .then(
        (detail) => void this.fired.push({ kind, detail, at, ms: Date.now() - t0 }),
        (e: Error) => void this.errors.push(`${kind}: ${e.message.split('\n')[0]}`),
      )
      .finally(() => (this.running = undefined));
  }
}
