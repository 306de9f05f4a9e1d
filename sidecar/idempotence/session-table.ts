/**
 * Observe/enforce modes: validation of batches from producers that are already idempotent
 * (producerId >= 0). Mirrors the broker's per-(producerId, partition) state
 * (ProducerStateManager / ProducerStateEntry / ProducerAppendInfo, Kafka 3.x/4.x) plus the
 * batches the sidecar has forwarded and not yet seen answered.
 *
 * Usage by the driver, per partition of a Produce request:
 *   enforce: v = check(key, b, now); accept → t = begin(key, b, now), forward, complete(t, result, now);
 *            other verdicts → answer / wait as documented on Verdict.
 *   observe: { verdict, ticket } = observe(key, b, now) (counts + tracks), forward anyway, complete(ticket, ...).
 * The state only advances on complete() with a success (0 or 46), like the broker's, which
 * updates its ProducerStateEntry only after a successful append.
 */
import { ErrorCode } from '../codec/errors.js';
import { forwardDistance, isNext, nextSequence } from './sequence.js';

export interface SessionKey {
  readonly producerId: bigint;
  readonly topic: string;
  readonly partition: number;
}

export interface BatchSeq {
  readonly epoch: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
}

/** Opaque handle of a forwarded batch. */
export type Ticket = number & { readonly __ticket: unique symbol };

export type Verdict =
  /** Forward it. */
  | { kind: 'accept' }
  /**
   * Same epoch and exact (firstSeq, lastSeq) of one of the last 5 acknowledged batches: answer NONE
   * with this offset, write nothing. logAppendTime is the one of the original's response (the broker
   * itself answers a duplicate with the cached batch timestamp: UnifiedLog.append,
   * `appendInfo.setLogAppendTime(duplicate.timestamp)`).
   */
  | { kind: 'duplicate'; baseOffset: bigint; logAppendTime: bigint }
  /** Same epoch and range as a batch in flight: wait for that ticket's answer and give the same one. */
  | { kind: 'duplicate_in_flight'; ticket: Ticket }
  /**
   * Gap (or a new epoch not starting at 0), nothing in flight, and the table's state is the broker's
   * (not rebuilt after an abandon: then a gap is accepted and the broker judges it): answer
   * OUT_OF_ORDER_SEQUENCE_NUMBER.
   */
  | { kind: 'out_of_sequence'; expected: number }
  /**
   * Gap while batches of the partition are in flight: never answer a non-retriable error then
   * (rule 3, KAFKA-14034): wait until `waitFor` completes, then check again.
   */
  | { kind: 'defer'; waitFor: Ticket }
  /** Lower epoch than the stored one: answer INVALID_PRODUCER_EPOCH. */
  | { kind: 'stale_epoch'; currentEpoch: number }
  /** Already 5 in flight (rule 1): wait until `waitFor` (the oldest) completes, then check again. */
  | { kind: 'too_many_in_flight'; waitFor: Ticket };


export interface CompleteResult {
  readonly errorCode: number;
  readonly baseOffset: bigint;
  readonly logAppendTime: bigint;
}

export type EvictionReason = 'idle' | 'capacity';

export interface SessionTableOptions {
  /** Forget a producer this long after its last batch (default 15 min; the broker's producer.id.expiration.ms is 1 day). */
  idleMs?: number;
  /** At most this many producer sessions (LRU; default 10000). */
  maxSessions?: number;
  /** Estimated heap bytes of all sessions (SESSION_BYTES, PARTITION_BYTES each; default 16 MiB): LRU beyond. */
  maxBytes?: number;
  /** Batches in flight per (producerId, partition) (default 5). */
  maxInFlight?: number;
  /** Called whenever sessions are dropped. */
  onEvict?: (reason: EvictionReason, count: number) => void;
}

/**
 * Heap estimates of a session with its Map, and of one partition's state with 5 acknowledged
 * batches. Measured with --expose-gc: 20,000 sessions × 10 partitions took 184 MB of heap, these
 * estimates say 228 MB (on the safe side).
 */
export const SESSION_BYTES = 400;
export const PARTITION_BYTES = 1100;

/** ProducerStateEntry.NUM_BATCHES_TO_RETAIN */
export const BATCHES_TO_RETAIN = 5;

