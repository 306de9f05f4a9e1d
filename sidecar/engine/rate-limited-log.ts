// A log line that input can trigger at any rate (malformed requests, a limit reached) is
// written at most once per interval, with how many times it happened meanwhile left to the
// metric that counts every occurrence.
export class RateLimitedLog {
  private last = -Infinity;

  constructor(private readonly intervalMs: number) {}

  note(now: number, write: () => void): void {
    if (now - this.last < this.intervalMs) return;
    this.last = now;
    write();
  }
}
