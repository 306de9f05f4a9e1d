// Producers that are already idempotent (producerId >= 0): their batches are checked
// against the broker's rules (session-table.ts). Observe counts and forwards every byte;
// enforce (and upgrade) answer duplicates themselves and refuse gaps.
import type { Logger } from '../log/log.js';
import { ErrorCode, errorLabel } from '../codec/errors.js';
import { SessionTable, type SessionKey, type Ticket, type Verdict } from '../idempotence/session-table.js';
import { lastSequence } from '../idempotence/sequence.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import type { ProduceCall, ProduceDecision } from '../proxy/produce-hook.js';
import { topicKey, type ProduceAnswer } from '../codec/produce-answer.js';
import type { PartBatch, PartResult } from './batches.js';
import { Plan } from './plan.js';

export class Validator {
  /** Answers of forwarded batches, for copies that arrive while the original is in flight. */
  private readonly waiters = new Map<Ticket, { promise: Promise<PartResult>; resolve: (r: PartResult) => void }>();

  constructor(
    readonly table: SessionTable,
    private readonly metrics: SidecarMetrics,
    private readonly log: Logger,
    /** Feeds the engine's rate-limited summary line. */
    private readonly onCounted: (kind: 'duplicate' | 'out_of_sequence') => void = () => {},
  ) {}

  /**
   * Observe for a whole request (`parts`: the covered ones): every byte is forwarded; idempotent
   * batches are tracked and what the broker answers is counted (45 out-of-sequence, 46
   * duplicate, 47 fenced epoch). Observe answers nothing itself, so no Plan: one answer handler
   * for the request (this runs for every produce in observe mode).
   */
  observe(call: ProduceCall, parts: PartBatch[], now: number): ProduceDecision {
    // The handler keeps, per watched part, its position, partition and topic key (strings and
    // numbers), never a PartBatch, the call or the request: the proxy lends observe the request
    // in its socket read buffer, which the next read overwrites (ProduceHook.keepsNoBytes).
    // Indexed loops: see Engine.observe.
    const watched: Watched[] = new Array(parts.length);
    let key = '';
    for (let i = 0; i < parts.length; i++) {
      const b = parts[i];
      if (i === 0 || b.t !== parts[i - 1].t) key = topicKey(call.request.topicData[b.t], call.version);
      watched[i] = this.observeOne(call, b, key, now);
    }
    return {
      kind: 'forward',
      onResponse: (answer) => {
        this.observed(answer, watched);
        return undefined;
      },
    };
  }

  /**
   * The broker's answer to an observed request: each watched part's result, read in place where
   * it is (brokers answer in request order), else found by topic and partition. Offsets are read
   * only for a tracked batch's ticket.
   */
  private observed(answer: ProduceAnswer, watched: Watched[]): void {
    let at = 0; // read once a ticket needs it: most observed batches carry none
    let t = -1;
    let sameTopic = false;
    // Consecutive parts of one topic with the same result are counted in one update (usually the whole answer).
    let run = 0;
    let runTopic = '';
    let runCode = 0;
    let runCopy = false;
    for (let i = 0; i < watched.length; i++) {
      const w = watched[i];
      if (w.t !== t) {
        t = w.t;
        sameTopic = t < answer.topicCount && answer.topicIs(t, w.topicKey);
      }
      let e = sameTopic && w.p < answer.partitionCount(t) ? answer.entry(t, w.p) : -1;
      if (e === -1 || answer.index(e) !== w.partition) e = findAnswer(answer, w.topicKey, w.partition);
      if (e === -1) continue;
      if (w.ticket !== undefined) this.settle(w.ticket, answer.result(e), (at ||= Date.now()));
      const errorCode = answer.errorCode(e);
      if (run > 0 && (w.topic !== runTopic || errorCode !== runCode || w.copy !== runCopy)) {
        this.countAnswer(runTopic, runCode, runCopy, run);
        run = 0;
      }
      runTopic = w.topic;
      runCode = errorCode;
      runCopy = w.copy;
      run++;
    }
    if (run > 0) this.countAnswer(runTopic, runCode, runCopy, run);
  }

