/**
 * Upgrade mode: the sidecar's own idempotent producer assigns sequences to the batches of
 * non-idempotent clients. Each partition has its own producer identity (producerId, epoch): the
 * broker keeps producer state per (producerId, partition), so a partition that must leave its
 * identity (a hole in its sequences, or the Int32 wrap ahead) moves alone, once IT has drained,
 * while every other partition keeps pipelining under its own.
 *
 * A pure state machine: no I/O, no timers. Every method returns the actions the driver must
 * carry out, in order. Time is passed in as `now` (ms).
 *
 * Contract with the driver:
 * - `send`/`resend` carry (producerId, epoch, baseSequence): stamp exactly these into the batch
 *   header (and recompute the CRC) before the FIRST send; a `resend` must send the SAME bytes.
 *   A batch counts as in flight from the moment its send/resend action is returned; the driver
 *   must report exactly one `onResult` per send/resend (a response, or `{kind:'unknown'}` after
 *   a lost connection or its own request timeout).
 * - `resend.notBefore` is the earliest time to put it on the wire. Only the single recovery
 *   probe of a partition carries a future notBefore and nothing else of that partition is sent
 *   meanwhile, so per-partition send order = action order.
 * - Per partition, send the actions in the order returned (Kafka keeps per-connection order).
 * - `identity`: the partition now uses this (producerId, epoch), from sequence 0; it comes before
 *   the first send under it (persist it before that send goes out).
 * - `need_producer_id`: obtain a fresh producer id (InitProducerId, no transactional id) and call
 *   `addProducerId`; until then the partitions waiting for it send nothing new.
 * - Call `tick(now)` at `nextDeadline()` (or periodically) so batches that wait past
 *   deliveryTimeout fail even when no response arrives.
 *
 * - A second `send` (with `restamped: true`) for the same id comes for a batch that the broker
 *   refused on every attempt (a definite answer: never written), so it gets a new stamp. Stamp the
 *   bytes again for every `send`; never for a `resend`.
 *
 * Sequences are assigned when a batch is FIRST sent (in FIFO order, which is also sequence
 * order) and never changed afterwards (except the re-stamp of a never-written batch above).
 */
import { backoffDelay } from '../../api/backoff.js';
import { ErrorCode, type BatchOutcome, type RetryReason } from '../codec/errors.js';
import { forwardDistance, lastSequence, MAX_SEQUENCE, nextSequence, wouldWrapInside } from './sequence.js';

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export interface ProducerIdentity {
  readonly producerId: bigint;
  readonly epoch: number;
}

export interface SequencerOptions {
  /** The producer id partitions start with; null: none yet (batches queue until `addProducerId`). */
  producer: ProducerIdentity | null;
  /** Batches sent and not yet resolved per partition, 1..5 (rule 1; default 5). */
  maxInFlight?: number;
  retryBackoff?: { initial: number; max: number };
  /** Give up on a batch this long after `submit` (default 120 s; keep well below producer.id.expiration.ms). */
  deliveryTimeoutMs?: number;
  /**
   * A batch that may have been written and is still undecided at its deadline is HELD this long
   * (the dedup window: how long a client's retry of it can be recognised): the client is told a
   * retriable error (`fail` with `held: true`), the batch keeps its stamp and keeps being re-sent
   * until the broker decides it, and a later `resolve` or `fail` for the same id gives the final
   * outcome. 0 (default): fail it at the deadline for good.
   */
  unknownHoldMs?: number;
  /**
   * A partition idle (no acknowledgement) this long is treated as if the broker had forgotten the
   * producer (producer.id.expiration.ms, KIP-360): its next batch goes alone. Default 60 s.
   */
  sessionIdleMs?: number;
  /**
   * A partition moves to the next epoch of its producer id while the epoch is below this; at it,
   * the partition asks for a fresh producer id instead (Kafka's epoch is an int16; the coordinator
   * treats Short.MAX_VALUE - 1 as exhausted). Default 32766; smaller only in tests.
   */
  maxEpoch?: number;
}

/** Why a partition leaves its identity: a sent batch failed (a hole), or the next batch would wrap inside. */
export type EpochBumpReason = 'sequence_hole' | 'sequence_wrap';

/** Why a partition got an identity: its first one ('first'), or it left the last one. */
export type IdentityReason = 'first' | EpochBumpReason;

export type SequencerAction =
  | {
      type: 'send';
      tp: TopicPartition;
      id: number;
      producerId: bigint;
      epoch: number;
      baseSequence: number;
      /**
       * Present on a second `send` of the same id: the batch was sent under an older epoch, rejected
       * with OUT_OF_ORDER_SEQUENCE_NUMBER on every attempt (so never written) and is now stamped anew.
       */
      restamped?: true;
    }
  | {
      type: 'resend';
      tp: TopicPartition;
      id: number;
      producerId: bigint;
      epoch: number;
      baseSequence: number;
      /** 2 for the first re-send. */
      attempt: number;
      reason: RetryReason;
      notBefore: number;
    }
  | { type: 'resolve'; tp: TopicPartition; id: number; baseOffset: bigint; logAppendTime: bigint }
  | {
      type: 'fail';
      tp: TopicPartition;
      id: number;
      errorCode: number;
      /** The batch may have been written (a transport failure or a maybe-written error happened on some attempt). */
      outcomeUnknown: boolean;
      /**
       * Not final: the batch is held under its stamp for the client's retry (see `unknownHoldMs`);
       * tell the client a retriable error now, expect a final `resolve` or `fail` for this id later.
       */
      held?: true;
    }
  /** The partition uses this identity from now on, from sequence 0 (journal it before the sends behind it). */
  | { type: 'identity'; tp: TopicPartition; producerId: bigint; epoch: number; reason: IdentityReason }
  /** Get a fresh producer id (InitProducerId without transactional id) and call `addProducerId`. */
  | { type: 'need_producer_id' };

