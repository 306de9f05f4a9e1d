import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ErrorCode, type BatchOutcome } from '../codec/errors.js';
import { MAX_SEQUENCE } from './sequence.js';
import { Sequencer, type SequencerAction, type TopicPartition } from './sequencer.js';
import { ModelBroker } from './model-broker.test-support.js';

const TP: TopicPartition = { topic: 't', partition: 0 };
const TP1: TopicPartition = { topic: 't', partition: 1 };
const ok = (o: number): BatchOutcome => ({ kind: 'ok', baseOffset: BigInt(o), logAppendTime: -1n });
const notLeader: BatchOutcome = { kind: 'retriable', reason: 'not_leader_or_follower', errorCode: 6 };
const lost: BatchOutcome = { kind: 'unknown', reason: 'connection_lost' };

function mk(opts: Partial<ConstructorParameters<typeof Sequencer>[0]> = {}): Sequencer {
  return new Sequencer({ producer: { producerId: 7n, epoch: 0 }, retryBackoff: { initial: 100, max: 1000 }, deliveryTimeoutMs: 10_000, ...opts });
}
/** Send and acknowledge one batch so the partition pipelines (the first batch of an epoch goes alone). */
function warm(s: Sequencer, tp: TopicPartition, id: number, recordCount = 1): void {
  const a = s.submit(tp, { id, recordCount }, 0);
  expect(types(a)).toEqual([`send:${id}`]);
  s.onResult(tp, id, ok(0), 0);
}
/** Batch actions as `type:id`; a partition's first identity is left out (see `only(…, 'identity')`), later ones show. */
const types = (a: SequencerAction[]): string[] =>
  a
    .filter((x) => !(x.type === 'identity' && x.reason === 'first'))
    .map((x) => (x.type === 'send' || x.type === 'resend' || x.type === 'resolve' || x.type === 'fail' ? `${x.type}:${x.id}` : x.type === 'identity' ? `identity:${x.producerId}/${x.epoch}` : x.type));
/** The actions without the partitions' first identities. */
const acts = (a: SequencerAction[]): SequencerAction[] => a.filter((x) => !(x.type === 'identity' && x.reason === 'first'));
function only<T extends SequencerAction['type']>(a: SequencerAction[], t: T): Extract<SequencerAction, { type: T }>[] {
  return a.filter((x): x is Extract<SequencerAction, { type: T }> => x.type === t);
}

describe('Sequencer: stamping and pipelining', () => {
  it('sends the first batch of a partition alone, then assigns consecutive sequences with at most 5 in flight', () => {
    const s = mk();
    expect(types(s.submit(TP, { id: 1, recordCount: 3 }, 0))).toEqual(['send:1']);
    expect(s.submit(TP, { id: 2, recordCount: 3 }, 0)).toEqual([]); // broker has no state yet: one at a time
    expect(types(s.onResult(TP, 1, ok(0), 1))).toEqual(['resolve:1', 'send:2']);
    const sends: SequencerAction[] = [];
    for (let i = 3; i <= 7; i++) sends.push(...s.submit(TP, { id: i, recordCount: 3 }, 1));
    expect(types(sends)).toEqual(['send:3', 'send:4', 'send:5', 'send:6']);
    expect(s.inFlight(TP)).toBe(5);
    const all = [...only(s.onResult(TP, 2, ok(3), 2), 'send'), ...only(sends, 'send')].sort((a, b) => a.id - b.id);
    expect(all.map((x) => [x.id, x.baseSequence])).toEqual([
      [3, 6],
      [4, 9],
      [5, 12],
      [6, 15],
      [7, 18],
    ]);
    expect(all.every((x) => x.producerId === 7n && x.epoch === 0)).toBe(true);
  });

  it('respects maxInFlight < 5 and rejects > 5', () => {
    const s = mk({ maxInFlight: 2 });
    warm(s, TP, 1);
    const a = [2, 3, 4].flatMap((id) => s.submit(TP, { id, recordCount: 1 }, 0));
    expect(types(a)).toEqual(['send:2', 'send:3']);
    expect(() => mk({ maxInFlight: 6 })).toThrow(RangeError);
  });

  it('partitions are independent', () => {
    const s = mk();
    s.submit(TP, { id: 1, recordCount: 2 }, 0);
    const a = s.submit(TP1, { id: 2, recordCount: 2 }, 0);
    expect(only(a, 'send')[0].baseSequence).toBe(0);
  });

  it('wraps between batches after Int32.MAX, but bumps the epoch rather than wrap inside a batch', () => {
    const s = mk();
    s.submit(TP, { id: 1, recordCount: MAX_SEQUENCE }, 0); // sequences 0..MAX-1
    s.onResult(TP, 1, ok(0), 0);
    const a = s.submit(TP, { id: 2, recordCount: 1 }, 0);
    expect(only(a, 'send')[0].baseSequence).toBe(MAX_SEQUENCE);
    s.onResult(TP, 2, ok(1), 0);
    const b = s.submit(TP, { id: 3, recordCount: 2 }, 0);
    expect(only(b, 'send')[0].baseSequence).toBe(0); // after MAX comes 0
    s.onResult(TP, 3, ok(2), 0);
    // Now at sequence 2; a batch reaching past MAX would wrap inside.
    const s2 = mk();
    s2.submit(TP, { id: 1, recordCount: MAX_SEQUENCE }, 0);
    s2.onResult(TP, 1, ok(0), 0);
    const c = s2.submit(TP, { id: 2, recordCount: 2 }, 0); // base MAX, last would be 0: the partition moves to the next epoch
    expect(c).toEqual([
      { type: 'identity', tp: TP, producerId: 7n, epoch: 1, reason: 'sequence_wrap' },
      { type: 'send', tp: TP, id: 2, producerId: 7n, epoch: 1, baseSequence: 0 },
    ]);
  });

  it('without a producer id, queues and asks for one (once)', () => {
    const s = new Sequencer({ producer: null });
    expect(s.submit(TP, { id: 1, recordCount: 1 }, 0)).toEqual([{ type: 'need_producer_id' }]);
    expect(s.submit(TP1, { id: 2, recordCount: 1 }, 0)).toEqual([]);
    expect(s.addProducerId(42n, 0, 5)).toEqual([
      { type: 'identity', tp: TP, producerId: 42n, epoch: 0, reason: 'first' },
      { type: 'send', tp: TP, id: 1, producerId: 42n, epoch: 0, baseSequence: 0 },
      { type: 'identity', tp: TP1, producerId: 42n, epoch: 0, reason: 'first' },
      { type: 'send', tp: TP1, id: 2, producerId: 42n, epoch: 0, baseSequence: 0 },
    ]);
  });

  it('rejects reused ids and empty batches', () => {
    const s = mk();
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    expect(() => s.submit(TP, { id: 1, recordCount: 1 }, 0)).toThrow();
    expect(() => s.submit(TP, { id: 2, recordCount: 0 }, 0)).toThrow(RangeError);
  });

  it('ignores results for unknown ids or batches not in flight', () => {
    const s = mk();
    expect(s.onResult(TP, 99, ok(0), 0)).toEqual([]);
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    s.onResult(TP, 1, ok(0), 0);
    expect(s.onResult(TP, 1, ok(0), 0)).toEqual([]);
  });
});

