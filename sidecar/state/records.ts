// What the journal's records say, their binary encoding, and how a list of them becomes the
// state to restore (pure). Layouts: encodeRecord() below and ./README.md.
import type { DedupKey, DedupSnapshotEntry } from '../idempotence/dedup.js';
import type { BatchSnapshot, EpochBumpReason, ProducerIdentity, SequencerSnapshot, TopicPartition } from '../idempotence/sequencer.js';
import { lastSequence, nextSequence } from '../idempotence/sequence.js';
import { Reader } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';

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

/** A partition's identity and where its sequences stand (in a compacted file's `sequencer` record). */
export interface PartitionRecord {
  tp: TopicPartition;
  nextSeq: number;
  producer: ProducerIdentity | null;
  switchPending: EpochBumpReason | null;
}

export type StateRecord =
  // A producer id obtained from InitProducerId (the newest; partitions without an identity take it).
  | { type: 'producer'; producer: ProducerIdentity }
  // A partition moved to this identity, from sequence 0 (before any send under it).
  | { type: 'identity'; tp: TopicPartition; producer: ProducerIdentity }
  | { type: 'accepted'; batch: AcceptedBatch }
  // `inSnapshot`: written by a compaction for an unresolved batch; the partition's next sequence
  // comes from the sequencer record then (a later batch may have been acknowledged already).
  | { type: 'stamped'; id: number; stamp: Stamp; inSnapshot?: true }
  // `unknown`: ended with its outcome unknown (maybe written): its dedup entry is a tombstone.
  | { type: 'finished'; id: number; result: StoredResult; at: number; unknown?: true }
  // A success reached its client within its request's timeout: the application knows it is
  // written, so after a restart no copy is matched to it (offsets are unique per partition).
  | { type: 'known'; tp: TopicPartition; baseOffset: bigint }
  | { type: 'brokers'; brokers: BrokerPort[] }
  // The --upstream list the state belongs to: producer ids are per cluster, so a journal written
  // for other bootstrap servers is not restored (a foreign producer id could collide).
  | { type: 'upstream'; upstream: string }
  // Only at the start of a compacted file: the sequencer without its batches (they follow as accepted/stamped).
  | { type: 'sequencer'; producer: ProducerIdentity | null; partitions: PartitionRecord[]; restamped: number[] }
  // Finished originals, in chunks (one record per ~1000 entries keeps a compaction cheap).
  | { type: 'dedup'; entries: Array<DedupSnapshotEntry<StoredResult>> };

const TYPE = { producer: 1, accepted: 2, stamped: 3, finished: 4, brokers: 5, sequencer: 6, dedup: 7, upstream: 8, identity: 9, known: 10 } as const;

const BUMP_REASONS: readonly EpochBumpReason[] = ['sequence_hole', 'sequence_wrap'];

// Binary, big-endian, with the codec's Writer/Reader: a restart replays up to tens of MiB of these,
// and a compaction writes every dedup entry in one event-loop turn (JSON was ~10x slower).
// Strings that name Kafka things (topics, hosts) use int16 lengths, as Kafka does.

function writeFingerprint(w: Writer, f: unknown): void {
  if (typeof f === 'bigint') {
    w.int8(2);
    w.string(f.toString(16));
  } else if (Buffer.isBuffer(f)) {
    w.int8(1);
    w.bytes(f);
  } else {
    w.int8(0);
    w.bytes(Buffer.from(String(f), 'utf8'));
  }
}

function readFingerprint(r: Reader): DedupKey['fingerprint'] {
  const tag = r.int8('fingerprint type');
  let v: unknown;
  if (tag === 2) v = BigInt(`0x${r.string('fingerprint')}`);
  else if (tag === 1) v = Buffer.from(r.bytes('fingerprint'));
  else if (tag === 0) v = r.bytes('fingerprint').toString('utf8');
  else throw new Error(`unknown fingerprint type ${tag}`);
  return v as DedupKey['fingerprint'];
}

function writeKey(w: Writer, k: DedupKey): void {
  w.string(k.topic);
  w.int32(k.partition);
  writeFingerprint(w, k.fingerprint);
}

function readKey(r: Reader): DedupKey {
  return { topic: r.string('topic'), partition: r.int32('partition'), fingerprint: readFingerprint(r) };
}

function writeResult(w: Writer, x: StoredResult): void {
  w.int16(x.errorCode);
  w.int64(x.baseOffset);
  w.int64(x.logAppendTimeMs);
}

function readResult(r: Reader): StoredResult {
  return { errorCode: r.int16('errorCode'), baseOffset: r.int64('baseOffset'), logAppendTimeMs: r.int64('logAppendTime') };
}