/**
 * What survives a restart (sidecar/state): the newest producer id, each partition's identity and
 * next sequence and the unresolved batches in partition order. Acknowledged batches are not part of it.
 */
export interface SequencerSnapshot {
  /** The newest producer id obtained (what a partition without an identity takes). */
  producer: ProducerIdentity | null;
  partitions: PartitionSnapshot[];
}

export interface PartitionSnapshot {
  tp: TopicPartition;
  /** The partition's identity; null before its first send. */
  producer: ProducerIdentity | null;
  /** It must leave that identity once it has drained. */
  switchPending: EpochBumpReason | null;
  nextSeq: number;
  /** Unresolved batches in partition order: stamped (sent) ones first, then queued ones. */
  batches: BatchSnapshot[];
}

export interface BatchSnapshot {
  id: number;
  recordCount: number;
  /** The stamp of its sends; null when never sent (or re-queued for a re-stamp, then `restamped`). */
  stamp: { producerId: bigint; epoch: number; baseSequence: number } | null;
  restamped: boolean;
}

type BatchState = 'queued' | 'in_flight' | 'await_resend' | 'acked';

interface Batch {
  readonly id: number;
  readonly recordCount: number;
  readonly deadline: number;
  state: BatchState;
  /** -1 until first sent. */
  baseSequence: number;
  producerId: bigint;
  epoch: number;
  attempts: number;
  failures: number;
  lastErrorCode: number | null;
  lastReason: RetryReason;
  mayBeWritten: boolean;
  /** Re-queued after a definitive rejection: its next send is a re-stamp. */
  restamped: boolean;
  /** Undecided past its deadline, the client told so; kept (and re-sent) until `heldUntil`. */
  heldUntil: number | null;
  /** Sent after a batch of its partition that the broker rejected for good: it cannot be written under its stamp (it is re-stamped once its answer is in). */
  doomed: boolean;
}

interface PartitionState {
  readonly tp: TopicPartition;
  /** (producerId, epoch) of the partition's stamps; null until its first send. */
  identity: ProducerIdentity | null;
  /** A new identity is needed (no first send until then); taken once the partition has drained. */
  switchPending: EpochBumpReason | null;
  nextSeq: number;
  /** Sent batches in sequence order (acked ones stay until every earlier one is resolved), then queued ones in FIFO order. */
  batches: Batch[];
  recovering: boolean;
  /** The batch re-sent alone during recovery, or null. */
  probeId: number | null;
  /** A batch of the partition's identity was acknowledged (the broker has state for it). */
  confirmed: boolean;
  /** Last offset of the acknowledged batch with the highest sequence (-1n: none), to notice the broker losing the producer's state. */
  lastAckedOffset: bigint;
  /** That batch's base sequence (-1: none). */
  lastAckedSeq: number;
  /** When the last acknowledgement came (ms). */
  lastAckAt: number;
}

const tpKey = (tp: TopicPartition): string => `${tp.partition}\u0000${tp.topic}`;

/** The partition's batch `id` (a plain loop: no closure per call). */
function batchOf(ps: PartitionState, id: number): Batch | undefined {
  const list = ps.batches;
  for (let i = 0; i < list.length; i++) if (list[i].id === id) return list[i];
  return undefined;
}

/**
 * Errors a broker gives before it appends anything (size, format, authorization, topic): the
 * batch is not in the log, so its sequences may be given to the batches behind it.
 */
const NEVER_WRITTEN: ReadonlySet<number> = new Set([
  ErrorCode.MESSAGE_TOO_LARGE,
  ErrorCode.RECORD_LIST_TOO_LARGE,
  ErrorCode.INVALID_RECORD,
  ErrorCode.INVALID_TIMESTAMP,
  ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
  ErrorCode.INVALID_TOPIC_EXCEPTION,
  ErrorCode.TOPIC_AUTHORIZATION_FAILED,
  ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
  ErrorCode.INVALID_REQUIRED_ACKS,
  ErrorCode.POLICY_VIOLATION,
]);

/** submitAll's refusal of a driver bug (out of line: the per-request path stays small). */
function refuseItem(it: { id: number; recordCount: number }, reused: boolean): never {
  if (reused) throw new Error(`batch id ${it.id} already submitted`);
  throw new RangeError(`recordCount must be >= 1, got ${it.recordCount}`);
}

/** A held batch's client must retry: a code every client treats as retriable. */
function retriableCode(code: number): number {
  return code === ErrorCode.REQUEST_TIMED_OUT || code === ErrorCode.NETWORK_EXCEPTION || code === ErrorCode.NOT_LEADER_OR_FOLLOWER ? code : ErrorCode.REQUEST_TIMED_OUT;
}

