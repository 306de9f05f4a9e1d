// Many deadlines, one timer. Every upgraded batch's answer (upgrader.ts) and every copy attached
// to an original (engine.ts) is bounded by its client's timeout; a setTimeout set and cleared per
// batch showed in profiles (the Timeout object, the timer list, clearTimeout's bookkeeping), and
// almost every one of them is cancelled a few milliseconds after it was set.
//
// Deadlines with the same delay end in the order they were added, so each delay keeps a FIFO
// queue; the one timer is due at the earliest head. A cancelled deadline stays in its queue
// until it reaches the head or the queue is compacted (when more than half of it is cancelled),
// so a queue holds at most about twice its live deadlines (and the records before its head go once
// they are half of it). Times are performance.now(): a
// monotonic clock, so a step of the wall clock moves no deadline.

export interface Deadline {
  readonly at: number;
  /** null once it ran or was cancelled. */
  fn: (() => void) | null;
  readonly queue: Queue;
}

interface Queue {
  readonly delay: number;
  items: Deadline[];
  head: number;
  live: number;
}

export class Deadlines {
  private readonly queues = new Map<number, Queue>();
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;

  /** Runs `fn` `delayMs` from now, unless cancelled first. */
  add(delayMs: number, fn: () => void): Deadline {
    let q = this.queues.get(delayMs);
    if (!q) this.queues.set(delayMs, (q = { delay: delayMs, items: [], head: 0, live: 0 }));
    const d: Deadline = { at: performance.now() + delayMs, fn, queue: q };
    q.items.push(d);
    q.live++;
    if (d.at < this.timerAt) this.arm(d.at);
    return d;
  }

  cancel(d: Deadline): void {
    if (d.fn === null) return;
    d.fn = null;
    const q = d.queue;
    q.live--;
    while (q.head < q.items.length && q.items[q.head].fn === null) q.head++;
    if (q.head === q.items.length) this.drop(q);
    else if (q.items.length - q.head > 2 * q.live + 32) {
      q.items = q.items.filter((x) => x.fn !== null);
      q.head = 0;
    } else trimHead(q);
  }

  /** Live deadlines (tests). */
  get size(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.live;
    return n;
  }

  /**
   * Forgets an empty queue — only if the map still holds this queue: a callback run by fire() may
   * have emptied it and then added a deadline of the same delay, which made a new queue.
   */
  private drop(q: Queue): void {
    q.items = [];
    q.head = 0;
    if (this.queues.get(q.delay) === q) this.queues.delete(q.delay);
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - performance.now()));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    for (const q of this.queues.values()) {
      while (q.head < q.items.length) {
        const d = q.items[q.head];
        if (d.fn !== null && d.at > now) break;
        q.head++;
        const fn = d.fn;
        if (fn === null) continue;
        d.fn = null;
        q.live--;
        fn();
      }
      if (q.head === q.items.length) this.drop(q);
      else trimHead(q);
    }
    let next = Infinity;
    for (const q of this.queues.values()) if (q.head < q.items.length) next = Math.min(next, q.items[q.head].at);
    if (next < this.timerAt) this.arm(next);
  }
}

/**
 * Lets go of the records before the head once they are half the queue: a queue that never
 * empties (steady load: the next batch always comes before the last is answered) would otherwise
 * keep every record it ever held.
 */
function trimHead(q: Queue): void {
  if (q.head < 32 || q.head * 2 < q.items.length) return;
  q.items = q.items.slice(q.head);
  q.head = 0;
}
