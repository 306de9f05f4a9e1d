import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_SEQUENCE } from './sequence.js';
import { SessionTable, type BatchSeq, type SessionKey, type Ticket } from './session-table.js';
import { ModelBroker } from './model-broker.test-support.js';

const K: SessionKey = { producerId: 100n, topic: 't', partition: 0 };
const OK = (off: number) => ({ errorCode: 0, baseOffset: BigInt(off), logAppendTime: -1n });
const b = (epoch: number, firstSeq: number, lastSeq: number): BatchSeq => ({ epoch, firstSeq, lastSeq });

/** Forward and acknowledge a batch. */
function write(t: SessionTable, key: SessionKey, x: BatchSeq, off: number, now = 0): void {
  const tk = t.begin(key, x, now);
  expect(t.complete(tk, OK(off), now)).toBe(true);
}

describe('SessionTable.check', () => {
  it('accepts any first sequence of an unknown producer (KIP-360)', () => {
    const t = new SessionTable();
    expect(t.check(K, b(0, 12345, 12349), 0)).toEqual({ kind: 'accept' });
  });

  it('requires lastSeq + 1; a gap with nothing in flight is out_of_sequence', () => {
    const t = new SessionTable();
    write(t, K, b(0, 0, 4), 0);
    expect(t.check(K, b(0, 5, 9), 0)).toEqual({ kind: 'accept' });
    expect(t.check(K, b(0, 7, 9), 0)).toEqual({ kind: 'out_of_sequence', expected: 5 });
    expect(t.check(K, b(0, 3, 4), 0)).toEqual({ kind: 'out_of_sequence', expected: 5 }); // overlap, not exact
  });

  it('a gap while batches are in flight defers (rule 3, KAFKA-14034), pointing at the newest in flight', () => {
    const t = new SessionTable();
    write(t, K, b(0, 0, 4), 0);
    const t1 = t.begin(K, b(0, 5, 9), 0);
    expect(t.check(K, b(0, 10, 14), 0)).toEqual({ kind: 'accept' }); // follows the in-flight one
    const t2 = t.begin(K, b(0, 10, 14), 0);
    expect(t.check(K, b(0, 20, 24), 0)).toEqual({ kind: 'defer', waitFor: t2 });
    // The in-flight batches fail: now the gap is definite.
    t.complete(t1, { errorCode: 6, baseOffset: -1n, logAppendTime: -1n }, 0);
    t.complete(t2, { errorCode: 45, baseOffset: -1n, logAppendTime: -1n }, 0);
    expect(t.check(K, b(0, 20, 24), 0)).toEqual({ kind: 'out_of_sequence', expected: 5 });
    expect(t.check(K, b(0, 5, 9), 0)).toEqual({ kind: 'accept' }); // failure did not advance
  });

  it('duplicate = same epoch and exact range of one of the last 5 acknowledged batches', () => {
    const t = new SessionTable();
    for (let i = 0; i < 6; i++) write(t, K, b(0, i * 2, i * 2 + 1), 100 + i, 0);
    expect(t.check(K, b(0, 10, 11), 0)).toEqual({ kind: 'duplicate', baseOffset: 105n, logAppendTime: -1n });
    expect(t.check(K, b(0, 2, 3), 0)).toEqual({ kind: 'duplicate', baseOffset: 101n, logAppendTime: -1n });
    expect(t.check(K, b(0, 0, 1), 0)).toEqual({ kind: 'out_of_sequence', expected: 12 }); // 6th back: forgotten, as the broker
    expect(t.check(K, b(0, 2, 2), 0)).toEqual({ kind: 'out_of_sequence', expected: 12 }); // records not compared, range must match exactly
    expect(t.check(K, b(1, 10, 11), 0)).toEqual({ kind: 'out_of_sequence', expected: 0 }); // other epoch: no duplicate
  });

  it('a copy of a batch in flight waits for the original', () => {
    const t = new SessionTable();
    const tk = t.begin(K, b(0, 0, 4), 0);
    expect(t.check(K, b(0, 0, 4), 0)).toEqual({ kind: 'duplicate_in_flight', ticket: tk });
  });

  it('at most 5 in flight per producer and partition', () => {
    const t = new SessionTable();
    const tks: Ticket[] = [];
    for (let i = 0; i < 5; i++) tks.push(t.begin(K, b(0, i, i), 0));
    expect(t.check(K, b(0, 5, 5), 0)).toEqual({ kind: 'too_many_in_flight', waitFor: tks[0] });
    expect(t.check({ ...K, partition: 1 }, b(0, 5, 5), 0)).toEqual({ kind: 'accept' });
    t.complete(tks[0], OK(0), 0);
    expect(t.check(K, b(0, 5, 5), 0)).toEqual({ kind: 'accept' });
  });

  it('lower epoch is stale; a higher epoch must start at 0 and clears the cache', () => {
    const t = new SessionTable();
    write(t, K, b(3, 0, 4), 0);
    expect(t.check(K, b(2, 5, 9), 0)).toEqual({ kind: 'stale_epoch', currentEpoch: 3 });
    expect(t.check(K, b(4, 5, 9), 0)).toEqual({ kind: 'out_of_sequence', expected: 0 });
    expect(t.check(K, b(4, 0, 0), 0)).toEqual({ kind: 'accept' });
    write(t, K, b(4, 0, 0), 1);
    expect(t.check(K, b(3, 0, 4), 0)).toEqual({ kind: 'stale_epoch', currentEpoch: 4 });
    expect(t.check(K, b(4, 0, 0), 0)).toEqual({ kind: 'duplicate', baseOffset: 1n, logAppendTime: -1n });
  });

  it('a new epoch batch may follow old-epoch batches in flight; an old-epoch batch behind a new one waits', () => {
    const t = new SessionTable();
    write(t, K, b(0, 0, 0), 0);
    t.begin(K, b(0, 1, 1), 0);
    expect(t.check(K, b(1, 0, 0), 0)).toEqual({ kind: 'accept' });
    const tn = t.begin(K, b(1, 0, 0), 0);
    expect(t.check(K, b(0, 2, 2), 0)).toEqual({ kind: 'defer', waitFor: tn });
  });

  it('sequences wrap after Int32.MAX', () => {
    const t = new SessionTable();
    write(t, K, b(0, MAX_SEQUENCE - 1, MAX_SEQUENCE), 0);
    expect(t.check(K, b(0, 0, 3), 0)).toEqual({ kind: 'accept' });
    write(t, K, b(0, 0, 3), 1);
    expect(t.check(K, b(0, 4, 4), 0)).toEqual({ kind: 'accept' });
  });

  it('a forwarded duplicate answered NONE does not double the cache or move lastSeq back', () => {
    const t = new SessionTable();
    write(t, K, b(0, 0, 0), 0);
    write(t, K, b(0, 1, 1), 1);
    write(t, K, b(0, 0, 0), 0); // broker answered the copy with the original offset
    expect(t.check(K, b(0, 2, 2), 0)).toEqual({ kind: 'accept' });
  });

  it('46 (DUPLICATE_SEQUENCE_NUMBER) counts as success without offset', () => {
    const t = new SessionTable();
    const tk = t.begin(K, b(0, 0, 0), 0);
    t.complete(tk, { errorCode: 46, baseOffset: 7n, logAppendTime: 7n }, 0);
    expect(t.check(K, b(0, 0, 0), 0)).toEqual({ kind: 'duplicate', baseOffset: -1n, logAppendTime: -1n });
    expect(t.check(K, b(0, 1, 1), 0)).toEqual({ kind: 'accept' });
  });

  it('a state rebuilt from answers after an abandon leaves gaps to the broker (faults-order java-idem: 59-148 copies)', () => {
    // A retiring connection: the client's re-sends waiting in its backlog are abandoned (the
    // partition's state is reset), then the answers of what was already written come in late.
    // The broker wrote b1 too (its answer was lost) and still caches it: the client's re-send
    // of b1 is a duplicate for the broker, not a gap. A sidecar 45 made Java bump its epoch
    // and write b1..b3 again under the new one.
    const t = new SessionTable();
    const t1 = t.begin(K, b(0, 0, 9), 0);
    const t2 = t.begin(K, b(0, 10, 19), 0);
    const t3 = t.begin(K, b(0, 20, 29), 0);
    t.abandon(t1);
    t.complete(t2, OK(10), 0);
    t.complete(t3, OK(20), 0);
    expect(t.check(K, b(0, 0, 9), 0)).toEqual({ kind: 'accept' }); // was out_of_sequence, expected 30
    expect(t.check(K, b(0, 10, 19), 0)).toEqual({ kind: 'duplicate', baseOffset: 10n, logAppendTime: -1n });
    expect(t.check(K, b(0, 40, 49), 0)).toEqual({ kind: 'accept' }); // the broker may be further on than the late answers
    expect(t.check(K, b(1, 5, 9), 0)).toEqual({ kind: 'accept' });
    expect(t.check(K, b(0, 20, 29), 0)).toEqual({ kind: 'duplicate', baseOffset: 20n, logAppendTime: -1n });
    // A forwarded re-send is tracked; the next batches follow it.
    const r1 = t.begin(K, b(0, 0, 9), 0);
    t.complete(r1, OK(0), 0); // the broker answered the copy with its original offset
    expect(t.check(K, b(0, 0, 9), 0)).toEqual({ kind: 'duplicate', baseOffset: 0n, logAppendTime: -1n });
    expect(t.check(K, b(0, 30, 39), 0)).toEqual({ kind: 'accept' });

    // A stale answer of the epoch's first batch (a copy re-sent after a re-dial) after an abandon:
    // lastSeq 9 while the broker is at 49 and the client's next batch is 50 (seen: "expected 1").
    const u = new SessionTable();
    write(u, K, b(0, 0, 9), 0);
    const copy = u.begin(K, b(0, 0, 9), 0);
    for (let i = 1; i < 5; i++) write(u, K, b(0, 10 * i, 10 * i + 9), 10 * i);
    const lost = u.begin(K, b(0, 50, 59), 0);
    u.abandon(lost);
    u.complete(copy, OK(0), 0);
    expect(u.check(K, b(0, 50, 59), 0)).toEqual({ kind: 'accept' }); // was out_of_sequence, expected 10
    expect(u.check(K, b(0, 60, 69), 0)).toEqual({ kind: 'accept' });

    // An abandon with nothing else in flight forgets the partition: what comes next is learnt
    // from the client's own batches in order, so gaps are refused again.
    const v = new SessionTable();
    write(v, K, b(0, 0, 9), 0);
    v.abandon(v.begin(K, b(0, 10, 19), 0));
    write(v, K, b(0, 10, 19), 10);
    expect(v.check(K, b(0, 30, 39), 0)).toEqual({ kind: 'out_of_sequence', expected: 20 });
  });

  it('observe = check + begin; complete of an unknown ticket is false', () => {
    const t = new SessionTable();
    write(t, K, b(0, 0, 0), 0);
    const { verdict, ticket } = t.observe(K, b(0, 5, 5), 0);
    expect(verdict).toEqual({ kind: 'out_of_sequence', expected: 1 });
    expect(t.inFlightCount).toBe(1);
    expect(t.complete(ticket, { errorCode: 45, baseOffset: -1n, logAppendTime: -1n }, 0)).toBe(true);
    expect(t.complete(ticket, OK(0), 0)).toBe(false);
  });
});

