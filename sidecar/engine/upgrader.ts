// Upgrade mode for producers that are not idempotent: the sidecar's own producer id,
// epoch and per-partition sequences are stamped into their batches, which then go to the
// partition leaders over the sidecar's own connections, with acks=all, at most 5 in
// flight per partition, and re-sent byte for byte after any failure until
// deliveryTimeout, so the broker drops the copies (KAFKA-NOTES rules 1, 2, 4).
// The decisions live in idempotence/sequencer.ts; this file does the I/O.
import type { Logger } from '../log/log.js';
import { Backoff, sleep } from '../../api/backoff.js';
import { ApiKey } from '../codec/api.js';
import { ErrorCode, errorLabel, toBatchOutcome, type BatchOutcome } from '../codec/errors.js';
import { stampIdempotence } from '../codec/record-batch.js';
import type { PartitionProduceResponse, ProduceResponse } from '../codec/generated/produce-response.js';
import { ProduceAnswer } from '../codec/produce-answer.js';
import { produceEnd, produceHead, producePartition, produceTopic, produceTopicEnd } from '../codec/produce-request-writer.js';
import { Reader } from '../codec/reader.js';
import type { Writer } from '../codec/writer.js';
import { decodeInitProducerIdResponse } from '../codec/generated/init-producer-id-response.js';
import { encodeInitProducerIdRequest } from '../codec/generated/init-producer-id-request.js';
import { Sequencer, type SequencerAction, type TopicPartition } from '../idempotence/sequencer.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import type { LiveConfig } from '../config/load.js';
import type { HookContext, OwnRequest } from '../proxy/produce-hook.js';
import type { ClusterView } from '../proxy/cluster-view.js';
import type { FrameLease } from '../proxy/frame-pool.js';
import { UpstreamError } from '../proxy/broker-client.js';
import { ZERO_UUID } from '../codec/runtime.js';
import type { PartBatch, PartResult } from './batches.js';
import { Deadlines, type Deadline } from './deadlines.js';
import { IdTable } from './id-table.js';
import type { DedupKey } from '../idempotence/dedup.js';
import type { StateStore } from '../state/store.js';
import type { AcceptedBatch, RestoredState } from '../state/records.js';

/**
 * A batch the upgrader holds until its final result; also what a turn sends (dispatch). A class,
 * not a literal: every Pending has the same shape (restored ones too, `late` included), so the
 * hot functions that read it stay monomorphic and no property is added after birth.
 */
class Pending {
  /** Its request's deadline for the client's answer (submit's answerWithin), until answered. */
  late: LateAnswer | undefined = undefined;

  constructor(
    /** Its id in the Sequencer. */
    readonly id: number,
    readonly tp: TopicPartition,
    /** The stamped bytes every send of it carries: a view into its client request, or its own copy (ownBytes). */
    public batch: Buffer,
    readonly version: number,
    readonly timeoutMs: number,
    readonly recordCount: number,
    /** Journalled with the batch so that a restart can answer the client's copy (--state-dir). */
    readonly dedupKey: DedupKey | null,
    /** Told the client's answer (once) and the final result. */
    readonly listener: BatchListener,
    /** The client has its answer (a retriable one while held, or at its deadline; the final one otherwise). */
    public answered: boolean,
    /** What it counts in pendingBytes (0 for a batch restored after a restart). */
    readonly bytes: number,
    /**
     * The client request's pooled memory `batch` lies in (frame-pool.ts), until the batch owns its
     * bytes (ownBytes). Pending holds it until finished or owning; each send of it, a re-send
     * scheduled and a wait for the journal hold it too, each dropping the lease it held (holdBytes).
     */
    public lease: FrameLease | undefined,
    /** The engine's view of the batch (submit's), moved to the copy with it. */
    readonly part: PartBatch | undefined,
  ) {}
}

/** The deadline for the client's answer shared by one request's batches (Upgrader.answerWithin). */
class LateAnswer {
  /** Its batches whose client has no answer yet: at 0 the deadline is cancelled. */
  waiting: number;
  deadline!: Deadline;

  constructor(
    readonly items: readonly Pending[],
    readonly result: () => PartResult,
  ) {
    this.waiting = items.length;
  }
}

/**
 * How a submitted batch ends, told to its submitter: plain calls, no promise per batch (the
 * engine's record of the batch implements it). Never called from within submit().
 */
export interface BatchListener {
  /** The client's answer, once: the final result, or a retriable error while the batch is held undecided or at the client's deadline. */
  answered(r: PartResult): void;
  /** The decided result (what the dedup cache keeps for the client's retries), once, never before answered. */
  finished(r: PartResult): void;
}

/** A client batch to upgrade (with its dedup key, journalled with it), told how it ends. */
export interface Submission extends BatchListener {
  readonly b: PartBatch;
  readonly key: DedupKey | null;
}

