// Originals whose client may retry them while the `exact` key cannot recognise the retry: kafkajs
// re-encodes a retry with a new timestamp, which `exact` dedup rightly takes for a new write. But
// a send of the same records on the same partition after the sidecar said "failed, retry" (or
// after the client's connection closed before its answer, or after a restart) IS that retry —
// the application was never told the write succeeded — so it is attached to the original
// (answered with its final result) instead of written again. Entries are indexed by content
// (key, value, headers; timestamps ignored); several originals may share one (the same records
// sent twice), and a copy matches the first whose Claim allows it (../idempotence/claim.ts): one
// copy waits on an original at a time, and none once a success reached a client in time.
// Entries live while the original is undecided, then for the dedup window when its result is
// kept (a success, or the tombstone of an unknown outcome); a failure that was surely not
// written drops the entry (the retry must write).
import type { PartResult } from './batches.js';
import type { Fingerprint } from '../idempotence/fingerprint.js';
import { Claim } from '../idempotence/claim.js';

/**
 * `retry`: the client was told to retry this part. `sibling`: answered success in a request whose
 * other part was told to retry — it matches only in a request that also carries a retry of that
 * group (clients such as kafkajs re-send the whole request; Java and librdkafka re-send only the
 * failed part, and then the sibling entries are dropped).
 */
export type RetryRole = { role: 'retry' | 'sibling'; group: number };

export type RetryEntry = RetryRole & { claim: Claim } & ({ state: 'undecided'; final: Promise<PartResult>; batchId: number } | { state: 'done'; result: PartResult; expiresAt: number });

/** At most this many originals are remembered (each a few hundred bytes). */
const MAX_ENTRIES = 50_000;

/** Whether a final result is kept for the copies: a success, or an unknown outcome (tombstone). */
export const keptForCopies = (r: PartResult): boolean => r.errorCode === 0 || r.outcomeUnknown === true;

export class RetryIndex {
  private readonly byKey = new Map<string, RetryEntry[]>();
  private count = 0;
  private readonly partitions = new Map<string, number>();

  constructor(private readonly windowMs: () => number) {}

  /** Whether any original of this partition is indexed (only then is a part content-hashed). */
  has(topic: string, partition: number): boolean {
    return (this.partitions.get(tpKey(topic, partition)) ?? 0) > 0;
  }

  match(topic: string, partition: number, fp: Fingerprint, now: number): RetryEntry | undefined {
    const k = key(topic, partition, fp);
    const list = this.byKey.get(k);
    if (!list) return undefined;
    for (const e of [...list]) {
      if (e.state === 'done' && (now >= e.expiresAt || e.claim.known)) this.remove(k, e);
      else if (e.claim.matchable(now)) return e;
    }
    return undefined;
  }

  /**
   * The client of this original may retry it (told to retry, or its connection closed first);
   * `final` is its outcome as clients get it, when decided. Once per original (by `claim`).
   */
  add(topic: string, partition: number, fp: Fingerprint, final: Promise<PartResult>, batchId: number, group: number, claim: Claim): void {
    const k = key(topic, partition, fp);
    if (this.count >= MAX_ENTRIES || this.byKey.get(k)?.some((e) => e.claim === claim)) return;
    const entry: RetryEntry = { role: 'retry', group, claim, state: 'undecided', final, batchId };
    this.insert(k, topic, partition, entry);
    void final.then((r) => {
      if (!this.byKey.get(k)?.includes(entry)) return;
      if (!keptForCopies(r)) return this.remove(k, entry); // not written: the retry must write
      const done: RetryEntry = { role: 'retry', group, claim, state: 'done', result: r, expiresAt: Date.now() + this.windowMs() };
      const list = this.byKey.get(k)!;
      list[list.indexOf(entry)] = done;
    });
  }

  /** A finished original restored after a restart (its client may never have had the result). */
  addFinished(topic: string, partition: number, fp: Fingerprint, result: PartResult, expiresAt: number, group: number, claim: Claim): void {
    if (this.count >= MAX_ENTRIES) return;
    this.insert(key(topic, partition, fp), topic, partition, { role: 'retry', group, claim, state: 'done', result, expiresAt });
  }

  /**
   * A part answered success in a request that as a whole was answered "retry" (another part
   * timed out): clients such as kafkajs then re-send the whole request, this part included.
   */
  addSibling(topic: string, partition: number, fp: Fingerprint, result: PartResult, group: number): void {
    const k = key(topic, partition, fp);
    if (this.count >= MAX_ENTRIES) return;
    this.insert(k, topic, partition, { role: 'sibling', group, claim: Claim.orphan(), state: 'done', result, expiresAt: Date.now() + this.windowMs() });
  }

  /** A retry of `group` came without these siblings: the client re-sends only failed parts. */
  dropSiblings(group: number, keep: ReadonlySet<RetryEntry>): void {
    for (const [k, list] of this.byKey) {
      for (const e of [...list]) if (e.role === 'sibling' && e.group === group && !keep.has(e)) this.remove(k, e);
    }
  }

  /** Drops answered entries past the window (or whose client knows the outcome). */
  sweep(now: number): void {
    for (const [k, list] of this.byKey) {
      for (const e of [...list]) if (e.state === 'done' && (now >= e.expiresAt || e.claim.known)) this.remove(k, e);
    }
  }

  get size(): number {
    return this.count;
  }

  private insert(k: string, topic: string, partition: number, e: RetryEntry): void {
    const list = this.byKey.get(k);
    if (list) list.push(e);
    else this.byKey.set(k, [e]);
    this.count++;
    const tp = tpKey(topic, partition);
    this.partitions.set(tp, (this.partitions.get(tp) ?? 0) + 1);
  }

  private remove(k: string, e: RetryEntry): void {
    const list = this.byKey.get(k);
    const i = list?.indexOf(e) ?? -1;
    if (!list || i < 0) return;
    if (list.length === 1) this.byKey.delete(k);
    else list.splice(i, 1);
    this.count--;
    const [partition, topic] = k.split('\u0000');
    const tp = tpKey(topic, Number(partition));
    const n = (this.partitions.get(tp) ?? 1) - 1;
    if (n <= 0) this.partitions.delete(tp);
    else this.partitions.set(tp, n);
  }
}

const tpKey = (topic: string, partition: number): string => `${partition}\u0000${topic}`;
const key = (topic: string, partition: number, fp: Fingerprint): string => `${partition}\u0000${topic}\u0000${fp.toString(36)}`;
