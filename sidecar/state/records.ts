// What the journal's records say, and how a list of them becomes the state to restore (pure).
// A record is: u8 type | u32 length of a JSON header | the JSON header | an optional blob
// (the batch bytes). In the JSON, a bigint is {$n: decimal}, a Buffer {$b: base64}.
import type { DedupKey, DedupSnapshotEntry } from '../idempotence/dedup.js';
import type { BatchSnapshot, EpochBumpReason, ProducerIdentity, SequencerSnapshot, TopicPartition } from '../idempotence/sequencer.js';
import { lastSequence, nextSequence } from '../idempotence/sequence.js';

/** A batch's result as the client gets it. */
export interface StoredResult {
  errorCode: number;
  baseOffset: bigint;
  logAppendTimeMs: bigint;
}

export interface BrokerPort {
  nodeId: number;
  /** The broker's own address. */
  host: string;
  port: number;
  /** The sidecar's listener for it. */
  listenPort: number;
}

/** A batch the upgrade engine accepted, as it arrived (not stamped). */
export interface AcceptedBatch {
  id: number;
  tp: TopicPartition;
  recordCount: number;
  /** Produce version and timeout of the client request it came in. */
  version: number;
  timeoutMs: number;
  dedupKey: DedupKey | null;
  bytes: Buffer;
}

export type Stamp = { producerId: bigint; epoch: number; baseSequence: number };

export type StateRecord =
  | { type: 'producer'; producer: ProducerIdentity }
  | { type: 'accepted'; batch: AcceptedBatch }
  // `inSnapshot`: written by a compaction for an unresolved batch; the partition's next sequence
  // comes from the sequencer record then (a later batch may have been acknowledged already).
  | { type: 'stamped'; id: number; stamp: Stamp; inSnapshot?: true }
  | { type: 'finished'; id: number; result: StoredResult; at: number }
  | { type: 'brokers'; brokers: BrokerPort[] }
  // Only at the start of a compacted file: the sequencer without its batches (they follow as accepted/stamped).
  | { type: 'sequencer'; producer: ProducerIdentity | null; bumpPending: EpochBumpReason | null; partitions: Array<{ tp: TopicPartition; nextSeq: number }>; restamped: number[] }
  | { type: 'dedup'; entry: DedupSnapshotEntry<StoredResult> };

const TYPE = { producer: 1, accepted: 2, stamped: 3, finished: 4, brokers: 5, sequencer: 6, dedup: 7 } as const;
const NAMES = new Map<number, StateRecord['type']>(Object.entries(TYPE).map(([k, v]) => [v, k as StateRecord['type']]));

// `this[k]` is the value before Buffer.prototype.toJSON turned it into an array of numbers.
function bigintReplacer(this: Record<string, unknown>, k: string, v: unknown): unknown {
  const raw = this[k];
  if (Buffer.isBuffer(raw)) return { $b: raw.toString('base64') };
  return typeof v === 'bigint' ? { $n: v.toString() } : v;
}
const reviver = (_k: string, v: unknown): unknown => {
  if (v && typeof v === 'object' && '$n' in v && typeof (v as { $n: unknown }).$n === 'string') return BigInt((v as { $n: string }).$n);
  if (v && typeof v === 'object' && '$b' in v && typeof (v as { $b: unknown }).$b === 'string') return Buffer.from((v as { $b: string }).$b, 'base64');
  return v;
};

export function encodeRecord(r: StateRecord): Buffer {
  let blob: Buffer | null = null;
  let head: unknown = r;
  if (r.type === 'accepted') {
    blob = r.batch.bytes;
    head = { ...r, batch: { ...r.batch, bytes: undefined } };
  }
  const json = Buffer.from(JSON.stringify(head, bigintReplacer), 'utf8');
  const out = Buffer.allocUnsafe(5 + json.length + (blob?.length ?? 0));
  out.writeUInt8(TYPE[r.type], 0);
  out.writeUInt32BE(json.length, 1);
  json.copy(out, 5);
  blob?.copy(out, 5 + json.length);
  return out;
}

