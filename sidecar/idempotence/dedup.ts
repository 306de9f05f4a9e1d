/**
 * App-level retry dedup (what no broker does): a non-idempotent client that re-sends a batch
 * after its own timeout produces a new request with new (or no) sequences. Within `windowMs`
 * the sidecar recognises the copy by a key per (topic, partition) — a 128-bit fingerprint of
 * the batch (fingerprint.ts: exact, content or header) — and answers it with the original's
 * result, or attaches it to the original still in flight.
 *
 * Two separate sends of the application can have the same key (the same records in the same
 * millisecond, or with timestamps the application set): a key holds every original, in arrival
 * order, and a copy matches the first whose Claim (claim.ts) says its client may be retrying it.
 * An original whose success reached its client in time matches nothing and is dropped.
 *
 * A kept result need not be a success: an original that ended with its outcome unknown keeps a
 * tombstone (the retriable error its client's retries get, so they are never written) for the
 * window, like a success.
 *
 * Memory is bounded in bytes (`maxBytes`, each entry costs ENTRY_BYTES plus its topic name) as
 * well as by `maxEntries`. When a limit is reached the least recently used answered entries go
 * first; originals still in flight are kept (their number is bounded by the pending-batch limit
 * of the engine), because forgetting one would let its client's retry be written twice.
 */
import type { Fingerprint } from './fingerprint.js';
import { Claim } from './claim.js';

export interface DedupKey {
  readonly topic: string;
  readonly partition: number;
  readonly fingerprint: Fingerprint;
}

/** An original's handle (its entry itself: finish() and dropKnown() look nothing up). */
export type DedupTicket = { readonly __dedupTicket: unique symbol };

/** An original a copy matched: finished, or still in flight (with the waiter begin() was given, which copies attach to). */
export type DedupHit<R, W = unknown> = { kind: 'done'; result: R; claim: Claim } | { kind: 'in_flight'; ticket: DedupTicket; claim: Claim; waiter: W | undefined };

export type Lookup<R, W = unknown> = { kind: 'miss' } | DedupHit<R, W>;

export interface DedupOptions {
  windowMs: number;
  /** Entry cap (default 100000). */
  maxEntries?: number;
  /** Byte cap (default 16 MiB): an estimate of what the entries hold on the heap. */
  maxBytes?: number;
  onEvict?: (reason: 'expired' | 'capacity', count: number) => void;
}

/**
 * Heap cost of one answered entry apart from its topic name: its fingerprint index slot, the
 * entry object, its DedupKey (kept for snapshots) with its fingerprint, its Claim and a
 * PartResult with two bigints. Measured with --expose-gc (200,000 entries, 20-char topic,
 * 128-bit fingerprints) when entries also had a key string, an LRU Map slot and a list per
 * key: 602 bytes each on the heap, estimated 565 + 37 (so an over-estimate since).
 */
export const ENTRY_BYTES = 565;

/**
 * One original; finish() turns it from in flight to done in place (one object per batch). Entries
 * are linked into the LRU order and, per fingerprint, in arrival order: no Map set/delete and no
 * array per batch besides the one fingerprint index (per-batch churn on long-lived Maps costs
 * allocation and keeps young objects alive through their old hash tables).
 */
interface Entry<R, W> {
  readonly key: DedupKey;
  /** Arrival order (a reload re-begins in-flight originals in it). */
  readonly seq: number;
  readonly claim: Claim;
  /**
   * What copies of it attach to while it is in flight (begin's; kept here, so no map of them per
   * batch elsewhere). Cleared when it finishes or goes: the engine's waiter holds its whole
   * request (Plan, call, frame), which a finished entry (ENTRY_BYTES, for the dedup window) must not keep.
   */
  waiter: W | undefined;
  readonly bytes: number;
  /** 'gone' once removed (a late finish or dropKnown of it is ignored). */
  state: 'in_flight' | 'done' | 'gone';
  /** Set when done. */
  result: R | undefined;
  /** When done: until when copies match it. */
  expiresAt: number;
  /** Neighbours in the LRU order (older, newer). */
  older: Entry<R, W> | null;
  newer: Entry<R, W> | null;
  /** The next original of the same fingerprint, in arrival order. */
  nextSame: Entry<R, W> | null;
}