describe('Sequencer: retries and recovery', () => {
  it('waits for the partition to drain, re-sends the head alone with the same stamp, then pipelines', () => {
    const s = mk();
    warm(s, TP, 0, 2); // sequences 0..1
    for (let i = 1; i <= 5; i++) s.submit(TP, { id: i, recordCount: 2 }, 0); // 5 in flight
    s.submit(TP, { id: 6, recordCount: 2 }, 0); // queued
    expect(s.onResult(TP, 1, notLeader, 10)).toEqual([]); // 2..5 still in flight: wait
    expect(s.onResult(TP, 2, { kind: 'fatal', errorCode: 45 }, 11)).toEqual([]); // predecessor pending: retriable
    expect(s.onResult(TP, 3, lost, 12)).toEqual([]);
    expect(s.onResult(TP, 4, { kind: 'fatal', errorCode: 45 }, 13)).toEqual([]);
    const a = s.onResult(TP, 5, { kind: 'fatal', errorCode: 45 }, 14);
    expect(a).toEqual([{ type: 'resend', tp: TP, id: 1, producerId: 7n, epoch: 0, baseSequence: 2, attempt: 2, reason: 'not_leader_or_follower', notBefore: 114 }]);
    expect(s.inFlight(TP)).toBe(1);
    const b = s.onResult(TP, 1, ok(100), 120);
    expect(types(b)).toEqual(['resolve:1', 'resend:2', 'resend:3', 'resend:4', 'resend:5', 'send:6']);
    expect(only(b, 'resend').map((x) => [x.baseSequence, x.reason, x.notBefore])).toEqual([
      [4, 'out_of_order_sequence_number', 120],
      [6, 'connection_lost', 120],
      [8, 'out_of_order_sequence_number', 120],
      [10, 'out_of_order_sequence_number', 120],
    ]);
    expect(only(b, 'send')[0].baseSequence).toBe(12);
    expect(Object.fromEntries(s.retriesByReason())).toEqual({ not_leader_or_follower: 1, out_of_order_sequence_number: 3, connection_lost: 1 });
  });

  it('keeps re-probing the head with exponential backoff capped at max', () => {
    const s = mk();
    warm(s, TP, 0);
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    s.submit(TP, { id: 2, recordCount: 1 }, 0);
    let now = 0;
    expect(s.onResult(TP, 2, { kind: 'fatal', errorCode: 45 }, now)).toEqual([]); // 1 still in flight
    const delays: number[] = [];
    let r = s.onResult(TP, 1, lost, now);
    for (let i = 0; i < 6; i++) {
      const rs = only(r, 'resend');
      expect(rs.map((x) => x.id)).toEqual([1]); // only the head, alone
      delays.push(rs[0].notBefore - now);
      now = rs[0].notBefore;
      r = s.onResult(TP, 1, lost, now);
    }
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('OUT_OF_ORDER on the head batch: re-stamped under the next epoch when it cannot have been written', () => {
    const s = mk();
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    const a = s.onResult(TP, 1, { kind: 'fatal', errorCode: 45 }, 1);
    expect(a).toEqual([
      { type: 'identity', tp: TP, producerId: 7n, epoch: 1, reason: 'sequence_hole' },
      { type: 'send', tp: TP, id: 1, producerId: 7n, epoch: 1, baseSequence: 0, restamped: true },
    ]);
  });

  it('OUT_OF_ORDER on the head batch after an attempt with unknown outcome fails it (never renumber what may be written)', () => {
    const s = mk();
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    const r = only(s.onResult(TP, 1, lost, 1), 'resend')[0];
    const a = s.onResult(TP, 1, { kind: 'fatal', errorCode: 45 }, r.notBefore);
    expect(a).toEqual([{ type: 'fail', tp: TP, id: 1, errorCode: 45, outcomeUnknown: true }]);
    expect(s.switchPending(TP)).toBe('sequence_hole'); // taken with the next batch
    expect(types(s.submit(TP, { id: 2, recordCount: 1 }, r.notBefore + 1))).toEqual(['identity:7/1', 'send:2']);
  });

  it('gives up after deliveryTimeout with the last error (or REQUEST_TIMED_OUT when none)', () => {
    const s = mk();
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    s.onResult(TP, 1, notLeader, 5000);
    const a = s.onResult(TP, 1, notLeader, 10_000);
    expect(a[0]).toEqual({ type: 'fail', tp: TP, id: 1, errorCode: 6, outcomeUnknown: false });
    const s2 = mk();
    s2.submit(TP, { id: 1, recordCount: 1 }, 0);
    const b = s2.onResult(TP, 1, lost, 10_001);
    expect(b[0]).toEqual({ type: 'fail', tp: TP, id: 1, errorCode: ErrorCode.REQUEST_TIMED_OUT, outcomeUnknown: true });
    expect(s2.switchPending(TP)).toBe('sequence_hole');
  });

  it('a batch that only saw OUT_OF_ORDER behind a pending predecessor fails at its deadline with REQUEST_TIMED_OUT', () => {
    const s = mk();
    warm(s, TP, 0);
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    s.submit(TP, { id: 2, recordCount: 1 }, 1);
    expect(s.onResult(TP, 1, lost, 9_000)).toEqual([]); // 2 still in flight: wait
    const a = s.onResult(TP, 2, { kind: 'fatal', errorCode: 45 }, 10_001); // both past their deadline
    expect(only(a, 'fail')).toEqual([
      { type: 'fail', tp: TP, id: 2, errorCode: 7, outcomeUnknown: false },
      { type: 'fail', tp: TP, id: 1, errorCode: 7, outcomeUnknown: true },
    ]);
  });

  it('tick fails never-sent batches past their deadline without needing a bump', () => {
    const s = mk({ maxInFlight: 1 });
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    s.submit(TP, { id: 2, recordCount: 1 }, 0);
    expect(s.nextDeadline()).toBe(10_000);
    expect(s.tick(9_999)).toEqual([]);
    expect(s.tick(10_000)).toEqual([{ type: 'fail', tp: TP, id: 2, errorCode: 7, outcomeUnknown: false }]);
    expect(s.switchPending(TP)).toBeNull();
    expect(s.pendingTotal()).toBe(1);
  });
});

describe('Sequencer: a producer identity per partition (issue 7)', () => {
  it('a hole moves only its own partition, once IT drained, to the next epoch; the other partitions keep pipelining', () => {
    const s = mk();
    warm(s, TP, 0);
    warm(s, TP1, 10);
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    s.submit(TP, { id: 2, recordCount: 1 }, 0);
    s.submit(TP1, { id: 3, recordCount: 4 }, 0);
    // An error after which the batch may be in the log (not one of the "refused before append" ones).
    const a = s.onResult(TP, 1, { kind: 'fatal', errorCode: ErrorCode.UNKNOWN_SERVER_ERROR }, 1);
    expect(a).toEqual([{ type: 'fail', tp: TP, id: 1, errorCode: -1, outcomeUnknown: false }]);
    expect(s.switchPending(TP)).toBe('sequence_hole');
    // TP waits (batch 2 is still in flight under the old epoch); TP1 goes on at once, pipelined.
    expect(s.submit(TP, { id: 5, recordCount: 1 }, 2)).toEqual([]);
    expect(acts(s.submit(TP1, { id: 4, recordCount: 1 }, 2))).toEqual([{ type: 'send', tp: TP1, id: 4, producerId: 7n, epoch: 0, baseSequence: 5 }]);
    // Batch 2 (after the hole) gets 45 with no pending predecessor: not written, so it is
    // re-stamped under TP's next epoch, alone (first batch of a new epoch), now that TP drained.
    const b = s.onResult(TP, 2, { kind: 'fatal', errorCode: 45 }, 4);
    expect(b).toEqual([
      { type: 'identity', tp: TP, producerId: 7n, epoch: 1, reason: 'sequence_hole' },
      { type: 'send', tp: TP, id: 2, producerId: 7n, epoch: 1, baseSequence: 0, restamped: true },
    ]);
    expect(s.inFlight(TP1)).toBe(2); // never waited for
    expect(only(s.onResult(TP, 2, ok(9), 7), 'send')).toEqual([{ type: 'send', tp: TP, id: 5, producerId: 7n, epoch: 1, baseSequence: 1 }]);
    expect(s.identityOf(TP)).toEqual({ producerId: 7n, epoch: 1 });
    expect(s.identityOf(TP1)).toEqual({ producerId: 7n, epoch: 0 });
    expect(types(s.onResult(TP1, 3, ok(11), 8))).toEqual(['resolve:3']);
  });

  it('a held batch on an unreachable partition does not stall a partition with a hole (review finding 4)', () => {
    const s = mk({ deliveryTimeoutMs: 1000, unknownHoldMs: 300_000 });
    const X = TP;
    const Y = TP1;
    let now = 0;
    s.submit(Y, { id: 1, recordCount: 1 }, now);
    // Y's leader is unreachable: every attempt is lost.
    let yProbes = only(s.onResult(Y, 1, lost, now), 'resend');
    warm(s, X, 2);
    s.submit(X, { id: 3, recordCount: 1 }, now);
    now = 1100;
    // X3: NOT_ENOUGH_REPLICAS until its deadline: failed, a hole on X (its outcome is known: not written).
    expect(types(s.onResult(X, 3, { kind: 'retriable', reason: 'not_enough_replicas', errorCode: 19 }, now))).toContain('fail:3');
    expect(s.switchPending(X)).toBe('sequence_hole');
    // X4 goes out under X's next epoch while Y1 is still undecided (and held, and retried by its client).
    const x4 = s.submit(X, { id: 4, recordCount: 1 }, now);
    expect(acts(x4)).toEqual([
      { type: 'identity', tp: X, producerId: 7n, epoch: 1, reason: 'sequence_hole' },
      { type: 'send', tp: X, id: 4, producerId: 7n, epoch: 1, baseSequence: 0 },
    ]);
    for (let i = 0; i < 3; i++) {
      now += 2000;
      for (const x of yProbes) yProbes = only(s.onResult(Y, x.id, lost, now), 'resend');
      expect(s.isHeld(1)).toBe(true);
      yProbes.push(...only([...s.tick(now), ...s.retryHeld(1, now)], 'resend'));
    }
    expect(types(s.onResult(X, 4, ok(3), now))).toEqual(['resolve:4']);
    expect(acts(s.submit(X, { id: 5, recordCount: 1 }, now))).toEqual([{ type: 'send', tp: X, id: 5, producerId: 7n, epoch: 1, baseSequence: 1 }]);
    expect(s.identityOf(Y)).toEqual({ producerId: 7n, epoch: 0 }); // Y keeps its identity while undecided
  });

  it('out of epochs: the partition asks for a fresh producer id and takes it alone; the others keep theirs', () => {
    const s = mk({ maxEpoch: 0 });
    warm(s, TP, 1);
    warm(s, TP1, 2);
    s.submit(TP, { id: 3, recordCount: 1 }, 0);
    expect(types(s.onResult(TP, 3, { kind: 'fatal', errorCode: ErrorCode.UNKNOWN_SERVER_ERROR }, 1))).toEqual(['fail:3']);
    expect(s.submit(TP, { id: 4, recordCount: 1 }, 2)).toEqual([{ type: 'need_producer_id' }]);
    expect(s.submit(TP, { id: 5, recordCount: 1 }, 2)).toEqual([]); // asked once
    expect(acts(s.submit(TP1, { id: 6, recordCount: 1 }, 2))).toEqual([{ type: 'send', tp: TP1, id: 6, producerId: 7n, epoch: 0, baseSequence: 1 }]);
    expect(s.addProducerId(8n, 0, 3)).toEqual([
      { type: 'identity', tp: TP, producerId: 8n, epoch: 0, reason: 'sequence_hole' },
      { type: 'send', tp: TP, id: 4, producerId: 8n, epoch: 0, baseSequence: 0 },
    ]);
    expect(s.identityOf(TP1)).toEqual({ producerId: 7n, epoch: 0 });
    expect(s.currentProducer()).toEqual({ producerId: 8n, epoch: 0 });
  });

  it('a partition that moved is not forgotten while idle: its next batch keeps the new epoch (never back to the old one)', () => {
    const s = mk();
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    s.onResult(TP, 1, { kind: 'fatal', errorCode: ErrorCode.UNKNOWN_SERVER_ERROR }, 1);
    expect(types(s.submit(TP, { id: 2, recordCount: 1 }, 2))).toEqual(['identity:7/1', 'send:2']);
    s.onResult(TP, 2, { kind: 'fatal', errorCode: ErrorCode.MESSAGE_TOO_LARGE }, 3); // refused: rewound to 0, unconfirmed, nothing pending
    s.tick(1_000_000);
    expect(acts(s.submit(TP, { id: 3, recordCount: 1 }, 1_000_001))).toEqual([{ type: 'send', tp: TP, id: 3, producerId: 7n, epoch: 1, baseSequence: 0 }]);
  });

  it('after a move, the first batch of the partition goes alone again (the broker accepts any first sequence of a new producer)', () => {
    const s = new Sequencer({ producer: null });
    for (let i = 1; i <= 3; i++) s.submit(TP, { id: i, recordCount: 1 }, 0);
    expect(types(s.addProducerId(9n, 0, 0))).toEqual(['send:1']);
    expect(types(s.onResult(TP, 1, ok(0), 1))).toEqual(['resolve:1', 'send:2', 'send:3']);
  });

  it('a sent batch with unknown outcome is re-sent under its OLD epoch while its partition waits to move, never under the new one', () => {
    const s = mk();
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    s.onResult(TP, 1, ok(0), 0);
    s.submit(TP, { id: 2, recordCount: 1 }, 0);
    s.submit(TP, { id: 3, recordCount: 1 }, 0);
    s.onResult(TP, 2, { kind: 'fatal', errorCode: ErrorCode.UNKNOWN_SERVER_ERROR }, 1); // TP must move
    const a = s.onResult(TP, 3, lost, 2);
    expect(only(a, 'resend')[0]).toMatchObject({ id: 3, epoch: 0, baseSequence: 2 });
    s.submit(TP, { id: 4, recordCount: 1 }, 2);
    // Still unknown at its deadline: it fails (outcome unknown) instead of moving to the new epoch.
    const b = s.onResult(TP, 3, lost, 10_000);
    expect(types(b)).toEqual(['fail:3', 'identity:7/1', 'send:4']);
    expect(only(b, 'fail')[0].outcomeUnknown).toBe(true);
  });

  it('a late request of the old epoch is fenced by the broker after the move (model broker)', () => {
    const broker = new ModelBroker();
    const s = mk();
    const send = (a: SequencerAction[]) => only(a, 'send')[0];
    const x1 = send(s.submit(TP, { id: 1, recordCount: 1 }, 0));
    s.onResult(TP, 1, ok(Number(broker.produce('t', { producerId: x1.producerId, epoch: x1.epoch, firstSeq: 0, lastSeq: 0, payload: 1 }).baseOffset)), 0);
    const x2 = send(s.submit(TP, { id: 2, recordCount: 1 }, 0));
    s.onResult(TP, 2, lost, 1); // the request is stuck somewhere on the way
    s.onResult(TP, 2, lost, 10_000); // given up: outcome unknown, the partition moves
    const x3 = send(s.submit(TP, { id: 3, recordCount: 1 }, 10_001));
    expect([x3.epoch, x3.baseSequence]).toEqual([1, 0]);
    broker.produce('t', { producerId: x3.producerId, epoch: x3.epoch, firstSeq: 0, lastSeq: 0, payload: 3 });
    // The stuck copy of batch 2 arrives now: refused (47), so it cannot land behind batch 3.
    expect(broker.produce('t', { producerId: x2.producerId, epoch: x2.epoch, firstSeq: x2.baseSequence, lastSeq: x2.baseSequence, payload: 2 }).errorCode).toBe(47);
    expect(broker.log('t')).toEqual([1, 3]);
  });
});

describe('Sequencer: re-stamped only after a definite answer (review, minor)', () => {
  it('a batch sent behind a refused one whose answer is LOST keeps its stamp (the broker may have written it) and the partition moves instead', () => {
    // The broker lost the producer's state (KIP-360: any sequence accepted). F is refused (too
    // large); G, sent behind it, is written at its own sequence but its answer is lost.
    const broker = new ModelBroker();
    const s = mk({ deliveryTimeoutMs: 100_000 });
    const sent: Extract<SequencerAction, { type: 'send' | 'resend' }>[] = [];
    const run = (a: SequencerAction[]) => sent.push(...a.filter((x): x is Extract<SequencerAction, { type: 'send' | 'resend' }> => x.type === 'send' || x.type === 'resend'));
    const write = (x: { producerId: bigint; epoch: number; baseSequence: number; id: number }) => broker.produce('t', { producerId: x.producerId, epoch: x.epoch, firstSeq: x.baseSequence, lastSeq: x.baseSequence, payload: x.id });
    run(s.submit(TP, { id: 1, recordCount: 1 }, 0));
    const e1 = sent.shift()!;
    s.onResult(TP, 1, ok(Number(write(e1).baseOffset)), 0);
    broker.forget(7n, 't');
    run(s.submitAll([{ tp: TP, id: 2, recordCount: 1 }, { tp: TP, id: 3, recordCount: 1 }], 1));
    const [f, g] = sent.splice(0, 2);
    expect([f.id, g.id]).toEqual([2, 3]);
    run(s.onResult(TP, 2, { kind: 'fatal', errorCode: ErrorCode.MESSAGE_TOO_LARGE }, 2));
    write(g); // written (no state: any sequence), answer lost
    run(s.onResult(TP, 3, lost, 3));
    // Not re-stamped: its next attempt is a re-send of the same stamp.
    for (let guard = 0; sent.length > 0 && guard < 20; guard++) {
      const x = sent.shift()!;
      expect(x.type === 'send' && x.id === 3).toBe(false);
      const ans = write(x);
      run(s.onResult(TP, x.id, ans.errorCode === 0 ? ok(Number(ans.baseOffset)) : { kind: 'fatal', errorCode: ans.errorCode }, 4 + guard));
    }
    expect(broker.log('t')).toEqual([1, 3]); // G once
    expect(s.pendingTotal()).toBe(0);
    run(s.submit(TP, { id: 4, recordCount: 1 }, 100));
    expect(sent[0]).toMatchObject({ type: 'send', id: 4, epoch: 1, baseSequence: 0 }); // the partition moved on
  });

  it('a head batch answered OUT_OF_ORDER after a lost answer is not re-stamped either (it fails, outcome unknown)', () => {
    const s = mk();
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    const r = only(s.onResult(TP, 1, lost, 1), 'resend')[0];
    const a = s.onResult(TP, 1, { kind: 'fatal', errorCode: 45 }, r.notBefore);
    expect(only(a, 'send')).toEqual([]);
    expect(only(a, 'fail')).toEqual([{ type: 'fail', tp: TP, id: 1, errorCode: 45, outcomeUnknown: true }]);
  });
});

// ---------------------------------------------------------------------------------------------
// Property test: the Sequencer against a MODEL broker over a faulty network.
// ---------------------------------------------------------------------------------------------

type Fault = 'ok' | 'lose_response' | 'drop_request' | 'not_leader' | 'too_large';
type Cmd =
  | { c: 'submit'; tp: number; records: number }
  | { c: 'deliver'; tp: number; fault: Fault }
  | { c: 'advance'; ms: number };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ c: fc.constant('submit' as const), tp: fc.integer({ min: 0, max: 2 }), records: fc.integer({ min: 1, max: 4 }) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      c: fc.constant('deliver' as const),
      tp: fc.integer({ min: 0, max: 2 }),
      fault: fc.oneof(
        { weight: 6, arbitrary: fc.constant<Fault>('ok') },
        { weight: 2, arbitrary: fc.constant<Fault>('lose_response') },
        { weight: 2, arbitrary: fc.constant<Fault>('drop_request') },
        { weight: 2, arbitrary: fc.constant<Fault>('not_leader') },
        { weight: 1, arbitrary: fc.constant<Fault>('too_large') },
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ c: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 4000 }) }) },
);

