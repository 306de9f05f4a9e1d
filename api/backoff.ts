// The one exponential backoff of both binaries: initial, doubled per failed attempt, capped.
// Re-sends of a batch, re-dials, metadata and producer-id retries, watch restarts, requeues and
// webhook registration all use it, so one policy shape ({initialMs, maxMs}) configures each.

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /**
   * Spread each delay uniformly over [delay/2, delay]: processes that failed together (replicas
   * that lost the API server at once) do not retry in lockstep.
   */
  jitter?: boolean;
}

/** The delay before retry number `failures` (1 = after the first failure): initial * 2^(failures-1), capped. */
export function backoffDelay(p: BackoffPolicy, failures: number, random: () => number = Math.random): number {
  const base = Math.min(p.maxMs, p.initialMs * 2 ** Math.min(Math.max(failures, 1) - 1, 30));
  return p.jitter ? Math.round(base / 2 + (random() * base) / 2) : base;
}

/** A backoff that counts its own failures: `next()` after each failure, `reset()` after a success. */
export class Backoff {
  private failures = 0;

  constructor(private readonly policy: BackoffPolicy | (() => BackoffPolicy)) {}

  /** The delay before the next attempt (read the policy now: it may change on config reload). */
  next(): number {
    this.failures++;
    return backoffDelay(typeof this.policy === 'function' ? this.policy() : this.policy, this.failures);
  }

  reset(): void {
    this.failures = 0;
  }

  get attempts(): number {
    return this.failures;
  }
}

/** Resolves after `ms`; an unref'd timer never keeps the process alive on its own. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