/** Throws on a record this version cannot read (the caller treats the file as corrupt). */
export function decodeRecord(payload: Buffer): StateRecord {
  if (payload.length < 5) throw new Error('record too short');
  const name = NAMES.get(payload.readUInt8(0));
  if (!name) throw new Error(`unknown record type ${payload.readUInt8(0)}`);
  const len = payload.readUInt32BE(1);
  if (5 + len > payload.length) throw new Error('record header overruns the record');
  const r = JSON.parse(payload.subarray(5, 5 + len).toString('utf8'), reviver) as StateRecord;
  if (r.type !== name) throw new Error('record type mismatch');
  if (r.type === 'accepted') r.batch.bytes = Buffer.from(payload.subarray(5 + len)); // own copy: the file buffer is dropped
  return r;
}

/** Everything a restarted sidecar takes back. */
export interface RestoredState {
  sequencer: SequencerSnapshot;
  /** The unfinished batches' bytes and request data, by id. */
  batches: Map<number, AcceptedBatch>;
  /** Finished originals: from dedup records, and from finished batches that had a dedup key. */
  dedup: Array<DedupSnapshotEntry<StoredResult>>;
  brokers: BrokerPort[];
  /** Batch ids must not be reused: start above this. */
  maxBatchId: number;
}

const tpKey = (tp: TopicPartition): string => `${tp.partition}\u0000${tp.topic}`;

/**
 * Replays records in file order. `dedupWindowMs` dates finished batches' dedup entries (a
 * finished record keeps its time, the window is configuration). Throws on an inconsistent
 * sequence of records (treated as corruption).
 */