/** One record's payload (a fresh buffer the caller owns; batch bytes are copied). */
export function encodeRecord(x: StateRecord): Buffer {
  const w = new Writer(x.type === 'accepted' ? 96 + x.batch.bytes.length : 128);
  w.uint8(TYPE[x.type]);
  switch (x.type) {
    case 'producer':
      w.int64(x.producer.producerId);
      w.int16(x.producer.epoch);
      break;
    case 'identity':
      w.string(x.tp.topic);
      w.int32(x.tp.partition);
      w.int64(x.producer.producerId);
      w.int16(x.producer.epoch);
      break;
    case 'accepted': {
      const b = x.batch;
      w.int32(b.id);
      w.string(b.tp.topic);
      w.int32(b.tp.partition);
      w.int32(b.recordCount);
      w.int16(b.version);
      w.int32(b.timeoutMs);
      w.bool(b.dedupKey !== null);
      if (b.dedupKey) writeKey(w, b.dedupKey);
      w.raw(b.bytes); // the rest of the record
      break;
    }
    case 'stamped':
      w.int32(x.id);
      w.int64(x.stamp.producerId);
      w.int16(x.stamp.epoch);
      w.int32(x.stamp.baseSequence);
      w.bool(x.inSnapshot === true);
      break;
    case 'finished':
      w.int32(x.id);
      writeResult(w, x.result);
      w.float64(x.at);
      if (x.unknown) w.bool(true); // optional tail: older records end before it
      break;
    case 'upstream':
      w.bytes(Buffer.from(x.upstream, 'utf8'));
      break;
    case 'known':
      w.string(x.tp.topic);
      w.int32(x.tp.partition);
      w.int64(x.baseOffset);
      break;
    case 'brokers':
      w.int32(x.brokers.length);
      for (const b of x.brokers) {
        w.int32(b.nodeId);
        w.string(b.host);
        w.int32(b.port);
        w.int32(b.listenPort);
      }
      break;
    case 'sequencer':
      w.bool(x.producer !== null);
      if (x.producer) {
        w.int64(x.producer.producerId);
        w.int16(x.producer.epoch);
      }
      w.int32(x.partitions.length);
      for (const p of x.partitions) {
        w.string(p.tp.topic);
        w.int32(p.tp.partition);
        w.int32(p.nextSeq);
        w.bool(p.producer !== null);
        if (p.producer) {
          w.int64(p.producer.producerId);
          w.int16(p.producer.epoch);
        }
        w.int8(p.switchPending === null ? -1 : BUMP_REASONS.indexOf(p.switchPending));
      }
      w.int32(x.restamped.length);
      for (const id of x.restamped) w.int32(id);
      break;
    case 'dedup':
      w.int32(x.entries.length);
      for (const e of x.entries) {
        writeKey(w, e.key);
        writeResult(w, e.result);
        w.float64(e.expiresAt);
      }
      break;
  }
  return w.toBuffer();
}

