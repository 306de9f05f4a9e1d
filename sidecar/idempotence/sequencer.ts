/**
 * Upgrade mode: the sidecar's own idempotent producer (one producerId/epoch obtained by the
 * driver with InitProducerId) assigns sequences to the batches of non-idempotent clients.
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
 * - `need_epoch_bump`: stop expecting progress for never-sent batches; when `epoch_bump_ready`
 *   comes (every partition drained), obtain a new epoch (InitProducerId with the current
 *   producerId/epoch, KIP-360) or a new producerId, then call `bumpEpoch`.
 * - Call `tick(now)` at `nextDeadline()` (or periodically) so batches that wait past
 *   deliveryTimeout fail even when no response arrives.
 *
 * - A second `send` (with `restamped: true`) for the same id can come after an epoch bump: the
 *   batch was rejected with OUT_OF_ORDER_SEQUENCE_NUMBER on every attempt, i.e. never written,
 *   so it gets a new stamp. Stamp the bytes again for every `send`; never for a `resend`.
 *
 * Sequences are assigned when a batch is FIRST sent (in FIFO order, which is also sequence
 * order) and never changed afterwards (except the re-stamp of a never-written batch above). This is equivalent to stamping at admission and
 * re-stamping never-sent batches after an epoch bump, without the re-stamping.
 */
import { ErrorCode, type BatchOutcome, type RetryReason } from '../codec/errors.js';
import { lastSequence, nextSequence, wouldWrapInside } from './sequence.js';

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export interface ProducerIdentity {
  readonly producerId: bigint;
  readonly epoch: number;
}

export interface SequencerOptions {
  /** null: no producer id yet; batches queue until the first `bumpEpoch`. */
  producer: ProducerIdentity | null;
  /** Batches sent and not yet resolved per partition, 1..5 (rule 1; default 5). */
  maxInFlight?: number;
  retryBackoff?: { initial: number; max: number };
  /** Give up on a batch this long after `submit` (default 120 s; keep well below producer.id.expiration.ms). */
  deliveryTimeoutMs?: number;
}

export type EpochBumpReason = 'no_producer_id' | 'sequence_hole' | 'sequence_wrap';

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
    }
  | { type: 'need_epoch_bump'; reason: EpochBumpReason }
  | { type: 'epoch_bump_ready' };

/**
 * What survives a restart (sidecar/state): the producer, the next sequence of every partition and
 * the unresolved batches in partition order. Acknowledged batches are not part of it.
 */
export interface SequencerSnapshot {
  producer: ProducerIdentity | null;
  bumpPending: EpochBumpReason | null;
  partitions: PartitionSnapshot[];
}

export interface PartitionSnapshot {
  tp: TopicPartition;
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

export type BumpResult = { ok: true; actions: SequencerAction[] } | { ok: false; reason: 'not_drained' | 'epoch_not_newer' };

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
}

interface PartitionState {
  readonly tp: TopicPartition;
  nextSeq: number;
  /** Sent batches in sequence order (acked ones stay until every earlier one is resolved), then queued ones in FIFO order. */
  batches: Batch[];
  recovering: boolean;
  /** The batch re-sent alone during recovery, or null. */
  probeId: number | null;
  /** A batch of the current producerId/epoch was acknowledged on this partition. */
  confirmed: boolean;
}

const tpKey = (tp: TopicPartition): string => `${tp.partition}\u0000${tp.topic}`;