interface Req {
  id: number;
  producerId: bigint;
  epoch: number;
  baseSequence: number;
  notBefore: number;
}

interface Stats {
  duplicatesAnswered: number;
  resends: number;
  bumps: number;
  fails: number;
  resolved: number;
  restamps: number;
  endTime: number;
  /** Batches held past their deadline (told "retry", kept under their stamp). */
  held: number;
  /** Fresh producer ids handed out (`need_producer_id`). */
  allocations: number;
  /** Liveness runs where the dead partition still had an unresolved batch when the fresh ones were written. */
  deadStillPending: number;
}

interface ScenarioOptions {
  unknownHoldMs?: number;
  /** Epochs per producer id before a partition needs a fresh one (small: exercises allocation). */
  maxEpoch?: number;
  /**
   * Liveness: at the end, partition 2 becomes unreachable for good (every attempt lost, held as
   * long as it takes) while partitions 0 and 1 heal; then one fresh batch on each of them must be
   * written within its deliveryTimeout, whatever partition 2 still holds.
   */
  deadPartition?: boolean;
}

function runScenario(cmds: Cmd[], maxInFlight: number, opt: ScenarioOptions = {}): Stats {
  const unknownHoldMs = opt.unknownHoldMs ?? 0;
  let allocations = 0;
  let deadStillPending = 0;
  let held = 0;
  let duplicatesAnswered = 0;
  let resends = 0;
  let restamps = 0;
  const broker = new ModelBroker();
  const s = new Sequencer({ producer: { producerId: 1n, epoch: 0 }, maxInFlight, retryBackoff: { initial: 50, max: 400 }, deliveryTimeoutMs: 10_000, unknownHoldMs, maxEpoch: opt.maxEpoch });
  const tps: TopicPartition[] = [0, 1, 2].map((p) => ({ topic: 'x', partition: p }));
  const tpName = (tp: TopicPartition) => `${tp.topic}-${tp.partition}`;
  const wire = new Map<string, Req[]>(tps.map((tp) => [tpName(tp), []]));
  const records = new Map<number, number>();
  const tpOf = new Map<number, string>();
  const stamp = new Map<number, { producerId: bigint; epoch: number; baseSequence: number }>();
  const settled = new Map<number, { kind: 'resolve'; offset: bigint } | { kind: 'fail'; unknown: boolean }>();
  let now = 0;
  let nextId = 1;
  let pid = 1n;
  let bumps = 0;
  /** Per partition: its identity and every producer id it used. */
  const identity = new Map<string, { producerId: bigint; epoch: number }>();
  const usedIds = new Map<string, Set<bigint>>();

  const handle = (actions: SequencerAction[]): void => {
    for (const a of actions) {
      switch (a.type) {
        case 'send':
        case 'resend': {
          const prev = stamp.get(a.id);
          // Every stamp is the partition's current identity, announced before it.
          if (a.type === 'send') expect({ producerId: a.producerId, epoch: a.epoch }).toEqual(identity.get(tpName(a.tp)));
          if (a.type === 'send') {
            expect(a.restamped === true).toBe(prev !== undefined);
            if (prev) {
              // Re-stamped after a definitive rejection (OUT_OF_ORDER, or sent behind a batch the
              // broker refused for good): only with a different stamp, and only if it is not in the log.
              expect(prev.producerId !== a.producerId || prev.epoch !== a.epoch || prev.baseSequence !== a.baseSequence).toBe(true);
              expect(broker.log(tpName(a.tp))).not.toContain(a.id);
              restamps++;
            }
            stamp.set(a.id, { producerId: a.producerId, epoch: a.epoch, baseSequence: a.baseSequence });
          } else {
            // Rule 2: a retry carries the byte-identical stamp.
            expect({ producerId: a.producerId, epoch: a.epoch, baseSequence: a.baseSequence }).toEqual(prev);
          }
          if (a.type === 'resend') resends++;
          const q = wire.get(tpName(a.tp))!;
          q.push({ id: a.id, producerId: a.producerId, epoch: a.epoch, baseSequence: a.baseSequence, notBefore: a.type === 'resend' ? a.notBefore : now });
          // Rule 1: at most maxInFlight requests per partition on the wire.
          expect(q.length).toBeLessThanOrEqual(maxInFlight);
          break;
        }
        case 'resolve':
          expect(settled.has(a.id)).toBe(false);
          settled.set(a.id, { kind: 'resolve', offset: a.baseOffset });
          break;
        case 'fail':
          expect(settled.has(a.id)).toBe(false);
          if (a.held) {
            // Not final: the client was told to retry; the batch stays under its stamp.
            expect(a.outcomeUnknown).toBe(true);
            expect([7, 13, 6]).toContain(a.errorCode);
            held++;
            break;
          }
          settled.set(a.id, { kind: 'fail', unknown: a.outcomeUnknown });
          break;
        case 'identity': {
          // Rule 4, per partition: a partition moves only when nothing of it is on the wire.
          const k = tpName(a.tp);
          expect(wire.get(k)!.length).toBe(0);
          const before = identity.get(k);
          const used = usedIds.get(k) ?? new Set<bigint>();
          usedIds.set(k, used);
          // A higher epoch of the same id (the broker fences the old one), or an id it never used.
          // (A partition forgotten while it stood untouched at the newest id comes back with the newest id:
          // the same identity, or an id it never used.)
          if (a.reason === 'first' && before && before.producerId === a.producerId) expect(a.epoch).toBe(before.epoch);
          else if (a.reason !== 'first' && before && before.producerId === a.producerId) expect(a.epoch).toBe(before.epoch + 1);
          else expect(used.has(a.producerId)).toBe(false);
          if (!before) expect(a.reason).toBe('first');
          used.add(a.producerId);
          identity.set(k, { producerId: a.producerId, epoch: a.epoch });
          if (a.reason !== 'first') bumps++;
          break;
        }
        case 'need_producer_id':
          allocations++;
          pid += 1n;
          handle(s.addProducerId(pid, 0, now));
          break;
      }
    }
  };

  const deliver = (tp: TopicPartition, fault: Fault): void => {
    const q = wire.get(tpName(tp))!;
    const req = q.shift();
    if (!req) return;
    now = Math.max(now, req.notBefore);
    const count = records.get(req.id)!;
    const batch = { producerId: req.producerId, epoch: req.epoch, firstSeq: req.baseSequence, lastSeq: req.baseSequence + count - 1, payload: req.id };
    let outcome: BatchOutcome;
    if (fault === 'drop_request') outcome = { kind: 'unknown', reason: 'connection_lost' };
    else if (fault === 'not_leader') outcome = { kind: 'retriable', reason: 'not_leader_or_follower', errorCode: 6 };
    else if (fault === 'too_large') outcome = { kind: 'fatal', errorCode: 10 };
    else {
      const ans = broker.produce(tpName(tp), batch);
      if (ans.duplicate) duplicatesAnswered++;
      if (fault === 'lose_response') outcome = { kind: 'unknown', reason: 'timeout' };
      else outcome = ans.errorCode === 0 ? { kind: 'ok', baseOffset: ans.baseOffset, logAppendTime: -1n } : { kind: 'fatal', errorCode: ans.errorCode };
    }
    handle(s.onResult(tp, req.id, outcome, now));
  };

  for (const cmd of cmds) {
    if (cmd.c === 'submit') {
      const id = nextId++;
      records.set(id, cmd.records);
      tpOf.set(id, tpName(tps[cmd.tp]));
      handle(s.submit(tps[cmd.tp], { id, recordCount: cmd.records }, now));
    } else if (cmd.c === 'deliver') deliver(tps[cmd.tp], cmd.fault);
    else {
      now += cmd.ms;
      handle(s.tick(now));
    }
    expect(s.inFlightTotal()).toBe([...wire.values()].reduce((n, q) => n + q.length, 0));
  }
  if (opt.deadPartition) {
    const dead = tps[2];
    const live = [tps[0], tps[1]];
    const pendingOn = (tp: TopicPartition): number => [...tpOf].filter(([id, k]) => k === tpName(tp) && !settled.has(id)).length;
    const step = (): void => {
      const busy = live.find((tp) => wire.get(tpName(tp))!.length > 0);
      if (busy) deliver(busy, 'ok');
      else if (wire.get(tpName(dead))!.length > 0) deliver(dead, 'drop_request');
      else {
        now += 1000;
        handle(s.tick(now));
      }
    };
    for (let guard = 0; guard < 10_000 && live.some((tp) => pendingOn(tp) > 0 || wire.get(tpName(tp))!.length > 0); guard++) step();
    for (const tp of live) expect(pendingOn(tp)).toBe(0);
    const t0 = now;
    const fresh = live.map((tp) => {
      const id = nextId++;
      records.set(id, 1);
      tpOf.set(id, tpName(tp));
      handle(s.submit(tp, { id, recordCount: 1 }, now));
      return id;
    });
    for (let guard = 0; guard < 10_000 && now < t0 + 10_000 && fresh.some((id) => !settled.has(id)); guard++) step();
    // Written, not timed out waiting for the dead partition.
    for (const id of fresh) expect(settled.get(id)).toMatchObject({ kind: 'resolve' });
    if (pendingOn(dead) > 0) deadStillPending++;
  }

  // Heal the network and run to quiescence.
  for (let guard = 0; guard < 10_000 && (s.pendingTotal() > 0 || [...wire.values()].some((q) => q.length > 0)); guard++) {
    const busy = tps.find((tp) => wire.get(tpName(tp))!.length > 0);
    if (busy) deliver(busy, 'ok');
    else {
      now += 1000;
      handle(s.tick(now));
    }
  }

  // Every batch settled exactly once.
  expect(s.pendingTotal()).toBe(0);
  expect(settled.size).toBe(nextId - 1);
  for (const tp of tps) {
    const log = broker.log(tpName(tp));
    // No duplicate writes.
    expect(new Set(log).size).toBe(log.length);
    // Log order = submission order (ids increase with submission).
    for (let i = 1; i < log.length; i++) expect(log[i]).toBeGreaterThan(log[i - 1]);
    log.forEach((id, offset) => {
      const st = settled.get(id)!;
      // Written batches are resolved with their offset, or failed as "outcome unknown".
      if (st.kind === 'resolve') expect(st.offset).toBe(BigInt(offset));
      else expect(st.unknown).toBe(true);
    });
  }
  for (const [id, st] of settled) {
    if (st.kind === 'resolve') {
      const tpOf = [...broker.logs.entries()].find(([, log]) => log.includes(id));
      expect(tpOf).toBeDefined(); // resolved ⇒ written
    }
  }
  const fails = [...settled.values()].filter((x) => x.kind === 'fail').length;
  return { duplicatesAnswered, resends, bumps, fails, resolved: settled.size - fails, restamps, endTime: now, held, allocations, deadStillPending };
}

