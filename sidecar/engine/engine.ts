// Routes every Produce request by mode (DESIGN.md "Modes") and owns the idempotence state:
//   observe  — forward every byte; track sessions and count duplicates / gaps;
//   enforce  — refuse non-idempotent or acks!=all producers (POLICY_VIOLATION); validate the rest;
//   upgrade  — stamp non-idempotent producers with the sidecar's producer id and retry safely;
//              validate already-idempotent ones as enforce does.
// Transactional requests pass through untouched in every mode (KAFKA-NOTES rule 6).
import type { Logger } from '../log/log.js';
import { ErrorCode, errorName } from '../codec/errors.js';
import { SessionTable } from '../idempotence/session-table.js';
import { DedupCache, type DedupHit, type DedupKey, type DedupTicket } from '../idempotence/dedup.js';
import { Claim, type Waiter } from '../idempotence/claim.js';
import { contentFingerprint, exactFingerprint, headerFingerprint, type DecodeLimits } from '../idempotence/fingerprint.js';
import { UNKNOWN_TOPIC_LABEL, type SidecarMetrics } from '../metrics/metrics.js';
import type { LiveConfig, SidecarConfig } from '../config/load.js';
import type { HookContext, ProduceCall, ProduceDecision, ProduceHook } from '../proxy/produce-hook.js';
import { FIRST_V2_PRODUCE, partsOf, topicMatcher, type PartBatch, type PartResult, type ResultsByPos } from './batches.js';
import { Plan, type SettledListener, type WrittenListener } from './plan.js';
import { RateLimitedLog } from './rate-limited-log.js';
import { Upgrader, type Submission } from './upgrader.js';
import { RefusalGate } from './refusal-gate.js';
import { RetryIndex, keptForCopies, type RetryEntry } from './retry-index.js';
import { Validator } from './validator.js';
import { Deadlines } from './deadlines.js';
import { ObservedCopies } from './observe-copies.js';
import type { OpenResult } from '../state/store.js';
import { snapshotRecords, type BrokerPort } from '../state/records.js';

export interface EngineDeps {
  /** What the engine may use of the proxy. */
  ctx: HookContext;
  metrics: SidecarMetrics;
  log: Logger;
  config: SidecarConfig;
  /** Names the policy in POLICY_VIOLATION messages. */
  policyName?: string;
  /** --state-dir: the journal and what it restored. */
  state?: OpenResult;
  /** --state-dir: the broker listener ports, for compaction (the proxy journals their changes). */
  brokerPorts?: () => BrokerPort[];
}

export class Engine {
  private table: SessionTable;
  private readonly validator: Validator;
  private upgrader?: Upgrader;
  /** Each original in flight has its DedupWaiter in its entry (what copies attach to). */
  private dedup?: DedupCache<PartResult, DedupWaiter>;
  private covers: (topic: string) => boolean;
  private readonly sweeper: NodeJS.Timeout;
  private summary = { duplicates: 0, outOfSequence: 0, policy: 0, unknownRetries: 0 };

  constructor(private readonly deps: EngineDeps) {
    const live = deps.config.live;
    // Topic label values only for topics broker metadata has named (DESIGN.md: bounded labels).
    deps.metrics.knownTopic = (topic) => deps.ctx.cluster.knowsTopic(topic);
    this.table = this.newTable(live);
    this.validator = new Validator(this.table, deps.metrics, deps.log, (kind) => {
      if (kind === 'duplicate') this.summary.duplicates++;
      else this.summary.outOfSequence++;
    });
    this.covers = topicMatcher(live.topics.include, live.topics.exclude);
    this.configureDedup(live);
    this.sweeper = setInterval(() => this.sweep(), 1_000);
    this.sweeper.unref();
    if (deps.state) this.restore(deps.state);
  }

  /**
   * --state-dir: the upgrade engine exists from the start, takes back the unfinished batches (and
   * re-sends them) before the first client request, and the dedup cache its finished originals,
   * so a client's re-send after the restart is answered from the original. Then the journal is
   * compacted (what was finished drops out) and follows every change.
   */
  private restore({ store, restored }: OpenResult): void {
    const upgrader = this.upgraderNow();
    const now = Date.now();
    if (restored) {
      for (const { key, result, id } of upgrader.restore(restored)) {
        // Its client lost its connection with the old process and never had a final answer: a
        // copy is its retry (also a send of the same records: kafkajs re-encodes it with a new timestamp).
        const claim = Claim.orphan();
        if (key && this.dedup) this.track(this.dedup, key, now, result, id, claim);
        const a = restored.batches.get(id);
        if (a && this.live.dedup.strategy === 'exact') {
          this.retries.add(a.tp.topic, a.tp.partition, contentFingerprint(a.bytes, { maxDecompressedBytes: this.deps.config.limits.maxDecompressBytes }).fingerprint, result, id, this.nextRetryGroup++, claim);
        }
      }
      // Finished originals are restored too: a success their clients may never have had (its
      // answer was still queued, or its connection gone, when the process died: no `known` record)
      // or a tombstone. kafkajs re-sends such a batch re-encoded, so with `exact` each is also
      // indexed by content (when its bytes are still in the journal), under the same claim.
      if (this.live.dedup.strategy === 'exact') {
        for (const e of restored.dedup) {
          if (!e.bytes || now >= e.expiresAt) continue;
          e.claim = Claim.orphan();
          const fp = contentFingerprint(e.bytes, { maxDecompressedBytes: this.deps.config.limits.maxDecompressBytes }).fingerprint;
          this.retries.addFinished(e.key.topic, e.key.partition, fp, e.result, e.expiresAt, this.nextRetryGroup++, e.claim);
        }
      }
      this.dedup?.restore(restored.dedup, now);
      for (const e of restored.dedup) e.bytes = undefined; // views into the journal file's buffer: let it go
    }
    store.setSnapshotSource(() => {
      const u = upgrader.snapshot();
      return snapshotRecords(u.sequencer, u.batch, this.dedup?.snapshot() ?? [], this.deps.brokerPorts?.() ?? []);
    });
    store.compact();
  }

