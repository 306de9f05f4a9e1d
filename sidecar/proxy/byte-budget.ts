// Memory bounded in bytes: every frame the sidecar must hold whole (a request it decodes or
// re-sends, an answer it rewrites) takes its size from its connection's budget and from the
// sidecar's before a byte of it is buffered, and gives it back when the frame is done with.
// A request reader that cannot take waits (its socket paused: backpressure, never an OOM
// kill) until bytes come back. Answers the sidecar rewrites take without waiting (take());
// answers nobody transforms are streamed and take nothing.

export class ByteBudget {
  private usedBytes = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(
    readonly limit: number,
    /** The sidecar's budget above a connection's: a take must fit in both. */
    private readonly parent?: ByteBudget,
  ) {}

  get used(): number {
    return this.usedBytes;
  }

  /** Whether `n` bytes could ever fit (a frame larger than the limit never will). */
  fits(n: number): boolean {
    return n <= this.limit && (!this.parent || this.parent.fits(n));
  }

  /** Takes `n` bytes if they fit here and in the parent; false otherwise (nothing taken). */
  tryTake(n: number): boolean {
    if (this.usedBytes + n > this.limit) return false;
    if (this.parent && !this.parent.tryTake(n)) return false;
    this.usedBytes += n;
    return true;
  }

  /**
   * Takes `n` bytes even past the limit. For answers: an answer is what gives a request's bytes
   * back, so an answer that waited for bytes held by requests waiting for answers would wait
   * forever. Requests wait; answers are counted and read.
   */
  take(n: number): void {
    this.usedBytes += n;
    this.parent?.take(n);
  }

  /** Gives `n` bytes back (here and to the parent) and wakes whoever waits. */
  give(n: number): void {
    if (n <= 0) return;
    this.usedBytes -= n;
    this.parent?.give(n);
    this.wake();
  }

  /** Gives back everything this (connection's) budget holds: the connection closed. */
  release(): void {
    this.give(this.usedBytes);
    this.waiters.length = 0; // (in place: a field first changed when a connection ends deoptimises its readers; see FrameReader)
  }

  /**
   * Calls `retry` once, the next time bytes come back here or in the parent (the caller then
   * tries again and may wait again).
   */
  whenFreed(retry: () => void): void {
    this.waiters.push(retry);
    this.parent?.whenFreed(() => this.wake());
  }

  /** Waiters run after the current call stack (a give() inside a write never re-enters a reader). */
  private wake(): void {
    if (this.waiters.length === 0) return;
    const ws = this.waiters.splice(0);
    queueMicrotask(() => {
      for (const w of ws) w();
    });
  }
}