describe('Sequencer property: model broker + faulty network', () => {
  it('never writes twice, keeps order, settles every batch exactly once', () => {
    const total: Stats = { duplicatesAnswered: 0, resends: 0, bumps: 0, fails: 0, resolved: 0, restamps: 0, endTime: 0, held: 0, allocations: 0, deadStillPending: 0 };
    fc.assert(
      fc.property(fc.array(cmdArb, { minLength: 1, maxLength: 200, size: 'max' }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 3 }), (cmds, maxInFlight, maxEpoch) => {
        const st = runScenario(cmds, maxInFlight, { maxEpoch });
        total.allocations += st.allocations;
        total.duplicatesAnswered += st.duplicatesAnswered;
        total.resends += st.resends;
        total.bumps += st.bumps;
        total.fails += st.fails;
        total.resolved += st.resolved;
        total.restamps += st.restamps;
      }),
      { numRuns: Number(process.env.IDEMPO_PROP_RUNS ?? 500) },
    );
    // The generator really exercises broker-side dedup, re-sends, epoch bumps and failures.
    expect(total.duplicatesAnswered).toBeGreaterThan(200);
    expect(total.resends).toBeGreaterThan(1000);
    expect(total.bumps).toBeGreaterThan(100);
    expect(total.fails).toBeGreaterThan(100);
    expect(total.resolved).toBeGreaterThan(5000);
    expect(total.restamps).toBeGreaterThan(50);
    expect(total.allocations).toBeGreaterThan(20);
    if (process.env.IDEMPO_TEST_STATS) console.log(total);
  });

  it('transient faults alone (no fatal error, deadline not reached) resolve every batch', () => {
    fc.assert(
      fc.property(
        fc.array(
          cmdArb.filter((c) => !(c.c === 'deliver' && c.fault === 'too_large') && c.c !== 'advance'),
          { minLength: 1, maxLength: 80, size: 'max' },
        ),
        (cmds) => {
          const st = runScenario(cmds, 5);
          if (st.endTime < 10_000) {
            expect(st.fails).toBe(0);
            expect(st.bumps).toBe(0);
          }
        },
      ),
      { numRuns: Number(process.env.IDEMPO_PROP_RUNS ?? 300) },
    );
  });
});