interface BatchMeta {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly baseOffset: bigint;
  readonly logAppendTime: bigint;
}

interface InFlight extends BatchSeq {
  readonly ticket: Ticket;
}

interface PartitionState {
  /** Acknowledged (broker) state; epoch -1 = nothing acknowledged yet (the broker has no entry). */
  epoch: number;
  lastSeq: number;
  /** Oldest first, at most 5, all of `epoch`. */
  acked: BatchMeta[];
  /**
   * The table saw every answer since it began tracking the partition, so `acked` and `lastSeq`
   * are the broker's. False for good after `abandon` left batches in flight: their answers (late
   * ones on a retiring connection, copies of old batches re-sent after a re-dial) rebuild the
   * state from whatever comes, older or newer than what the broker holds, so its gaps are no
   * proof. While false, a gap is the broker's to judge (it answers a cached copy as a duplicate).
   * (Seen: a stale answer for sequence 0 set lastSeq 0 while the broker was at ~60; the client's
   * next batch was refused 45 and Java re-wrote 148 records under a new epoch.)
   */
  whole: boolean;
  inFlight: InFlight[];
}

interface Session {
  readonly producerId: bigint;
  lastSeen: number;
  partitions: Map<string, PartitionState>;
  inFlightCount: number;
}

interface TicketRef {
  readonly session: Session;
  readonly tpKey: string;
}

const tpKey = (k: SessionKey): string => `${k.partition}\u0000${k.topic}`;

export class SessionTable {
  private readonly idleMs: number;
  private readonly maxSessions: number;
  private readonly maxInFlight: number;
  private readonly maxBytes: number;
  private readonly onEvict: ((reason: EvictionReason, count: number) => void) | undefined;
  /** Insertion order = least recently used first. */
  private readonly sessions = new Map<bigint, Session>();
  private readonly tickets = new Map<Ticket, TicketRef>();
  private nextTicket = 1;
  private partitionsTotal = 0;
  private evictedIdle = 0;
  private evictedCapacity = 0;

  constructor(opts: SessionTableOptions = {}) {
    this.idleMs = opts.idleMs ?? 15 * 60_000;
    this.maxSessions = opts.maxSessions ?? 10_000;
    this.maxInFlight = opts.maxInFlight ?? 5;
    this.maxBytes = opts.maxBytes ?? 16 * 1024 * 1024;
    this.onEvict = opts.onEvict;
    if (this.maxSessions < 1) throw new RangeError('maxSessions must be >= 1');
  }

  /** Validate a batch without changing state (except LRU recency). */
  check(key: SessionKey, b: BatchSeq, now: number): Verdict {
    const s = this.sessions.get(key.producerId);
    if (s) this.touch(s, now);
    const ps = s?.partitions.get(tpKey(key));
    if (!ps) return { kind: 'accept' }; // no state for the producer: any sequence (KIP-360, Kafka 2.5+)

    // Epoch fencing: ProducerAppendInfo.checkProducerEpoch → INVALID_PRODUCER_EPOCH.
    if (ps.epoch >= 0 && b.epoch < ps.epoch) return { kind: 'stale_epoch', currentEpoch: ps.epoch };

    // Duplicate of a batch in flight (same epoch, exact range).
    for (const f of ps.inFlight) {
      if (f.epoch === b.epoch && f.firstSeq === b.firstSeq && f.lastSeq === b.lastSeq) return { kind: 'duplicate_in_flight', ticket: f.ticket };
    }
    // Broker rule (ProducerStateEntry.findDuplicateBatch / batchWithSequenceRange): same epoch and
    // exact (firstSeq, lastSeq) of one of the last 5 batches; records are not compared.
    if (b.epoch === ps.epoch) {
      const d = ps.acked.find((m) => m.firstSeq === b.firstSeq && m.lastSeq === b.lastSeq);
      if (d) return { kind: 'duplicate', baseOffset: d.baseOffset, logAppendTime: d.logAppendTime };
    }

    const oldest = ps.inFlight[0];
    const newest = ps.inFlight[ps.inFlight.length - 1];
    if (oldest && ps.inFlight.length >= this.maxInFlight) return { kind: 'too_many_in_flight', waitFor: oldest.ticket };
    // A batch of a higher epoch than the one in flight is still fine; a lower one must wait for them.
    if (newest && b.epoch < newest.epoch) return { kind: 'defer', waitFor: newest.ticket };

    const expected = this.expectedFirstSeq(ps, b.epoch);
    if (expected === null || b.firstSeq === expected) return { kind: 'accept' };
    // Gap. Rule 3 (KAFKA-14034, Redpanda #5355): no non-retriable error while earlier batches of
    // the partition are in flight; they may fail and the client then re-sends in order.
    if (newest) return { kind: 'defer', waitFor: newest.ticket };
    // Rule 5: a gap against a state rebuilt from answers after an abandon may be the re-send of a
    // batch the broker wrote and still caches (its answer was lost): a 45 from the sidecar would
    // make a Java idempotent producer bump its epoch and write its unacknowledged batches again.
    if (!ps.whole) return { kind: 'accept' };
    return { kind: 'out_of_sequence', expected };
  }

