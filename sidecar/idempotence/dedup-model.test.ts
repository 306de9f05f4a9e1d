import { describe, expect, it } from 'vitest';
import { DedupCache, ENTRY_BYTES, type DedupKey, type DedupTicket } from './dedup.js';
import { Claim } from './claim.js';

// DedupCache's entries are linked lists (LRU order; per fingerprint, arrival order) since 4d45e40:
// checked here against a model of arrays (what the cache was before), seeded, with several
// originals per fingerprint (partitions, unmatchable claims), removal from the middle of a chain,
// LRU moves, capacity eviction sparing originals in flight, expiry and sweeps.

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface ModelEntry {
  n: number;
  key: DedupKey;
  claim: Claim;
  waiter: object;
  state: 'in_flight' | 'done' | 'gone';
  result: number | undefined;
  expiresAt: number;
}

class Model {
  /** LRU order, oldest first. */
  lru: ModelEntry[] = [];
  /** Arrival order. */
  all: ModelEntry[] = [];
  used = 0;
  constructor(
    readonly windowMs: number,
    readonly maxEntries: number,
    readonly maxBytes: number,
  ) {}
  private remove(e: ModelEntry): void {
    e.state = 'gone';
    this.lru.splice(this.lru.indexOf(e), 1);
    this.all.splice(this.all.indexOf(e), 1);
    this.used -= ENTRY_BYTES + e.key.topic.length;
  }
  lookup(key: DedupKey, now: number): { kind: string; n?: number; result?: number; waiter?: object; expired: number } {
    let expired = 0;
    let hit: ModelEntry | undefined;
    for (const e of this.all.filter((x) => x.key.fingerprint === key.fingerprint)) {
      if (e.key.partition !== key.partition || e.key.topic !== key.topic) continue;
      if (e.state === 'done' && (now >= e.expiresAt || e.claim.known)) {
        if (now >= e.expiresAt) expired++;
        this.remove(e);
        continue;
      }
      if (e.claim.matchable(now)) {
        hit = e;
        break;
      }
    }
    if (!hit) return { kind: 'miss', expired };
    this.lru.splice(this.lru.indexOf(hit), 1);
    this.lru.push(hit);
    return hit.state === 'done' ? { kind: 'done', n: hit.n, result: hit.result, expired } : { kind: 'in_flight', n: hit.n, waiter: hit.waiter, expired };
  }
  begin(e: ModelEntry): number {
    this.lru.push(e);
    this.all.push(e);
    this.used += ENTRY_BYTES + e.key.topic.length;
    return this.enforce();
  }
  enforce(): number {
    let n = 0;
    let spared = 0;
    while ((this.lru.length > this.maxEntries || this.used > this.maxBytes) && spared < this.lru.length) {
      const e = this.lru[0];
      if (e.state === 'in_flight') {
        this.lru.push(this.lru.shift()!);
        spared++;
        continue;
      }
      this.remove(e);
      n++;
    }
    return n;
  }
  finish(e: ModelEntry, ok: boolean, result: number, now: number): boolean {
    if (e.state !== 'in_flight') return false;
    if (!ok) this.remove(e);
    else {
      e.state = 'done';
      e.result = result;
      e.expiresAt = now + this.windowMs;
    }
    return true;
  }
  sweep(now: number): number {
    let n = 0;
    for (const e of [...this.lru]) {
      if (e.state !== 'done') continue;
      if (now >= e.expiresAt) n++;
      else if (!e.claim.known) continue;
      this.remove(e);
    }
    return n;
  }
}

describe('DedupCache against a model of arrays', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`seed ${seed}: lookups, sizes, bytes, evictions, snapshots and originals in flight agree`, () => {
      const r = rng(seed);
      const maxEntries = 20 + Math.floor(r() * 40);
      const maxBytes = (ENTRY_BYTES + 2) * (15 + Math.floor(r() * 40));
      const evicted: Record<string, number> = { capacity: 0, expired: 0 };
      const cache = new DedupCache<number, object>({ windowMs: 500, maxEntries, maxBytes, onEvict: (why, n) => (evicted[why] += n) });
      const model = new Model(500, maxEntries, maxBytes);
      const modelEvicted: Record<string, number> = { capacity: 0, expired: 0 };
      const tickets = new Map<ModelEntry, DedupTicket>();
      let now = 0;
      let n = 0;
      const keyOf = (): DedupKey => ({ topic: r() < 0.5 ? 'a' : 'bb', partition: Math.floor(r() * 2), fingerprint: BigInt(Math.floor(r() * 6)) as DedupKey['fingerprint'] });
      const claimOf = (): Claim => {
        const x = r();
        if (x < 0.4) return Claim.everyCopy();
        if (x < 0.6) return Claim.orphan();
        if (x < 0.7) return Claim.unanswered();
        return Claim.arrived(now, Math.floor(r() * 300)).claim;
      };
      for (let step = 0; step < 4000; step++) {
        now += Math.floor(r() * 10);
        const x = r();
        if (x < 0.35) {
          const e: ModelEntry = { n: n++, key: keyOf(), claim: claimOf(), waiter: { n }, state: 'in_flight', result: undefined, expiresAt: Infinity };
          tickets.set(e, cache.begin(e.key, now, e.claim, e.waiter));
          modelEvicted.capacity += model.begin(e);
        } else if (x < 0.6) {
          const inFlight = [...tickets.keys()].filter((e) => e.state === 'in_flight');
          const all = [...tickets.keys()];
          const e = r() < 0.9 && inFlight.length > 0 ? inFlight[Math.floor(r() * inFlight.length)] : all[Math.floor(r() * all.length)];
          if (!e) continue;
          const ok = r() < 0.8;
          expect(cache.finish(tickets.get(e)!, ok ? { ok: true, result: e.n } : { ok: false }, now)).toBe(model.finish(e, ok, e.n, now));
        } else if (x < 0.97) {
          const key = keyOf();
          const want = model.lookup(key, now);
          modelEvicted.expired += want.expired;
          const got = cache.lookup(key, now);
          expect(got.kind).toBe(want.kind);
          if (got.kind === 'done') expect(got.result).toBe(want.result);
          if (got.kind === 'in_flight') expect(got.waiter).toBe(want.waiter);
        } else {
          cache.sweep(now);
          modelEvicted.expired += model.sweep(now);
        }
        expect(cache.size).toBe(model.lru.length);
        expect(cache.bytes).toBe(model.used);
        expect(evicted).toEqual(modelEvicted);
        if (step % 50 === 0) {
          expect(cache.snapshot().map((s) => s.result)).toEqual(model.lru.filter((e) => e.state === 'done' && !e.claim.known).map((e) => e.result));
          expect(cache.inFlight()).toEqual(model.all.filter((e) => e.state === 'in_flight').map((e) => e.waiter));
        }
      }
    });
  }
});