describe('Sequencer property: unknown outcomes held for the client (unknownHoldMs)', () => {
  it('never writes twice, keeps order; every batch held past its deadline is settled once, finally', () => {
    let held = 0;
    fc.assert(
      fc.property(fc.array(cmdArb, { minLength: 1, maxLength: 200, size: 'max' }), fc.integer({ min: 1, max: 5 }), (cmds, maxInFlight) => {
        held += runScenario(cmds, maxInFlight, { unknownHoldMs: 20_000 }).held;
      }),
      { numRuns: Number(process.env.IDEMPO_PROP_RUNS ?? 300) },
    );
    expect(held).toBeGreaterThan(20);
  });
});

describe('Sequencer property: one unreachable partition never stalls the others (issue 7)', () => {
  it('with partition 2 unreachable and its batches held, partitions 0 and 1 still write new batches within their deliveryTimeout', () => {
    let deadStillPending = 0;
    let bumps = 0;
    fc.assert(
      fc.property(fc.array(cmdArb, { minLength: 1, maxLength: 200, size: 'max' }), fc.integer({ min: 1, max: 5 }), (cmds, maxInFlight) => {
        const st = runScenario(cmds, maxInFlight, { unknownHoldMs: 1e9, deadPartition: true, maxEpoch: 2 });
        deadStillPending += st.deadStillPending;
        bumps += st.bumps;
      }),
      { numRuns: Number(process.env.IDEMPO_PROP_RUNS ?? 300) },
    );
    // The interesting case happens: the dead partition still held a batch while the others moved on.
    expect(deadStillPending).toBeGreaterThan(50);
    expect(bumps).toBeGreaterThan(50);
  });
});