  private upgraderNow(): Upgrader {
    return (this.upgrader ??= new Upgrader(this.deps.ctx, () => this.live, this.deps.state?.store));
  }

  /**
   * The dedup entry of an original follows its FINAL result: kept on success, kept as a tombstone
   * when the outcome stayed unknown (its copies are answered REQUEST_TIMED_OUT, never written),
   * dropped when it was surely not written. While the original is undecided (even past its
   * deadline, when its client was told to retry), the entry stays, so a retry is attached to the
   * original instead of being written again.
   */
  private track(cache: DedupCache<PartResult, DedupWaiter>, key: DedupKey, now: number, final: Promise<PartResult>, batchId: number, claim: Claim): Promise<PartResult> {
    const waiter: DedupWaiter = { final: () => settled, batchId, key, claim };
    const ticket = cache.begin(key, now, claim, waiter);
    const settled = final.then((r) => {
      cache.finish(ticket, keptForCopies(r) ? { ok: true, result: r } : { ok: false }, Date.now());
      return r;
    });
    return settled;
  }

  /**
   * A client's copy of an original still in flight: answered with the original's result, or
   * with a retriable error when that is not decided within the copy's own timeout (the client
   * retries again; the original is re-sent at once under its stamp if it was held).
   */
  private attach(w: DedupWaiter | undefined, answerMs: number): Promise<PartResult> {
    if (!w) return Promise.resolve(networkError());
    return this.attachFinal(w.final(), w.batchId, answerMs);
  }

  hook(): ProduceHook {
    return {
      needsDecoding: true,
      onProduce: (call) => this.onProduce(call),
      // Observe keeps no bytes of a call (validator.observe keeps the request's shape only), so
      // the proxy forwards it without copying it out of the socket's read buffer.
      keepsNoBytes: () => this.live.mode === 'observe',
      onLegacyProduce: (call) => {
        const mode = this.live.mode;
        if (mode === 'observe') return { kind: 'forward' };
        // v0-2 carry no producer id: enforce cannot check them, upgrade cannot stamp them. The
        // answer format is not one the sidecar writes, so the connection is closed, as a broker
        // does with a request it will not serve.
        this.deps.metrics.produceBatches.inc({ topic: UNKNOWN_TOPIC_LABEL, outcome: 'policy_rejected' });
        this.summary.policy++;
        const policy = this.deps.policyName ? `policy ${this.deps.policyName}` : 'the idempo policy';
        return { kind: 'close', reason: `Produce v${call.version} (message format v0/v1, which cannot be idempotent) refused by ${policy} (mode ${mode}): use a client speaking Produce v3+` };
      },
    };
  }

  /** Applies a reloaded config; sessions and in-flight batches are kept. */
  reconfigure(next: LiveConfig): void {
    this.covers = topicMatcher(next.topics.include, next.topics.exclude);
    this.configureDedup(next);
  }

  close(): void {
    clearInterval(this.sweeper);
    this.upgrader?.close();
  }

  /** What the engine holds now (tests, the fuzz campaign's invariants). */
  stats(): { inFlight: number; pendingBytes: number; dedupEntries: number; dedupBytes: number; retryEntries: number; sessions: number; sessionBytes: number } {
    return {
      retryEntries: this.retries.size,
      inFlight: this.table.inFlightCount + (this.upgrader?.inFlight ?? 0),
      pendingBytes: this.pendingBytes,
      dedupEntries: this.dedup?.size ?? 0,
      dedupBytes: this.dedup?.bytes ?? 0,
      sessions: this.table.sessionCount,
      sessionBytes: this.table.bytes,
    };
  }

  private get live(): LiveConfig {
    return this.deps.config.live;
  }

