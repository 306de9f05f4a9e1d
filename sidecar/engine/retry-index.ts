// Originals whose client the sidecar told to retry (REQUEST_TIMED_OUT: its answer deadline passed,
// or the upgrader held the batch at deliveryTimeout) while their outcome was undecided, indexed
// by content (key, value, headers; timestamps ignored). Some clients (kafkajs) re-encode a retry
// with a new timestamp, which `exact` dedup rightly takes for a new write; but a send of the same
// records on the same partition after the sidecar said "failed, retry" IS that retry — the
// application was told its write failed — so it is attached to the original (answered with its
// final result) instead of written again. Only originals answered "retry" are indexed, and an
// entry is used up once a retry got the original's success: a repeat after a success, or while
// the original is still within its first answer, is written. Entries live while the original is
// undecided, then (success only) until a retry takes the result or the dedup window ends.
import type { PartResult } from './batches.js';
import type { Fingerprint } from '../idempotence/fingerprint.js';

/**
 * `retry`: the client was told to retry this part. `sibling`: answered success in a request whose
 * other part was told to retry — it matches only in a request that also carries a retry of that
 * group (clients such as kafkajs re-send the whole request; Java and librdkafka re-send only the
 * failed part, and then the sibling entries are dropped).
 */
export type RetryRole = { role: 'retry' | 'sibling'; group: number };

export type RetryEntry = RetryRole & ({ state: 'undecided'; final: Promise<PartResult>; batchId: number } | { state: 'done'; result: PartResult; expiresAt: number });

/** At most this many originals are remembered (each a few hundred bytes). */
const MAX_ENTRIES = 50_000;

export class RetryIndex {
  private readonly byKey = new Map<string, RetryEntry>();
  /**
   * Originals a copy is attached to right now. A second copy meanwhile is another send (a client
   * retries only after its previous attempt was answered), so it is written: each original serves
   * one copy at a time, and only one copy ever gets its success.
   */
  private readonly taken = new Set<string>();
  private readonly partitions = new Map<string, number>();

  constructor(private readonly windowMs: () => number) {}

  /** Whether any original of this partition is indexed (only then is a part content-hashed). */
  has(topic: string, partition: number): boolean {
    return (this.partitions.get(tpKey(topic, partition)) ?? 0) > 0;
  }

  match(topic: string, partition: number, fp: Fingerprint, now: number): RetryEntry | undefined {
    const k = key(topic, partition, fp);
    const e = this.byKey.get(k);
    if (e?.state === 'done' && now >= e.expiresAt) {
      this.remove(k, topic, partition);
      return undefined;
    }
    return this.taken.has(k) ? undefined : e;
  }

  /** A copy attaches to this original: no other copy matches it until `release` or `consumed`. */
  take(topic: string, partition: number, fp: Fingerprint): void {
    const k = key(topic, partition, fp);
    if (this.byKey.has(k)) this.taken.add(k);
  }

  /** The attached copy was answered without success: the client may retry it once more. */
  release(topic: string, partition: number, fp: Fingerprint): void {
    this.taken.delete(key(topic, partition, fp));
  }

  /** The client of this original was told to retry; `final` is its outcome when decided. */
  add(topic: string, partition: number, fp: Fingerprint, final: Promise<PartResult>, batchId: number, group: number): void {
    const k = key(topic, partition, fp);
    if (this.byKey.has(k) || this.byKey.size >= MAX_ENTRIES) return;
    const entry: RetryEntry = { role: 'retry', group, state: 'undecided', final, batchId };
    this.byKey.set(k, entry);
    const tp = tpKey(topic, partition);
    this.partitions.set(tp, (this.partitions.get(tp) ?? 0) + 1);
    void final.then((r) => {
      if (this.byKey.get(k) !== entry) return;
      if (r.errorCode === 0) this.byKey.set(k, { role: 'retry', group, state: 'done', result: r, expiresAt: Date.now() + this.windowMs() });
      else this.remove(k, topic, partition); // not written: the retry must write
    });
  }

  /**
   * A retry got the original's success: the client knows the outcome now, so a later send of the
   * same records is a new write again.
   */
  consumed(topic: string, partition: number, fp: Fingerprint): void {
    this.remove(key(topic, partition, fp), topic, partition);
  }

  /**
   * A part answered success in a request that as a whole was answered "retry" (another part
   * timed out): clients such as kafkajs then re-send the whole request, this part included.
   */
  addSibling(topic: string, partition: number, fp: Fingerprint, result: PartResult, group: number): void {
    const k = key(topic, partition, fp);
    if (this.byKey.has(k) || this.byKey.size >= MAX_ENTRIES) return;
    this.byKey.set(k, { role: 'sibling', group, state: 'done', result, expiresAt: Date.now() + this.windowMs() });
    const tp = tpKey(topic, partition);
    this.partitions.set(tp, (this.partitions.get(tp) ?? 0) + 1);
  }

  /** A retry of `group` came without these siblings: the client re-sends only failed parts. */
  dropSiblings(group: number, keep: ReadonlySet<string>): void {
    for (const [k, e] of this.byKey) {
      if (e.role !== 'sibling' || e.group !== group || keep.has(k)) continue;
      const [partition, topic] = k.split('\u0000');
      this.remove(k, topic, Number(partition));
    }
  }

  /** The map key of a match (for dropSiblings' keep set). */
  static keyOf(topic: string, partition: number, fp: Fingerprint): string {
    return key(topic, partition, fp);
  }

  /** Drops answered entries past the window. */
  sweep(now: number): void {
    for (const [k, e] of this.byKey) {
      if (e.state !== 'done' || now < e.expiresAt) continue;
      const [partition, topic] = k.split('\u0000');
      this.remove(k, topic, Number(partition));
    }
  }

  get size(): number {
    return this.byKey.size;
  }

  private remove(k: string, topic: string, partition: number): void {
    this.taken.delete(k);
    if (!this.byKey.delete(k)) return;
    const tp = tpKey(topic, partition);
    const n = (this.partitions.get(tp) ?? 1) - 1;
    if (n <= 0) this.partitions.delete(tp);
    else this.partitions.set(tp, n);
  }
}

const tpKey = (topic: string, partition: number): string => `${partition}\u0000${topic}`;
const key = (topic: string, partition: number, fp: Fingerprint): string => `${partition}\u0000${topic}\u0000${fp.toString(36)}`;
