/**
 * Int32 producer-sequence arithmetic. Kafka sequences are non-negative Int32 values that wrap:
 * after 2147483647 comes 0 (DefaultRecordBatch.incrementSequence; the broker's
 * ProducerAppendInfo.inSequence accepts `next == last + 1 || (next == 0 && last == Integer.MAX_VALUE)`).
 * A batch of `count` records uses `count` consecutive sequences starting at its baseSequence
 * (lastOffsetDelta is also the sequence delta of the last record).
 */

export const MAX_SEQUENCE = 0x7fffffff; // Integer.MAX_VALUE
const MODULUS = 0x80000000; // 2^31

function check(seq: number, what: string): void {
  if (!Number.isInteger(seq) || seq < 0 || seq > MAX_SEQUENCE) throw new RangeError(`${what} must be an Int32 >= 0, got ${seq}`);
}

/** Sequence that follows `count` records starting at `seq` (wraps after Int32.MAX). */
export function nextSequence(seq: number, count: number): number {
  check(seq, 'sequence');
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be an integer >= 0, got ${count}`);
  return (seq + count) % MODULUS;
}

/** Sequence of the last record of a batch of `count` (>= 1) records starting at `base`. */
export function lastSequence(base: number, count: number): number {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be an integer >= 1, got ${count}`);
  return nextSequence(base, count - 1);
}

/** True when a batch starting at `firstSeq` directly follows a batch ending at `lastSeq`. */
export function isNext(lastSeq: number, firstSeq: number): boolean {
  check(lastSeq, 'lastSeq');
  check(firstSeq, 'firstSeq');
  return firstSeq === nextSequence(lastSeq, 1);
}

/** True when the sequences of a batch of `count` records starting at `base` would pass Int32.MAX → 0. */
export function wouldWrapInside(base: number, count: number): boolean {
  check(base, 'base');
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be an integer >= 1, got ${count}`);
  return base + (count - 1) > MAX_SEQUENCE;
}

/** Forward distance from `from` to `to` in the wrapping sequence space, 0..2^31-1. */
export function forwardDistance(from: number, to: number): number {
  check(from, 'from');
  check(to, 'to');
  return (((to - from) % MODULUS) + MODULUS) % MODULUS;
}