  /**
   * observe forwards every byte and counts (observe()). In enforce and upgrade every part of a
   * request gets exactly one disposition in a Plan (plan.ts):
   * - a topic the policy does not cover is forwarded untouched;
   * - a malformed part is answered with the broker's error for it (part-check.ts), what the mode
   *   refuses is refused, and the rest is handled;
   * - every other part of the same request proceeds whatever happened to one part.
   */
  private onProduce(call: ProduceCall): ProduceDecision {
    const req = call.request;
    // Transactional traffic is the broker's (KAFKA-NOTES rule 6).
    if (req.transactionalId !== null) return { kind: 'forward' };
    const mode = this.live.mode;
    const parts = partsOf(req, call.version, this.deps.ctx.cluster, mode !== 'observe');
    let unknownTopic = false;
    for (let i = 0; i < parts.length; i++) {
      if (parts[i].header?.isTransactional) return { kind: 'forward' };
      unknownTopic ||= parts[i].topicUnknown;
    }
    const now = Date.now();
    if (unknownTopic) this.learnTopicIds(call);
    if (mode === 'observe') return this.observe(call, parts, now);
    const plan = new Plan(call);
    // The parts each step keeps are the previous step's array itself until one drops out (usually
    // none does: no new array per request), then a copy of those before it that goes on from there.
    let coveredOnly: PartBatch[] | null = null;
    for (let i = 0; i < parts.length; i++) {
      const b = parts[i];
      if (b.topicUnknown || b.invalid?.errorCode === ErrorCode.INVALID_TOPIC_EXCEPTION) {
        // Answered as the broker would for an id it has not seen (clients refresh metadata,
        // through the sidecar, and retry) or for a name no topic can have.
        if (b.topicUnknown) {
          this.reject(plan, b, ErrorCode.UNKNOWN_TOPIC_ID, 'topic id not known (metadata refresh under way)');
          if (mode === 'upgrade') this.closeGate(call, b, now);
        }
        else this.reject(plan, b, b.invalid!.errorCode, b.invalid!.message);
      } else if (b.repeated) {
        // A broker keeps one batch per partition and answers it for every occurrence: a later
        // occurrence is refused here so no batch is acknowledged without being written (and the
        // forwarded part of the request names each partition once, so answers map back exactly).
        this.reject(plan, b, ErrorCode.INVALID_RECORD, `partition ${b.partition} of ${b.topic} appears twice in one request`);
      } else if (!this.covers(b.topic)) plan.forward(b);
      else {
        coveredOnly?.push(b);
        continue;
      }
      coveredOnly ??= parts.slice(0, i);
    }
    const covered = coveredOnly ?? parts;
    if (covered.length === 0) return plan.decide();
    // enforce and upgrade from here on.
    if (call.version < FIRST_V2_PRODUCE) {
      // Message sets (magic 0/1) carry no producer id: they can be neither checked nor upgraded.
      return this.refuse(plan, covered, `Produce v${call.version} (message format v0/v1, which cannot be idempotent)`);
    }
    let validOnly: PartBatch[] | null = null;
    /** Valid parts of producers that are not idempotent. */
    let plainOnly: PartBatch[] | null = null;
    for (let i = 0; i < covered.length; i++) {
      const b = covered[i];
      if (b.invalid) {
        this.reject(plan, b, b.invalid.errorCode, b.invalid.message);
        validOnly ??= covered.slice(0, i);
        plainOnly ??= covered.slice(0, i);
        continue;
      }
      validOnly?.push(b);
      if (b.header!.producerId < 0n) plainOnly?.push(b);
      else plainOnly ??= covered.slice(0, i);
    }
    const valid = validOnly ?? covered;
    let plain = plainOnly ?? covered;
    if (mode === 'upgrade') {
      // A partition the topic's metadata does not list cannot be written: answered as the broker
      // would (UNKNOWN_TOPIC_OR_PARTITION, retriable: the client refreshes its metadata through
      // the sidecar) instead of retried by the upgrader until deliveryTimeout.
      const cluster = this.deps.ctx.cluster;
      let listed: PartBatch[] | null = null;
      for (let i = 0; i < plain.length; i++) {
        const b = plain[i];
        if (b.partition >= 0 && (!cluster.knowsTopic(b.topic) || cluster.knowsPartition(b.topic, b.partition))) {
          listed?.push(b);
          continue;
        }
        listed ??= plain.slice(0, i);
        this.reject(plan, b, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `partition ${b.partition} of ${b.topic} is not in the cluster's metadata`);
        this.closeGate(call, b, now);
        this.learnTopicIds(call);
      }
      plain = listed ?? plain;
    }
    if (mode === 'enforce' && (plain.length > 0 || req.acks !== -1)) {
      return this.refuse(plan, valid, req.acks !== -1 ? `acks=${req.acks}` : 'a non-idempotent producer');
    }
    if (plain.length < valid.length) for (const b of valid) if (b.header!.producerId >= 0n) this.validator.enforcePart(plan, b, now);
    if (plain.length > 0) this.upgrade(plan, plain, now);
    return plan.decide();
  }

  /**
   * observe: every byte is forwarded and nothing is answered here, so no Plan (this runs for
   * every produce). Parts of topics the sidecar does not know (an id not learned yet, a name no
   * topic can have) are not known to be excluded: the broker judges them, unwatched.
   */
  private observe(call: ProduceCall, parts: PartBatch[], now: number): ProduceDecision {
    // Indexed loops on this path: until the JIT optimises it (a bench round's sidecar serves only
    // a few thousand requests), for...of allocates an iterator and a result per element.
    let covered = parts; // usually every part: no second array
    for (let i = 0; i < parts.length; i++) {
      if (this.watches(parts[i])) continue;
      covered = parts.filter((b) => this.watches(b));
      break;
    }
    if (covered.length === 0) return { kind: 'forward' };
    this.observeCopies(covered, now);
    return this.validator.observe(call, covered, now);
  }

  private watches(b: PartBatch): boolean {
    return !b.topicUnknown && b.invalid?.errorCode !== ErrorCode.INVALID_TOPIC_EXCEPTION && this.covers(b.topic);
  }

  /** A malformed part: the broker's error for it, a log line and a metric; nothing else changes. */
  private reject(plan: Plan, b: PartBatch, errorCode: number, why: string): void {
    const call = plan.call;
    plan.answer(b, { errorCode, baseOffset: -1n, logAppendTimeMs: -1n, errorMessage: call.version >= 8 ? `idempo: ${why}` : null });
    this.deps.metrics.malformedBatches.inc({ error: errorName(errorCode) });
    this.deps.metrics.produceBatches.inc({ topic: b.topic, outcome: 'failed' });
    this.malformedLog.note(now(), () => this.deps.log.warn({ conn: call.connectionId, clientId: call.header.clientId, topic: b.topic, partition: b.partition, error: errorName(errorCode), why }, 'malformed produce part answered with the broker\'s error'));
  }

  /**
   * Produce v13 names topics by id; clients learn ids from Metadata that passes through here, so
   * an unknown id is rare (a topic created a moment ago) — or a client sending made-up ids. One
   * metadata refresh at a time, at most one per second, whatever the request rate.
   */
  private learnTopicIds(call: ProduceCall): void {
    // (also used for partitions metadata does not list: the same single-flight refresh)
    const t = now();
    if (this.idRefresh.inFlight || t - this.idRefresh.last < 1_000) return;
    this.idRefresh.inFlight = true;
    this.idRefresh.last = t;
    this.deps.log.warn({ conn: call.connectionId }, 'produce names a topic id or partition the sidecar has not seen in metadata; refreshing it');
    void this.deps.ctx
      .refreshMetadata(null)
      .catch(() => undefined)
      .finally(() => (this.idRefresh.inFlight = false));
  }