export class Sequencer {
  /** The newest producer id obtained: a partition without an identity (or out of epochs) takes it. */
  private producer: ProducerIdentity | null;
  private readonly maxInFlight: number;
  private readonly backoffInitial: number;
  private readonly backoffMax: number;
  private readonly deliveryTimeoutMs: number;
  private readonly unknownHoldMs: number;
  private readonly sessionIdleMs: number;
  private readonly maxEpoch: number;
  private readonly partitions = new Map<string, PartitionState>();
  /** The same states by topic, then partition (see find). */
  private readonly byTopic = new Map<string, Map<number, PartitionState>>();
  private readonly ids = new Map<number, PartitionState>();
  /** `need_producer_id` was emitted and `addProducerId` has not come yet. */
  private producerIdRequested = false;
  private readonly retries = new Map<RetryReason, number>();

  constructor(opts: SequencerOptions) {
    this.producer = opts.producer;
    this.maxInFlight = opts.maxInFlight ?? 5;
    if (!Number.isInteger(this.maxInFlight) || this.maxInFlight < 1 || this.maxInFlight > 5) {
      throw new RangeError(`maxInFlight must be 1..5 (Kafka keeps 5 batches per producer and partition), got ${this.maxInFlight}`);
    }
    this.backoffInitial = opts.retryBackoff?.initial ?? 100;
    this.backoffMax = opts.retryBackoff?.max ?? 1000;
    this.deliveryTimeoutMs = opts.deliveryTimeoutMs ?? 120_000;
    this.unknownHoldMs = opts.unknownHoldMs ?? 0;
    this.sessionIdleMs = opts.sessionIdleMs ?? 60_000;
    this.maxEpoch = opts.maxEpoch ?? 32_766;
  }

  /** Queue a batch; returns the sends that became possible. Throws on a reused id or recordCount < 1 (driver bugs). */
  submit(tp: TopicPartition, batch: { id: number; recordCount: number }, now: number): SequencerAction[] {
    return this.submitAll([{ tp, ...batch }], now);
  }

