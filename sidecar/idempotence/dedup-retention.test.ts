import { describe, expect, it } from 'vitest';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DedupCache, type DedupKey } from './dedup.js';
import { Claim } from './claim.js';

// A full collection on demand (no --expose-gc needed by the test runner).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const key = (n: number): DedupKey => ({ topic: 't', partition: 0, fingerprint: BigInt(n) as DedupKey['fingerprint'] });

/** Whether the objects behind `refs` were collected (a WeakRef keeps its target to the end of the current job: wait a turn first). */
async function collected(refs: Array<WeakRef<object>>): Promise<number> {
  await new Promise((r) => setImmediate(r));
  gc();
  return refs.filter((r) => r.deref() === undefined).length;
}

describe('DedupCache: what an entry keeps', () => {
  // The engine's waiter of an in-flight original is its Upgraded: its request's Plan, ProduceCall,
  // decoded request and frame. A finished entry stays for the dedup window (content/header: every
  // entry; exact: those whose answer did not reach the client) and is counted ENTRY_BYTES
  // (--max-dedup-bytes): it must not keep the waiter, which only copies of an in-flight original use.
  it('a finished or removed original lets go of its waiter', async () => {
    const cache = new DedupCache<number, object>({ windowMs: 60_000, maxEntries: 1000 });
    const refs: Array<WeakRef<object>> = [];
    const original = (i: number): void => {
      const waiter = { request: new Array(1000).fill(i) };
      refs.push(new WeakRef(waiter));
      const ticket = cache.begin(key(i), 0, Claim.everyCopy(), waiter);
      cache.finish(ticket, i % 2 === 0 ? { ok: true, result: i } : { ok: false }, 1);
    };
    for (let i = 0; i < 20; i++) original(i);
    expect(cache.size).toBe(10); // the successes stay for copies
    expect(cache.lookup(key(0), 2)).toMatchObject({ kind: 'done', result: 0 });
    expect(await collected(refs)).toBe(20);
  });

  it('an original in flight keeps its waiter (copies attach to it)', async () => {
    const cache = new DedupCache<number, object>({ windowMs: 60_000, maxEntries: 1000 });
    const waiter = { w: 1 };
    cache.begin(key(1), 0, Claim.everyCopy(), waiter);
    expect(cache.lookup(key(1), 1)).toMatchObject({ kind: 'in_flight', waiter });
    expect(cache.inFlight()).toEqual([waiter]);
  });
});