/** A finished original as kept across a restart (sidecar/state). */
export interface DedupSnapshotEntry<R> {
  key: DedupKey;
  result: R;
  expiresAt: number;
  /** Carried over on a reload (never persisted: after a restart every original is an orphan). */
  claim?: Claim;
}

export class DedupCache<R, W = unknown> {
  private readonly windowMs: number;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly onEvict: DedupOptions['onEvict'];
  /**
   * The first original of each fingerprint (the rest follow through nextSame, in arrival order):
   * keyed by the fingerprint itself (a Map compares bigints by value), so no key string per batch;
   * the chain tells partitions apart (the same bytes sent to two partitions have one fingerprint).
   */
  private readonly byKey = new Map<Fingerprint, Entry<R, W>>();
  /** Least recently used first (oldest), most recently used last (newest). */
  private oldest: Entry<R, W> | null = null;
  private newest: Entry<R, W> | null = null;
  private count = 0;
  private nextSeq = 1;
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

  /** The first original of this key that a copy arriving `now` may be a retry of (claim.ts). */
  lookup(key: DedupKey, now: number): Lookup<R, W> {
    let e: Entry<R, W> | null | undefined = this.byKey.get(key.fingerprint);
    if (!e) return MISS;
    let expired = 0;
    let hit: Entry<R, W> | undefined;
    for (; e; ) {
      const next: Entry<R, W> | null = e.nextSame; // (read first: remove() unlinks e)
      if (!samePartition(e.key, key)) {
        e = next;
        continue;
      }
      if (e.state === 'done' && (now >= e.expiresAt || e.claim.known)) {
        if (now >= e.expiresAt) expired++;
        this.remove(e);
        e = next;
        continue;
      }
      if (e.claim.matchable(now)) {
        hit = e;
        break;
      }
      e = next;
    }
    if (expired > 0) this.onEvict?.('expired', expired);
    if (!hit) return MISS;
    this.unlinkLru(hit);
    this.linkNewest(hit);
    const ticket = hit as unknown as DedupTicket;
    return hit.state === 'done' ? { kind: 'done', result: hit.result as R, claim: hit.claim } : { kind: 'in_flight', ticket, claim: hit.claim, waiter: hit.waiter };
  }

  /**
   * Registers an original as in flight (after a miss), after the others of its key. `claim`
   * says when a copy may match it (default: at once, as for an original nobody waits for);
   * `waiter` is what a copy that matches it while it is in flight is handed (lookup).
   */
  begin(key: DedupKey, _now: number, claim: Claim = Claim.orphan(), waiter?: W): DedupTicket {
    const e = this.add(key, claim, waiter, 'in_flight', undefined, Infinity);
    this.enforceCapacity();
    return e as unknown as DedupTicket;
  }

  /**
   * The original finished. `keep` keeps `result` for windowMs (from now) for the copies that
   * match it (a success, or the tombstone of an unknown outcome); otherwise the entry goes, so
   * that a retry can write. Returns false when the ticket is unknown (evicted).
   */
  finish(ticket: DedupTicket, outcome: { ok: true; result: R } | { ok: false }, now: number): boolean {
    const e = ticket as unknown as Entry<R, W>;
    if (e.state !== 'in_flight') return false;
    e.waiter = undefined;
    if (!outcome.ok) {
      this.remove(e);
      return true;
    }
    // In place: the same position in its key's list and in the LRU order.
    e.state = 'done';
    e.result = outcome.result;
    e.expiresAt = now + this.windowMs;
    return true;
  }

  /**
   * Drops a finished original whose success reached its client in time (its claim is known): it
   * matches nothing any more, and lookup or the next sweep would drop it. Dropped at once, it goes
   * while it is young: an entry kept for the sweep's second outlives V8's young generation and is
   * copied into the old one, which only a full collection empties.
   */
  dropKnown(ticket: DedupTicket): void {
    const e = ticket as unknown as Entry<R, W>;
    if (e.state === 'done' && e.claim.known) this.remove(e);
  }

  /** Drop expired entries (and those whose client knows the outcome). Returns how many expired. */
  sweep(now: number): number {
    let n = 0;
    for (let e = this.oldest; e; ) {
      const newer = e.newer; // (read first: remove() unlinks e)
      if (e.state === 'done' && (now >= e.expiresAt || e.claim.known)) {
        if (now >= e.expiresAt) n++;
        this.remove(e);
      }
      e = newer;
    }
    if (n > 0) this.onEvict?.('expired', n);
    return n;
  }

