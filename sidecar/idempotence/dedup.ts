/**
 * App-level retry dedup (what no broker does): a non-idempotent client that re-sends a batch
 * after its own timeout produces a new request with new (or no) sequences. Within `windowMs`
 * the sidecar recognises the copy by a key per (topic, partition) and answers it with the
 * original's result, or attaches it to the original still in flight.
 *
 * Keys:
 * - strategy `content`: `contentFingerprint()` of the batch's records section (offset 61 to the
 *   end of the batch). What is stable between an original and an app retry:
 *     * NOT the header: baseTimestamp/maxTimestamp are taken at batching time, producerId/epoch/
 *       baseSequence are stamped by the sidecar or the client, the CRC covers all of that;
 *     * for each record: key, value and headers (hashed), and the record count;
 *     * NOT timestampDelta (relative to a baseTimestamp that moved; differs when the retried
 *       batch is assembled at a different pace) and NOT offsetDelta (= the index, implied).
 *   Uncompressed, gzip and zstd batches are decoded and hashed per record as above; other
 *   codecs (snappy, lz4) or undecodable bytes fall back to hashing the raw records bytes, which
 *   still matches a byte-identical re-send of the same batch.
 *   Consequence (by design of the strategy): two different sends of exactly the same records to
 *   the same partition within the window are treated as one.
 * - strategy `header`: `extractHeader()` of the configured record header.
 */
import { createHash } from 'node:crypto';
import { decompressRecords, parseRecords, readVarint } from '../codec/records.js';

export interface DedupKey {
  readonly topic: string;
  readonly partition: number;
  /** Fingerprint (content) or header-derived key; compared byte for byte. */
  readonly fingerprint: string | Buffer;
}

export type DedupTicket = number & { readonly __dedupTicket: unique symbol };

export type Lookup<R> = { kind: 'miss' } | { kind: 'done'; result: R } | { kind: 'in_flight'; ticket: DedupTicket };

export interface DedupOptions {
  windowMs: number;
  /** LRU cap (default 100000). */
  maxEntries?: number;
  onEvict?: (reason: 'expired' | 'capacity', count: number) => void;
}

type Entry<R> = { key: DedupKey; state: 'in_flight'; ticket: DedupTicket; touched: number } | { key: DedupKey; state: 'done'; result: R; expiresAt: number; touched: number };

/** A finished original as kept across a restart (sidecar/state). */
export interface DedupSnapshotEntry<R> {
  key: DedupKey;
  result: R;
  expiresAt: number;
}

export class DedupCache<R> {
  private readonly windowMs: number;
  private readonly maxEntries: number;
  private readonly onEvict: DedupOptions['onEvict'];
  /** Insertion order = least recently used first. */
  private readonly entries = new Map<string, Entry<R>>();
  private readonly tickets = new Map<DedupTicket, string>();
  private nextTicket = 1;

  constructor(opts: DedupOptions) {
    if (!(opts.windowMs > 0)) throw new RangeError('windowMs must be > 0');
    this.windowMs = opts.windowMs;
    this.maxEntries = opts.maxEntries ?? 100_000;
    if (this.maxEntries < 1) throw new RangeError('maxEntries must be >= 1');
    this.onEvict = opts.onEvict;
  }

  lookup(key: DedupKey, now: number): Lookup<R> {
    const k = mapKey(key);
    const e = this.entries.get(k);
    if (!e) return { kind: 'miss' };
    if (e.state === 'done' && now >= e.expiresAt) {
      this.entries.delete(k);
      this.onEvict?.('expired', 1);
      return { kind: 'miss' };
    }
    this.entries.delete(k);
    e.touched = now;
    this.entries.set(k, e);
    return e.state === 'done' ? { kind: 'done', result: e.result } : { kind: 'in_flight', ticket: e.ticket };
  }

  /** Register an original as in flight (after a miss). Replaces an existing entry for the key. */
  begin(key: DedupKey, now: number): DedupTicket {
    const k = mapKey(key);
    const old = this.entries.get(k);
    if (old?.state === 'in_flight') this.tickets.delete(old.ticket);
    this.entries.delete(k);
    const ticket = this.nextTicket++ as DedupTicket;
    this.entries.set(k, { key, state: 'in_flight', ticket, touched: now });
    this.tickets.set(ticket, k);
    this.enforceCapacity();
    return ticket;
  }

  /**
   * The original finished. Success keeps the result for windowMs (from now); failure removes the
   * entry so that a retry can write. Returns false when the ticket is unknown (evicted/replaced).
   */
  finish(ticket: DedupTicket, outcome: { ok: true; result: R } | { ok: false }, now: number): boolean {
    const k = this.tickets.get(ticket);
    if (k === undefined) return false;
    this.tickets.delete(ticket);
    const e = this.entries.get(k);
    if (!e || e.state !== 'in_flight' || e.ticket !== ticket) return false;
    this.entries.delete(k);
    if (outcome.ok) this.entries.set(k, { key: e.key, state: 'done', result: outcome.result, expiresAt: now + this.windowMs, touched: now });
    return true;
  }

  /** Drop expired entries. Returns how many. */
  sweep(now: number): number {
    let n = 0;
    for (const [k, e] of this.entries) {
      if (e.state === 'done' && now >= e.expiresAt) {
        this.entries.delete(k);
        n++;
      }
    }
    if (n > 0) this.onEvict?.('expired', n);
    return n;
  }