  private readonly idRefresh = { inFlight: false, last: -Infinity };
  private readonly malformedLog = new RateLimitedLog(10_000);

  /** enforce: POLICY_VIOLATION for every covered part, with a message saying what to change (v8+). */
  private refuse(plan: Plan, parts: PartBatch[], why: string): ProduceDecision {
    const call = plan.call;
    const policy = this.deps.policyName ? `policy ${this.deps.policyName}` : 'the idempo policy';
    const message = `${policy} (mode ${this.live.mode}) refuses ${why}: set enable.idempotence=true and acks=all`;
    for (const b of parts) this.deps.metrics.produceBatches.inc({ topic: b.topic, outcome: 'policy_rejected' });
    this.summary.policy++;
    if (call.request.acks === 0) return { kind: 'close', reason: `acks=0 produce refused by ${policy} (mode ${this.live.mode}); an acks=0 request takes no answer, so the connection is closed` };
    for (const b of parts) plan.answer(b, { errorCode: ErrorCode.POLICY_VIOLATION, baseOffset: -1n, logAppendTimeMs: -1n, errorMessage: call.version >= 8 ? message : null });
    this.deps.log.debug({ conn: call.connectionId, clientId: call.header.clientId, why }, 'produce refused by policy');
    return plan.decide();
  }

  /** upgrade: application copies answered from the dedup cache, the rest stamped and sent by the Upgrader. */
  private upgrade(plan: Plan, parts: PartBatch[], now: number): void {
    const call = plan.call;
    const upgrader = this.upgraderNow();
    const timeoutMs = call.request.timeoutMs;
    // The client's timer for this request started when it sent it, maybe before the sidecar could
    // read it (its connection paused): its waiting and our answer deadline count from then.
    const sentAfter = Math.min(now, call.sentAfter);
    const answerMs = answerDeadline(timeoutMs, now - sentAfter);
    // acks=0: the client hears nothing, so it never retries: every send of it is a new write.
    const answered = call.request.acks !== 0;
    const exact = this.live.dedup.strategy === 'exact';
    /** The parts that go to the Upgrader (req.parts), each with its claim and, with dedup, its key and ticket. */
    const req = new UpgradeRequest(this.upgradeEvents, plan, this.nextRetryGroup++, answered);
    const retryMatches = answered ? this.retryMatches(parts, now) : NO_MATCHES;
    // A usual part takes only this loop's own lines; copies and refusals are handled out of line
    // (smaller hot code for the JIT to compile).
    for (let i = 0; i < parts.length; i++) {
      const b = parts[i];
      const key = this.dedupKey(b);
      const dedup = key ? this.dedup : undefined;
      if (dedup && answered) {
        const hit = dedup.lookup(key!, now);
        if (hit.kind !== 'miss') {
          this.answerCopy(plan, b, hit, answerMs, sentAfter);
          continue;
        }
      }
      if (retryMatches.size > 0 && this.answerRetry(plan, b, retryMatches, answerMs, sentAfter)) continue;
      if (!this.admits(plan, b, now)) continue;
      // The client-cannot-know rule (claim.ts) is `exact`'s; `content`/`header` match every copy.
      let claim: Claim;
      let waiter: Waiter | null = null;
      if (!answered) claim = Claim.unanswered();
      else if (exact) {
        const c = Claim.arrived(sentAfter, timeoutMs);
        claim = c.claim;
        waiter = c.waiter;
      } else claim = Claim.everyCopy();
      const u = new Upgraded(req, b, claim, waiter, dedup ? key! : null, dedup);
      if (dedup) u.ticket = dedup.begin(key!, now, claim, u);
      req.parts.push(u);
    }
    const fresh = req.parts;
    if (fresh.length === 0) return;
    for (let i = 0; i < fresh.length; i++) plan.answerLater(fresh[i].b);
    // `exact` with an answer: each part has a waiter, whose claim learns how the answer went (upgradeEvents.written).
    if (answered && exact) plan.onWritten(req);
    // The batches are views into the request's pooled memory: the upgrader holds it until each is finished.
    const ids = upgrader.submit(fresh, call.version, timeoutMs, answered ? { ms: answerMs, result: notDecidedInTime } : undefined, call.lease);
    for (let i = 0; i < fresh.length; i++) fresh[i].batchId = ids[i];
    // When one part of the request is answered "retry", clients such as kafkajs re-send the whole
    // request re-encoded: its parts answered success are indexed for that retry too (upgradeEvents.settled).
    if (fresh.length > 1 && answered && exact) plan.whenSettled(req);
  }

  /**
   * The same bytes as an original whose client may be retrying it (claim.ts): answered with the
   * original's result, or attached to it while it is undecided.
   */
  private answerCopy(plan: Plan, b: PartBatch, hit: DedupHit<PartResult, DedupWaiter>, answerMs: number, sentAfter: number): void {
    this.deps.log.debug({ topic: b.topic, partition: b.partition, state: hit.kind }, 'client retry answered with the original result');
    const answer = hit.kind === 'done' ? Promise.resolve(hit.result) : this.attach(hit.waiter, answerMs);
    plan.answer(b, this.copy(plan, b, hit.claim, answer, sentAfter, plan.call.request.timeoutMs));
  }