/**
 * TEST ONLY (test/e2e/faults-state-loss.test.ts shows with it that the faults bite): the sidecar
 * ignores the signs that a broker lost its producer's state (topic recreated: new id, or named by
 * id and answered UNKNOWN_TOPIC_ID; long idle spell) and keeps pipelining. Never set it elsewhere.
 */
const TEST_ONLY_NO_STATE_LOSS_DETECTION = process.env.IDEMPO_TEST_ONLY_NO_STATE_LOSS_DETECTION === '1';

export class Upgrader {
  private readonly seq: Sequencer;
  /** By id (id-table.ts: no Map set and delete per batch). */
  private readonly pending = new IdTable<Pending>();
  private heldBytes = 0;
  private nextId = 1;
  private allocating = false;
  /** When the last producer id was obtained: successive allocations are spaced (a bound on ids taken). */
  private lastAllocation = -Infinity;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  private readonly metrics: SidecarMetrics;
  private readonly log: Logger;

  constructor(
    private readonly ctx: HookContext,
    private readonly config: () => LiveConfig,
    /** --state-dir: every accepted batch, stamp, result and producer id is journalled; a stamp is durable before its first send. */
    private readonly state?: StateStore,
  ) {
    this.metrics = ctx.metrics;
    this.log = ctx.log;
    // `closed` is first changed by close(); V8 would throw away the optimised code that read it
    // (dispatch) then, as for UpstreamLink's (see there). Changed once here.
    this.closed = true;
    this.closed = false;
    const c = config();
    this.seq = new Sequencer({
      producer: null,
      maxInFlight: c.maxInFlight,
      retryBackoff: { initial: c.retryBackoff.initialMs, max: c.retryBackoff.maxMs },
      deliveryTimeoutMs: c.deliveryTimeoutMs,
      // A batch that may be written and is undecided at its deadline is held under its stamp as
      // long as a client's retry of it can be recognised (the dedup window); without dedup no
      // retry is ever matched to it, so there is nothing to hold it for.
      unknownHoldMs: c.dedup.strategy === 'off' ? 0 : c.dedup.windowMs,
      ...(TEST_ONLY_NO_STATE_LOSS_DETECTION ? { sessionIdleMs: Number.MAX_SAFE_INTEGER } : {}),
    });
    // deliveryTimeout must fire even when no answer ever comes.
    this.timer = setInterval(() => this.run(this.seq.tick(Date.now())), 250);
    this.timer.unref();
  }

  get inFlight(): number {
    return this.seq.inFlightTotal();
  }

  /** Bytes of client batches submitted and not finished (the engine bounds them: --max-pending-bytes). */
  get pendingBytes(): number {
    return this.heldBytes;
  }

  get producer(): { producerId: bigint; epoch: number } | null {
    return this.seq.currentProducer();
  }

  /**
   * Takes the batches of one client request; each tells its listener its client answer and its
   * final result. Returns their ids, in the order of `parts` (-1: refused at once, told in a
   * microtask). Each batch's dedup key, if any, is journalled with it, for the
   * restart. A batch with no record (lastOffsetDelta < 0) is answered INVALID_RECORD and never
   * reaches the Sequencer. With `answerWithin`, a batch not decided `ms` after it came is answered
   * `result()` (its client must hear something before its own timeout); it goes on under its stamp.
   */
  submit(parts: ReadonlyArray<Submission>, version: number, timeoutMs: number, answerWithin?: { ms: number; result: () => PartResult }, lease?: FrameLease): number[] {
    const ids = new Array<number>(parts.length);
    /** The accepted ones (of its final size unless one is refused): the Sequencer reads their tp, id and recordCount (and keeps none of them). */
    const items = new Array<Pending>(parts.length);
    let accepted = 0;
    const stopped = Boolean(this.state?.stopped);
    for (let i = 0; i < parts.length; i++) {
      const listener = parts[i];
      const b = listener.b;
      const h = b.header!;
      const recordCount = h.lastOffsetDelta + 1;
      if (stopped || recordCount < 1 || h.recordsCount !== recordCount) {
        ids[i] = -1;
        refuse(listener, stopped);
        continue;
      }
      const id = this.nextId++;
      const records = b.records!;
      lease?.hold();
      // tp: the PartBatch itself (it has topic and partition; every reader of tp reads only those): no object per batch.
      const p = new Pending(id, b, records, version, timeoutMs, recordCount, listener.key, listener, false, records.length, lease, b);
      this.heldBytes += p.bytes;
      this.pending.set(id, p);
      ids[i] = id;
      items[accepted++] = p;
    }
    if (accepted < items.length) items.length = accepted;
    if (answerWithin && accepted > 0) this.answerWithin(items, answerWithin);
    // One request is one unit: the Sequencer checks all of it before it changes anything.
    const actions = this.seq.submitAll(items, Date.now());
    if (this.state) this.journalAccepted(items);
    this.run(actions);
    return ids;
  }

