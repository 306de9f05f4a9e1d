// observe mode, dedup strategy `exact`: counts a non-idempotent client's copies of a batch (an
// application's or a client library's re-send) without acting on them (DESIGN.md "Modes").
//
// A copy is recognised by what the client itself computed over the batch, read from its 61-byte
// header, so observe never hashes the records (it did, once per batch: ~8 % of its CPU) and
// keeps a small string per batch instead of a dedup-cache entry (a large old-generation heap
// made every major GC dearer). The key: the batch's CRC-32C, which covers everything from the
// attributes to the last record byte (what the `exact` fingerprint covers, plus producer id,
// epoch and sequence, which are -1 in every batch counted here), its length, and its base and
// max timestamps, per topic-partition. An exact copy always matches. Two different batches
// match only when size and timestamps are the same AND their CRCs collide (2^-32): a miscount
// in a metric, never a changed byte. The CRC is the client's, not checked here: a damaged batch
// is the broker's to refuse (CORRUPT_MESSAGE).
import { BatchOffset } from '../codec/record-batch.js';

/**
 * Heap bytes one remembered batch takes besides its key's characters (the key's string pieces,
 * the Map entry, the expiry): 396-428 measured, checked by observe-copies.test.ts. An entry is
 * charged this plus its key's length, which covers the topic name it holds (decoded per request).
 */
export const COPY_ENTRY_BYTES = 448;

const costOf = (key: string): number => COPY_ENTRY_BYTES + key.length;

export class ObservedCopies {
  /** Key → when it is forgotten. Insertion order: the oldest (first to expire) first. */
  private readonly seen = new Map<string, number>();
  private held = 0;

  constructor(
    private readonly windowMs: number,
    private readonly maxEntries: number,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  get size(): number {
    return this.seen.size;
  }

  /** Heap bytes charged for the remembered batches (bounded by maxBytes). */
  get bytes(): number {
    return this.held;
  }

  /** Whether this batch was seen on the partition within the window; remembers it if not. */
  isCopy(topic: string, partition: number, batch: Buffer, now: number): boolean {
    // Low 32 bits of each timestamp: enough to tell batches apart next to the CRC and length.
    const key = `${batch.readUInt32BE(BatchOffset.crc)}:${batch.length}:${batch.readUInt32BE(BatchOffset.baseTimestamp + 4)}:${batch.readUInt32BE(BatchOffset.maxTimestamp + 4)}:${partition}:${topic}`;
    const expires = this.seen.get(key);
    if (expires !== undefined) {
      if (expires > now) return true;
      this.forget(key);
    }
    this.seen.set(key, now + this.windowMs);
    this.held += costOf(key);
    while (this.seen.size > this.maxEntries || this.held > this.maxBytes) this.forget(this.seen.keys().next().value!);
    return false;
  }

  private forget(key: string): void {
    if (this.seen.delete(key)) this.held -= costOf(key);
  }

  /** Forgets what left the window. */
  sweep(now: number): void {
    for (const [key, expires] of this.seen) {
      if (expires > now) return;
      this.forget(key);
    }
  }
}