  /** Record a batch as forwarded. Works for any verdict (observe mode forwards everything). */
  begin(key: SessionKey, b: BatchSeq, now: number): Ticket {
    let s = this.sessions.get(key.producerId);
    if (!s) {
      s = { producerId: key.producerId, lastSeen: now, partitions: new Map(), inFlightCount: 0 };
      this.sessions.set(key.producerId, s);
      this.enforceCapacity(s);
    }
    this.touch(s, now);
    const k = tpKey(key);
    let ps = s.partitions.get(k);
    if (!ps) {
      ps = { epoch: -1, lastSeq: -1, acked: [], inFlight: [], whole: true };
      s.partitions.set(k, ps);
      this.partitionsTotal++;
      this.enforceCapacity(s);
    }
    const ticket = this.nextTicket++ as Ticket;
    ps.inFlight.push({ epoch: b.epoch, firstSeq: b.firstSeq, lastSeq: b.lastSeq, ticket });
    s.inFlightCount++;
    this.tickets.set(ticket, { session: s, tpKey: k });
    return ticket;
  }

  /** check + begin: observe mode counts the verdict and forwards anyway. */
  observe(key: SessionKey, b: BatchSeq, now: number): { verdict: Verdict; ticket: Ticket } {
    const verdict = this.check(key, b, now);
    return { verdict, ticket: this.begin(key, b, now) };
  }

  /**
   * The broker answered (or the driver gave up: pass any non-success code). Success (0, or 46 =
   * success without offset) records the batch as acknowledged; anything else just drops it from
   * the in-flight list. Returns false for an unknown (or evicted) ticket.
   */
  complete(ticket: Ticket, result: CompleteResult, now: number): boolean {
    const ref = this.tickets.get(ticket);
    if (!ref) return false;
    this.tickets.delete(ticket);
    const s = ref.session;
    const ps = s.partitions.get(ref.tpKey);
    if (!ps) return false;
    const i = ps.inFlight.findIndex((f) => f.ticket === ticket);
    if (i < 0) return false;
    const [f] = ps.inFlight.splice(i, 1);
    s.inFlightCount--;
    if (this.sessions.get(s.producerId) === s) this.touch(s, now);
    const ok = result.errorCode === ErrorCode.NONE || result.errorCode === ErrorCode.DUPLICATE_SEQUENCE_NUMBER;
    if (ok) this.acknowledge(ps, f, result);
    if (ps.inFlight.length === 0 && ps.epoch < 0 && s.partitions.delete(ref.tpKey)) this.partitionsTotal--;
    return true;
  }

  /**
   * A forwarded batch whose outcome is unknown (its connection was given up: it may or may not
   * be written). The partition's state is unknown from then on: the next batch is accepted with
   * any sequence, as for a producer the broker has no entry for, and the broker judges it.
   */
  abandon(ticket: Ticket): boolean {
    const ref = this.tickets.get(ticket);
    if (!ref) return false;
    this.tickets.delete(ticket);
    const s = ref.session;
    const ps = s.partitions.get(ref.tpKey);
    const i = ps ? ps.inFlight.findIndex((f) => f.ticket === ticket) : -1;
    if (!ps || i < 0) return false;
    ps.inFlight.splice(i, 1);
    s.inFlightCount--;
    ps.epoch = -1;
    ps.lastSeq = -1;
    ps.acked = [];
    ps.whole = false;
    if (ps.inFlight.length === 0 && s.partitions.delete(ref.tpKey)) this.partitionsTotal--;
    return true;
  }