  /**
   * Journalled at acceptance (not only at the first send): after a restart the queued ones keep
   * their place ahead of the client's re-sends of later batches.
   */
  private journalAccepted(items: Pending[]): void {
    for (let i = 0; i < items.length; i++) {
      const p = items[i];
      this.state!.append({ type: 'accepted', batch: { id: p.id, tp: p.tp, recordCount: p.recordCount, version: p.version, timeoutMs: p.timeoutMs, dedupKey: p.dedupKey, bytes: p.batch } });
    }
  }

  /**
   * A client re-sent a batch that is still undecided (its copy matched the original): when the
   * batch is held past its deadline, it is re-sent now, under its original stamp.
   */
  retried(id: number): void {
    if (id >= 0 && this.seq.isHeld(id)) this.run(this.seq.retryHeld(id, Date.now()));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }

  /**
   * After a restart (--state-dir): takes back the unfinished batches, stamped ones under their
   * original stamp, and starts re-sending them. Their clients are gone; the returned results
   * (with the batches' dedup keys) answer the clients' copies. Call before any submit().
   */
  restore(r: RestoredState): Array<{ key: DedupKey | null; result: Promise<PartResult>; id: number }> {
    const out: Array<{ key: DedupKey | null; result: Promise<PartResult>; id: number }> = [];
    this.nextId = Math.max(this.nextId, r.maxBatchId + 1);
    for (const p of r.sequencer.partitions) {
      for (const bs of p.batches) {
        const a = r.batches.get(bs.id);
        if (!a) continue;
        if (bs.stamp) stampIdempotence(a.bytes, bs.stamp.producerId, bs.stamp.epoch, bs.stamp.baseSequence);
        const result = new Promise<PartResult>((resolve) => {
          // Its client is gone: only the final result counts.
          const listener: BatchListener = { answered: () => undefined, finished: resolve };
          this.pending.set(a.id, new Pending(a.id, a.tp, a.bytes, a.version, a.timeoutMs, a.recordCount, a.dedupKey, listener, true, 0, undefined, undefined));
        });
        out.push({ key: a.dedupKey, result, id: a.id });
      }
    }
    this.run(this.seq.restore(r.sequencer, Date.now()));
    return out;
  }

  /** What a compaction needs: the sequencer's state and each unfinished batch's bytes (--state-dir). */
  snapshot(): { sequencer: ReturnType<Sequencer['snapshot']>; batch: (id: number) => AcceptedBatch | undefined } {
    return {
      sequencer: this.seq.snapshot(),
      batch: (id) => {
        const p = this.pending.get(id);
        return p && { id, tp: p.tp, recordCount: p.recordCount, version: p.version, timeoutMs: p.timeoutMs, dedupKey: p.dedupKey, bytes: p.batch };
      },
    };
  }

  /**
   * Carries out a turn's actions in order. The two every batch takes (send, resolve) are handled
   * here; the rest (re-sends, failures, identities) out of line in `rare`: run is called for every
   * request and every answer, and a small body keeps its optimised code small and quick to compile.
   */
  private run(actions: SequencerAction[]): void {
    if (actions.length === 0) return;
    /** This turn's sends (most turns, the answers', have none). */
    let batch: Pending[] | undefined;
    for (let i = 0; i < actions.length; i++) {
      const a = actions[i];
      if (a.type === 'send') {
        const p = this.pending.get(a.id);
        if (!p) continue;
        // Stamped once, before the first send; re-sends reuse these exact bytes (rule 2).
        // (A `restamped` send is a batch that was never written, moved to a new epoch.)
        stampIdempotence(p.batch, a.producerId, a.epoch, a.baseSequence);
        // Durable before it leaves (see dispatch below): a stamp sent but not journalled could be
        // written by the broker and then reused for other records after a restart.
        this.state?.append({ type: 'stamped', id: a.id, stamp: { producerId: a.producerId, epoch: a.epoch, baseSequence: a.baseSequence } });
        if (!a.restamped) this.metrics.upgradedBatches.inc({ topic: p.tp.topic });
        (batch ??= []).push(p);
      } else if (a.type === 'resolve') {
        this.finish(a.id, { errorCode: ErrorCode.NONE, baseOffset: a.baseOffset, logAppendTimeMs: a.logAppendTime }, 'written');
      } else {
        const p = this.rare(a);
        if (p) (batch ??= []).push(p);
      }
    }
    if (!batch) return;
    if (this.state) this.dispatchWhenDurable(batch);
    else this.dispatch(batch);
  }

