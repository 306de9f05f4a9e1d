import { describe, expect, it } from 'vitest';
import { Claim } from './claim.js';

describe('Claim: may a copy arriving now be the retry of this original?', () => {
  it('not while its client waits for the answer in time; yes once told an error, at its deadline, or after its connection closed', () => {
    const told = Claim.arrived(0, 1_000);
    expect(told.claim.matchable(10)).toBe(false);
    told.claim.answered(told.waiter, false, 900); // REQUEST_TIMED_OUT written
    expect(told.claim.matchable(901)).toBe(true);

    const slow = Claim.arrived(0, 1_000);
    expect(slow.claim.matchable(999)).toBe(false);
    expect(slow.claim.matchable(1_000)).toBe(true); // the client may have timed out (kafkajs retries on the same connection)

    const gone = Claim.arrived(0, 1_000);
    gone.claim.answered(gone.waiter, undefined, 5); // Java and librdkafka close the connection at their timeout
    expect(gone.claim.matchable(6)).toBe(true);
  });

  it('a success written in time ends it for good; a late success does not', () => {
    const ok = Claim.arrived(0, 1_000);
    ok.claim.answered(ok.waiter, true, 999);
    expect([ok.claim.known, ok.claim.matchable(5_000)]).toEqual([true, false]);
    const late = Claim.arrived(0, 1_000);
    late.claim.answered(late.waiter, true, 1_000);
    expect([late.claim.known, late.claim.matchable(1_001)]).toEqual([false, true]);
  });

  it('one waiting copy at a time; only the current waiter frees it; any in-time success ends it', () => {
    const o = Claim.arrived(0, 1_000);
    o.claim.answered(o.waiter, false, 900);
    const copy = o.claim.wait(950, 1_000);
    expect(o.claim.matchable(960)).toBe(false);
    o.claim.answered(o.waiter, false, 970); // not the current waiter: nothing changes
    expect(o.claim.matchable(980)).toBe(false);
    o.claim.answered(copy, true, 1_500);
    expect(o.claim.known).toBe(true);
  });

  it('orphans (restored) match at once; originals nobody answers (acks=0) never', () => {
    expect(Claim.orphan().matchable(0)).toBe(true);
    expect(Claim.unanswered().matchable(1e12)).toBe(false);
  });

  it('content/header (everyCopy): every copy matches, in flight, waited on, or after a success its client got in time', () => {
    const c = Claim.everyCopy();
    expect(c.matchable(0)).toBe(true);
    const w = c.wait(0, 1_000);
    expect(c.matchable(10)).toBe(true);
    c.answered(w, true, 20);
    expect(c.known).toBe(false);
    expect(c.matchable(30)).toBe(true);
  });
});