  /** Whether the part is the client's retry of an original it may not know the outcome of, re-encoded with a new timestamp; then attached to it. */
  private answerRetry(plan: Plan, b: PartBatch, matches: ReadonlyMap<number, { orig: RetryEntry }>, answerMs: number, sentAfter: number): boolean {
    const retry = matches.get(b.pos);
    if (!retry) return false;
    const { orig } = retry;
    this.deps.log.debug({ topic: b.topic, partition: b.partition, state: orig.state, role: orig.role }, 'client retry (same records, new timestamp) of an original told to retry: attached to it');
    const answer = orig.state === 'done' ? Promise.resolve(orig.result) : this.attachFinal(orig.final, orig.batchId, answerMs);
    plan.answer(b, this.copy(plan, b, orig.claim, answer, sentAfter, plan.call.request.timeoutMs));
    return true;
  }

  /** Whether the part may go to the Upgrader now; if not, it is answered here (refuse). */
  private admits(plan: Plan, b: PartBatch, now: number): boolean {
    // An earlier batch of this partition on this connection was refused by the sidecar and has
    // not come back yet: this one would be written ahead of it (refusal-gate.ts).
    if (!this.gate.admit(plan.call.connectionId, b.topic, b.partition, b.records!, now)) return this.refuseUpgrade(plan, b, 'gate', now);
    const size = b.records!.length;
    const limit = this.deps.config.limits.maxPendingBytes;
    if (size > limit) return this.refuseUpgrade(plan, b, 'too_large', now);
    if (this.pendingBytes + size > limit) return this.refuseUpgrade(plan, b, 'pending_full', now);
    return true;
  }

  /** A part admits() turned away, answered; returns false. */
  private refuseUpgrade(plan: Plan, b: PartBatch, why: 'gate' | 'too_large' | 'pending_full', now: number): false {
    const call = plan.call;
    const limit = this.deps.config.limits.maxPendingBytes;
    if (why === 'gate') {
      plan.answer(b, { errorCode: ErrorCode.REQUEST_TIMED_OUT, baseOffset: -1n, logAppendTimeMs: -1n, errorMessage: call.version >= 8 ? 'idempo: an earlier batch of this partition was refused by the sidecar and must be retried first; retry' : null });
      this.deps.log.debug({ conn: call.connectionId, topic: b.topic, partition: b.partition }, 'batch behind a refused one on its connection: refused until that one is retried');
    } else if (why === 'too_large') {
      // It could never fit, however far the pending batches drain: REQUEST_TIMED_OUT would have
      // the client retry it for ever. The broker's answer for a batch it will not take instead
      // (the Java producer splits the batch and sends the halves).
      const size = b.records!.length;
      plan.answer(b, { errorCode: ErrorCode.MESSAGE_TOO_LARGE, baseOffset: -1n, logAppendTimeMs: -1n, errorMessage: call.version >= 8 ? `idempo: a batch of ${size} bytes is larger than the sidecar's --max-pending-bytes ${limit}` : null });
      this.deps.metrics.limitReached.inc({ limit: 'pending_bytes' });
      this.deps.metrics.produceBatches.inc({ topic: b.topic, outcome: 'failed' });
      this.limitLog.note(now, () => this.deps.log.warn({ topic: b.topic, partition: b.partition, bytes: size, limit }, 'batch larger than --max-pending-bytes: answered MESSAGE_TOO_LARGE'));
    } else {
      // Backpressure: the client retries (a retriable error), nothing was sent.
      plan.answer(b, { errorCode: ErrorCode.REQUEST_TIMED_OUT, baseOffset: -1n, logAppendTimeMs: -1n, errorMessage: call.version >= 8 ? 'idempo: sidecar pending-batch memory limit reached (--max-pending-bytes); retry' : null });
      this.deps.metrics.limitReached.inc({ limit: 'pending_bytes' });
      this.limitLog.note(now, () => this.deps.log.warn({ pendingBytes: this.pendingBytes, limit }, 'pending batches at their byte limit: answering REQUEST_TIMED_OUT (retriable) until they drain'));
      this.closeGate(call, b, now);
    }
    return false;
  }

  /**
   * The client's answer for an upgraded part comes before the client's own timeout (submit's
   * answerWithin): when the original is not decided by then (or the upgrader held it),
   * REQUEST_TIMED_OUT (retriable) — the client then retries after OUR answer, and that retry is
   * recognised by content (retry-index.ts) even when the client re-encoded it with a new
   * timestamp, while the original goes on under its stamp. Its final result ends its dedup entry
   * (see track). One object for every request (no closure per request or part).
   */
  private readonly upgradeEvents: UpgradeEvents = {
    answered: (u, r) => {
      const req = u.req;
      if (req.answers && isRetry(r)) this.indexRetry(u.b, u.final(), u.batchId, req.group, u.claim);
      req.plan.decided(u.b, r);
    },
    finished: (u, r) => {
      if (u.ticket === undefined) return;
      // (After a reload moved it to a new cache, this is the old one's: the new entry follows final(), see track.)
      u.cache!.finish(u.ticket, keptForCopies(r) ? { ok: true, result: r } : { ok: false }, Date.now());
    },
    written: (req, written, results) => {
      const now = Date.now();
      const parts = req.parts;
      for (let i = 0; i < parts.length; i++) {
        const u = parts[i];
        this.answerWritten(u.b, u.claim, u.waiter!, written, results, now);
        // Its connection closed before the answer: the client may retry on a new one, re-encoded.
        if (!written) this.indexRetry(u.b, u.final(), u.batchId, req.group, u.claim);
        // Its success reached the client in time: the entry matches nothing any more (claim.ts);
        // dropped now rather than by the next sweep (see dropKnown).
        else if (u.ticket !== undefined) u.cache!.dropKnown(u.ticket);
      }
    },
    settled: (req, results) => {
      const parts = req.parts;
      let retried = false;
      for (let i = 0; i < parts.length && !retried; i++) retried = isRetry(results.get(parts[i].b.pos)!);
      if (!retried) return;
      for (const { b } of parts) {
        const r = results.get(b.pos)!;
        if (r.errorCode !== ErrorCode.NONE || !b.records) continue;
        this.retries.addSibling(b.topic, b.partition, contentFingerprint(b.records, { maxDecompressedBytes: this.deps.config.limits.maxDecompressBytes }).fingerprint, r, req.group);
      }
    },
  };