  /** The actions other than send and resolve; returns a batch to re-send in this turn's sends. */
  private rare(a: Exclude<SequencerAction, { type: 'send' | 'resolve' }>): Pending | undefined {
    switch (a.type) {
      case 'resend': {
        const p = this.pending.get(a.id);
        if (!p) return undefined;
        this.metrics.retries.inc({ reason: a.reason });
        this.log.debug({ topic: p.tp.topic, partition: p.tp.partition, seq: a.baseSequence, attempt: a.attempt, reason: a.reason }, 're-sending batch');
        const now = Date.now();
        if (a.notBefore <= now) return p;
        const held = holdBytes(p);
        const t = setTimeout(() => {
          this.dispatch([p]);
          held?.drop();
        }, a.notBefore - now);
        t.unref();
        return undefined;
      }
      case 'fail':
        if (a.held) {
          // Undecided at its deadline: the client hears a retriable error; the batch stays under
          // its stamp so the client's retry is settled by the broker, never written twice.
          this.log.warn({ topic: a.tp.topic, partition: a.tp.partition, errorCode: a.errorCode }, 'batch undecided at its deadline: client told to retry, batch held under its stamp');
          const p = this.pending.get(a.id);
          if (p) this.answerEarly(p, { errorCode: a.errorCode, baseOffset: -1n, logAppendTimeMs: -1n });
          return undefined;
        }
        this.log.warn({ topic: a.tp.topic, partition: a.tp.partition, errorCode: a.errorCode, outcomeUnknown: a.outcomeUnknown }, 'giving up on a batch');
        // Maybe written: the (non-idempotent) client hears a retriable error, never 45, and its
        // retries are answered the same by the engine's tombstone, never written.
        this.finish(a.id, a.outcomeUnknown ? { errorCode: ErrorCode.REQUEST_TIMED_OUT, baseOffset: -1n, logAppendTimeMs: -1n, outcomeUnknown: true } : { errorCode: a.errorCode, baseOffset: -1n, logAppendTimeMs: -1n }, 'failed');
        return undefined;
      case 'identity':
        // Durable before the sends behind it (they wait for this turn's flush): a restart must not
        // stamp the partition's next batches under the identity it left.
        this.state?.append({ type: 'identity', tp: a.tp, producer: { producerId: a.producerId, epoch: a.epoch } });
        this.metrics.producerIdentities.inc({ reason: a.reason });
        if (a.reason !== 'first') {
          this.log.info({ topic: a.tp.topic, partition: a.tp.partition, producerId: String(a.producerId), epoch: a.epoch, reason: a.reason }, 'partition drained and moved to a new producer epoch; other partitions are not affected');
        }
        return undefined;
      case 'need_producer_id':
        void this.allocateProducerId();
        return undefined;
    }
  }

  /**
   * Group commit (--state-dir): every stamp of this turn is written and fdatasync'ed once, then
   * all go out. Everything passes through durable() so that per-partition send order stays action order.
   */
  private dispatchWhenDurable(sends: Pending[]): void {
    const held = sends.map(holdBytes); // it may finish (deadline) while the journal syncs
    const done = (): void => {
      for (const l of held) l?.drop();
    };
    void this.state!.durable().then(
      () => {
        this.dispatch(sends);
        done();
      },
      () => {
        this.notSent(sends);
        done();
      },
    );
  }

  /**
   * Answered before it is decided (held under its stamp, or at its client's deadline), a batch may
   * stay for the dedup window, long after its request was answered: it takes its bytes out of the
   * request's pooled memory, which then goes back once its sends in flight are done. What it keeps
   * is then what --max-pending-bytes counts (its bytes), not the whole request. The engine's
   * PartBatch moves to the copy too (a view keeps its whole buffer alive). Held batches are rare.
   */
  private ownBytes(p: Pending): void {
    if (!p.lease) return;
    const own = Buffer.allocUnsafeSlow(p.batch.length); // not a slice of Node's shared 8 KiB pool
    p.batch.copy(own);
    p.batch = own;
    if (p.part) p.part.records = own;
    const lease = p.lease;
    p.lease = undefined;
    lease.drop(); // Pending's own hold; sends in flight still hold theirs
  }

  /**
   * --state-dir failed and could not be removed: a stamp sent now may be missing from the file a
   * restart restores. Nothing goes out; the batches keep their stamps and fail at their deadline.
   */
  private notSent(items: Pending[]): void {
    for (const p of items) this.report(p.tp, p.id, { kind: 'retriable', reason: 'kafka_storage_error', errorCode: ErrorCode.KAFKA_STORAGE_ERROR });
  }