  /**
   * The finished originals, least recently used first (pure). In-flight originals are not part of
   * it: after a restart their batches are restored and begin() is called for them again.
   */
  snapshot(): DedupSnapshotEntry<R>[] {
    const out: DedupSnapshotEntry<R>[] = [];
    for (const e of this.entries.values()) if (e.state === 'done') out.push({ key: e.key, result: e.result, expiresAt: e.expiresAt });
    return out;
  }

  /** Puts back finished originals (from snapshot()) after a restart; expired ones are dropped. */
  restore(entries: Iterable<DedupSnapshotEntry<R>>, now: number): void {
    for (const x of entries) {
      if (now >= x.expiresAt) continue;
      const k = mapKey(x.key);
      const old = this.entries.get(k);
      if (old?.state === 'in_flight') continue; // a live original wins over a remembered one
      this.entries.delete(k);
      this.entries.set(k, { key: x.key, state: 'done', result: x.result, expiresAt: x.expiresAt, touched: now });
    }
    this.enforceCapacity();
  }

  get size(): number {
    return this.entries.size;
  }

  private enforceCapacity(): void {
    let n = 0;
    while (this.entries.size > this.maxEntries) {
      const first = this.entries.entries().next();
      if (first.done) break;
      const [k, e] = first.value;
      // LRU victim; an in-flight original evicted this way loses its ticket (finish() → false)
      // and copies arriving later are written again: keep maxEntries well above the in-flight volume.
      if (e.state === 'in_flight') this.tickets.delete(e.ticket);
      this.entries.delete(k);
      n++;
    }
    if (n > 0) this.onEvict?.('capacity', n);
  }
}

function mapKey(k: DedupKey): string {
  const fp = typeof k.fingerprint === 'string' ? `s${k.fingerprint}` : `b${k.fingerprint.toString('base64')}`;
  return `${k.partition}\u0000${k.topic}\u0000${fp}`;
}

export interface Fingerprint {
  /** Hex SHA-256. */
  readonly fingerprint: string;
  /** false: records could not be decoded (codec or malformed): the raw section was hashed. */
  readonly decoded: boolean;
}

/**
 * Content fingerprint of a batch's records (see the file comment for what is included).
 * It runs on every batch in the hot path, so it allocates nothing per record: each record's
 * bytes after its timestampDelta (offsetDelta, key, value, headers: self-delimiting, so their
 * concatenation is unambiguous) go to the hash in one update.
 */
export function contentFingerprint(recordsSection: Buffer, compression: number, recordsCount: number): Fingerprint {
  const h = createHash('sha256');
  const head = Buffer.allocUnsafe(8);
  head.writeInt32BE(recordsCount, 0);
  head.writeInt32BE(compression, 4);
  const plain = decompressRecords(recordsSection, compression);
  if (plain) {
    h.update('v2:records');
    h.update(head.subarray(0, 4));
    if (hashRecordTails(h, plain, recordsCount)) return { fingerprint: h.digest('hex'), decoded: true };
  }
  const raw = createHash('sha256');
  raw.update('v2:raw');
  raw.update(head);
  raw.update(recordsSection);
  return { fingerprint: raw.digest('hex'), decoded: false };
}

function hashRecordTails(h: ReturnType<typeof createHash>, records: Buffer, count: number): boolean {
  let pos = 0;
  let n = 0;
  try {
    while (pos < records.length) {
      const [len, start] = readVarint(records, pos);
      const end = start + len;
      if (len < 1 || end > records.length) return false;
      const [, afterTs] = readVarint(records, start + 1); // skip attributes, then timestampDelta
      if (afterTs > end) return false;
      h.update(records.subarray(afterTs, end));
      pos = end;
      n++;
    }
  } catch {
    return false;
  }
  return n === count;
}

/**
 * Per-record values of header `name` (first occurrence in each record; null where absent), or
 * null when the records cannot be decoded (unsupported compression: the caller counts it).
 */
export function extractHeaderValues(recordsSection: Buffer, compression: number, name: string): Array<Buffer | null> | null {
  const plain = decompressRecords(recordsSection, compression);
  if (!plain) return null;
  try {
    return parseRecords(plain).map((r) => {
      const hd = r.headers.find((x) => x.key === name);
      return hd && hd.value !== null ? Buffer.from(hd.value) : null;
    });
  } catch {
    return null;
  }
}

/**
 * Dedup key of a batch for the `header` strategy: null when no record carries the header or the
 * records cannot be decoded. A single-record batch gives the header value itself; a batch of
 * several records gives an opaque key built from every record's value (so a retry that is
 * batched differently is a different key; records without the header are marked).
 */
export function extractHeader(recordsSection: Buffer, compression: number, name: string): Buffer | null {
  const values = extractHeaderValues(recordsSection, compression, name);
  if (!values || values.every((v) => v === null)) return null;
  if (values.length === 1) return values[0];
  const parts: Buffer[] = [];
  for (const v of values) {
    const len = Buffer.allocUnsafe(4);
    len.writeInt32BE(v === null ? -1 : v.length);
    parts.push(len);
    if (v) parts.push(v);
  }
  return Buffer.concat(parts);
}