describe('SessionTable memory bounds', () => {
  it('expires idle sessions (not those with batches in flight) and reports the count', () => {
    const evicted: Array<[string, number]> = [];
    const t = new SessionTable({ idleMs: 1000, onEvict: (r, n) => evicted.push([r, n]) });
    write(t, K, b(0, 0, 0), 0, 0);
    write(t, { ...K, producerId: 2n }, b(0, 0, 0), 0, 500);
    const tk = t.begin({ ...K, producerId: 3n }, b(0, 0, 0), 0);
    expect(t.sessionCount).toBe(3);
    expect(t.sweep(999)).toBe(0);
    expect(t.sweep(1000)).toBe(1); // producer 100 idle; 3 has a batch in flight
    expect(t.sessionCount).toBe(2);
    expect(t.sweep(5000)).toBe(1);
    expect(evicted).toEqual([
      ['idle', 1],
      ['idle', 1],
    ]);
    expect(t.complete(tk, OK(0), 5000)).toBe(true);
    expect(t.sweep(6000)).toBe(1);
    expect(t.sessionCount).toBe(0);
    expect(t.evictedCounts).toEqual({ idle: 3, capacity: 0 });
    // Forgotten producer: any sequence is accepted again, as by a broker without state.
    expect(t.check(K, b(0, 77, 77), 6000)).toEqual({ kind: 'accept' });
  });

  it('caps sessions with LRU eviction, sparing sessions with batches in flight', () => {
    const t = new SessionTable({ maxSessions: 2 });
    const k = (p: bigint): SessionKey => ({ ...K, producerId: p });
    write(t, k(1n), b(0, 0, 0), 0, 1);
    write(t, k(2n), b(0, 0, 0), 0, 2);
    t.check(k(1n), b(0, 1, 1), 3); // touch 1: 2 is now least recently used
    write(t, k(3n), b(0, 0, 0), 0, 4);
    expect(t.sessionCount).toBe(2);
    expect(t.check(k(1n), b(0, 5, 5), 5).kind).toBe('out_of_sequence'); // still known
    expect(t.check(k(2n), b(0, 5, 5), 5).kind).toBe('accept'); // evicted
    const tk = t.begin(k(1n), b(0, 1, 1), 6);
    t.begin(k(3n), b(0, 1, 1), 7);
    t.begin(k(4n), b(0, 0, 0), 8); // every other session has a batch in flight: exceed the cap rather than lose them
    expect(t.sessionCount).toBe(3);
    t.complete(tk, OK(1), 9);
    t.begin(k(5n), b(0, 0, 0), 10);
    expect(t.evictedCounts.capacity).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: with one batch at a time, the table's verdict equals the MODEL broker's answer.
// ---------------------------------------------------------------------------------------------

type Step = { epochDelta: number; kind: 'next' | 'retry' | 'gap' | 'restart'; records: number; back: number; producer: number };
const stepArb: fc.Arbitrary<Step> = fc.record({
  epochDelta: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constant(-1) }),
  kind: fc.constantFrom<Step['kind']>('next', 'next', 'next', 'retry', 'retry', 'gap', 'restart'),
  records: fc.integer({ min: 1, max: 3 }),
  back: fc.integer({ min: 0, max: 7 }),
  producer: fc.integer({ min: 0, max: 1 }),
});

describe('SessionTable property: verdicts match the model broker', () => {
  it('serial traffic: accept ⇔ written, duplicate ⇔ broker duplicate (same offset), out_of_sequence ⇔ 45, stale_epoch ⇔ 47', () => {
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 150, size: 'max' }), (steps) => {
        const broker = new ModelBroker();
        const table = new SessionTable();
        const clients = [0, 1].map(() => ({ epoch: 0, next: 0, sent: [] as BatchSeq[] }));
        let now = 0;
        for (const st of steps) {
          const c = clients[st.producer];
          const key: SessionKey = { producerId: BigInt(st.producer + 1), topic: 't', partition: 0 };
          c.epoch = Math.max(0, c.epoch + st.epochDelta);
          let x: BatchSeq;
          if (st.kind === 'retry' && c.sent.length > 0) x = c.sent[Math.max(0, c.sent.length - 1 - st.back)];
          else if (st.kind === 'gap') x = b(c.epoch, c.next + 1 + st.back, c.next + st.back + st.records);
          else if (st.kind === 'restart') x = b(c.epoch, 0, st.records - 1);
          else x = b(c.epoch, c.next, c.next + st.records - 1);
          const v = table.check(key, x, now);
          seen.set(v.kind, (seen.get(v.kind) ?? 0) + 1);
          const tk = table.begin(key, x, now);
          const ans = broker.produce('t-0', { producerId: key.producerId, epoch: x.epoch, firstSeq: x.firstSeq, lastSeq: x.lastSeq, payload: now });
          switch (v.kind) {
            case 'accept':
              expect(ans).toMatchObject({ errorCode: 0, duplicate: false });
              break;
            case 'duplicate':
              expect(ans).toEqual({ errorCode: 0, duplicate: true, baseOffset: v.baseOffset });
              break;
            case 'out_of_sequence':
              expect(ans.errorCode).toBe(45);
              break;
            case 'stale_epoch':
              expect(ans.errorCode).toBe(47);
              break;
            default:
              throw new Error(`unexpected verdict ${v.kind} with nothing in flight`);
          }
          table.complete(tk, { errorCode: ans.errorCode, baseOffset: ans.baseOffset, logAppendTime: -1n }, now);
          if (ans.errorCode === 0 && !ans.duplicate) {
            c.sent.push(x);
            c.next = x.lastSeq + 1;
            c.epoch = x.epoch;
          }
          now++;
        }
      }),
      { numRuns: 400 },
    );
    // Every verdict is exercised.
    for (const k of ['accept', 'duplicate', 'out_of_sequence', 'stale_epoch']) expect(seen.get(k) ?? 0).toBeGreaterThan(100);
  });

  it('pipelined traffic: never out_of_sequence or stale while the partition has batches in flight', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 100, size: 'max' }), (ops) => {
        const table = new SessionTable();
        const inflight: Ticket[] = [];
        let next = 0;
        for (const [complete, jitter] of ops) {
          if (complete && inflight.length > 0) {
            const tk = inflight.shift()!;
            table.complete(tk, jitter === 0 ? { errorCode: 6, baseOffset: -1n, logAppendTime: -1n } : OK(next), 0);
            continue;
          }
          const x = b(0, next + (jitter === 3 ? 2 : 0), next + (jitter === 3 ? 2 : 0));
          const v = table.check(K, x, 0);
          if (inflight.length > 0) expect(['out_of_sequence', 'stale_epoch']).not.toContain(v.kind);
          if (v.kind === 'accept') {
            inflight.push(table.begin(K, x, 0));
            next = x.lastSeq + 1;
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