export class Sequencer {
  private producer: ProducerIdentity | null;
  private readonly maxInFlight: number;
  private readonly backoffInitial: number;
  private readonly backoffMax: number;
  private readonly deliveryTimeoutMs: number;
  private readonly partitions = new Map<string, PartitionState>();
  private readonly ids = new Map<number, PartitionState>();
  private bumpPending: EpochBumpReason | null = null;
  private bumpReadyEmitted = false;
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
  }

  /** Queue a batch; returns the sends that became possible. Throws on a reused id or recordCount < 1 (driver bugs). */
  submit(tp: TopicPartition, batch: { id: number; recordCount: number }, now: number): SequencerAction[] {
    if (this.ids.has(batch.id)) throw new Error(`batch id ${batch.id} already submitted`);
    if (!Number.isInteger(batch.recordCount) || batch.recordCount < 1) throw new RangeError(`recordCount must be >= 1, got ${batch.recordCount}`);
    const out: SequencerAction[] = [];
    let ps = this.partitions.get(tpKey(tp));
    if (!ps) {
      ps = { tp: { topic: tp.topic, partition: tp.partition }, nextSeq: 0, batches: [], recovering: false, probeId: null, confirmed: false };
      this.partitions.set(tpKey(tp), ps);
    }
    this.ids.set(batch.id, ps);
    ps.batches.push({
      id: batch.id,
      recordCount: batch.recordCount,
      deadline: now + this.deliveryTimeoutMs,
      state: 'queued',
      baseSequence: -1,
      producerId: -1n,
      epoch: -1,
      attempts: 0,
      failures: 0,
      lastErrorCode: null,
      lastReason: 'timeout',
      mayBeWritten: false,
      restamped: false,
    });
    if (this.producer === null) this.requestBump('no_producer_id', out);
    this.pump(ps, now, out);
    this.checkBumpReady(out);
    return out;
  }

  /** Report the outcome of the latest send/resend of batch `id`. Unknown ids or batches not in flight are ignored. */
  onResult(tp: TopicPartition, id: number, outcome: BatchOutcome, now: number): SequencerAction[] {
    const out: SequencerAction[] = [];
    const ps = this.ids.get(id);
    if (!ps || tpKey(ps.tp) !== tpKey(tp)) return out;
    const b = ps.batches.find((x) => x.id === id);
    if (!b || b.state !== 'in_flight') return out;

    let retry: { reason: RetryReason; errorCode: number | null; mayBeWritten: boolean } | null = null;
    switch (outcome.kind) {
      case 'ok':
        b.state = 'acked';
        out.push({ type: 'resolve', tp: ps.tp, id, baseOffset: outcome.baseOffset, logAppendTime: outcome.logAppendTime });
        this.ids.delete(id);
        ps.confirmed = true;
        this.popResolvedHead(ps);
        // The acknowledged probe ends recovery: the broker's sequence state is known again; later
        // re-sends can be pipelined (they are recognised from the 5-batch cache if already written).
        if (ps.probeId === id) {
          ps.recovering = false;
          ps.probeId = null;
        }
        break;
      case 'retriable':
        retry = {
          reason: outcome.reason,
          errorCode: outcome.errorCode,
          // Broker-side timeouts after a local append: written, maybe not replicated.
          mayBeWritten: outcome.errorCode === ErrorCode.REQUEST_TIMED_OUT || outcome.errorCode === ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        };
        break;
      case 'unknown':
        retry = { reason: outcome.reason, errorCode: null, mayBeWritten: true };
        break;
      case 'fatal':
        // OUT_OF_ORDER_SEQUENCE_NUMBER while an earlier batch of the partition is unresolved only
        // means that predecessor is not written yet: retriable (Java TransactionManager.canRetry,
        // KAFKA-5793; librdkafka makes it fatal only for the head request).
        if (outcome.errorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER && this.hasEarlierUnresolved(ps, b)) {
          retry = { reason: 'out_of_order_sequence_number', errorCode: outcome.errorCode, mayBeWritten: false };
        } else if (outcome.errorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER && !b.mayBeWritten) {
          // The broker rejected it (not written) and no earlier attempt may have been written: its
          // sequences were never used in the log, so it is safe to give it fresh ones under the
          // next epoch (what KAFKA-14034 forbids is renumbering a batch that MAY have been written).
          // Typical cause: an earlier batch failed (hole). It is the first unresolved batch, so it
          // goes back to the front of the queue.
          this.requeue(ps, b);
          this.requestBump('sequence_hole', out);
        } else {
          this.failBatch(ps, b, outcome.errorCode, b.mayBeWritten || outcome.errorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, out);
        }
        break;
    }
    if (retry) {
      b.failures++;
      b.lastReason = retry.reason;
      if (retry.errorCode !== null) b.lastErrorCode = retry.errorCode;
      b.mayBeWritten ||= retry.mayBeWritten;
      if (now >= b.deadline) {
        this.failBatch(ps, b, this.deadlineErrorCode(b), b.mayBeWritten, out);
      } else {
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
    this.checkBumpReady(out);
    return out;
  }

  /** Fail batches whose deliveryTimeout passed while they were not in flight, then send what became possible. */
  tick(now: number): SequencerAction[] {
    const out: SequencerAction[] = [];
    for (const ps of this.partitions.values()) {
      for (const b of [...ps.batches]) {
        if (now < b.deadline) continue;
        if (b.state === 'queued') this.failBatch(ps, b, ErrorCode.REQUEST_TIMED_OUT, false, out);
        else if (b.state === 'await_resend') this.failBatch(ps, b, this.deadlineErrorCode(b), b.mayBeWritten, out);
      }
      this.pump(ps, now, out);
    }
    this.checkBumpReady(out);
    this.gc();
    return out;
  }

  /**
   * Switch to a new producerId/epoch (or set the first one). Allowed only when no partition has
   * a sent-but-unresolved batch (rule 4; KAFKA-14034: a batch re-sent under a new epoch is not
   * recognised as a duplicate). Every partition restarts at sequence 0; queued batches are sent.
   */
  bumpEpoch(producerId: bigint, epoch: number, now: number): BumpResult {
    if (!this.drained()) return { ok: false, reason: 'not_drained' };
    if (this.producer && this.producer.producerId === producerId && epoch <= this.producer.epoch) return { ok: false, reason: 'epoch_not_newer' };
    this.producer = { producerId, epoch };
    this.bumpPending = null;
    this.bumpReadyEmitted = false;
    const out: SequencerAction[] = [];
    for (const ps of this.partitions.values()) {
      ps.nextSeq = 0;
      ps.recovering = false;
      ps.probeId = null;
      ps.confirmed = false;
    }
    for (const ps of this.partitions.values()) this.pump(ps, now, out);
    this.checkBumpReady(out);
    return { ok: true, actions: out };
  }

  /** Batches of `tp` sent (or scheduled for re-send) and not yet answered. */
  inFlight(tp: TopicPartition): number {
    const ps = this.partitions.get(tpKey(tp));
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

  /** No batch of any partition is in flight or waiting for a re-send (queued never-sent batches may remain). */
  drained(): boolean {
    for (const ps of this.partitions.values()) for (const b of ps.batches) if (b.state === 'in_flight' || b.state === 'await_resend') return false;
    return true;
  }

  epochBumpPending(): EpochBumpReason | null {
    return this.bumpPending;
  }

  currentProducer(): ProducerIdentity | null {
    return this.producer;
  }

  /** Re-sends emitted so far, by reason (for `idempo_retries_total{reason}`). */
  retriesByReason(): ReadonlyMap<RetryReason, number> {
    return this.retries;
  }

  /** Earliest deadline of a batch that is not in flight (call `tick` then), or null. */
  nextDeadline(): number | null {
    let min: number | null = null;
    for (const ps of this.partitions.values()) {
      for (const b of ps.batches) {
        if ((b.state === 'queued' || b.state === 'await_resend') && (min === null || b.deadline < min)) min = b.deadline;
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
      partitions.push({ tp: { ...ps.tp }, nextSeq: ps.nextSeq, batches });
    }
    return { producer: this.producer, bumpPending: this.bumpPending, partitions };
  }

  /**
   * After a restart: puts back a snapshot into a Sequencer that has seen no batch yet. A stamped
   * batch may have been written before the restart (its answer was lost with the process), so it
   * is re-sent under its ORIGINAL stamp, as a recovery probe (alone, then the rest pipelined): the
   * broker answers it as a duplicate or writes it once. Queued batches follow under the current
   * epoch. Every batch gets a fresh deliveryTimeout from `now`. Returns the first actions.
   */
  restore(snap: SequencerSnapshot, now: number): SequencerAction[] {
    if (this.ids.size > 0 || this.partitions.size > 0) throw new Error('restore needs a Sequencer that has seen no batch');
    const out: SequencerAction[] = [];
    this.producer = snap.producer;
    for (const p of snap.partitions) {
      const ps: PartitionState = { tp: { ...p.tp }, nextSeq: p.nextSeq, batches: [], recovering: false, probeId: null, confirmed: false };
      this.partitions.set(tpKey(ps.tp), ps);
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
        });
        if (sent) ps.recovering = true;
      }
    }
    if (snap.bumpPending !== null) this.requestBump(snap.bumpPending, out);
    else if (this.producer === null && this.ids.size > 0) this.requestBump('no_producer_id', out);
    for (const ps of this.partitions.values()) this.pump(ps, now, out);
    this.checkBumpReady(out);
    return out;
  }

  // --- internals ---

  /** The last Kafka error seen, or REQUEST_TIMED_OUT when none (or only OUT_OF_ORDER caused by a predecessor). */
  private deadlineErrorCode(b: Batch): number {
    if (b.lastErrorCode === null || b.lastErrorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER) return ErrorCode.REQUEST_TIMED_OUT;
    return b.lastErrorCode;
  }

  private backoff(failures: number): number {
    const exp = this.backoffInitial * 2 ** Math.max(0, failures - 1);
    return Math.min(this.backoffMax, exp);
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
    // A sent batch that is given up leaves a hole in the sequence (or an unknown state): later
    // batches must not go out under this epoch; bump after every partition drained (rule 4).
    if (b.attempts > 0) this.requestBump('sequence_hole', out);
    this.popResolvedHead(ps);
  }

  private requestBump(reason: EpochBumpReason, out: SequencerAction[]): void {
    if (this.bumpPending !== null) return;
    this.bumpPending = reason;
    this.bumpReadyEmitted = false;
    out.push({ type: 'need_epoch_bump', reason });
  }

  private checkBumpReady(out: SequencerAction[]): void {
    if (this.bumpPending !== null && !this.bumpReadyEmitted && this.drained()) {
      this.bumpReadyEmitted = true;
      out.push({ type: 'epoch_bump_ready' });
    }
  }

  private pump(ps: PartitionState, now: number, out: SequencerAction[]): void {
    if (ps.recovering) {
      if (ps.batches.some((b) => b.state === 'in_flight')) return;
      for (;;) {
        const probe = ps.batches.find((b) => b.state === 'await_resend');
        if (!probe) {
          ps.recovering = false;
          ps.probeId = null;
          break;
        }
        if (now >= probe.deadline) {
          this.failBatch(ps, probe, this.deadlineErrorCode(probe), probe.mayBeWritten, out);
          continue;
        }
        ps.probeId = probe.id;
        this.emitResend(ps, probe, now + this.backoff(probe.failures), out);
        return;
      }
    }
    const p = this.producer;
    let sent = 0;
    for (const b of ps.batches) if (b.state !== 'queued') sent++;
    // First sends go strictly in FIFO order: once one queued batch cannot go, none after it may.
    let firstSendsOpen = p !== null && this.bumpPending === null;
    for (const b of ps.batches) {
      if (b.state === 'acked' || b.state === 'in_flight') continue;
      if (b.state === 'await_resend') {
        // After the probe was acknowledged: pipeline the remaining re-sends in sequence order
        // (they keep their old stamp, even while an epoch bump is pending).
        this.emitResend(ps, b, now, out);
        continue;
      }
      // queued: a first send under the current epoch.
      if (!firstSendsOpen || p === null) continue;
      // Until the broker has acknowledged one batch of this producerId/epoch on the partition,
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
        // wrap (kafkajs off-by-one): start a new epoch at 0 instead of wrapping inside a batch.
        this.requestBump('sequence_wrap', out);
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

  private gc(): void {
    for (const [k, ps] of this.partitions) if (ps.batches.length === 0 && ps.nextSeq === 0 && !ps.confirmed) this.partitions.delete(k);
  }
}