/** Throws on a record this version cannot read (the caller treats the file as corrupt). */
export function decodeRecord(payload: Buffer): StateRecord {
  const r = new Reader(payload);
  const type = r.uint8('record type');
  let out: StateRecord;
  switch (type) {
    case TYPE.producer:
      out = { type: 'producer', producer: { producerId: r.int64('producerId'), epoch: r.int16('epoch') } };
      break;
    case TYPE.identity:
      out = { type: 'identity', tp: { topic: r.string('topic'), partition: r.int32('partition') }, producer: { producerId: r.int64('producerId'), epoch: r.int16('epoch') } };
      break;
    case TYPE.accepted: {
      const id = r.int32('id');
      const tp = { topic: r.string('topic'), partition: r.int32('partition') };
      const recordCount = r.int32('recordCount');
      const version = r.int16('version');
      const timeoutMs = r.int32('timeoutMs');
      const dedupKey = r.bool('has key') ? readKey(r) : null;
      // A view into the file's buffer: replay() copies only the batches that are still open.
      const bytes = r.raw(r.remaining(), 'batch');
      out = { type: 'accepted', batch: { id, tp, recordCount, version, timeoutMs, dedupKey, bytes } };
      break;
    }
    case TYPE.stamped: {
      const id = r.int32('id');
      const stamp = { producerId: r.int64('producerId'), epoch: r.int16('epoch'), baseSequence: r.int32('baseSequence') };
      out = r.bool('inSnapshot') ? { type: 'stamped', id, stamp, inSnapshot: true } : { type: 'stamped', id, stamp };
      break;
    }
    case TYPE.finished: {
      const f: Extract<StateRecord, { type: 'finished' }> = { type: 'finished', id: r.int32('id'), result: readResult(r), at: r.float64('at') };
      if (r.remaining() > 0 && r.bool('unknown')) f.unknown = true;
      out = f;
      break;
    }
    case TYPE.upstream:
      out = { type: 'upstream', upstream: r.bytes('upstream').toString('utf8') };
      break;
    case TYPE.known:
      out = { type: 'known', tp: { topic: r.string('topic'), partition: r.int32('partition') }, baseOffset: r.int64('baseOffset') };
      break;
    case TYPE.brokers: {
      const n = r.int32('brokers');
      const brokers: BrokerPort[] = [];
      for (let i = 0; i < n; i++) brokers.push({ nodeId: r.int32('nodeId'), host: r.string('host'), port: r.int32('port'), listenPort: r.int32('listenPort') });
      out = { type: 'brokers', brokers };
      break;
    }
    case TYPE.sequencer: {
      const producer = r.bool('has producer') ? { producerId: r.int64('producerId'), epoch: r.int16('epoch') } : null;
      const partitions: PartitionRecord[] = [];
      const n = r.int32('partitions');
      for (let i = 0; i < n; i++) {
        const tp = { topic: r.string('topic'), partition: r.int32('partition') };
        const nextSeq = r.int32('nextSeq');
        const own = r.bool('has identity') ? { producerId: r.int64('producerId'), epoch: r.int16('epoch') } : null;
        const reason = r.int8('switchPending');
        if (reason >= BUMP_REASONS.length || reason < -1) throw new Error(`unknown epoch bump reason ${reason}`);
        partitions.push({ tp, nextSeq, producer: own, switchPending: reason === -1 ? null : BUMP_REASONS[reason] });
      }
      const restamped: number[] = [];
      const m = r.int32('restamped');
      for (let i = 0; i < m; i++) restamped.push(r.int32('id'));
      out = { type: 'sequencer', producer, partitions, restamped };
      break;
    }
    case TYPE.dedup: {
      const n = r.int32('entries');
      const entries: Array<DedupSnapshotEntry<StoredResult>> = [];
      for (let i = 0; i < n; i++) entries.push({ key: readKey(r), result: readResult(r), expiresAt: r.float64('expiresAt') });
      out = { type: 'dedup', entries };
      break;
    }
    default:
      throw new Error(`unknown record type ${type}`);
  }
  if (r.remaining() !== 0) throw new Error(`${out.type} record has ${r.remaining()} bytes too many`);
  return out;
}

const offsetKey = (topic: string, partition: number, offset: bigint): string => `${partition}\u0000${topic}\u0000${offset}`;

/**
 * A finished original to restore; `bytes` (the batch as received) when its `accepted` record is
 * in the file, i.e. it finished after the last compaction.
 */
export type RestoredDedupEntry = DedupSnapshotEntry<StoredResult> & { bytes?: Buffer };

/** Everything a restarted sidecar takes back. */
export interface RestoredState {
  sequencer: SequencerSnapshot;
  /** The unfinished batches' bytes and request data, by id. */
  batches: Map<number, AcceptedBatch>;
  /**
   * Finished originals a copy may match (successes and tombstones of unknown outcomes): from dedup
   * records, and from finished batches that had a dedup key, in file order (a key may hold several).
   */
  dedup: Array<RestoredDedupEntry>;
  brokers: BrokerPort[];
  /** The last upstream record (null in journals without one). */
  upstream: string | null;
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
  const parts = new Map<string, PartitionRecord>();
  const part = (tp: TopicPartition): PartitionRecord => {
    const k = tpKey(tp);
    let p = parts.get(k);
    if (!p) parts.set(k, (p = { tp, nextSeq: 0, producer: null, switchPending: null }));
    return p;
  };
  // Insertion order = acceptance order = per-partition FIFO.
  const open = new Map<number, { batch: AcceptedBatch; stamp: Stamp | null; restamped: boolean }>();
  // No map by key here: converting 100k fingerprints to map keys twice (here and in the cache)
  // showed in the restart time; DedupCache.restore keeps every entry of a key (separate originals).
  let dedup: Array<RestoredDedupEntry> = [];
  // Successes their clients got in time (`known`): dropped from `dedup` at the end (any order).
  const known = new Set<string>();
  let brokers: BrokerPort[] = [];
  let upstream: string | null = null;
  let maxBatchId = 0;
  const restampedIds = new Set<number>();
  const same = (s: Stamp, p: ProducerIdentity | null): boolean => p !== null && s.producerId === p.producerId && s.epoch === p.epoch;