  /** Answer deadlines of attached copies: one timer for all (deadlines.ts). */
  private readonly deadlines = new Deadlines();

  /**
   * `exact`: an original whose client may retry it re-encoded (kafkajs: new timestamps) is
   * indexed by content too (retry-index.ts), under the same claim as its exact entry.
   */
  private indexRetry(b: PartBatch, final: Promise<PartResult>, batchId: number, group: number, claim: Claim): void {
    if (this.live.dedup.strategy !== 'exact' || !b.records) return;
    const fp = contentFingerprint(b.records, { maxDecompressedBytes: this.deps.config.limits.maxDecompressBytes }).fingerprint;
    this.retries.add(b.topic, b.partition, fp, final, batchId, group, claim);
  }

  /**
   * A copy taken for its client's retry of an original: it waits on the original's claim (the
   * next copy is a new write until this one is answered), and its answer, once written, tells
   * whether the client now knows the outcome. Counted as a duplicate; a tombstone's answer (the
   * original's outcome is unknown) is logged, rate-limited.
   */
  private copy(plan: Plan, b: PartBatch, claim: Claim, answer: Promise<PartResult>, sentAfter: number, timeoutMs: number): Promise<PartResult> {
    this.deps.metrics.duplicatesRejected.inc({ topic: b.topic });
    this.deps.metrics.produceBatches.inc({ topic: b.topic, outcome: 'duplicate' });
    this.summary.duplicates++;
    this.watch(plan, b, claim, claim.wait(sentAfter, timeoutMs));
    return answer.then((r) => {
      if (r.outcomeUnknown) {
        this.summary.unknownRetries++;
        this.tombstoneLog.note(Date.now(), () => this.deps.log.warn({ topic: b.topic, partition: b.partition }, 'retry of a batch whose outcome is unknown (maybe written) answered REQUEST_TIMED_OUT, not written'));
      }
      return r;
    });
  }

  /** A copy's waiter: its claim learns how the copy's answer went (rare: a closure is fine). */
  private watch(plan: Plan, b: PartBatch, claim: Claim, waiter: Waiter): void {
    plan.onWritten({ written: (written, results) => this.answerWritten(b, claim, waiter, written, results, Date.now()) });
  }

  /**
   * Tells `claim` how `waiter`'s answer went: written (a success or not) or dropped with its
   * connection. When a success thereby reached its client in time, --state-dir journals it, so
   * that after a restart no copy is matched to that original either.
   */
  private answerWritten(b: PartBatch, claim: Claim, waiter: Waiter, written: boolean, results: ResultsByPos | undefined, now: number): void {
    const result = results?.get(b.pos);
    const before = claim.known;
    claim.answered(waiter, written ? result?.errorCode === ErrorCode.NONE : undefined, now);
    if (!before && claim.known && result && result.baseOffset >= 0n && this.dedup) {
      this.deps.state?.store.append({ type: 'known', tp: { topic: b.topic, partition: b.partition }, baseOffset: result.baseOffset });
    }
  }

  /** A copy attached to an undecided original: its final result, or REQUEST_TIMED_OUT again at the copy's deadline. */
  private attachFinal(final: Promise<PartResult>, batchId: number, deadlineMs: number): Promise<PartResult> {
    this.upgrader?.retried(batchId);
    return new Promise<PartResult>((resolve) => {
      const late = this.deadlines.add(deadlineMs, () => resolve({ errorCode: ErrorCode.REQUEST_TIMED_OUT, baseOffset: -1n, logAppendTimeMs: -1n }));
      void final.then((r) => {
        this.deadlines.cancel(late);
        resolve(r);
      });
    });
  }

  private readonly retries = new RetryIndex(() => this.live.dedup.windowMs);

  /** Per (client connection, partition): order across the sidecar's own retriable refusals. */
  private readonly gate = new RefusalGate(() => this.live.deliveryTimeoutMs, () => ({ maxDecompressedBytes: this.deps.config.limits.maxDecompressBytes }));

  /** upgrade: the sidecar refused a non-idempotent batch retriably; later ones of its partition on its connection wait for its retry. */
  private closeGate(call: ProduceCall, b: PartBatch, now: number): void {
    if (b.records && b.header && b.header.producerId < 0n) this.gate.refused(call.connectionId, b.topic, b.partition, b.records, now);
  }
  private nextRetryGroup = 1;

  /**
   * Parts of this request that are a client's retry of an original it was told to retry (content
   * match, retry-index.ts). Siblings (parts answered success next to a timed-out one) count only
   * when this request also retries their group; a retry of a group without its siblings means the
   * client re-sends failed parts only, so those siblings are forgotten (a later repeat is written).
   */
  private retryMatches(parts: PartBatch[], now: number): ReadonlyMap<number, { orig: RetryEntry }> {
    if (this.live.dedup.strategy !== 'exact' || this.retries.size === 0) return NO_MATCHES;
    const out = new Map<number, { orig: RetryEntry }>();
    for (const b of parts) {
      if (!b.records || !this.retries.has(b.topic, b.partition)) continue;
      const fp = contentFingerprint(b.records, { maxDecompressedBytes: this.deps.config.limits.maxDecompressBytes }).fingerprint;
      const orig = this.retries.match(b.topic, b.partition, fp, now);
      if (orig) out.set(b.pos, { orig });
    }
    const retried = new Set<number>();
    for (const m of out.values()) if (m.orig.role === 'retry') retried.add(m.orig.group);
    for (const [k, m] of out) if (m.orig.role === 'sibling' && !retried.has(m.orig.group)) out.delete(k);
    const keep = new Set([...out.values()].map((m) => m.orig));
    for (const g of retried) this.retries.dropSiblings(g, keep);
    return out;
  }