  private finish(id: number, r: PartResult, outcome: 'written' | 'failed'): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.heldBytes -= p.bytes;
    if (this.state) journalFinished(this.state, id, r);
    this.metrics.produceBatches.inc({ topic: p.tp.topic, outcome });
    this.answer(p, r);
    p.listener.finished(r);
    p.lease?.drop(); // Pending's own hold; a send in flight or a re-send scheduled holds its own
  }

  /** The client's answer while the batch goes on (see ownBytes). */
  private answerEarly(p: Pending, r: PartResult): void {
    this.answer(p, r);
    this.ownBytes(p);
  }

  /** The client's answer, unless it had one (a held batch's, or at its deadline). */
  private answer(p: Pending, r: PartResult): void {
    const late = p.late;
    if (late) {
      p.late = undefined;
      if (--late.waiting === 0) this.deadlines.cancel(late.deadline);
    }
    if (p.answered) return;
    p.answered = true;
    p.listener.answered(r);
  }

  /** Client answer deadlines (submit's answerWithin): one timer for all. */
  private readonly deadlines = new Deadlines();

  /**
   * One deadline for a request's batches (they came together, with the same `ms`), not one per
   * batch: a batch not decided by then is answered `result()` and goes on under its stamp.
   */
  private answerWithin(items: Pending[], within: { ms: number; result: () => PartResult }): void {
    const late = new LateAnswer(items, within.result);
    late.deadline = this.deadlines.add(within.ms, () => this.answerLate(late));
    for (let i = 0; i < items.length; i++) items[i].late = late;
  }

  private answerLate(late: LateAnswer): void {
    for (let i = 0; i < late.items.length; i++) {
      const p = late.items[i];
      if (p.late === late) this.answerEarly(p, late.result());
    }
  }

  private report(tp: TopicPartition, id: number, outcome: BatchOutcome, logStartOffset?: bigint): void {
    const losses = this.seq.stateLosses;
    this.run(this.seq.onResult(tp, id, outcome, Date.now(), logStartOffset !== undefined && logStartOffset >= 0n ? logStartOffset : undefined));
    if (this.seq.stateLosses > losses) {
      this.metrics.upstreamErrors.inc({ error: 'producer_state_lost' });
      this.log.warn({ topic: tp.topic, partition: tp.partition }, "the broker lost the sidecar producer's state on this partition (recreated, truncated or retention); the next batch goes alone");
    }
  }

  /** Topic ids seen at sends: a new id for a name means the topic was deleted and created again. */
  private readonly topicIds = new Map<string, Buffer>();

  private noticeRecreatedTopics(items: Pending[]): void {
    if (TEST_ONLY_NO_STATE_LOSS_DETECTION) return;
    for (let i = 0; i < items.length; i++) {
      const topic = items[i].tp.topic;
      if (i > 0 && items[i - 1].tp.topic === topic) continue; // (a turn's sends are mostly of one topic)
      const id = this.ctx.cluster.topicId(topic);
      if (id === undefined) continue;
      const before = this.topicIds.get(topic);
      if (before?.equals(id)) continue;
      this.topicIds.set(topic, Buffer.from(id));
      if (before === undefined) continue;
      this.seq.topicRecreated(topic);
      this.metrics.upstreamErrors.inc({ error: 'producer_state_lost' });
      this.log.warn({ topic }, 'topic was deleted and created again: its partitions re-establish the producer session (one batch first)');
    }
  }

  /** Groups sends by leader; one Produce request per group, in action order. */
  private dispatch(items: Pending[]): void {
    if (this.closed) return;
    if (this.state?.stopped) return this.notSent(items); // also a delayed re-send (see notSent)
    this.noticeRecreatedTopics(items);
    // Nearly every turn: one leader, each partition once (a client request's batches). They
    // go as one request, the turn's array itself: no groups to build.
    const leader = this.oneRequest(items);
    if (leader >= 0) return this.sendGroup(leader, items);
    // The requests, in order of first appearance; a leader's rounds in round order (see below).
    const groups: Array<{ leader: number; items: Pending[] }> = [];
    let noLeader: Pending[] | undefined;
    for (let i = 0; i < items.length; i++) {
      const p = items[i];
      const leader = this.ctx.cluster.leaderOf(p.tp.topic, p.tp.partition);
      if (leader === undefined || !this.ctx.knowsBroker(leader)) {
        (noLeader ??= []).push(p);
        continue;
      }
      // At most one batch per partition in one Produce request: the broker keeps a request's
      // partitions in a map (KafkaApis.handleProduceRequest, authorizedRequestInfo), so a second
      // batch of the same partition replaces the first, which is never appended, and the one
      // answer (often OUT_OF_ORDER_SEQUENCE_NUMBER) would be applied to both. Later batches of a
      // partition go in later requests ("rounds") on the same connection, which Kafka handles in
      // order, so per-partition order is kept. Seen with pipelined re-sends after a lost connection.
      // So: the leader's first request without a batch of this partition (a turn has few sends:
      // scanning them costs less than a map per turn).
      let g: { leader: number; items: Pending[] } | undefined;
      for (let k = 0; k < groups.length && !g; k++) if (groups[k].leader === leader && !holds(groups[k].items, p.tp, groups[k].items.length)) g = groups[k];
      if (!g) groups.push((g = { leader, items: [] }));
      g.items.push(p);
    }
    if (noLeader) this.noLeader(noLeader);
    for (let i = 0; i < groups.length; i++) this.sendGroup(groups[i].leader, groups[i].items);
  }

  /**
   * The leader all of `items` go to when they make one request as they are (one known leader,
   * no partition twice: what dispatch's grouping would make of them), else -1.
   */
  private oneRequest(items: Pending[]): number {
    const cluster = this.ctx.cluster;
    const leader = cluster.leaderOf(items[0].tp.topic, items[0].tp.partition);
    if (leader === undefined || !this.ctx.knowsBroker(leader)) return -1;
    for (let i = 1; i < items.length; i++) {
      const tp = items[i].tp;
      if (cluster.leaderOf(tp.topic, tp.partition) !== leader || holds(items, tp, i)) return -1;
    }
    return leader;
  }

  /** Sends whose partition has no known leader: metadata is refreshed, then each is reported retriable. */
  private noLeader(waiting: Pending[]): void {
    void this.ctx.refreshMetadata([...new Set(waiting.map((p) => p.tp.topic))]).catch(() => undefined).finally(() => {
      for (const p of waiting) this.report(p.tp, p.id, { kind: 'retriable', reason: 'leader_not_available', errorCode: ErrorCode.LEADER_NOT_AVAILABLE });
    });
  }

  private sendGroup(leader: number, items: Pending[]): void {
    // Each batch's request memory is held until this send is answered or has failed (UpstreamProduce.done).
    this.ctx.send(leader, new UpstreamProduce(this.ends, this.ctx.cluster, leader, items, items.map(holdBytes), this.config().requestTimeoutMs));
  }

  /** How the upgrader's Produce requests end: one object for all of them (no closure per send). */
  private readonly ends: ProduceEnds = {
    answered: (req, answer) => this.answered(req, answer),
    unanswered: (req, err) => this.unanswered(req.leader, req.topics, req.items, err),
  };

  /** No answer (connection lost or timed out): every batch's outcome is unknown. */
  private unanswered(leader: number, topics: string[], items: Pending[], err: unknown): void {
    const kind = err instanceof UpstreamError && err.kind === 'timeout' ? 'timeout' : 'connection_lost';
    this.metrics.upstreamErrors.inc({ error: kind === 'timeout' ? 'timeout' : 'connection' });
    this.log.debug({ leader, err: (err as Error).message }, 'produce to leader failed; outcome unknown');
    void this.ctx.refreshMetadata(topics).catch(() => undefined);
    for (const p of items) this.report(p.tp, p.id, { kind: 'unknown', reason: kind });
  }

  private answered(req: UpstreamProduce, answer: ProduceAnswer): void {
    // Read in place (produce-answer.ts); errors (rare) out of line, in noteError.
    let stale = false;
    for (let i = 0; i < req.items.length; i++) {
      const p = req.items[i];
      const tp = p.tp;
      const e = req.entryOf(answer, i);
      if (e < 0) {
        this.report(tp, p.id, { kind: 'unknown', reason: 'connection_lost' });
        continue;
      }
      const errorCode = answer.errorCode(e);
      const baseOffset = answer.baseOffset(e);
      if (errorCode !== ErrorCode.NONE) stale = this.noteError(answer, e, tp, errorCode) || stale;
      else if (baseOffset < 0n) this.metrics.duplicatesRejected.inc({ topic: tp.topic });
      this.report(tp, p.id, toBatchOutcome(errorCode, baseOffset, answer.logAppendTimeMs(e)), answer.logStartOffset(e));
    }
    if (stale) void this.ctx.refreshMetadata(req.topics).catch(() => undefined);
  }

  /**
   * A partition's error in an answer: counted, and its new leader learned when the answer names
   * it (KIP-951, from the decoded answer: objects only here). Returns whether metadata is stale.
   */
  private noteError(answer: ProduceAnswer, e: number, tp: TopicPartition, errorCode: number): boolean {
    this.metrics.upstreamErrors.inc({ error: errorLabel(errorCode) });
    if (errorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER) this.metrics.outOfSequence.inc({ topic: tp.topic });
    const leader = decodedEntry(answer.decode(), e).currentLeader?.leaderId ?? -1;
    if (leader < 0) return true;
    this.ctx.cluster.setLeader(tp.topic, tp.partition, leader);
    return false;
  }

  /**
   * Gets a fresh producer id from the cluster (null transactional id) for the partitions waiting
   * for one. Asked for at start and then only when a partition used up its epochs, and never
   * twice within retryBackoff.max: the number of ids taken stays bounded whatever the brokers do.
   * Errors (COORDINATOR_LOAD_IN_PROGRESS right after a broker start, no broker reachable) are
   * retried with backoff.
   */
  private async allocateProducerId(): Promise<void> {
    if (this.allocating || this.closed) return;
    this.allocating = true;
    const backoff = new Backoff(() => this.config().retryBackoff);
    try {
      const wait = this.lastAllocation + this.config().retryBackoff.maxMs - Date.now();
      if (wait > 0) await sleep(wait);
      for (;;) {
        if (this.closed) return;
        try {
          const resp = await ask(
            this.ctx,
            'any',
            ApiKey.InitProducerId,
            this.config().requestTimeoutMs,
            (w, v) => encodeInitProducerIdRequest(w, { transactionalId: null, transactionTimeoutMs: 60_000, producerId: -1n, producerEpoch: -1, enable2Pc: false, keepPreparedTxn: false }, v),
            decodeInitProducerIdResponse,
          );
          if (resp.errorCode !== ErrorCode.NONE) throw new Error(`InitProducerId failed with ${errorLabel(resp.errorCode)}`);
          this.lastAllocation = Date.now();
          this.metrics.producerIdsAllocated.inc();
          // Before any identity or send under it (sends wait until the journal is durable).
          this.state?.append({ type: 'producer', producer: { producerId: resp.producerId, epoch: resp.producerEpoch } });
          this.log.info({ producerId: String(resp.producerId), epoch: resp.producerEpoch }, 'sidecar producer id obtained');
          this.allocating = false;
          this.run(this.seq.addProducerId(resp.producerId, resp.producerEpoch, Date.now()));
          return;
        } catch (err) {
          this.metrics.upstreamErrors.inc({ error: 'init_producer_id' });
          const delay = backoff.next();
          this.log.warn({ err: (err as Error).message, retryInMs: delay }, 'cannot get a producer id yet');
          await sleep(delay);
          // Batches past their deadline fail meanwhile.
          if (!this.closed) this.run(this.seq.tick(Date.now()));
        }
      }
    } finally {
      this.allocating = false;
    }
  }
}