describe('Sequencer: one request is one unit (issue 8)', () => {
  it('submitAll checks every batch before changing anything: a bad one leaves the Sequencer as it was', () => {
    const s = mk();
    expect(() => s.submitAll([{ tp: TP, id: 1, recordCount: 2 }, { tp: TP1, id: 2, recordCount: 0 }], 0)).toThrow(RangeError);
    expect(() => s.submitAll([{ tp: TP, id: 3, recordCount: 1 }, { tp: TP1, id: 3, recordCount: 1 }], 0)).toThrow(/already submitted/);
    expect(s.pendingTotal()).toBe(0);
    expect(s.inFlightTotal()).toBe(0);
    // Nothing is stuck: the next request goes out at once, ids 1 and 3 are free again.
    expect(types(s.submitAll([{ tp: TP, id: 1, recordCount: 2 }, { tp: TP1, id: 3, recordCount: 1 }], 1))).toEqual(['send:1', 'send:3']);
  });
});

describe('Sequencer: a batch the broker refuses for good stays on its partition (issue 8)', () => {
  it('MESSAGE_TOO_LARGE on one partition: no epoch bump; the batches behind it take its sequences, other partitions go on', () => {
    const s = mk();
    warm(s, TP, 100);
    warm(s, TP1, 101);
    for (let i = 1; i <= 3; i++) s.submit(TP, { id: i, recordCount: 2 }, 1); // sequences 1, 3, 5
    const a = s.onResult(TP, 1, { kind: 'fatal', errorCode: ErrorCode.MESSAGE_TOO_LARGE }, 2);
    expect(a).toEqual([{ type: 'fail', tp: TP, id: 1, errorCode: 10, outcomeUnknown: false }]);
    expect(s.switchPending(TP)).toBeNull();
    // The other partition is not held up.
    expect(types(s.submit(TP1, { id: 4, recordCount: 1 }, 3))).toEqual(['send:4']);
    // Batches 2 and 3, sent behind it, are answered 45 (the broker expects sequence 1): they are
    // re-stamped from sequence 1 once both answered, under the same epoch.
    expect(s.onResult(TP, 2, { kind: 'fatal', errorCode: 45 }, 4)).toEqual([]);
    const b = s.onResult(TP, 3, { kind: 'fatal', errorCode: 45 }, 5);
    expect(b).toEqual([
      { type: 'send', tp: TP, id: 2, producerId: 7n, epoch: 0, baseSequence: 1, restamped: true },
      { type: 'send', tp: TP, id: 3, producerId: 7n, epoch: 0, baseSequence: 3, restamped: true },
    ]);
    expect(types(s.onResult(TP, 2, ok(1), 6))).toEqual(['resolve:2']);
    expect(types(s.onResult(TP, 3, ok(3), 6))).toEqual(['resolve:3']);
    expect(s.switchPending(TP)).toBeNull();
  });

  it('against the model broker: the log holds the other batches once, in order, with no new epoch', () => {
    const broker = new ModelBroker();
    const s = mk();
    const recs = new Map<number, number>();
    const wire: Extract<SequencerAction, { type: 'send' | 'resend' }>[] = [];
    const run = (acts: SequencerAction[]) => wire.push(...acts.filter((x): x is Extract<SequencerAction, { type: 'send' | 'resend' }> => x.type === 'send' || x.type === 'resend'));
    for (let id = 1; id <= 8; id++) {
      recs.set(id, 1);
      run(s.submit(TP, { id, recordCount: 1 }, 0));
    }
    for (let guard = 0; wire.length > 0 && guard < 100; guard++) {
      const r = wire.shift()!;
      // Batch 3 is too large, always.
      if (r.id === 3) {
        run(s.onResult(TP, 3, { kind: 'fatal', errorCode: ErrorCode.MESSAGE_TOO_LARGE }, 1));
        continue;
      }
      const ans = broker.produce('t', { producerId: r.producerId, epoch: r.epoch, firstSeq: r.baseSequence, lastSeq: r.baseSequence, payload: r.id });
      run(s.onResult(TP, r.id, ans.errorCode === 0 ? ok(Number(ans.baseOffset)) : { kind: 'fatal', errorCode: ans.errorCode }, 1));
    }
    expect(broker.log('t')).toEqual([1, 2, 4, 5, 6, 7, 8]);
    expect(s.currentProducer()).toEqual({ producerId: 7n, epoch: 0 });
    expect(s.pendingTotal()).toBe(0);
  });
});

