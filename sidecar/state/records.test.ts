import { describe, expect, it } from 'vitest';
import { Sequencer, type SequencerAction, type TopicPartition } from '../idempotence/sequencer.js';
import type { DedupKey } from '../idempotence/dedup.js';
import { decodeRecord, encodeRecord, replay, snapshotRecords, type AcceptedBatch, type StateRecord } from './records.js';

const TP: TopicPartition = { topic: 't', partition: 0 };
const TP1: TopicPartition = { topic: 't', partition: 1 };
const P7 = { producerId: 7n, epoch: 0 };
const WINDOW = 60_000;
/** Any fingerprint value: the journal stores whatever type DedupKey uses (bigint, string or Buffer). */
const fp = (n: bigint): DedupKey['fingerprint'] => n as unknown as DedupKey['fingerprint'];

const accepted = (id: number, tp = TP, recordCount = 1, dedupKey: AcceptedBatch['dedupKey'] = null): StateRecord => ({
  type: 'accepted',
  batch: { id, tp, recordCount, version: 9, timeoutMs: 5_000, dedupKey, bytes: Buffer.from(`batch-${id}`) },
});
const stamped = (id: number, baseSequence: number, producer = P7): StateRecord => ({ type: 'stamped', id, stamp: { ...producer, baseSequence } });
const finished = (id: number, errorCode = 0, at = 1_000): StateRecord => ({ type: 'finished', id, result: { errorCode, baseOffset: BigInt(id * 10), logAppendTimeMs: -1n }, at });
/** Records survive the byte encoding unchanged. */
const roundTrip = (rs: StateRecord[]): StateRecord[] => rs.map((r) => decodeRecord(encodeRecord(r)));