/** The journal's record of a batch's final result (--state-dir). */
function journalFinished(state: StateStore, id: number, r: PartResult): void {
  const result = { errorCode: r.errorCode, baseOffset: r.baseOffset, logAppendTimeMs: r.logAppendTimeMs };
  state.append(r.outcomeUnknown ? { type: 'finished', id, result, at: Date.now(), unknown: true } : { type: 'finished', id, result, at: Date.now() });
}

/**
 * A batch submit() does not take, told in a microtask (never from within submit): the journal
 * failed and is still on disk (state/README.md "When a write fails": no new stamp), or the batch
 * holds no record or its record count does not match lastOffsetDelta. Out of submit: rare.
 */
function refuse(listener: BatchListener, journalStopped: boolean): void {
  const r: PartResult = journalStopped
    ? { errorCode: ErrorCode.KAFKA_STORAGE_ERROR, baseOffset: -1n, logAppendTimeMs: -1n, errorMessage: 'idempo: the sidecar cannot write its --state-dir' }
    : { errorCode: ErrorCode.INVALID_RECORD, baseOffset: -1n, logAppendTimeMs: -1n, errorMessage: 'idempo: the batch holds no record or its record count does not match lastOffsetDelta' };
  queueMicrotask(() => {
    listener.answered(r);
    listener.finished(r);
  });
}