  /** Observe one covered part: tracked when it is an idempotent producer's batch. */
  private observeOne(call: ProduceCall, b: PartBatch, topicKey: string, now: number): Watched {
    const w: Watched = { topic: b.topic, topicKey, t: b.t, p: b.p, partition: b.partition, ticket: undefined, copy: false };
    if (!isTracked(b)) return w;
    if (call.request.acks === 0) {
      // acks=0 takes no answer, so nothing would ever complete a ticket: count, do not track.
      this.count(b.topic, this.table.check(keyOf(b), seqOf(b), now), call, false);
      return w;
    }
    const o = this.table.observe(keyOf(b), seqOf(b), now);
    this.count(b.topic, o.verdict, call, false);
    w.ticket = o.ticket;
    // Copies the broker will answer NONE (original offset, nothing written): outcome "duplicate", not "written".
    w.copy = o.verdict.kind === 'duplicate' || o.verdict.kind === 'duplicate_in_flight';
    return w;
  }

  /** Enforce for a whole request: idempotent parts as in enforcePart, the rest forwarded. */
  enforce(call: ProduceCall, parts: PartBatch[], now: number): ProduceDecision {
    const plan = new Plan(call);
    for (const b of parts) {
      if (isTracked(b)) this.enforcePart(plan, b, now);
      else plan.forward(b);
    }
    return plan.decide();
  }

  /** Enforce (and upgrade, for idempotent clients) one valid idempotent part: answer copies, refuse gaps, forward the rest. */
  enforcePart(plan: Plan, b: PartBatch, now: number): void {
    const key = keyOf(b);
    const seq = seqOf(b);
    const v = this.table.check(key, seq, now);
    this.count(b.topic, v, plan.call, true);
    switch (v.kind) {
      case 'duplicate':
        plan.answer(b, { errorCode: ErrorCode.NONE, baseOffset: v.baseOffset, logAppendTimeMs: v.logAppendTime });
        return;
      case 'duplicate_in_flight':
        plan.answer(b, this.waitFor(v.ticket));
        return;
      case 'out_of_sequence':
        plan.answer(b, { errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, baseOffset: -1n, logAppendTimeMs: -1n, errorMessage: `idempo: expected sequence ${v.expected}, got ${seq.firstSeq}` });
        return;
      case 'stale_epoch':
        plan.answer(b, { errorCode: ErrorCode.INVALID_PRODUCER_EPOCH, baseOffset: -1n, logAppendTimeMs: -1n, errorMessage: `idempo: producer epoch ${seq.epoch} is older than ${v.currentEpoch}` });
        return;
      case 'accept':
      case 'defer': // rule 3: a gap while earlier batches are in flight is for the broker to judge
      case 'too_many_in_flight':
        this.forwardTracked(plan, b, now);
    }
  }

  private forwardTracked(plan: Plan, b: PartBatch, now: number): void {
    // acks=0 takes no answer, so nothing would ever complete a ticket (the broker judges it).
    if (plan.call.request.acks === 0) return plan.forward(b);
    const ticket = this.table.begin(keyOf(b), seqOf(b), now);
    plan.forward(b);
    const pos = b.pos;
    plan.whenAnswered((byPos) => {
      const r = byPos.get(pos);
      if (!r) return;
      this.settle(ticket, r, Date.now());
      this.countAnswer(b.topic, r.errorCode, false);
    });
  }

  private waitFor(ticket: Ticket): Promise<PartResult> {
    let w = this.waiters.get(ticket);
    if (!w) {
      let resolve!: (r: PartResult) => void;
      const promise = new Promise<PartResult>((r) => (resolve = r));
      w = { promise, resolve };
      this.waiters.set(ticket, w);
    }
    return w.promise;
  }

  private release(ticket: Ticket, r: PartResult): void {
    const w = this.waiters.get(ticket);
    if (w) {
      this.waiters.delete(ticket);
      w.resolve(r);
    }
  }

  /** A tracked batch's answer completes its ticket (and a copy waiting for it). */
  private settle(ticket: Ticket, r: PartResult, now: number): void {
    // The proxy answers NETWORK_EXCEPTION when it gave up the broker connection: the batch may
    // be written or not, so the partition's state is unknown until the broker judges the next
    // one (never a gap answered OUT_OF_ORDER by the sidecar on a guess).
    if (r.errorCode === ErrorCode.NETWORK_EXCEPTION || r.errorCode === ErrorCode.REQUEST_TIMED_OUT) this.table.abandon(ticket);
    else this.table.complete(ticket, { errorCode: r.errorCode, baseOffset: r.baseOffset, logAppendTime: r.logAppendTimeMs }, now);
    this.release(ticket, r);
  }

