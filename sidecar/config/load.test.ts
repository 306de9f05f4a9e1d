// Reload truthfulness: what a changed policy file does to the running settings.
import { describe, expect, it } from 'vitest';
import { planReload, type LiveConfig } from './load.js';

const running: LiveConfig = {
  mode: 'upgrade',
  logLevel: 'info',
  maxInFlight: 5,
  deliveryTimeoutMs: 120_000,
  requestTimeoutMs: 30_000,
  retryBackoff: { initialMs: 100, maxMs: 1000 },
  dedup: { strategy: 'exact', windowMs: 300_000, maxEntries: 100_000 },
  topics: { include: ['*'], exclude: [] },
  maxSessions: 10_000,
  sessionIdleMs: 600_000,
};

describe('planReload', () => {
  it('applies mode, topics, log level and the dedup cap', () => {
    const next: LiveConfig = { ...running, mode: 'enforce', logLevel: 'debug', topics: { include: ['a*'], exclude: [] }, dedup: { ...running.dedup, maxEntries: 10 } };
    expect(planReload(running, next)).toEqual({ apply: next, changed: true, restartNeeded: [] });
  });

  it('keeps fields fixed at start and names them', () => {
    const next: LiveConfig = { ...running, maxInFlight: 1, deliveryTimeoutMs: 5_000, requestTimeoutMs: 1_000, retryBackoff: { initialMs: 1, maxMs: 2 }, maxSessions: 1, sessionIdleMs: 1 };
    const p = planReload(running, next);
    expect(p.apply).toEqual(running);
    expect(p.changed).toBe(false);
    expect(p.restartNeeded).toEqual(['producer.maxInFlightPerPartition', 'producer.deliveryTimeout', 'producer.requestTimeout', 'producer.retryBackoff', 'sidecar.maxSessions', 'sidecar.sessionIdleTimeout']);
  });

  it('a new dedup strategy, header or window waits for a restart; the cap change beside them applies', () => {
    const next: LiveConfig = { ...running, dedup: { strategy: 'header', header: 'k', windowMs: 1_000, maxEntries: 50 } };
    const p = planReload(running, next);
    expect(p.restartNeeded).toEqual(['dedup.strategy', 'dedup.header', 'dedup.window']);
    expect(p.apply.dedup).toEqual({ strategy: 'exact', windowMs: 300_000, maxEntries: 50 });
    expect(p.changed).toBe(true);
  });
});
