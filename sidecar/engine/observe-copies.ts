// observe mode, dedup strategy `exact`: counts a non-idempotent client's copies of a batch (an
// application's or a client library's re-send) without acting on them (DESIGN.md "Modes").
//
// A copy is recognised by what the client itself computed over the batch, read from its 61-byte
// header, so observe never hashes the records. The key: the batch's CRC-32C, which covers
// everything from the attributes to the last record byte (what the `exact` fingerprint covers,
// plus producer id, epoch and sequence, which are -1 in every batch counted here), its length,
// the low 32 bits of its base and max timestamps, the partition and a 32-bit hash of the topic
// name. An exact copy always matches. Two different batches match only when size and timestamps
// are the same AND their CRCs collide (2^-32): a miscount in a metric, never a changed byte. The
// CRC is the client's, not checked here: a damaged batch is the broker's to refuse
// (CORRUPT_MESSAGE).
//
// Every batch of an observed producer passes here, so a remembered batch is a row of six 32-bit
// numbers and an expiry in typed arrays, found through an open-addressing index: no object,
// string or Map entry per batch. (A Map of string keys cost 15-35 µs per request once it held a
// window's worth of batches, mostly old-generation GC: bench/produce-path.ts.) Rows are kept in
// arrival order in a ring, so the oldest is the first to leave the window and the first evicted
// at the cap.
import { BatchOffset } from '../codec/record-batch.js';

/** Key fields of a row: crc, length, base timestamp (low 32 bits), max timestamp (low 32 bits), partition, topic hash. */
const FIELDS = 6;

/**
 * Bytes one remembered batch takes at most: its key fields, its expiry (a double) and up to four
 * index slots (a power of two, at least twice the rows). All of it in typed arrays outside the JS
 * heap, allocated as the table grows and charged in full against --max-dedup-bytes.
 */
export const COPY_ENTRY_BYTES = FIELDS * 4 + 8 + 4 * 4;

/** Rows allocated first; the table doubles up to its cap. */
const FIRST_ROWS = 1024;

export class ObservedCopies {
  private rows = new Uint32Array(0);
  /** When each row is forgotten (ms since epoch). */
  private expires = new Float64Array(0);
  /** Open addressing, linear probing: row + 1, or 0 for an empty slot. */
  private index = new Int32Array(0);
  private capacity = 0;
  /** The oldest row; rows head .. head + count - 1 (mod capacity) are in use, oldest first. */
  private head = 0;
  private count = 0;
  private readonly maxRows: number;
  /** The key being looked up (no array per batch). */
  private readonly key = new Uint32Array(FIELDS);

  constructor(
    private readonly windowMs: number,
    maxEntries: number,
    maxBytes = Number.POSITIVE_INFINITY,
  ) {
    this.maxRows = Math.max(1, Math.min(maxEntries, Math.floor(maxBytes / COPY_ENTRY_BYTES)));
  }

  get size(): number {
    return this.count;
  }

  /** Bytes allocated for remembered batches (bounded by maxBytes). */
  get bytes(): number {
    return this.rows.byteLength + this.expires.byteLength + this.index.byteLength;
  }

  /** Whether this batch was seen on the partition within the window; remembers it if not. */
  isCopy(topic: string, partition: number, batch: Buffer, now: number): boolean {
    this.sweep(now);
    const k = this.key;
    k[0] = batch.readUInt32BE(BatchOffset.crc);
    k[1] = batch.length;
    k[2] = batch.readUInt32BE(BatchOffset.baseTimestamp + 4);
    k[3] = batch.readUInt32BE(BatchOffset.maxTimestamp + 4);
    k[4] = partition;
    k[5] = this.topicHash(topic);
    const row = this.find(k);
    if (row >= 0) {
      if (this.expires[row] > now) return true;
      // Past its window but not yet swept: only when the clock went back. Seen anew.
      this.expires[row] = now + this.windowMs;
      return false;
    }
    this.insert(k, now + this.windowMs);
    return false;
  }

  /** Topic name → its hash: a Map lookup per batch instead of a loop over the name (bounded: a cache). */
  private readonly topicHashes = new Map<string, number>();

