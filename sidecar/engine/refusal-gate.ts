// Per-partition order across the sidecar's OWN retriable refusals (upgrade mode). When the sidecar
// answers a client's batch with a retriable error before writing anything (memory limit reached,
// partition not in its metadata yet, topic id not known), the client sends that batch again later;
// a later batch of the same partition that the client had already sent on the same connection
// (several requests in flight) must not be written before that retry, or it would land ahead of
// it. So the partition is closed on that connection: later batches are refused too (retriable,
// nothing written) until the refused batch comes back, the way the Java producer keeps a
// partition's in-flight order. The batch is recognised by its first record (key, value, headers):
// a client's retry starts with the same record even when it re-encodes (kafkajs: new timestamps)
// or re-batches (librdkafka) it. A gate left closed (the client gave up on the batch, or the
// connection went away) opens after `holdMs`.
import { xxh128 } from '../codec/on-demand.js';
import { readVarint } from '../codec/records.js';
import { decodedRecords, exactFingerprint, type DecodeLimits } from '../idempotence/fingerprint.js';

/** Closed (connection, partition)s remembered at most; the oldest opens first beyond it. */
const MAX_CLOSED = 10_000;

/** RecordBatch v2 offsets (KAFKA-NOTES). */
const ATTRIBUTES = 21;
const RECORDS = 61;

export class RefusalGate {
  /** By connection/topic/partition: the refused batch that must come first, and until when. */
  private readonly closed = new Map<string, { head: bigint; until: number }>();

  constructor(
    private readonly holdMs: () => number,
    private readonly limits: () => DecodeLimits,
  ) {}

  /** The sidecar refused `batch` retriably: the partition closes on this connection (if not closed already). */
  refused(conn: number, topic: string, partition: number, batch: Buffer, now: number): void {
    const k = key(conn, topic, partition);
    if (this.closed.has(k)) return;
    if (this.closed.size >= MAX_CLOSED) this.closed.delete(this.closed.keys().next().value!);
    this.closed.set(k, { head: firstRecord(batch, this.limits()), until: now + this.holdMs() });
  }

  /**
   * Whether `batch` may go ahead now: yes when the partition is open on this connection, or when
   * this is the refused batch coming back (the gate opens); no for a later one.
   */
  admit(conn: number, topic: string, partition: number, batch: Buffer, now: number): boolean {
    if (this.closed.size === 0) return true;
    const k = key(conn, topic, partition);
    const c = this.closed.get(k);
    if (!c) return true;
    if (now >= c.until || firstRecord(batch, this.limits()) === c.head) {
      this.closed.delete(k);
      return true;
    }
    return false;
  }

  /** Opens gates past their hold. */
  sweep(now: number): void {
    for (const [k, c] of this.closed) if (now >= c.until) this.closed.delete(k);
  }

  get size(): number {
    return this.closed.size;
  }
}

const key = (conn: number, topic: string, partition: number): string => `${conn}\u0000${partition}\u0000${topic}`;

/**
 * A 128-bit hash of the batch's first record after its timestampDelta and offsetDelta (key, value,
 * headers). Records that cannot be decoded (snappy, lz4, beyond the size limit, malformed): the
 * whole batch's exact fingerprint, so only a byte-identical retry opens the gate.
 */
export function firstRecord(batch: Buffer, limits: DecodeLimits): bigint {
  const plain = decodedRecords(batch.subarray(RECORDS), batch.readInt16BE(ATTRIBUTES) & 0x07, limits);
  if (plain.ok) {
    try {
      const r = plain.records;
      const [len, start] = readVarint(r, 0);
      const end = start + len;
      if (len > 0 && end <= r.length) {
        const [, afterTs] = readVarint(r, start + 1); // attributes (1 byte), then timestampDelta
        const [, afterOffset] = readVarint(r, afterTs); // offsetDelta
        if (afterOffset <= end) return xxh128(r.subarray(afterOffset, end), 3n);
      }
    } catch {
      // malformed: fall through
    }
  }
  return exactFingerprint(batch);
}