/**
 * One more holder of the client request's memory a batch's bytes lie in (none once the batch owns
 * its bytes): returned, to be dropped when done. After every holder dropped it (the batch finished,
 * no send of it pending) the pool may reuse it.
 */
function holdBytes(p: Pending): FrameLease | undefined {
  p.lease?.hold();
  return p.lease;
}

/** How an UpstreamProduce ends, told to the upgrader. */
interface ProduceEnds {
  answered(req: UpstreamProduce, answer: ProduceAnswer): void;
  unanswered(req: UpstreamProduce, err: unknown): void;
}

/**
 * One Produce request of the upgrader's to a partition leader (at most one batch per partition:
 * see dispatch), in item order. It writes itself from the batches (produce-request-writer.ts: no
 * generated request objects, the batches by reference) and hands its answer to the upgrader:
 * one object per request, no closure or promise.
 */
class UpstreamProduce implements OwnRequest {
  readonly apiKey = ApiKey.Produce;
  /** Fixed to v12 at most while a topic's id is unknown (see the constructor); else the highest both sides speak. */
  readonly version: number | undefined;
  readonly timeoutMs: number;
  readonly sizeHint: number;
  /** The request's topics, in order of first appearance (nearly always one). */
  readonly topics: string[];
  /** By topic, the id the request named it by (v13): its answer is read by these (the cluster view may learn a newer id meanwhile). */
  private readonly ids: Buffer[];
  /** The request's own timeout: the longest of its clients'. */
  private readonly produceTimeoutMs: number;

