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

export type DedupTicket = number & { readonly __dedupTicket: unique symbol };

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
 * Heap cost of one answered entry apart from its topic name: the LRU Map slot, its key's list,
 * the entry object, its DedupKey (kept for snapshots) with its fingerprint, its Claim and a
 * PartResult with two bigints. Measured with --expose-gc (200,000 entries, 20-char topic,
 * 128-bit fingerprints) when entries also had a key string: 602 bytes each on the heap,
 * estimated 565 + 37 (so an over-estimate since).
 */
export const ENTRY_BYTES = 565;

/** One original; finish() turns it from in flight to done in place (one object per batch). */
interface Entry<R, W> {
  readonly key: DedupKey;
  readonly ticket: DedupTicket;
  readonly claim: Claim;
  /** What copies of it attach to while it is in flight (begin's; kept here, so no map of them per batch elsewhere). */
  readonly waiter: W | undefined;
  readonly bytes: number;
  state: 'in_flight' | 'done';
  /** Set when done. */
  result: R | undefined;
  /** When done: until when copies match it. */
  expiresAt: number;
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
   * Every original of a fingerprint, in arrival order: keyed by the fingerprint itself (a Map
   * compares bigints by value), so no key string per batch; the list tells partitions apart
   * (the same bytes sent to two partitions have one fingerprint).
   */
  private readonly byKey = new Map<Fingerprint, Array<Entry<R, W>>>();
  /** Insertion order = least recently used first. */
  private readonly lru = new Map<DedupTicket, Entry<R, W>>();
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

  /** The first original of this key that a copy arriving `now` may be a retry of (claim.ts). */
  lookup(key: DedupKey, now: number): Lookup<R, W> {
    const list = this.byKey.get(key.fingerprint);
    if (!list) return MISS;
    let expired = 0;
    let hit: Entry<R, W> | undefined;
    for (let i = 0; i < list.length; ) {
      const e = list[i];
      if (!samePartition(e.key, key)) {
        i++;
        continue;
      }
      if (e.state === 'done' && (now >= e.expiresAt || e.claim.known)) {
        if (now >= e.expiresAt) expired++;
        this.remove(e);
        // Spliced out of `list` (the next one is now at i), or the key dropped with its last entry.
        if (list[i] === e) i++;
        continue;
      }
      if (e.claim.matchable(now)) {
        hit = e;
        break;
      }
      i++;
    }
    if (expired > 0) this.onEvict?.('expired', expired);
    if (!hit) return MISS;
    this.lru.delete(hit.ticket);
    this.lru.set(hit.ticket, hit);
    return hit.state === 'done' ? { kind: 'done', result: hit.result as R, claim: hit.claim } : { kind: 'in_flight', ticket: hit.ticket, claim: hit.claim, waiter: hit.waiter };
  }

  /**
   * Registers an original as in flight (after a miss), after the others of its key. `claim`
   * says when a copy may match it (default: at once, as for an original nobody waits for);
   * `waiter` is what a copy that matches it while it is in flight is handed (lookup).
   */
  begin(key: DedupKey, _now: number, claim: Claim = Claim.orphan(), waiter?: W): DedupTicket {
    const ticket = this.nextTicket++ as DedupTicket;
    this.add({ key, ticket, claim, waiter, bytes: ENTRY_BYTES + key.topic.length, state: 'in_flight', result: undefined, expiresAt: Infinity });
    this.enforceCapacity();
    return ticket;
  }

  /**
   * The original finished. `keep` keeps `result` for windowMs (from now) for the copies that
   * match it (a success, or the tombstone of an unknown outcome); otherwise the entry goes, so
   * that a retry can write. Returns false when the ticket is unknown (evicted).
   */
  finish(ticket: DedupTicket, outcome: { ok: true; result: R } | { ok: false }, now: number): boolean {
    const e = this.lru.get(ticket);
    if (!e || e.state !== 'in_flight') return false;
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
    const e = this.lru.get(ticket);
    if (e && e.state === 'done' && e.claim.known) this.remove(e);
  }

  /** Drop expired entries (and those whose client knows the outcome). Returns how many expired. */
  sweep(now: number): number {
    let n = 0;
    for (const e of this.lru.values()) {
      if (e.state !== 'done') continue;
      if (now >= e.expiresAt) n++;
      else if (!e.claim.known) continue;
      this.remove(e);
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
    for (const e of this.lru.values()) if (e.state === 'done' && !e.claim.known) out.push({ key: e.key, result: e.result as R, expiresAt: e.expiresAt, claim: e.claim });
    return out;
  }

  /**
   * Puts back finished originals (from snapshot()) after a restart; expired ones are dropped.
   * Their clients' connections are gone, so each matches the next copy (Claim.orphan).
   */
  restore(entries: Iterable<DedupSnapshotEntry<R>>, now: number): void {
    for (const x of entries) {
      if (now >= x.expiresAt) continue;
      const ticket = this.nextTicket++ as DedupTicket;
      this.add({ key: x.key, ticket, claim: x.claim ?? Claim.orphan(), waiter: undefined, bytes: ENTRY_BYTES + x.key.topic.length, state: 'done', result: x.result, expiresAt: x.expiresAt });
    }
    this.enforceCapacity();
  }

  /** The waiters of the originals in flight, in arrival order (a reload moves them to a new cache). */
  inFlight(): W[] {
    const entries: Array<Entry<R, W>> = [];
    for (const e of this.lru.values()) if (e.state === 'in_flight' && e.waiter !== undefined) entries.push(e);
    return entries.sort((a, b) => a.ticket - b.ticket).map((e) => e.waiter!);
  }

  get size(): number {
    return this.lru.size;
  }

  /** Estimated heap bytes held (what maxBytes bounds). */
  get bytes(): number {
    return this.used;
  }

  private add(e: Entry<R, W>): void {
    const fp = e.key.fingerprint;
    const list = this.byKey.get(fp);
    if (list) list.push(e);
    else this.byKey.set(fp, [e]);
    this.lru.set(e.ticket, e);
    this.used += e.bytes;
  }

  private remove(e: Entry<R, W>): void {
    if (!this.lru.delete(e.ticket)) return;
    this.used -= e.bytes;
    const fp = e.key.fingerprint;
    const list = this.byKey.get(fp)!;
    if (list.length === 1) this.byKey.delete(fp);
    else list.splice(list.indexOf(e), 1);
  }

  private enforceCapacity(): void {
    let n = 0;
    // Each in-flight entry met is moved to the end once, so the loop ends.
    let spared = 0;
    while ((this.lru.size > this.maxEntries || this.used > this.maxBytes) && spared < this.lru.size) {
      const first = this.lru.values().next();
      if (first.done) break;
      const e = first.value;
      if (e.state === 'in_flight') {
        this.lru.delete(e.ticket);
        this.lru.set(e.ticket, e);
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