  /**
   * Queue the batches of one request. Everything is checked before anything changes: on a
   * reused id, an id twice, or recordCount < 1 it throws and the Sequencer is as before.
   */
  submitAll(items: ReadonlyArray<{ tp: TopicPartition; id: number; recordCount: number }>, now: number): SequencerAction[] {
    // Indexed loops and no Set for the few items of one request: this runs for every client
    // request, mostly before the JIT has optimised it (for...of allocates per element there).
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      let reused = this.ids.has(it.id);
      for (let j = 0; j < i; j++) reused ||= items[j].id === it.id;
      if (reused || !Number.isInteger(it.recordCount) || it.recordCount < 1) refuseItem(it, reused);
    }
    const out: SequencerAction[] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      const ps = this.partitionOf(it.tp);
      this.ids.set(it.id, ps);
      ps.batches.push(this.newBatch(it.id, it.recordCount, now + this.deliveryTimeoutMs, 'queued'));
    }
    // Each partition pumped once, in order of first appearance (no array of them: a request has a few items).
    for (let i = 0; i < items.length; i++) {
      const tp = items[i].tp;
      let first = true;
      for (let j = 0; j < i && first; j++) if (items[j].tp.partition === tp.partition && items[j].tp.topic === tp.topic) first = false;
      if (first) this.pump(this.find(tp)!, now, out);
    }
    return out;
  }

  /**
   * The client retried a held batch (its copy was recognised): re-send it now under its
   * original stamp, and keep holding it for another `unknownHoldMs`. Returns the actions.
   */
  retryHeld(id: number, now: number): SequencerAction[] {
    const out: SequencerAction[] = [];
    const ps = this.ids.get(id);
    const b = ps && batchOf(ps, id);
    if (!ps || !b || b.heldUntil === null) return out;
    b.heldUntil = now + this.unknownHoldMs;
    b.failures = 0; // the next probe goes without backoff
    if (b.state === 'await_resend' && ps.probeId === null) this.pump(ps, now, out);
    return out;
  }

  /**
   * The driver learned that the broker lost the producer's state for a whole topic (its topic id
   * changed: deleted and created again): its partitions send their next batch alone.
   */
  topicRecreated(topic: string): void {
    for (const ps of this.partitions.values()) {
      if (ps.tp.topic !== topic || !ps.confirmed) continue;
      ps.confirmed = false;
      this.stateLosses++;
    }
  }

  /** Whether `id` is held (undecided, client told, awaiting its retry). */
  isHeld(id: number): boolean {
    const ps = this.ids.get(id);
    const b = ps && batchOf(ps, id);
    return b !== undefined && b.heldUntil !== null;
  }

  /** Report the outcome of the latest send/resend of batch `id`. Unknown ids or batches not in flight are ignored. */
  onResult(tp: TopicPartition, id: number, outcome: BatchOutcome, now: number, logStartOffset?: bigint): SequencerAction[] {
    const ps = this.ids.get(id);
    if (!ps || ps.tp.partition !== tp.partition || ps.tp.topic !== tp.topic) return [];
    const b = batchOf(ps, id);
    if (!b || b.state !== 'in_flight') return [];
    // Nearly every answer: its own small method (the rest of onResult is the JIT's to compile only when answers go wrong).
    if (outcome.kind === 'ok' && !b.doomed) return this.acknowledged(ps, b, outcome.baseOffset, outcome.logAppendTime, now, logStartOffset);
    const out: SequencerAction[] = [];

    if (b.doomed) {
      b.doomed = false;
      // Sent behind a batch the broker refused for good: a broker ANSWER other than success means
      // it was not written under this stamp (the broker expects the refused batch's sequence), so
      // it is stamped again. Re-stamped only after a definite answer: with the answer lost, a
      // broker without state for the producer may have written it (KIP-360: any sequence), so it
      // stays under its stamp (re-sent, it is answered as a duplicate or 45), and the partition
      // moves to a new identity instead of taking the refused batch's sequences.
      if (outcome.kind === 'retriable' || outcome.kind === 'fatal') {
        this.requeue(ps, b);
        this.pump(ps, now, out);
        return out;
      }
      // Written after all, or maybe: renumbering is off for this partition; a new identity.
      this.requestSwitch(ps, 'sequence_hole');
    }
    // A retry, as three locals (no object per answer): its reason (null: no retry), error and whether it may be written.
    let retry: RetryReason | null = null;
    let retryError: number | null = null;
    let retryMayBeWritten = false;
    switch (outcome.kind) {
      case 'ok':
        // (a doomed batch written after all: see above)
        out.push({ type: 'resolve', tp: ps.tp, id, baseOffset: outcome.baseOffset, logAppendTime: outcome.logAppendTime });
        this.settleAck(ps, b, outcome.baseOffset, now, logStartOffset);
        break;
      case 'retriable':
        retry = outcome.reason;
        retryError = outcome.errorCode;
        // Broker-side timeouts after a local append: written, maybe not replicated.
        retryMayBeWritten = outcome.errorCode === ErrorCode.REQUEST_TIMED_OUT || outcome.errorCode === ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND;
        break;
      case 'unknown':
        retry = outcome.reason;
        retryMayBeWritten = true;
        break;
      case 'fatal':
        // OUT_OF_ORDER_SEQUENCE_NUMBER while an earlier batch of the partition is unresolved only
        // means that predecessor is not written yet: retriable (Java TransactionManager.canRetry,
        // KAFKA-5793; librdkafka makes it fatal only for the head request).
        if (outcome.errorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER && this.hasEarlierUnresolved(ps, b)) {
          retry = 'out_of_order_sequence_number';
          retryError = outcome.errorCode;
        } else if (outcome.errorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER && !b.mayBeWritten) {
          // The broker rejected it (not written) and no earlier attempt may have been written: its
          // sequences were never used in the log, so it is safe to give it fresh ones under the
          // next epoch (what KAFKA-14034 forbids is renumbering a batch that MAY have been written).
          // Typical cause: an earlier batch failed (hole). It is the first unresolved batch, so it
          // goes back to the front of the queue.
          this.requeue(ps, b);
          this.requestSwitch(ps, 'sequence_hole');
        } else {
          this.failBatch(ps, b, outcome.errorCode, b.mayBeWritten || outcome.errorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, out);
        }
        break;
    }
    if (retry !== null) {
      b.failures++;
      b.lastReason = retry;
      if (retryError !== null) b.lastErrorCode = retryError;
      b.mayBeWritten ||= retryMayBeWritten;
      // Past its deadline it is failed for good, or held (and then goes on being re-sent).
      this.pastDeadline(ps, b, now, out);
      if (this.ids.has(id)) {
        b.state = 'await_resend';
        if (ps.probeId === id) ps.probeId = null;
        // Recovery: wait until every in-flight batch of the partition has answered, then re-send
        // the lowest unresolved batch alone until it is acknowledged (Java RecordAccumulator
        // drain stops at a retried batch that is not the first in-flight sequence; librdkafka
        // drains in-flight requests before retrying).
        ps.recovering = true;
      }
    }
    this.pump(ps, now, out);
    return out;
  }

  /** `b` was acknowledged: its resolve first, then what its partition can send now. */
  private acknowledged(ps: PartitionState, b: Batch, baseOffset: bigint, logAppendTime: bigint, now: number, logStartOffset: bigint | undefined): SequencerAction[] {
    // A one-element literal: usually nothing follows (an array pushed to from empty reserves 16 slots).
    const out: SequencerAction[] = [{ type: 'resolve', tp: ps.tp, id: b.id, baseOffset, logAppendTime }];
    this.settleAck(ps, b, baseOffset, now, logStartOffset);
    this.pump(ps, now, out);
    return out;
  }

  /** The state change of an acknowledgement (its resolve action is the caller's). */
  private settleAck(ps: PartitionState, b: Batch, baseOffset: bigint, now: number, logStartOffset: bigint | undefined): void {
    b.state = 'acked';
    this.ids.delete(b.id);
    this.noteAck(ps, b, baseOffset, logStartOffset, now);
    this.popResolvedHead(ps);
    // The acknowledged probe ends recovery: the broker's sequence state is known again; later
    // re-sends can be pipelined (they are recognised from the 5-batch cache if already written).
    if (ps.probeId === b.id) {
      ps.recovering = false;
      ps.probeId = null;
    }
  }

  /** Fail batches whose deliveryTimeout passed while they were not in flight, then send what became possible. */
  tick(now: number): SequencerAction[] {
    const out: SequencerAction[] = [];
    for (const ps of this.partitions.values()) {
      for (const b of [...ps.batches]) {
        if (b.state === 'queued' && now >= b.deadline) this.failBatch(ps, b, ErrorCode.REQUEST_TIMED_OUT, false, out);
        else if (b.state === 'await_resend') this.pastDeadline(ps, b, now, out);
      }
      this.pump(ps, now, out);
    }
    this.gc();
    return out;
  }

  /**
   * A fresh producer id (from InitProducerId, after `need_producer_id`): partitions waiting for
   * an identity take it and send. Returns the actions.
   */
  addProducerId(producerId: bigint, epoch: number, now: number): SequencerAction[] {
    this.producer = { producerId, epoch };
    this.producerIdRequested = false;
    const out: SequencerAction[] = [];
    for (const ps of this.partitions.values()) this.pump(ps, now, out);
    return out;
  }

  /** Batches of `tp` sent (or scheduled for re-send) and not yet answered. */
  inFlight(tp: TopicPartition): number {
    const ps = this.find(tp);
    return ps ? ps.batches.filter((b) => b.state === 'in_flight').length : 0;
  }

  /** Sum of inFlight over all partitions (for `idempo_inflight_batches`). */
  inFlightTotal(): number {
    let n = 0;
    for (const ps of this.partitions.values()) for (const b of ps.batches) if (b.state === 'in_flight') n++;
    return n;
  }

  /** Submitted batches not yet resolved or failed. */
  pendingTotal(): number {
    return this.ids.size;
  }

  /** No batch of `tp` (of any partition without `tp`) is in flight or waiting for a re-send (queued never-sent batches may remain). */
  drained(tp?: TopicPartition): boolean {
    const all = tp ? [this.find(tp)].filter((x) => x !== undefined) : this.partitions.values();
    for (const ps of all) if (!this.partitionDrained(ps)) return false;
    return true;
  }

  // switchPending, identityOf, retriesByReason and nextDeadline are read by sequencer.test.ts only:
  // they make the pure machine's state observable there; the Upgrader learns the same from actions.
  switchPending(tp: TopicPartition): EpochBumpReason | null {
    return this.find(tp)?.switchPending ?? null;
  }

  identityOf(tp: TopicPartition): ProducerIdentity | null {
    return this.find(tp)?.identity ?? null;
  }

  /** The newest producer id obtained (null before the first). */
  currentProducer(): ProducerIdentity | null {
    return this.producer;
  }

  /** Re-sends emitted so far, by reason (the Upgrader counts idempo_retries_total from the actions). */
  retriesByReason(): ReadonlyMap<RetryReason, number> {
    return this.retries;
  }

  /** Earliest deadline of a batch that is not in flight (call `tick` then), or null. */
  nextDeadline(): number | null {
    let min: number | null = null;
    for (const ps of this.partitions.values()) {
      for (const b of ps.batches) {
        const d = b.heldUntil ?? b.deadline;
        if ((b.state === 'queued' || b.state === 'await_resend') && (min === null || d < min)) min = d;
      }
    }
    return min;
  }

  /** The state that must survive a restart (pure; see SequencerSnapshot). */
  snapshot(): SequencerSnapshot {
    const partitions: PartitionSnapshot[] = [];
    for (const ps of this.partitions.values()) {
      const batches: BatchSnapshot[] = [];
      for (const b of ps.batches) {
        if (b.state === 'acked') continue;
        const stamp = b.state === 'queued' ? null : { producerId: b.producerId, epoch: b.epoch, baseSequence: b.baseSequence };
        batches.push({ id: b.id, recordCount: b.recordCount, stamp, restamped: b.restamped });
      }
      partitions.push({ tp: { ...ps.tp }, producer: ps.identity, switchPending: ps.switchPending, nextSeq: ps.nextSeq, batches });
    }
    return { producer: this.producer, partitions };
  }

  /**
   * After a restart: puts back a snapshot into a Sequencer that has seen no batch yet. A stamped
   * batch may have been written before the restart (its answer was lost with the process), so it
   * is re-sent under its ORIGINAL stamp, as a recovery probe (alone, then the rest pipelined): the
   * broker answers it as a duplicate or writes it once. Queued batches follow under the partition's
   * identity (a new one first if it had a hole). Every batch gets a fresh deliveryTimeout from
   * `now`. Returns the first actions.
   */
  restore(snap: SequencerSnapshot, now: number): SequencerAction[] {
    if (this.ids.size > 0 || this.partitions.size > 0) throw new Error('restore needs a Sequencer that has seen no batch');
    const out: SequencerAction[] = [];
    this.producer = snap.producer;
    for (const p of snap.partitions) {
      const ps = this.newPartition(p.tp, now);
      ps.identity = p.producer;
      ps.switchPending = p.switchPending;
      ps.nextSeq = p.nextSeq;
      for (const bs of p.batches) {
        if (this.ids.has(bs.id)) throw new Error(`batch id ${bs.id} twice in the snapshot`);
        if (!Number.isInteger(bs.recordCount) || bs.recordCount < 1) throw new RangeError(`recordCount must be >= 1, got ${bs.recordCount}`);
        const sent = bs.stamp !== null;
        this.ids.set(bs.id, ps);
        ps.batches.push({
          id: bs.id,
          recordCount: bs.recordCount,
          deadline: now + this.deliveryTimeoutMs,
          state: sent ? 'await_resend' : 'queued',
          baseSequence: bs.stamp?.baseSequence ?? -1,
          producerId: bs.stamp?.producerId ?? -1n,
          epoch: bs.stamp?.epoch ?? -1,
          attempts: sent ? 1 : 0,
          failures: sent ? 1 : 0,
          lastErrorCode: null,
          lastReason: 'connection_lost',
          mayBeWritten: sent,
          restamped: bs.restamped,
          heldUntil: null,
          doomed: false,
        });
        if (sent) ps.recovering = true;
      }
    }
    for (const ps of this.partitions.values()) this.pump(ps, now, out);
    return out;
  }

  // --- internals ---

  /** The last Kafka error seen, or REQUEST_TIMED_OUT when none (or only OUT_OF_ORDER caused by a predecessor). */
  private deadlineErrorCode(b: Batch): number {
    if (b.lastErrorCode === null || b.lastErrorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER) return ErrorCode.REQUEST_TIMED_OUT;
    return b.lastErrorCode;
  }

  private backoff(failures: number): number {
    return backoffDelay({ initialMs: this.backoffInitial, maxMs: this.backoffMax }, failures);
  }

  private hasEarlierUnresolved(ps: PartitionState, b: Batch): boolean {
    for (const x of ps.batches) {
      if (x === b) return false;
      if (x.state === 'in_flight' || x.state === 'await_resend') return true;
    }
    return false;
  }

  private requeue(ps: PartitionState, b: Batch): void {
    b.state = 'queued';
    b.baseSequence = -1;
    b.producerId = -1n;
    b.epoch = -1;
    b.attempts = 0;
    b.restamped = true;
    if (ps.probeId === b.id) ps.probeId = null;
  }

  private popResolvedHead(ps: PartitionState): void {
    while (ps.batches.length > 0 && ps.batches[0].state === 'acked') ps.batches.shift();
  }

  private failBatch(ps: PartitionState, b: Batch, errorCode: number, outcomeUnknown: boolean, out: SequencerAction[]): void {
    const i = ps.batches.indexOf(b);
    if (i >= 0) ps.batches.splice(i, 1);
    this.ids.delete(b.id);
    out.push({ type: 'fail', tp: ps.tp, id: b.id, errorCode, outcomeUnknown });
    if (b.attempts > 0) {
      // A sent batch given up leaves a hole in the sequence. When the broker refused it for good
      // (never written, on no attempt), the hole is closed on this partition alone: the batches
      // behind it take its sequences (the Java producer's adjustSequencesDueToFailedBatch).
      // Otherwise (it may be in the log) later batches must not go out under this identity: the
      // partition takes a new one once it has drained (rule 4, per partition; KAFKA-14034).
      if (!outcomeUnknown && !b.mayBeWritten && NEVER_WRITTEN.has(errorCode) && this.rewind(ps, b, i)) {
        // closed locally
      } else this.requestSwitch(ps, 'sequence_hole');
    }
    this.popResolvedHead(ps);
  }

  /**
   * Takes the sequences of `failed` (refused for good, removed already from position `at`) back
   * for the batches behind it on its partition. False when that is not safe: it was stamped under an older
   * producer/epoch, or a batch behind it is acknowledged or held (then it may be in the log).
   */
  private rewind(ps: PartitionState, failed: Batch, at: number): boolean {
    const p = ps.identity;
    if (at < 0 || !p || failed.producerId !== p.producerId || failed.epoch !== p.epoch) return false;
    const later = ps.batches.slice(at).filter((x) => x.state !== 'queued' && x.baseSequence !== -1 && x.producerId === failed.producerId && x.epoch === failed.epoch);
    if (later.some((x) => x.state === 'acked' || x.heldUntil !== null || x.mayBeWritten)) return false;
    ps.nextSeq = failed.baseSequence;
    for (const x of later) {
      if (x.state === 'in_flight') x.doomed = true;
      else this.requeue(ps, x);
    }
    if (ps.probeId !== null && !ps.batches.some((x) => x.id === ps.probeId && x.state === 'in_flight')) ps.probeId = null;
    if (!ps.batches.some((x) => x.state === 'await_resend')) ps.recovering = false;
    return true;
  }

  /**
   * Deadline handling of a sent, unresolved batch that is not in flight. Returns true when the
   * deadline has passed: the batch is then failed for good, or HELD (see `unknownHoldMs`): the
   * client is told a retriable error while the batch stays, under its stamp, for the client's retry.
   */
  private pastDeadline(ps: PartitionState, b: Batch, now: number, out: SequencerAction[]): boolean {
    if (b.heldUntil !== null) {
      if (now < b.heldUntil) return false;
      b.heldUntil = null;
      this.failBatch(ps, b, this.deadlineErrorCode(b), true, out);
      return true;
    }
    if (now < b.deadline) return false;
    if (b.mayBeWritten && this.unknownHoldMs > 0) {
      b.heldUntil = now + this.unknownHoldMs;
      out.push({ type: 'fail', tp: ps.tp, id: b.id, errorCode: retriableCode(this.deadlineErrorCode(b)), outcomeUnknown: true, held: true });
      return true;
    }
    this.failBatch(ps, b, this.deadlineErrorCode(b), b.mayBeWritten, out);
    return true;
  }

  /** After an acknowledgement: the broker has state for the producer, unless its answer shows it lost it. */
  private noteAck(ps: PartitionState, b: Batch, baseOffset: bigint, logStartOffset: bigint | undefined, now: number): void {
    ps.confirmed = true;
    ps.lastAckAt = now;
    if (baseOffset < 0n) return; // a duplicate without offset (46)
    // Only a batch later in sequence than the last acknowledged one says anything new (a re-sent
    // earlier batch is answered as a duplicate, with its original, lower offset).
    if (ps.lastAckedSeq >= 0 && (b.baseSequence === ps.lastAckedSeq || forwardDistance(ps.lastAckedSeq, b.baseSequence) > MAX_SEQUENCE / 2)) return;
    const last = baseOffset + BigInt(b.recordCount - 1);
    // Offsets went backwards for a later sequence: the partition was deleted and created again
    // (or truncated); the broker took this batch with no state for the producer (KIP-360).
    if (ps.lastAckedOffset >= 0n && baseOffset <= ps.lastAckedOffset) this.stateLosses++;
    ps.lastAckedOffset = last;
    ps.lastAckedSeq = b.baseSequence;
    // Retention removed the producer's last batch: the broker drops its state with it
    // (ProducerStateManager), and the next batch is accepted with any sequence.
    if (logStartOffset !== undefined && logStartOffset > ps.lastAckedOffset) {
      this.stateLosses++;
      ps.confirmed = false;
    }
  }

  /** Times a partition's answers showed that the broker had lost (or was losing) the producer's state. */
  stateLosses = 0;

  private partitionOf(tp: TopicPartition): PartitionState {
    return this.find(tp) ?? this.newPartition(tp, 0);
  }

  /** The partition's state, found without building a key string (this runs per batch). */
  private find(tp: TopicPartition): PartitionState | undefined {
    return this.byTopic.get(tp.topic)?.get(tp.partition);
  }

  private newPartition(tp: TopicPartition, lastAckAt: number): PartitionState {
    const ps: PartitionState = {
      tp: { topic: tp.topic, partition: tp.partition },
      identity: null,
      switchPending: null,
      nextSeq: 0,
      batches: [],
      recovering: false,
      probeId: null,
      confirmed: false,
      lastAckedOffset: -1n,
      lastAckedSeq: -1,
      lastAckAt,
    };
    this.partitions.set(tpKey(tp), ps);
    let byPartition = this.byTopic.get(tp.topic);
    if (!byPartition) this.byTopic.set(tp.topic, (byPartition = new Map()));
    byPartition.set(tp.partition, ps);
    return ps;
  }

  private newBatch(id: number, recordCount: number, deadline: number, state: BatchState): Batch {
    return {
      id,
      recordCount,
      deadline,
      state,
      baseSequence: -1,
      producerId: -1n,
      epoch: -1,
      attempts: 0,
      failures: 0,
      lastErrorCode: null,
      lastReason: 'timeout',
      mayBeWritten: false,
      restamped: false,
      heldUntil: null,
      doomed: false,
    };
  }

  private requestSwitch(ps: PartitionState, reason: EpochBumpReason): void {
    ps.switchPending ??= reason;
  }

  private partitionDrained(ps: PartitionState): boolean {
    for (const b of ps.batches) if (b.state === 'in_flight' || b.state === 'await_resend') return false;
    return true;
  }

  /**
   * Gives the partition its first identity, or a new one when it must leave its own and has
   * drained (no batch of it in flight or awaiting a re-send, held ones included: nothing that may
   * be written is ever re-sent under the new one). The next epoch of its producer id fences
   * anything late of the old epoch (the broker answers INVALID_PRODUCER_EPOCH) and touches no
   * other partition: the broker keeps producer state per (producerId, partition), epoch included,
   * and the Java idempotent producer bumps its epoch locally the same way (KIP-360). Out of
   * epochs (or none yet): the newest producer id, when the partition has not used it, else a
   * fresh one is asked for. A partition only ever moves to the newest id, so one it has not used
   * is one it never used.
   */
  private takeIdentity(ps: PartitionState, out: SequencerAction[]): boolean {
    const cur = ps.identity;
    if (cur !== null && ps.switchPending === null) return false;
    // Only with something to send: an idle partition keeps its identity (and its journal stays quiet).
    if (!ps.batches.some((b) => b.state === 'queued')) return false;
    if (!this.partitionDrained(ps)) return false;
    let next: ProducerIdentity | null = null;
    if (cur !== null && cur.epoch < this.maxEpoch) next = { producerId: cur.producerId, epoch: cur.epoch + 1 };
    else if (this.producer !== null && (cur === null || this.producer.producerId !== cur.producerId)) next = this.producer;
    if (next === null) {
      if (!this.producerIdRequested) {
        this.producerIdRequested = true;
        out.push({ type: 'need_producer_id' });
      }
      return false;
    }
    out.push({ type: 'identity', tp: ps.tp, producerId: next.producerId, epoch: next.epoch, reason: ps.switchPending ?? 'first' });
    ps.identity = next;
    ps.switchPending = null;
    ps.nextSeq = 0;
    ps.recovering = false;
    ps.probeId = null;
    ps.confirmed = false;
    ps.lastAckedOffset = -1n;
    ps.lastAckedSeq = -1;
    return true;
  }

  private pump(ps: PartitionState, now: number, out: SequencerAction[]): void {
    this.takeIdentity(ps, out);
    if (ps.recovering) {
      if (ps.batches.some((b) => b.state === 'in_flight')) return;
      for (;;) {
        const probe = ps.batches.find((b) => b.state === 'await_resend');
        if (!probe) {
          ps.recovering = false;
          ps.probeId = null;
          break;
        }
        if (this.pastDeadline(ps, probe, now, out) && !this.ids.has(probe.id)) continue;
        ps.probeId = probe.id;
        this.emitResend(ps, probe, now + this.backoff(probe.failures), out);
        return;
      }
    }
    const p = ps.identity;
    let sent = 0;
    let doomedInFlight = false;
    const batches = ps.batches;
    for (let i = 0; i < batches.length; i++) {
      if (batches[i].state !== 'queued') sent++;
      if (batches[i].doomed) doomedInFlight = true;
    }
    // After a refused batch, new stamps reuse its sequences: only once every batch sent behind it answered.
    if (doomedInFlight) return;
    // The broker forgets a producer idle longer than producer.id.expiration.ms and then accepts any
    // sequence (KIP-360): after a long quiet spell, re-establish the session with one batch first.
    if (ps.confirmed && sent === 0 && now - ps.lastAckAt > this.sessionIdleMs) ps.confirmed = false;
    // First sends go strictly in FIFO order: once one queued batch cannot go, none after it may.
    // Only this partition's own state decides: another partition's trouble never holds it up.
    let firstSendsOpen = p !== null && ps.switchPending === null;
    for (let i = 0; i < batches.length; i++) {
      const b = batches[i];
      if (b.state === 'acked' || b.state === 'in_flight') continue;
      if (b.state === 'await_resend') {
        // After the probe was acknowledged: pipeline the remaining re-sends in sequence order
        // (they keep their old stamp, even while an epoch bump is pending).
        this.emitResend(ps, b, now, out);
        continue;
      }
      // queued: a first send under the partition's identity.
      if (!firstSendsOpen || p === null) continue;
      // Until the broker has acknowledged one batch of the partition's identity,
      // send one batch at a time: a broker without state for the producer accepts ANY sequence
      // (ProducerAppendInfo.checkSequence, KIP-360), so if the first batch were not written
      // (e.g. NOT_ENOUGH_REPLICAS) the second would be written ahead of it instead of getting
      // OUT_OF_ORDER_SEQUENCE_NUMBER.
      if (sent >= (ps.confirmed ? this.maxInFlight : 1)) {
        firstSendsOpen = false;
        continue;
      }
      if (wouldWrapInside(ps.nextSeq, b.recordCount)) {
        // Kafka wraps sequences (DefaultRecordBatch.incrementSequence), but clients differ at the
        // wrap (kafkajs off-by-one): a new identity at 0 instead of wrapping inside a batch.
        this.requestSwitch(ps, 'sequence_wrap');
        firstSendsOpen = false;
        continue;
      }
      b.state = 'in_flight';
      b.baseSequence = ps.nextSeq;
      b.producerId = p.producerId;
      b.epoch = p.epoch;
      b.attempts = 1;
      ps.nextSeq = nextSequence(lastSequence(b.baseSequence, b.recordCount), 1);
      sent++;
      const send: SequencerAction = { type: 'send', tp: ps.tp, id: b.id, producerId: p.producerId, epoch: p.epoch, baseSequence: b.baseSequence };
      if (b.restamped) send.restamped = true;
      out.push(send);
    }
    // The wrap ahead of an idle partition: it moves now.
    if (ps.switchPending !== null && this.takeIdentity(ps, out)) this.pump(ps, now, out);
  }

  private emitResend(ps: PartitionState, b: Batch, notBefore: number, out: SequencerAction[]): void {
    b.state = 'in_flight';
    b.attempts++;
    this.retries.set(b.lastReason, (this.retries.get(b.lastReason) ?? 0) + 1);
    out.push({
      type: 'resend',
      tp: ps.tp,
      id: b.id,
      producerId: b.producerId,
      epoch: b.epoch,
      baseSequence: b.baseSequence,
      attempt: b.attempts,
      reason: b.lastReason,
      notBefore,
    });
  }

  /**
   * Forgets partitions that a new one would repeat exactly: nothing pending, nothing sent under
   * their identity (sequence 0, unconfirmed) and that identity is the newest id at its first epoch
   * (or none). One that moved to another epoch is kept: starting it again at the old epoch would
   * meet the broker's newer one (INVALID_PRODUCER_EPOCH) or its cached sequences.
   */
  private gc(): void {
    const p = this.producer;
    for (const [k, ps] of this.partitions) {
      const fresh = ps.identity === null || (p !== null && ps.identity.producerId === p.producerId && ps.identity.epoch === p.epoch);
      if (ps.batches.length === 0 && ps.nextSeq === 0 && !ps.confirmed && ps.switchPending === null && fresh) {
        this.partitions.delete(k);
        const byPartition = this.byTopic.get(ps.tp.topic)!;
        byPartition.delete(ps.tp.partition);
        if (byPartition.size === 0) this.byTopic.delete(ps.tp.topic);
      }
    }
  }
}