  constructor(
    private readonly ends: ProduceEnds,
    private readonly cluster: ClusterView,
    readonly leader: number,
    readonly items: Pending[],
    /** The request memory each item's bytes lie in, held by this send (holdBytes). */
    private readonly held: ReadonlyArray<FrameLease | undefined>,
    requestTimeoutMs: number,
  ) {
    let timeoutMs = 0;
    let clientVersion = 0;
    this.topics = [items[0].tp.topic]; // (a literal: a pushed-to empty array reserves 17 slots)
    for (let i = 0; i < items.length; i++) {
      const p = items[i];
      timeoutMs = Math.max(timeoutMs, p.timeoutMs);
      clientVersion = Math.max(clientVersion, p.version);
      if (p.tp.topic !== this.topics[0] && !this.topics.includes(p.tp.topic)) this.topics.push(p.tp.topic);
    }
    // Topics named by id (Produce v13, KIP-516) whenever both sides speak it, whatever version the
    // client used: a topic deleted and created again under the same name then answers
    // UNKNOWN_TOPIC_ID (nothing written; the sidecar refreshes metadata, sees the new id and sends
    // the next batch alone) instead of taking pipelined batches with no producer state (KIP-360),
    // which could write a later batch ahead of one lost on the way. By name (v12 at most) only
    // while a topic's id is not known yet. Every client version the upgrader takes (v3+) carries
    // the same RecordBatch v2.
    let byId = !TEST_ONLY_NO_STATE_LOSS_DETECTION;
    for (let t = 0; t < this.topics.length && byId; t++) byId = cluster.topicId(this.topics[t]) !== undefined;
    this.version = byId ? undefined : Math.min(12, clientVersion);
    this.ids = this.topics.length === 1 ? [ZERO_UUID] : new Array<Buffer>(this.topics.length).fill(ZERO_UUID);
    this.produceTimeoutMs = timeoutMs;
    this.timeoutMs = timeoutMs + requestTimeoutMs;
    // What the writer copies (the batches go by reference: broker-client.ts).
    this.sizeHint = 256 + 64 * items.length;
  }

  encode(w: Writer, version: number): void {
    // acks forced to -1: a write that only the leader saw can vanish on failover.
    produceHead(w, version, -1, this.produceTimeoutMs, this.topics.length);
    for (let t = 0; t < this.topics.length; t++) {
      const topic = this.topics[t];
      const id = version >= 13 ? (this.cluster.topicId(topic) ?? ZERO_UUID) : ZERO_UUID;
      this.ids[t] = id;
      // (indexed loops: for...of makes an iterator per loop until the function is optimised)
      const items = this.items;
      let partitions = 0;
      for (let i = 0; i < items.length; i++) if (items[i].tp.topic === topic) partitions++;
      produceTopic(w, version, topic, id, partitions);
      for (let i = 0; i < items.length; i++) if (items[i].tp.topic === topic) producePartition(w, version, items[i].tp.partition, items[i].batch);
      produceTopicEnd(w, version);
    }
    produceEnd(w, version);
  }

  answered(version: number, payload: Buffer, bodyAt: number): void {
    try {
      let answer: ProduceAnswer;
      try {
        answer = new ProduceAnswer(payload, bodyAt, version);
      } catch (err) {
        return this.ends.unanswered(this, err);
      }
      this.ends.answered(this, answer);
    } finally {
      this.done(); // answered, so every byte was written
    }
  }

  failed(err: Error): void {
    try {
      this.ends.unanswered(this, err);
    } finally {
      this.done(); // its connection was destroyed: nothing queued goes out
    }
  }

  /** The send is over: the memory its batches lie in may go back (frame-pool.ts) once nothing else holds it. */
  private done(): void {
    for (let i = 0; i < this.held.length; i++) this.held[i]?.drop();
  }

  /** Where item i's result is in `answer` (its entry number), or -1: by the topic's name, from v13 by the id this request named it by. */
  entryOf(answer: ProduceAnswer, i: number): number {
    const { topic, partition } = this.items[i].tp;
    const id = this.ids[this.topics.indexOf(topic)];
    for (let t = 0; t < answer.topicCount; t++) {
      if (!(answer.version >= 13 ? answer.topicIdIs(t, id) : answer.topicIs(t, topic))) continue;
      for (let p = 0; p < answer.partitionCount(t); p++) {
        const e = answer.entry(t, p);
        if (answer.index(e) === partition) return e;
      }
    }
    return -1;
  }
}

/** Whether the first `n` of `items` hold a batch of partition `tp`. */
function holds(items: readonly Pending[], tp: TopicPartition, n: number): boolean {
  for (let i = 0; i < n; i++) if (items[i].tp.partition === tp.partition && items[i].tp.topic === tp.topic) return true;
  return false;
}

/** The decoded answer's partition entry `e` (entries numbered in answer order, as ProduceAnswer.entry numbers them). */
function decodedEntry(resp: ProduceResponse, e: number): PartitionProduceResponse {
  for (const t of resp.responses) {
    if (e < t.partitionResponses.length) return t.partitionResponses[e];
    e -= t.partitionResponses.length;
  }
  throw new Error(`no partition entry ${e} in the decoded answer`);
}

/** One request as a promise of its decoded answer (InitProducerId: rare; the Produce sends are UpstreamProduce). Decoded in the call: the answer's bytes are lent. */
function ask<T>(ctx: HookContext, to: number | 'any', apiKey: number, timeoutMs: number, encode: (w: Writer, version: number) => void, decode: (r: Reader, version: number) => T): Promise<T> {
  return new Promise((resolve, reject) =>
    ctx.send(to, {
      apiKey,
      timeoutMs,
      encode,
      answered: (version, payload, bodyAt) => {
        try {
          resolve(decode(new Reader(payload, bodyAt), version));
        } catch (err) {
          reject(err as Error);
        }
      },
      failed: reject,
    }),
  );
}