  private topicHash(topic: string): number {
    let h = this.topicHashes.get(topic);
    if (h === undefined) {
      if (this.topicHashes.size >= 1_000) this.topicHashes.clear();
      h = fnv1a(topic);
      this.topicHashes.set(topic, h);
    }
    return h;
  }

  /** Forgets what left the window (oldest first). */
  sweep(now: number): void {
    while (this.count > 0 && this.expires[this.head] <= now) this.dropOldest();
  }

  private find(k: Uint32Array): number {
    const mask = this.index.length - 1;
    if (mask < 0) return -1;
    for (let slot = hashKey(k, 0) & mask; ; slot = (slot + 1) & mask) {
      const v = this.index[slot];
      if (v === 0) return -1;
      if (this.rowEquals(v - 1, k)) return v - 1;
    }
  }

  private rowEquals(row: number, k: Uint32Array): boolean {
    const r = this.rows;
    const at = row * FIELDS;
    return r[at] === k[0] && r[at + 1] === k[1] && r[at + 2] === k[2] && r[at + 3] === k[3] && r[at + 4] === k[4] && r[at + 5] === k[5];
  }

  private insert(k: Uint32Array, expires: number): void {
    if (this.count === this.capacity) {
      if (this.capacity < this.maxRows) this.grow();
      else this.dropOldest();
    }
    const row = (this.head + this.count) % this.capacity;
    this.rows.set(k, row * FIELDS);
    this.expires[row] = expires;
    this.count++;
    this.place(row);
  }

  private place(row: number): void {
    const mask = this.index.length - 1;
    let slot = hashKey(this.rows, row * FIELDS) & mask;
    while (this.index[slot] !== 0) slot = (slot + 1) & mask;
    this.index[slot] = row + 1;
  }

  private dropOldest(): void {
    const row = this.head;
    const mask = this.index.length - 1;
    let slot = hashKey(this.rows, row * FIELDS) & mask;
    while (this.index[slot] !== row + 1) slot = (slot + 1) & mask;
    // Backward-shift deletion: later entries of the probe run move up, so no slot is left as a
    // tombstone and lookups stay short.
    for (let next = (slot + 1) & mask; this.index[next] !== 0; next = (next + 1) & mask) {
      const v = this.index[next];
      const home = hashKey(this.rows, (v - 1) * FIELDS) & mask;
      // The entry at `next` may move to `slot` unless its home lies cyclically in (slot, next].
      const stays = slot <= next ? home > slot && home <= next : home > slot || home <= next;
      if (stays) continue;
      this.index[slot] = v;
      slot = next;
    }
    this.index[slot] = 0;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
  }

  /** Doubles the rows (up to the cap), oldest first from row 0, and rebuilds the index. */
  private grow(): void {
    const capacity = Math.min(this.maxRows, Math.max(FIRST_ROWS, this.capacity * 2));
    const rows = new Uint32Array(capacity * FIELDS);
    const expires = new Float64Array(capacity);
    // The ring is full when it grows: rows head..end, then 0..head.
    const tail = this.capacity - this.head;
    rows.set(this.rows.subarray(this.head * FIELDS), 0);
    rows.set(this.rows.subarray(0, this.head * FIELDS), tail * FIELDS);
    expires.set(this.expires.subarray(this.head), 0);
    expires.set(this.expires.subarray(0, this.head), tail);
    let slots = 1;
    while (slots < capacity * 2) slots *= 2;
    this.rows = rows;
    this.expires = expires;
    this.index = new Int32Array(slots);
    this.capacity = capacity;
    this.head = 0;
    for (let i = 0; i < this.count; i++) this.place(i);
  }
}

/** 32-bit FNV-1a of a topic name (UTF-16 code units). */
function fnv1a(topic: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < topic.length; i++) h = Math.imul(h ^ topic.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * A row's index position from its CRC, partition and topic hash (murmur3's finaliser). The CRC
 * already tells different batches apart; copies of one batch on other partitions or topics share
 * it. Length and timestamps are compared, not hashed.
 */
function hashKey(a: Uint32Array, at: number): number {
  let h = a[at] ^ Math.imul(a[at + 4], 0x9e3779b1) ^ a[at + 5];
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