describe('state records', () => {
  it('encode and decode every record type (bigints, buffers, batch bytes)', () => {
    const rs: StateRecord[] = [
      { type: 'producer', producer: { producerId: 2n ** 62n, epoch: 3 } },
      accepted(1, TP, 2, { topic: 't', partition: 0, fingerprint: fp(2n ** 127n + 5n) }),
      stamped(1, 5),
      finished(1),
      { type: 'brokers', brokers: [{ nodeId: 1, host: 'b1', port: 9092, listenPort: 40001 }] },
      accepted(2, { topic: '12n', partition: 1 }, 1, { topic: '12n', partition: 1, fingerprint: fp(5n) }), // strings stay strings
      { type: 'dedup', entries: [{ key: { topic: 't', partition: 0, fingerprint: fp(0xabcn) }, result: { errorCode: 0, baseOffset: 5n, logAppendTimeMs: -1n }, expiresAt: 9 }] },
      { type: 'dedup', entries: [] },
      { type: 'upstream', upstream: 'kafka-0.kafka:9092,kafka-1.kafka:9092' },
      { type: 'identity', tp: { topic: 'x', partition: 7 }, producer: { producerId: 9n, epoch: 32_766 } },
      {
        type: 'sequencer',
        producer: { producerId: 9n, epoch: 0 },
        partitions: [
          { tp: TP, nextSeq: 5, producer: { producerId: 8n, epoch: 2 }, switchPending: 'sequence_wrap' },
          { tp: TP1, nextSeq: 0, producer: null, switchPending: null },
        ],
        restamped: [4],
      },
    ];
    expect(roundTrip(rs)).toEqual(rs);
    expect(() => decodeRecord(Buffer.from([99, 0, 0, 0, 0]))).toThrow(/unknown record type/);
  });

  it('replays a journal: producer, next sequence per partition, unfinished batches in order, dedup results', () => {
    const key = { topic: 't', partition: 0, fingerprint: fp(1n) };
    const r = replay(
      roundTrip([
        { type: 'producer', producer: P7 },
        { type: 'identity', tp: TP, producer: P7 },
        accepted(1, TP, 2, key),
        stamped(1, 0),
        accepted(2, TP, 3),
        stamped(2, 2),
        accepted(3, TP1),
        accepted(4, TP), // queued
        finished(1, 0, 500),
      ]),
      WINDOW,
    );
    expect(r.sequencer.producer).toEqual(P7);
    const byTp = Object.fromEntries(r.sequencer.partitions.map((p) => [p.tp.partition, p]));
    expect([byTp[0].producer, byTp[0].switchPending, byTp[1].producer]).toEqual([P7, null, null]);
    expect(byTp[0].nextSeq).toBe(5);
    expect(byTp[0].batches.map((b) => [b.id, b.stamp?.baseSequence ?? null])).toEqual([
      [2, 2],
      [4, null],
    ]);
    expect(byTp[1].batches.map((b) => b.id)).toEqual([3]);
    // With the batch as received: a re-encoded retry is matched by content after the restart.
    expect(r.dedup).toEqual([{ key, result: { errorCode: 0, baseOffset: 10n, logAppendTimeMs: -1n }, expiresAt: 500 + WINDOW, bytes: Buffer.from('batch-1') }]);
    expect([...r.batches.keys()].sort()).toEqual([2, 3, 4]);
    expect(r.maxBatchId).toBe(4);
  });

  it('a batch that ended with its outcome unknown keeps a tombstone (its dedup entry with the retriable answer); a plain failure none', () => {
    const key = { topic: 't', partition: 0, fingerprint: fp(3n) };
    const other = { topic: 't', partition: 0, fingerprint: fp(4n) };
    const gaveUp: StateRecord = { type: 'finished', id: 1, result: { errorCode: 7, baseOffset: -1n, logAppendTimeMs: -1n }, at: 700, unknown: true };
    const rs = roundTrip([{ type: 'producer', producer: P7 }, accepted(1, TP, 1, key), stamped(1, 0), accepted(2, TP, 1, other), stamped(2, 1), gaveUp, finished(2, 10)]);
    expect(rs[5]).toEqual(gaveUp);
    expect(replay(rs, WINDOW).dedup).toEqual([{ key, result: { errorCode: 7, baseOffset: -1n, logAppendTimeMs: -1n }, expiresAt: 700 + WINDOW, bytes: Buffer.from('batch-1') }]);
    // A finished record written before the flag existed still decodes (no tail).
    expect(decodeRecord(encodeRecord(finished(3)))).toEqual(finished(3));
  });

  it('a success its client got in time (`known`) is dropped from the restored dedup entries, wherever it came from', () => {
    const k1 = { topic: 't', partition: 0, fingerprint: fp(1n) };
    const k2 = { topic: 't', partition: 0, fingerprint: fp(2n) };
    const k3 = { topic: 't', partition: 1, fingerprint: fp(3n) };
    const ok = (baseOffset: bigint) => ({ errorCode: 0, baseOffset, logAppendTimeMs: -1n });
    const rs = roundTrip([
      { type: 'dedup', entries: [{ key: k3, result: ok(30n), expiresAt: 9e12 }] }, // from a compaction
      { type: 'producer', producer: P7 },
      accepted(1, TP, 1, k1),
      stamped(1, 0),
      accepted(2, TP, 1, k2),
      stamped(2, 1),
      finished(1),
      finished(2),
      { type: 'known', tp: TP, baseOffset: 10n }, // batch 1's answer (offset 10) reached its client in time
      { type: 'known', tp: TP1, baseOffset: 30n },
    ]);
    expect(rs[8]).toEqual({ type: 'known', tp: TP, baseOffset: 10n });
    expect(replay(rs, WINDOW).dedup.map((e) => e.key)).toEqual([k2]);
  });

  it('a failed sent batch leaves a hole on ITS partition: the restored sequencer moves that partition first', () => {
    const start: StateRecord[] = [{ type: 'producer', producer: P7 }, { type: 'identity', tp: TP, producer: P7 }, { type: 'identity', tp: TP1, producer: P7 }];
    const r = replay([...start, accepted(1), stamped(1, 0), accepted(2, TP1), stamped(2, 0), finished(1, 10)], WINDOW);
    const pending = (x: typeof r) => x.sequencer.partitions.map((p) => [p.tp.partition, p.switchPending]);
    expect(pending(r)).toEqual([
      [0, 'sequence_hole'],
      [1, null],
    ]);
    const after = replay([...start, accepted(1), stamped(1, 0), finished(1, 10), { type: 'identity', tp: TP, producer: { producerId: 7n, epoch: 1 } }], WINDOW);
    expect(pending(after)).toEqual([
      [0, null],
      [1, null],
    ]);
    // A new producer id alone moves no partition.
    const newId = replay([...start, accepted(1), stamped(1, 0), finished(1, 10), { type: 'producer', producer: { producerId: 8n, epoch: 0 } }], WINDOW);
    expect(pending(newId)[0]).toEqual([0, 'sequence_hole']);
    expect(newId.sequencer.producer).toEqual({ producerId: 8n, epoch: 0 });
  });

  it("a batch stamped under its partition's older identity and still open was re-queued for a re-stamp; other partitions keep their stamps", () => {
    const r = replay(
      [
        { type: 'producer', producer: P7 },
        { type: 'identity', tp: TP, producer: P7 },
        { type: 'identity', tp: TP1, producer: P7 },
        accepted(1),
        stamped(1, 0),
        accepted(2, TP1),
        stamped(2, 0),
        { type: 'identity', tp: TP, producer: { producerId: 7n, epoch: 1 } },
      ],
      WINDOW,
    );
    const [p0, p1] = r.sequencer.partitions;
    expect(p0.batches).toEqual([{ id: 1, recordCount: 1, stamp: null, restamped: true }]);
    expect([p0.nextSeq, p0.producer]).toEqual([0, { producerId: 7n, epoch: 1 }]);
    expect(p1.batches).toEqual([{ id: 2, recordCount: 1, stamp: { ...P7, baseSequence: 0 }, restamped: false }]);
    expect([p1.nextSeq, p1.producer]).toEqual([1, P7]);
  });

  it('rejects records that do not fit together (treated as a corrupt file)', () => {
    expect(() => replay([stamped(1, 0)], WINDOW)).toThrow(/unknown batch/);
    expect(() => replay([accepted(1), accepted(1)], WINDOW)).toThrow(/accepted twice/);
  });

  it('a compaction snapshot replays to the same sequencer state, even when a later batch was acknowledged first', () => {
    const s = new Sequencer({ producer: P7, deliveryTimeoutMs: 10_000 });
    const bytes = new Map<number, AcceptedBatch>();
    const submit = (id: number, tp: TopicPartition): SequencerAction[] => {
      bytes.set(id, { id, tp, recordCount: 2, version: 9, timeoutMs: 5_000, dedupKey: null, bytes: Buffer.from(`b${id}`) });
      return s.submit(tp, { id, recordCount: 2 }, 0);
    };
    submit(1, TP);
    s.onResult(TP, 1, { kind: 'ok', baseOffset: 0n, logAppendTime: -1n }, 0);
    for (const id of [2, 3, 4]) submit(id, TP);
    s.onResult(TP, 3, { kind: 'ok', baseOffset: 4n, logAppendTime: -1n }, 0); // acked ahead of 2
    s.onResult(TP, 4, { kind: 'ok', baseOffset: 6n, logAppendTime: -1n }, 0);
    submit(5, TP1); // first batch of TP1: in flight alone
    submit(6, TP1); // queued behind it
    const snap = s.snapshot();
    const dedup = [{ key: { topic: 't', partition: 0, fingerprint: fp(2n) }, result: { errorCode: 0, baseOffset: 4n, logAppendTimeMs: -1n }, expiresAt: 99 }];
    const brokers = [{ nodeId: 1, host: 'h', port: 1, listenPort: 2 }];
    // The journal after a compaction: the snapshot, then what happened next.
    const r = replay(roundTrip([...snapshotRecords(snap, (id) => bytes.get(id), dedup, brokers), finished(2, 0)]), WINDOW);
    const tp0 = r.sequencer.partitions.find((p) => p.tp.partition === 0)!;
    expect(tp0.nextSeq).toBe(8); // not 4: batch 2 (seq 2-3) is older than the acknowledged 3 and 4
    expect(tp0.batches).toEqual([]);
    const tp1 = r.sequencer.partitions.find((p) => p.tp.partition === 1)!;
    expect(tp1).toEqual({ tp: TP1, producer: P7, switchPending: null, nextSeq: 2, batches: snap.partitions.find((p) => p.tp.partition === 1)!.batches });
    expect(r.dedup).toEqual(dedup);
    expect(r.brokers).toEqual(brokers);
    expect(r.batches.get(6)?.bytes.toString()).toBe('b6');
  });
});