  /** Drop sessions idle for idleMs and without batches in flight. Returns how many. */
  sweep(now: number): number {
    let n = 0;
    for (const s of this.sessions.values()) {
      if (now - s.lastSeen < this.idleMs) break; // LRU order: the rest are more recent
      if (s.inFlightCount > 0) continue;
      this.sessions.delete(s.producerId);
      this.partitionsTotal -= s.partitions.size;
      n++;
    }
    if (n > 0) {
      this.evictedIdle += n;
      this.onEvict?.('idle', n);
    }
    return n;
  }

  /** Live producer sessions (for `idempo_producer_sessions`). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  get evictedCounts(): { idle: number; capacity: number } {
    return { idle: this.evictedIdle, capacity: this.evictedCapacity };
  }

  /** Estimated heap bytes held (what maxBytes bounds). */
  get bytes(): number {
    return this.sessions.size * SESSION_BYTES + this.partitionsTotal * PARTITION_BYTES;
  }

  /** Batches forwarded and not completed, over all sessions. */
  get inFlightCount(): number {
    return this.tickets.size;
  }

  // --- internals ---

  /**
   * firstSeq the broker would accept for `epoch`, or null for "any" (ProducerAppendInfo.checkSequence):
   * - a new epoch must start at 0 (when the broker knows an epoch for the producer);
   * - same epoch: lastSeq + 1 with wrap (inSequence), counting the batches in flight;
   * - no acknowledged state: any sequence (KIP-360).
   */
  private expectedFirstSeq(ps: PartitionState, epoch: number): number | null {
    for (let i = ps.inFlight.length - 1; i >= 0; i--) {
      const f = ps.inFlight[i];
      if (f.epoch === epoch) return nextSequence(f.lastSeq, 1);
    }
    if (ps.epoch < 0) return null;
    if (epoch > ps.epoch) return 0;
    return nextSequence(ps.lastSeq, 1);
  }

  private acknowledge(ps: PartitionState, f: InFlight, r: CompleteResult): void {
    const meta: BatchMeta = {
      firstSeq: f.firstSeq,
      lastSeq: f.lastSeq,
      baseOffset: r.errorCode === ErrorCode.DUPLICATE_SEQUENCE_NUMBER ? -1n : r.baseOffset,
      logAppendTime: r.errorCode === ErrorCode.DUPLICATE_SEQUENCE_NUMBER ? -1n : r.logAppendTime,
    };
    if (ps.epoch < 0 || f.epoch > ps.epoch) {
      // First state, or a higher epoch: the broker replaces the entry and clears its batch cache.
      ps.epoch = f.epoch;
      ps.lastSeq = f.lastSeq;
      ps.acked = [meta];
      return;
    }
    if (f.epoch < ps.epoch) return; // answered for an epoch already superseded: ignore
    // A forwarded duplicate answered NONE with its original offset: already cached.
    if (ps.acked.some((m) => m.firstSeq === f.firstSeq && m.lastSeq === f.lastSeq)) return;
    ps.acked.push(meta);
    if (ps.acked.length > BATCHES_TO_RETAIN) ps.acked.shift();
    // Advance only forward (answers normally come in order; never move lastSeq back).
    if (isNext(ps.lastSeq, f.firstSeq) || forwardDistance(ps.lastSeq, f.lastSeq) < 0x40000000) ps.lastSeq = f.lastSeq;
  }

  private touch(s: Session, now: number): void {
    s.lastSeen = Math.max(s.lastSeen, now);
    this.sessions.delete(s.producerId);
    this.sessions.set(s.producerId, s);
  }

  private enforceCapacity(keep: Session): void {
    let n = 0;
    while (this.sessions.size > this.maxSessions || this.bytes > this.maxBytes) {
      let victim: Session | undefined;
      for (const s of this.sessions.values()) {
        if (s !== keep && s.inFlightCount === 0) {
          victim = s;
          break;
        }
      }
      if (!victim) break; // every session has batches in flight: exceed the cap rather than lose them
      this.sessions.delete(victim.producerId);
      this.partitionsTotal -= victim.partitions.size;
      n++;
    }
    if (n > 0) {
      this.evictedCapacity += n;
      this.onEvict?.('capacity', n);
    }
  }
}
