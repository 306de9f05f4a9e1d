/**
 * Whether a copy of an original batch (the same bytes, or the same records re-encoded) that
 * arrives now may be its client's retry, or must be a separate write of the application
 * (README "Matching a copy to its original"). Pure: time is an argument.
 *
 * A client retries only what it cannot know the outcome of. So a copy matches an original only
 * while no client is still waiting, in time, for that original's answer, and only until a
 * success answer reached a client within its request's timeout (then the application knows the
 * record is written, and the same records again are a new write):
 * - the original's own answer is awaited until `sentAfter + timeoutMs` (the Produce timeout, which
 *   Java, librdkafka and kafkajs by default also use as their own request timeout, counted from
 *   the earliest time the client may have sent it: ProduceCall.sentAfter, before the sidecar's
 *   read when its connection was paused);
 * - an error answer, a connection closed before its answer was written, or an answer still
 *   unwritten at the deadline leave the original matchable (the client may retry);
 * - a matched copy waits in turn (one at a time), and its answer counts the same way.
 */
export interface Waiter {
  /** Until when its client waits for the answer (its earliest send + the request's timeoutMs). */
  readonly until: number;
}

export class Claim {
  private waiting: Waiter | null = null;
  private knownByClient = false;
  private everyCopy = false;

  /**
   * `content` and `header`: these strategies exist to catch the APPLICATION sending records again
   * after it was told they were written (DESIGN.md), so every copy within the window matches.
   */
  static everyCopy(): Claim {
    const c = new Claim();
    c.everyCopy = true;
    return c;
  }

  /** An original nobody is waiting for (restored after a restart: its client's connection is gone). */
  static orphan(): Claim {
    return new Claim();
  }

  /** An original whose client gets no answer (acks=0): it never retries, so nothing matches it. */
  static unanswered(): Claim {
    const c = new Claim();
    c.knownByClient = true;
    return c;
  }

  /** An original that arrived `now`; its client waits for its answer until now + timeoutMs. */
  static arrived(now: number, timeoutMs: number): { claim: Claim; waiter: Waiter } {
    const claim = new Claim();
    return { claim, waiter: claim.wait(now, timeoutMs) };
  }

  /** A success reached a client in time: no copy matches any more. */
  get known(): boolean {
    return this.knownByClient;
  }

  /** Whether a copy arriving `now` is taken as a retry of this original. */
  matchable(now: number): boolean {
    return this.everyCopy || (!this.knownByClient && (this.waiting === null || now >= this.waiting.until));
  }

  /** A copy (arrived `now`) takes the original's answer: the next copy waits until it is answered. */
  wait(now: number, timeoutMs: number): Waiter {
    const w: Waiter = { until: now + Math.max(0, timeoutMs) };
    this.waiting = w;
    return w;
  }

  /**
   * `w`'s answer was written to its client at `now` (`ok`: a success), or not at all
   * (`ok` undefined: its connection closed first).
   */
  answered(w: Waiter, ok: boolean | undefined, now: number): void {
    if (ok === true && now < w.until && !this.everyCopy) this.knownByClient = true;
    if (this.waiting === w) this.waiting = null;
  }
}
