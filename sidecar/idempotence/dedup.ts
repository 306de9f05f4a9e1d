/**
 * App-level retry dedup (what no broker does): a non-idempotent client that re-sends a batch
 * after its own timeout produces a new request with new (or no) sequences. Within `windowMs`
 * the sidecar recognises the copy by a key per (topic, partition) — a 128-bit fingerprint of
 * the batch (fingerprint.ts: exact, content or header) — and answers it with the original's
 * result, or attaches it to the original still in flight.
 *
 * Memory is bounded in bytes (`maxBytes`, each entry costs ENTRY_BYTES plus its topic name) as
 * well as by `maxEntries`. When a limit is reached the least recently used answered entries go
 * first; originals still in flight are kept (their number is bounded by the pending-batch limit
 * of the engine), because forgetting one would let its client's retry be written twice.
 */
import type { Fingerprint } from './fingerprint.js';

export interface DedupKey {
  readonly topic: string;
  readonly partition: number;
  readonly fingerprint: Fingerprint;
}

export type DedupTicket = number & { readonly __dedupTicket: unique symbol };

export type Lookup<R> = { kind: 'miss' } | { kind: 'done'; result: R } | { kind: 'in_flight'; ticket: DedupTicket };

export interface DedupOptions {
  windowMs: number;
  /** Entry cap (default 100000). */
  maxEntries?: number;
  /** Byte cap (default 16 MiB): an estimate of what the entries hold on the heap. */
  maxBytes?: number;
  onEvict?: (reason: 'expired' | 'capacity', count: number) => void;
}

/**
 * Heap cost of one answered entry apart from its key string: the Map slot, the entry object, its
 * DedupKey (kept for snapshots) and a PartResult with two bigints. Measured with --expose-gc
 * (200,000 entries, 19-char topic): 489 bytes each on the heap, estimated 450 + 47.
 */
export const ENTRY_BYTES = 450;

type Entry<R> =
  | { key: DedupKey; state: 'in_flight'; ticket: DedupTicket; touched: number; bytes: number }
  | { key: DedupKey; state: 'done'; result: R; expiresAt: number; touched: number; bytes: number };

/** A finished original as kept across a restart (sidecar/state). */
export interface DedupSnapshotEntry<R> {
  key: DedupKey;
  result: R;
  expiresAt: number;
}

export class DedupCache<R> {
  private readonly windowMs: number;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly onEvict: DedupOptions['onEvict'];
  /** Insertion order = least recently used first. */
  private readonly entries = new Map<string, Entry<R>>();
  private readonly tickets = new Map<DedupTicket, string>();
  private nextTicket = 1;
  private used = 0;

  constructor(opts: DedupOptions) {
    if (!(opts.windowMs > 0)) throw new RangeError('windowMs must be > 0');
    this.windowMs = opts.windowMs;
    this.maxEntries = opts.maxEntries ?? 100_000;
    this.maxBytes = opts.maxBytes ?? 16 * 1024 * 1024;
    if (this.maxEntries < 1) throw new RangeError('maxEntries must be >= 1');
    if (this.maxBytes < ENTRY_BYTES) throw new RangeError(`maxBytes must be >= ${ENTRY_BYTES}`);
    this.onEvict = opts.onEvict;
  }

  lookup(key: DedupKey, now: number): Lookup<R> {
    const k = mapKey(key);
    const e = this.entries.get(k);
    if (!e) return { kind: 'miss' };
    if (e.state === 'done' && now >= e.expiresAt) {
      this.remove(k, e);
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
    if (old) this.remove(k, old);
    const ticket = this.nextTicket++ as DedupTicket;
    const bytes = ENTRY_BYTES + k.length;
    this.entries.set(k, { key, state: 'in_flight', ticket, touched: now, bytes });
    this.used += bytes;
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
    const e = this.entries.get(k);
    if (!e || e.state !== 'in_flight' || e.ticket !== ticket) {
      this.tickets.delete(ticket);
      return false;
    }
    this.remove(k, e);
    if (outcome.ok) {
      this.entries.set(k, { key: e.key, state: 'done', result: outcome.result, expiresAt: now + this.windowMs, touched: now, bytes: e.bytes });
      this.used += e.bytes;
    }
    return true;
  }

  /** Drop expired entries. Returns how many. */
  sweep(now: number): number {
    let n = 0;
    for (const [k, e] of this.entries) {
      if (e.state === 'done' && now >= e.expiresAt) {
        this.remove(k, e);
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
      if (old) this.remove(k, old);
      const bytes = ENTRY_BYTES + k.length;
      this.entries.set(k, { key: x.key, state: 'done', result: x.result, expiresAt: x.expiresAt, touched: now, bytes });
      this.used += bytes;
    }
    this.enforceCapacity();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Estimated heap bytes held (what maxBytes bounds). */
  get bytes(): number {
    return this.used;
  }

  private remove(k: string, e: Entry<R>): void {
    this.entries.delete(k);
    this.used -= e.bytes;
    if (e.state === 'in_flight') this.tickets.delete(e.ticket);
  }

  private enforceCapacity(): void {
    let n = 0;
    // Each in-flight entry met is moved to the end once, so the loop ends.
    let spared = 0;
    while ((this.entries.size > this.maxEntries || this.used > this.maxBytes) && spared < this.entries.size) {
      const first = this.entries.entries().next();
      if (first.done) break;
      const [k, e] = first.value;
      if (e.state === 'in_flight') {
        this.entries.delete(k);
        this.entries.set(k, e);
        spared++;
        continue;
      }
      this.remove(k, e);
      n++;
    }
    if (n > 0) this.onEvict?.('capacity', n);
  }
}

function mapKey(k: DedupKey): string {
  return `${k.partition}\u0000${k.topic}\u0000${k.fingerprint.toString(36)}`;
}