  /** What the broker answered for `n` forwarded batches of a topic, counted. */
  private countAnswer(topic: string, errorCode: number, copy: boolean, n = 1): void {
    if (!TOPIC_ERRORS.has(errorCode)) this.metrics.vouchTopic(topic);
    if (errorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER) this.metrics.outOfSequence.inc({ topic: topic }, n);
    if (errorCode === ErrorCode.DUPLICATE_SEQUENCE_NUMBER) this.metrics.duplicatesRejected.inc({ topic: topic }, n);
    if (errorCode !== ErrorCode.NONE) this.metrics.upstreamErrors.inc({ error: errorLabel(errorCode) }, n);
    this.metrics.produceBatches.inc({ topic: topic, outcome: copy && errorCode === ErrorCode.NONE ? 'duplicate' : outcomeOf(errorCode) }, n);
  }

  private count(topic: string, v: Verdict, call: ProduceCall, acting: boolean): void {
    if (v.kind === 'duplicate' || v.kind === 'duplicate_in_flight') {
      this.metrics.duplicatesRejected.inc({ topic });
      this.onCounted('duplicate');
      if (acting) this.metrics.produceBatches.inc({ topic, outcome: 'duplicate' });
      this.log.debug({ topic, verdict: v.kind, conn: call.connectionId }, acting ? 'duplicate batch answered by the sidecar' : 'duplicate batch seen');
    } else if (v.kind === 'out_of_sequence') {
      // Observe forwards the gap and counts the broker's 45 in countAnswer(); counting the
      // verdict too made one gap +2 (found by test/e2e/modes-wire.test.ts).
      if (acting) this.metrics.outOfSequence.inc({ topic });
      if (acting) this.metrics.produceBatches.inc({ topic, outcome: 'out_of_sequence' });
      this.log.debug({ topic, expected: v.expected, conn: call.connectionId }, acting ? 'out-of-sequence batch refused' : 'out-of-sequence batch seen');
    } else if (v.kind === 'stale_epoch' && acting) {
      this.metrics.produceBatches.inc({ topic, outcome: 'failed' });
    }
  }
}

/** An observed part and what its answer completes. */
type Watched = {
  topic: string;
  /** How the request named the topic (topicKey): what its answer names it by. */
  topicKey: string;
  /** Position in the request, and the partition there. */
  t: number;
  p: number;
  partition: number;
  ticket: Ticket | undefined;
  copy: boolean;
};

/** The entry answering a topic-partition wherever the broker put it (the last one, as a broker keeps the last of a repeated partition), or -1. */
function findAnswer(answer: ProduceAnswer, key: string, partition: number): number {
  let found = -1;
  for (let t = 0; t < answer.topicCount; t++) {
    if (!answer.topicIs(t, key)) continue;
    for (let p = 0; p < answer.partitionCount(t); p++) if (answer.index(answer.entry(t, p)) === partition) found = answer.entry(t, p);
  }
  return found;
}

/** Answers that say the topic does not exist (or may not be seen): no vouching for its name. */
const TOPIC_ERRORS = new Set<number>([ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.UNKNOWN_TOPIC_ID, ErrorCode.INVALID_TOPIC_EXCEPTION, ErrorCode.TOPIC_AUTHORIZATION_FAILED]);

/** A valid batch of an idempotent, non-transactional producer, first of its partition in the request. */
export function isTracked(b: PartBatch): boolean {
  return b.header !== undefined && b.header.producerId >= 0n && !b.header.isTransactional && !b.repeated;
}

function keyOf(b: PartBatch): SessionKey {
  return { producerId: b.header!.producerId, topic: b.topic, partition: b.partition };
}

function seqOf(b: PartBatch): { epoch: number; firstSeq: number; lastSeq: number } {
  const h = b.header!;
  return { epoch: h.producerEpoch, firstSeq: h.baseSequence, lastSeq: lastSequence(h.baseSequence, h.lastOffsetDelta + 1) };
}

export function outcomeOf(errorCode: number): 'written' | 'duplicate' | 'out_of_sequence' | 'failed' {
  if (errorCode === ErrorCode.NONE) return 'written';
  if (errorCode === ErrorCode.DUPLICATE_SEQUENCE_NUMBER) return 'duplicate';
  if (errorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER) return 'out_of_sequence';
  return 'failed';
}