  for (const r of records) {
    switch (r.type) {
      case 'sequencer':
        producer = r.producer;
        parts.clear();
        for (const p of r.partitions) parts.set(tpKey(p.tp), { ...p });
        for (const id of r.restamped) restampedIds.add(id);
        break;
      case 'producer':
        producer = r.producer;
        break;
      case 'identity': {
        const p = part(r.tp);
        p.producer = r.producer;
        p.switchPending = null;
        p.nextSeq = 0;
        // A partition moves only when none of its sent batches is unresolved, so an open batch of
        // it stamped under another identity was re-queued for a re-stamp (refused, never written).
        const k = tpKey(r.tp);
        for (const b of open.values()) {
          if (b.stamp && tpKey(b.batch.tp) === k && !same(b.stamp, r.producer)) {
            b.stamp = null;
            b.restamped = true;
          }
        }
        break;
      }
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
        part(b.batch.tp).nextSeq = nextSequence(lastSequence(r.stamp.baseSequence, b.batch.recordCount), 1);
        break;
      }
      case 'finished': {
        const b = open.get(r.id);
        if (!b) break; // finished before a compaction that dropped it
        open.delete(r.id);
        // A sent batch that failed leaves a hole under its partition's identity: the partition
        // takes a new one before its next first send.
        if (r.result.errorCode !== 0 && b.stamp) {
          const p = part(b.batch.tp);
          if (same(b.stamp, p.producer)) p.switchPending ??= 'sequence_hole';
        }
        // Kept for its copies: a success, or the tombstone of an unknown outcome (answers them retriable).
        // With its bytes (still in this file): a client that re-encodes its retry (kafkajs) is matched by content.
        if ((r.result.errorCode === 0 || r.unknown) && b.batch.dedupKey) dedup.push({ key: b.batch.dedupKey, result: r.result, expiresAt: r.at + dedupWindowMs, bytes: b.batch.bytes });
        break;
      }
      case 'brokers':
        brokers = r.brokers;
        break;
      case 'upstream':
        upstream = r.upstream;
        break;
      case 'dedup':
        for (const e of r.entries) dedup.push(e);
        break;
      case 'known':
        known.add(offsetKey(r.tp.topic, r.tp.partition, r.baseOffset));
        break;
    }
  }

  const partitions = new Map<string, SequencerSnapshot['partitions'][number]>();
  for (const [k, p] of parts) partitions.set(k, { ...p, batches: [] });
  const batches = new Map<number, AcceptedBatch>();
  for (const b of open.values()) {
    const k = tpKey(b.batch.tp);
    let p = partitions.get(k);
    if (!p) partitions.set(k, (p = { tp: b.batch.tp, producer: null, switchPending: null, nextSeq: 0, batches: [] }));
    const snap: BatchSnapshot = { id: b.batch.id, recordCount: b.batch.recordCount, stamp: b.stamp, restamped: b.restamped };
    p.batches.push(snap);
    // Own copy: decodeRecord() gave a view of the whole file, which is dropped after the replay.
    batches.set(b.batch.id, { ...b.batch, bytes: Buffer.from(b.batch.bytes) });
  }
  // Stamped batches first (in sequence order = acceptance order), then queued ones (FIFO).
  for (const p of partitions.values()) p.batches.sort((a, b) => Number(a.stamp === null) - Number(b.stamp === null));
  if (known.size > 0) dedup = dedup.filter((e) => e.result.errorCode !== 0 || !known.has(offsetKey(e.key.topic, e.key.partition, e.result.baseOffset)));
  return { sequencer: { producer, partitions: [...partitions.values()] }, batches, dedup, brokers, upstream, maxBatchId };
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
  out.push({
    type: 'sequencer',
    producer: seq.producer,
    partitions: seq.partitions.map((p) => ({ tp: p.tp, nextSeq: p.nextSeq, producer: p.producer, switchPending: p.switchPending })),
    restamped,
  });
  for (const p of seq.partitions) {
    for (const b of p.batches) {
      const a = batch(b.id);
      if (!a) continue;
      out.push({ type: 'accepted', batch: a });
      if (b.stamp) out.push({ type: 'stamped', id: b.id, stamp: b.stamp, inSnapshot: true });
    }
  }
  let chunk: Array<DedupSnapshotEntry<StoredResult>> = [];
  for (const e of dedup) {
    chunk.push(e);
    if (chunk.length === 1000) {
      out.push({ type: 'dedup', entries: chunk });
      chunk = [];
    }
  }
  if (chunk.length > 0) out.push({ type: 'dedup', entries: chunk });
  out.push({ type: 'brokers', brokers });
  return out;
}