describe('Sequencer: outcome unknown at the deadline (issue 7.2)', () => {
  it('holds the batch under its stamp: the client is told to retry, its retry re-sends the SAME stamp, the answer settles it', () => {
    const s = mk({ unknownHoldMs: 60_000 });
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    const r = only(s.onResult(TP, 1, lost, 1), 'resend')[0];
    expect(r).toMatchObject({ id: 1, epoch: 0, baseSequence: 0 });
    // Still unknown at the deadline (10 s): not a final failure.
    const a = s.onResult(TP, 1, lost, 10_000);
    expect(only(a, 'fail')).toEqual([{ type: 'fail', tp: TP, id: 1, errorCode: 7, outcomeUnknown: true, held: true }]);
    expect(s.isHeld(1)).toBe(true);
    expect(s.switchPending(TP)).toBeNull(); // no new epoch while its retry can come
    // Later batches of the partition wait behind it; their own deadline fails them, never sent.
    s.submit(TP, { id: 2, recordCount: 1 }, 10_001);
    // The client retries: the held batch goes out again at once, same stamp.
    const again = only([...a, ...s.retryHeld(1, 10_002), ...s.tick(10_003)], 'resend').pop()!;
    expect(again).toMatchObject({ id: 1, producerId: 7n, epoch: 0, baseSequence: 0 });
    // The broker answers (it was written: a duplicate with its offset): final, then the rest goes on.
    const b = s.onResult(TP, 1, ok(41), 10_004);
    expect(types(b)).toEqual(['resolve:1', 'send:2']);
    expect(only(b, 'send')[0].baseSequence).toBe(1);
  });

  it('a held batch fails for good only when its hold ends; then (and only then) a new epoch', () => {
    const s = mk({ unknownHoldMs: 5_000 });
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    s.onResult(TP, 1, lost, 1);
    expect(only(s.onResult(TP, 1, lost, 10_000), 'fail')[0].held).toBe(true);
    expect(s.drained(TP)).toBe(false);
    let acts: SequencerAction[] = [];
    for (let t = 10_100; t <= 15_100; t += 500) {
      for (const x of [...acts]) if (x.type === 'resend') acts.push(...s.onResult(TP, x.id, lost, t));
      acts = s.tick(t);
    }
    const all = [...acts, ...s.onResult(TP, 1, lost, 15_200), ...s.tick(15_300)];
    expect(only(all, 'fail')).toEqual([{ type: 'fail', tp: TP, id: 1, errorCode: 7, outcomeUnknown: true }]);
    expect(s.switchPending(TP)).toBe('sequence_hole');
  });
});

describe('Sequencer: the broker losing the producer state (KIP-360, issue 7.5)', () => {
  it('after a quiet spell longer than sessionIdleMs the next batch goes alone, then pipelining resumes', () => {
    const s = mk({ sessionIdleMs: 30_000 });
    warm(s, TP, 100);
    expect(types([1, 2].flatMap((id) => s.submit(TP, { id, recordCount: 1 }, 10)))).toEqual(['send:1', 'send:2']);
    s.onResult(TP, 1, ok(1), 11);
    s.onResult(TP, 2, ok(2), 11);
    // 40 s later the broker may have expired the producer id: one batch first.
    expect(types([3, 4].flatMap((id) => s.submit(TP, { id, recordCount: 1 }, 40_100)))).toEqual(['send:3']);
    expect(types(s.onResult(TP, 3, ok(3), 40_101))).toEqual(['resolve:3', 'send:4']);
  });

  it('against the model broker: after the broker forgot the producer, a lost first batch cannot land behind the next one', () => {
    // The broker forgets the producer while the partition is idle; then 3 batches come. The first
    // request is lost on the way. Pipelined, the second would create fresh state at its own
    // sequence and the first, re-sent, would land after it (or never). Sent alone, it cannot.
    const scenario = (sessionIdleMs: number): number[] => {
      const broker = new ModelBroker();
      const s = mk({ sessionIdleMs, deliveryTimeoutMs: 600_000 });
      const wire: Extract<SequencerAction, { type: 'send' | 'resend' }>[] = [];
      const run = (acts: SequencerAction[]) => wire.push(...acts.filter((x): x is Extract<SequencerAction, { type: 'send' | 'resend' }> => x.type === 'send' || x.type === 'resend'));
      const deliver = (now: number, lose = false) => {
        const r = wire.shift()!;
        if (lose) return run(s.onResult(TP, r.id, lost, now));
        const ans = broker.produce('t', { producerId: r.producerId, epoch: r.epoch, firstSeq: r.baseSequence, lastSeq: r.baseSequence, payload: r.id });
        run(s.onResult(TP, r.id, ans.errorCode === 0 ? ok(Number(ans.baseOffset)) : { kind: 'fatal', errorCode: ans.errorCode }, now));
      };
      run(s.submit(TP, { id: 1, recordCount: 1 }, 0));
      deliver(1);
      broker.forget(7n, 't'); // producer.id.expiration.ms passed
      for (const id of [2, 3, 4]) run(s.submit(TP, { id, recordCount: 1 }, 120_000));
      deliver(120_001, true); // batch 2's request is lost
      for (let guard = 0; wire.length > 0 && guard < 100; guard++) {
        deliver(120_002 + guard);
        for (const x of s.tick(130_000 + guard * 1000)) run([x]);
      }
      return broker.log('t');
    };
    expect(scenario(60_000)).toEqual([1, 2, 3, 4]);
    // Without the rule (the old Sequencer pipelined at once): batch 3 is written before batch 2.
    expect(scenario(Number.MAX_SAFE_INTEGER)).not.toEqual([1, 2, 3, 4]);
  });

  it('a topic created again (new topic id, told by the driver): its partitions send one batch first', () => {
    const s = mk();
    warm(s, TP, 100);
    warm(s, { topic: 'u', partition: 0 }, 101);
    s.topicRecreated('t');
    expect(s.stateLosses).toBe(1);
    expect(types([1, 2].flatMap((id) => s.submit(TP, { id, recordCount: 1 }, 1)))).toEqual(['send:1']);
    expect(types([3, 4].flatMap((id) => s.submit({ topic: 'u', partition: 0 }, { id, recordCount: 1 }, 1)))).toEqual(['send:3', 'send:4']);
  });

  it("logStartOffset past the last acknowledged batch (retention removed the producer's state): the next batch goes alone", () => {
    const s = mk();
    warm(s, TP, 100);
    s.submit(TP, { id: 1, recordCount: 1 }, 1);
    s.onResult(TP, 1, ok(5), 2, 0n);
    expect(types([2, 3].flatMap((id) => s.submit(TP, { id, recordCount: 1 }, 3)))).toEqual(['send:2', 'send:3']);
    s.onResult(TP, 2, ok(6), 4, 0n);
    s.onResult(TP, 3, ok(7), 4, 8n); // everything of ours deleted
    expect(s.stateLosses).toBe(1);
    expect(types([4, 5].flatMap((id) => s.submit(TP, { id, recordCount: 1 }, 5)))).toEqual(['send:4']);
  });

  it('offsets going backwards for a later sequence (partition recreated) are noticed; duplicates with old offsets are not', () => {
    const s = mk();
    warm(s, TP, 100);
    for (const id of [1, 2]) s.submit(TP, { id, recordCount: 1 }, 1);
    s.onResult(TP, 1, lost, 2); // its answer lost; 2 is written after it
    const r = only(s.onResult(TP, 2, ok(11), 2), 'resend')[0];
    s.onResult(TP, r.id, ok(10), 3_001); // the re-send is a duplicate: the original, lower offset
    expect(s.stateLosses).toBe(0);
    s.submit(TP, { id: 3, recordCount: 1 }, 3_002);
    s.onResult(TP, 3, ok(0), 3_003); // the topic was recreated: offset 0 again
    expect(s.stateLosses).toBe(1);
  });
});