export function replay(records: Iterable<StateRecord>, dedupWindowMs: number): RestoredState {
  let producer: ProducerIdentity | null = null;
  let bumpPending: EpochBumpReason | null = null;
  const nextSeq = new Map<string, { tp: TopicPartition; nextSeq: number }>();
  // Insertion order = acceptance order = per-partition FIFO.
  const open = new Map<number, { batch: AcceptedBatch; stamp: Stamp | null; restamped: boolean }>();
  const dedup = new Map<string, DedupSnapshotEntry<StoredResult>>();
  let brokers: BrokerPort[] = [];
  let maxBatchId = 0;
  const restampedIds = new Set<number>();
  const sameProducer = (s: Stamp): boolean => producer !== null && s.producerId === producer.producerId && s.epoch === producer.epoch;
  // Whatever type the fingerprint has (bigint, string, Buffer): one map key per distinct value.
  const dedupId = (k: DedupKey): string => {
    const f: unknown = k.fingerprint;
    const v = Buffer.isBuffer(f) ? `b${f.toString('base64')}` : typeof f === 'bigint' ? `n${f.toString(16)}` : `s${String(f)}`;
    return `${k.partition}\u0000${k.topic}\u0000${v}`;
  };

  for (const r of records) {
    switch (r.type) {
      case 'sequencer':
        producer = r.producer;
        bumpPending = r.bumpPending;
        nextSeq.clear();
        for (const p of r.partitions) nextSeq.set(tpKey(p.tp), { tp: p.tp, nextSeq: p.nextSeq });
        for (const id of r.restamped) restampedIds.add(id);
        break;
      case 'producer':
        producer = r.producer;
        bumpPending = null;
        for (const p of nextSeq.values()) p.nextSeq = 0;
        // The sequencer switches epochs only when no sent batch is unresolved, so an open batch
        // stamped under an older epoch was re-queued for a re-stamp (rejected, never written).
        for (const b of open.values()) {
          if (b.stamp && !sameProducer(b.stamp)) {
            b.stamp = null;
            b.restamped = true;
          }
        }
        break;
      case 'accepted':
        if (open.has(r.batch.id)) throw new Error(`batch ${r.batch.id} accepted twice`);
        open.set(r.batch.id, { batch: r.batch, stamp: null, restamped: restampedIds.has(r.batch.id) });
        maxBatchId = Math.max(maxBatchId, r.batch.id);
        break;
      case 'stamped': {
        const b = open.get(r.id);
        if (!b) throw new Error(`stamp for unknown batch ${r.id}`);
        if (b.stamp) b.restamped = true;
        b.stamp = r.stamp;
        if (r.inSnapshot) break;
        const k = tpKey(b.batch.tp);
        const next = nextSequence(lastSequence(r.stamp.baseSequence, b.batch.recordCount), 1);
        const p = nextSeq.get(k);
        if (p) p.nextSeq = next;
        else nextSeq.set(k, { tp: b.batch.tp, nextSeq: next });
        break;
      }
      case 'finished': {
        const b = open.get(r.id);
        if (!b) break; // finished before a compaction that dropped it
        open.delete(r.id);
        // A sent batch that failed leaves a hole in its epoch: the next batch needs a new one.
        if (r.result.errorCode !== 0 && b.stamp && sameProducer(b.stamp)) bumpPending ??= 'sequence_hole';
        if (r.result.errorCode === 0 && b.batch.dedupKey) dedup.set(dedupId(b.batch.dedupKey), { key: b.batch.dedupKey, result: r.result, expiresAt: r.at + dedupWindowMs });
        break;
      }
      case 'brokers':
        brokers = r.brokers;
        break;
      case 'dedup':
        dedup.set(dedupId(r.entry.key), r.entry);
        break;
    }
  }

  const partitions = new Map<string, SequencerSnapshot['partitions'][number]>();
  for (const p of nextSeq.values()) partitions.set(tpKey(p.tp), { tp: p.tp, nextSeq: p.nextSeq, batches: [] });
  const batches = new Map<number, AcceptedBatch>();
  for (const b of open.values()) {
    const k = tpKey(b.batch.tp);
    let p = partitions.get(k);
    if (!p) partitions.set(k, (p = { tp: b.batch.tp, nextSeq: 0, batches: [] }));
    const snap: BatchSnapshot = { id: b.batch.id, recordCount: b.batch.recordCount, stamp: b.stamp, restamped: b.restamped };
    p.batches.push(snap);
    batches.set(b.batch.id, b.batch);
  }
  // Stamped batches first (in sequence order = acceptance order), then queued ones (FIFO).
  for (const p of partitions.values()) p.batches.sort((a, b) => Number(a.stamp === null) - Number(b.stamp === null));
  return { sequencer: { producer, bumpPending, partitions: [...partitions.values()] }, batches, dedup: [...dedup.values()], brokers, maxBatchId };
}

/** The whole live state as records: what a compaction writes (the first records of the new file). */
export function snapshotRecords(
  seq: SequencerSnapshot,
  batch: (id: number) => AcceptedBatch | undefined,
  dedup: Iterable<DedupSnapshotEntry<StoredResult>>,
  brokers: BrokerPort[],
): StateRecord[] {
  const out: StateRecord[] = [];
  const restamped: number[] = [];
  for (const p of seq.partitions) for (const b of p.batches) if (b.restamped && b.stamp === null) restamped.push(b.id);
  out.push({ type: 'sequencer', producer: seq.producer, bumpPending: seq.bumpPending, partitions: seq.partitions.map((p) => ({ tp: p.tp, nextSeq: p.nextSeq })), restamped });
  for (const p of seq.partitions) {
    for (const b of p.batches) {
      const a = batch(b.id);
      if (!a) continue;
      out.push({ type: 'accepted', batch: a });
      if (b.stamp) out.push({ type: 'stamped', id: b.id, stamp: b.stamp, inSnapshot: true });
    }
  }
  for (const entry of dedup) out.push({ type: 'dedup', entry: { key: entry.key, result: { errorCode: entry.result.errorCode, baseOffset: entry.result.baseOffset, logAppendTimeMs: entry.result.logAppendTimeMs }, expiresAt: entry.expiresAt } });
  out.push({ type: 'brokers', brokers });
  return out;
}