  /**
   * Bytes of client batches the upgrader holds until their final outcome (bounded by
   * --max-pending-bytes), which may come after the client's answer: held batches are probed
   * until the broker decides.
   */
  private get pendingBytes(): number {
    return this.upgrader?.pendingBytes ?? 0;
  }
  private readonly limitLog = new RateLimitedLog(10_000);
  private readonly tombstoneLog = new RateLimitedLog(10_000);

  /** observe, strategy `exact`: copies recognised from batch headers (observe-copies.ts); reset with the dedup settings. */
  private observed?: ObservedCopies;

  /** observe: app-level copies are counted, never acted on. */
  private observeCopies(parts: PartBatch[], now: number): void {
    if (!this.dedup) return;
    if (this.live.dedup.strategy === 'exact') {
      const d = this.live.dedup;
      this.observed ??= new ObservedCopies(d.windowMs, d.maxEntries, this.deps.config.limits.maxDedupBytes);
      for (let i = 0; i < parts.length; i++) {
        const b = parts[i];
        if (!b.header || !b.records || b.header.producerId >= 0n) continue;
        if (!this.observed.isCopy(b.topic, b.partition, b.records, now)) continue;
        this.deps.metrics.duplicatesRejected.inc({ topic: b.topic });
        this.summary.duplicates++;
      }
      return;
    }
    for (const b of parts) {
      if (!b.header || b.header.producerId >= 0n) continue;
      const key = this.dedupKey(b, true);
      if (!key) continue;
      if (this.dedup.lookup(key, now).kind !== 'miss') {
        this.deps.metrics.duplicatesRejected.inc({ topic: b.topic });
        this.summary.duplicates++;
        continue;
      }
      const t = this.dedup.begin(key, now);
      // Observe does not wait for the answer: a copy seen later within the window counts.
      this.dedup.finish(t, { ok: true, result: networkError() }, now);
    }
  }

  /**
   * The batch's dedup key under the configured strategy. `exact` never decodes anything;
   * observe mode never decompresses (it only counts copies: raw bytes are enough).
   */
  private dedupKey(b: PartBatch, observing = false): DedupKey | undefined {
    const d = this.live.dedup;
    if (d.strategy === 'off' || !b.records || !b.header) return undefined;
    if (d.strategy === 'exact' || (observing && b.header.compression !== 0 && d.strategy === 'content')) {
      return { topic: b.topic, partition: b.partition, fingerprint: exactFingerprint(b.records) };
    }
    const limits: DecodeLimits = { maxDecompressedBytes: observing ? 0 : this.deps.config.limits.maxDecompressBytes };
    if (d.strategy === 'content') return { topic: b.topic, partition: b.partition, fingerprint: contentFingerprint(b.records, limits).fingerprint };
    const h = headerFingerprint(b.records, d.header!, limits);
    if (h.fingerprint === null) {
      if (h.reason !== 'absent') this.deps.log.debug({ topic: b.topic, partition: b.partition, reason: h.reason }, 'dedup header not readable; batch not deduplicated');
      return undefined;
    }
    return { topic: b.topic, partition: b.partition, fingerprint: h.fingerprint };
  }

  private dedupSettings = '';

  /**
   * A new cache only when the dedup settings changed, and then nothing remembered is lost: a
   * reload changes only the entry cap (strategy, header and window need a restart:
   * config/load.ts), so every key stays valid and moves over, finished originals with their
   * expiry and originals still in flight with their final result, to which a retry attaches.
   */
  private configureDedup(c: LiveConfig): void {
    const settings = JSON.stringify(c.dedup);
    if (settings === this.dedupSettings) return;
    this.dedupSettings = settings;
    this.observed = undefined;
    const previous = this.dedup;
    this.dedup = c.dedup.strategy === 'off' ? undefined : new DedupCache<PartResult, DedupWaiter>({
            windowMs: c.dedup.windowMs,
            maxEntries: c.dedup.maxEntries,
            maxBytes: this.deps.config.limits.maxDedupBytes,
            onEvict: (reason, count) => {
              if (reason !== 'capacity') return;
              this.deps.metrics.limitReached.inc({ limit: 'dedup' }, count);
              this.limitLog.note(Date.now(), () => this.deps.log.warn({ evicted: count }, 'dedup cache at its limit (--max-dedup-bytes / dedup.maxEntries): oldest answered entries evicted, the window is shorter'));
            },
          });
    if (previous && this.dedup) {
      const now = Date.now();
      this.dedup.restore(previous.snapshot(), now);
      for (const w of previous.inFlight()) if (w.key) this.track(this.dedup, w.key, now, w.final(), w.batchId, w.claim);
    }
  }

  private newTable(c: LiveConfig): SessionTable {
    return new SessionTable({
      idleMs: c.sessionIdleMs,
      maxSessions: c.maxSessions,
      maxInFlight: c.maxInFlight,
      maxBytes: this.deps.config.limits.maxSessionBytes,
      onEvict: (reason, count) => {
        if (reason !== 'capacity') return;
        this.deps.metrics.sessionsEvicted.inc(count);
        this.deps.metrics.limitReached.inc({ limit: 'sessions' }, count);
        this.limitLog.note(Date.now(), () => this.deps.log.warn({ evicted: count }, 'producer sessions at their limit (--max-session-bytes / maxSessions): least recently used evicted'));
      },
    });
  }