describe('Sequencer: snapshot and restore (the sidecar restart)', () => {
  it('keeps the producer, the next sequence and only unresolved batches', () => {
    const s = mk();
    warm(s, TP, 1, 2);
    s.submit(TP, { id: 2, recordCount: 3 }, 0);
    s.submit(TP, { id: 3, recordCount: 1 }, 0);
    s.onResult(TP, 3, ok(5), 1); // acknowledged while 2 is unresolved: not part of the snapshot
    s.onResult(TP, 2, lost, 1);
    const snap = s.snapshot();
    expect(snap.producer).toEqual({ producerId: 7n, epoch: 0 });
    expect(snap.partitions).toEqual([
      {
        tp: TP,
        producer: { producerId: 7n, epoch: 0 },
        switchPending: null,
        nextSeq: 6,
        batches: [{ id: 2, recordCount: 3, stamp: { producerId: 7n, epoch: 0, baseSequence: 2 }, restamped: false }],
      },
    ]);
  });

  it('re-sends a restored stamped batch under its original stamp, alone, then continues the sequence', () => {
    const s = mk();
    warm(s, TP, 1, 2);
    for (const id of [2, 3]) s.submit(TP, { id, recordCount: 1 }, 0);
    s.submit(TP, { id: 4, recordCount: 1 }, 0); // sent too (3 in flight)
    const snap = s.snapshot();

    const r = mk({ producer: null });
    const first = r.restore(snap, 1_000);
    expect(types(first)).toEqual(['resend:2']);
    const probe = only(first, 'resend')[0];
    expect([probe.producerId, probe.epoch, probe.baseSequence, probe.notBefore >= 1_000]).toEqual([7n, 0, 2, true]);
    expect(r.currentProducer()).toEqual({ producerId: 7n, epoch: 0 });
    // A new batch waits behind the restored ones, and takes the sequence after them.
    expect(r.submit(TP, { id: 10, recordCount: 1 }, 1_000)).toEqual([]);
    const next = r.onResult(TP, 2, ok(2), 1_100);
    expect(types(next)).toEqual(['resolve:2', 'resend:3', 'resend:4', 'send:10']);
    expect(only(next, 'resend').map((a) => a.baseSequence)).toEqual([3, 4]);
    expect(only(next, 'send')[0].baseSequence).toBe(5);
  });

  it('restores queued batches behind stamped ones, per-partition identities and a pending move', () => {
    const s = mk();
    warm(s, TP, 1);
    warm(s, TP1, 5);
    s.submit(TP1, { id: 6, recordCount: 1 }, 0);
    s.onResult(TP1, 6, { kind: 'fatal', errorCode: ErrorCode.UNKNOWN_SERVER_ERROR }, 0);
    s.submit(TP1, { id: 7, recordCount: 1 }, 0); // TP1 moved to epoch 1
    s.submit(TP, { id: 2, recordCount: 1 }, 0);
    s.submit(TP, { id: 4, recordCount: 1 }, 0);
    s.onResult(TP, 2, { kind: 'fatal', errorCode: ErrorCode.UNKNOWN_SERVER_ERROR }, 1); // a hole that may be in the log: TP must move
    s.submit(TP, { id: 3, recordCount: 1 }, 1); // queued: no new first sends before TP moves
    const snap = s.snapshot();
    const [p0, p1] = snap.partitions;
    expect([p0.switchPending, p0.producer, p1.switchPending, p1.producer]).toEqual(['sequence_hole', { producerId: 7n, epoch: 0 }, null, { producerId: 7n, epoch: 1 }]);
    expect(p0.batches).toEqual([
      { id: 4, recordCount: 1, stamp: { producerId: 7n, epoch: 0, baseSequence: 2 }, restamped: false },
      { id: 3, recordCount: 1, stamp: null, restamped: false },
    ]);
    const r = mk({ producer: null });
    expect(types(r.restore(snap, 0))).toEqual(['resend:4', 'resend:7']);
    // TP moves once its restored batch is decided; TP1 keeps epoch 1.
    expect(acts(r.onResult(TP, 4, ok(3), 200))).toEqual([
      { type: 'resolve', tp: TP, id: 4, baseOffset: 3n, logAppendTime: -1n },
      { type: 'identity', tp: TP, producerId: 7n, epoch: 1, reason: 'sequence_hole' },
      { type: 'send', tp: TP, id: 3, producerId: 7n, epoch: 1, baseSequence: 0 },
    ]);
    expect(r.identityOf(TP1)).toEqual({ producerId: 7n, epoch: 1 });
  });

  it('asks for a producer id when restored without one', () => {
    const s = mk({ producer: null });
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    const r = mk({ producer: null });
    expect(types(r.restore(s.snapshot(), 0))).toEqual(['need_producer_id']);
  });

  it('refuses to restore into a Sequencer that has batches', () => {
    const s = mk();
    s.submit(TP, { id: 1, recordCount: 1 }, 0);
    expect(() => s.restore(mk().snapshot(), 0)).toThrow(/has seen no batch/);
  });
});