  /**
   * The finished originals a copy may still match, least recently used first (pure). In-flight
   * originals are not part of it: after a restart their batches are restored and begin() is
   * called for them again.
   */
  snapshot(): DedupSnapshotEntry<R>[] {
    const out: DedupSnapshotEntry<R>[] = [];
    for (let e = this.oldest; e; e = e.newer) if (e.state === 'done' && !e.claim.known) out.push({ key: e.key, result: e.result as R, expiresAt: e.expiresAt, claim: e.claim });
    return out;
  }

  /**
   * Puts back finished originals (from snapshot()) after a restart; expired ones are dropped.
   * Their clients' connections are gone, so each matches the next copy (Claim.orphan).
   */
  restore(entries: Iterable<DedupSnapshotEntry<R>>, now: number): void {
    for (const x of entries) {
      if (now >= x.expiresAt) continue;
      this.add(x.key, x.claim ?? Claim.orphan(), undefined, 'done', x.result, x.expiresAt);
    }
    this.enforceCapacity();
  }

  /** The waiters of the originals in flight, in arrival order (a reload moves them to a new cache). */
  inFlight(): W[] {
    const entries: Array<Entry<R, W>> = [];
    for (let e = this.oldest; e; e = e.newer) if (e.state === 'in_flight' && e.waiter !== undefined) entries.push(e);
    return entries.sort((a, b) => a.seq - b.seq).map((e) => e.waiter!);
  }

  get size(): number {
    return this.count;
  }

  /** Estimated heap bytes held (what maxBytes bounds). */
  get bytes(): number {
    return this.used;
  }

  private add(key: DedupKey, claim: Claim, waiter: W | undefined, state: 'in_flight' | 'done', result: R | undefined, expiresAt: number): Entry<R, W> {
    const e: Entry<R, W> = { key, seq: this.nextSeq++, claim, waiter, bytes: ENTRY_BYTES + key.topic.length, state, result, expiresAt, older: null, newer: null, nextSame: null };
    const first = this.byKey.get(key.fingerprint);
    if (first) {
      let last = first;
      while (last.nextSame) last = last.nextSame;
      last.nextSame = e;
    } else this.byKey.set(key.fingerprint, e);
    this.linkNewest(e);
    this.count++;
    this.used += e.bytes;
    return e;
  }

  private remove(e: Entry<R, W>): void {
    if (e.state === 'gone') return;
    e.state = 'gone';
    e.waiter = undefined;
    this.count--;
    this.used -= e.bytes;
    const fp = e.key.fingerprint;
    const first = this.byKey.get(fp)!;
    if (first === e) {
      if (e.nextSame) this.byKey.set(fp, e.nextSame);
      else this.byKey.delete(fp);
    } else {
      let before = first;
      while (before.nextSame !== e) before = before.nextSame!;
      before.nextSame = e.nextSame;
    }
    e.nextSame = null;
    this.unlinkLru(e);
  }

  /** Appends `e` (not in the list) as the most recently used. */
  private linkNewest(e: Entry<R, W>): void {
    e.older = this.newest;
    if (this.newest) this.newest.newer = e;
    else this.oldest = e;
    this.newest = e;
  }

  /** Takes `e` out of the LRU order; its links are cleared (an old dead entry must not keep young ones alive). */
  private unlinkLru(e: Entry<R, W>): void {
    if (e.older) e.older.newer = e.newer;
    else this.oldest = e.newer;
    if (e.newer) e.newer.older = e.older;
    else this.newest = e.older;
    e.older = null;
    e.newer = null;
  }

  private enforceCapacity(): void {
    let n = 0;
    // Each in-flight entry met is moved to the newest end once, so the loop ends.
    let spared = 0;
    while ((this.count > this.maxEntries || this.used > this.maxBytes) && spared < this.count) {
      const e = this.oldest;
      if (!e) break;
      if (e.state === 'in_flight') {
        this.unlinkLru(e);
        this.linkNewest(e);
        spared++;
        continue;
      }
      this.remove(e);
      n++;
    }
    if (n > 0) this.onEvict?.('capacity', n);
  }
}

const MISS = { kind: 'miss' } as const;

const samePartition = (a: DedupKey, b: DedupKey): boolean => a.partition === b.partition && a.topic === b.topic;