  /** Periodic upkeep (every second; tests call it directly): expiry, gauges, the summary line. */
  sweep(): void {
    const now = Date.now();
    this.table.sweep(now);
    this.dedup?.sweep(now);
    this.observed?.sweep(now);
    this.retries.sweep(now);
    this.gate.sweep(now);
    this.deps.metrics.producerSessions.set(this.table.sessionCount + (this.upgrader?.producer ? 1 : 0));
    // Batches forwarded for idempotent clients plus the sidecar's own upgrade-mode sends.
    this.deps.metrics.inflightBatches.set(this.table.inFlightCount + (this.upgrader?.inFlight ?? 0));
    this.logSummary(now);
  }

  private lastSummary = 0;

  /** Rate-limited info line (one per minute at most) of what the sidecar acted on. */
  private logSummary(now: number): void {
    const s = this.summary;
    if (now - this.lastSummary < 60_000 || s.duplicates + s.outOfSequence + s.policy === 0) return;
    this.lastSummary = now;
    this.deps.log.info({ duplicates: s.duplicates, outOfSequence: s.outOfSequence, policyRejected: s.policy, unknownOutcomeRetries: s.unknownRetries }, 'produce summary (last minute)');
    this.summary = { duplicates: 0, outOfSequence: 0, policy: 0, unknownRetries: 0 };
  }
}

const now = (): number => Date.now();

function notDecidedInTime(): PartResult {
  return { errorCode: ErrorCode.REQUEST_TIMED_OUT, baseOffset: -1n, logAppendTimeMs: -1n, errorMessage: "idempo: not decided before the request timeout; retry (the retry is answered with this batch's result)" };
}

const NO_MATCHES: ReadonlyMap<number, { orig: RetryEntry }> = new Map();

/** An answer that tells the client to retry while the outcome is not known. */
const isRetry = (r: PartResult): boolean => r.errorCode === ErrorCode.REQUEST_TIMED_OUT || r.errorCode === ErrorCode.NETWORK_EXCEPTION;

/**
 * The sidecar answers before the client's own request timeout: 10 % earlier, at most 1 s, less
 * what the request may already have waited unread (`waitedMs`, ProduceCall.sentAfter).
 */
function answerDeadline(timeoutMs: number, waitedMs: number): number {
  return Math.max(1, timeoutMs - Math.min(1_000, Math.floor(timeoutMs / 10)) - waitedMs);
}

/** An original still in flight that copies attach to. */
interface DedupWaiter {
  /** Its final result (a promise made when asked). */
  final(): Promise<PartResult>;
  readonly batchId: number;
  readonly key: DedupKey | null;
  readonly claim: Claim;
}

/** What the engine does when an upgraded original is answered and finishes, and when its request's answer is settled and written (Engine.upgradeEvents). */
interface UpgradeEvents {
  answered(u: Upgraded, r: PartResult): void;
  finished(u: Upgraded, r: PartResult): void;
  written(req: UpgradeRequest, written: boolean, results: ResultsByPos | undefined): void;
  settled(req: UpgradeRequest, results: ResultsByPos): void;
}

/**
 * The upgraded parts of one request: its Plan's listener for the written answer and the settled
 * results (one object per request: no closure per part).
 */
class UpgradeRequest implements WrittenListener, SettledListener {
  readonly parts: Upgraded[] = [];

  constructor(
    readonly events: UpgradeEvents,
    readonly plan: Plan,
    /** Retry group of the request (retry-index.ts). */
    readonly group: number,
    /** Its client hears an answer (acks != 0), so a retriable one means a retry to recognise. */
    readonly answers: boolean,
  ) {}

  written(written: boolean, results: ResultsByPos | undefined): void {
    this.events.written(this, written, results);
  }

  settled(results: ResultsByPos): void {
    this.events.settled(this, results);
  }
}

/**
 * An original the upgrader took, followed with plain calls (the Upgrader's listener, and the
 * dedup waiter copies attach to): no promise per batch. Its final result becomes a promise only
 * when something waits for it (an attached copy, the retry index); most finish with nobody asking.
 */
class Upgraded implements Submission, DedupWaiter {
  /** The upgrader's id of the batch (set once submitted). */
  batchId = -1;
  private result?: PartResult;
  private waiting?: Array<(r: PartResult) => void>;

  constructor(
    readonly req: UpgradeRequest,
    readonly b: PartBatch,
    readonly claim: Claim,
    /** `exact` with an answer: its client's wait for the answer (claim.ts). */
    readonly waiter: Waiter | null,
    readonly key: DedupKey | null,
    /** Its dedup entry's cache (a reload makes a new one; ticket numbers are per cache). */
    readonly cache: DedupCache<PartResult, DedupWaiter> | undefined,
  ) {}

  /** Its ticket in `cache` (set once it began there). */
  ticket: DedupTicket | undefined = undefined;

  answered(r: PartResult): void {
    this.req.events.answered(this, r);
  }

  finished(r: PartResult): void {
    this.result = r;
    this.req.events.finished(this, r);
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting) for (let i = 0; i < waiting.length; i++) waiting[i](r);
  }

  final(): Promise<PartResult> {
    const r = this.result;
    if (r) return Promise.resolve(r);
    return new Promise((resolve) => (this.waiting ??= []).push(resolve));
  }
}

function networkError(): PartResult {
  return { errorCode: ErrorCode.NETWORK_EXCEPTION, baseOffset: -1n, logAppendTimeMs: -1n };
}
