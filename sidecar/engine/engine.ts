// Routes every Produce request by mode (DESIGN.md "Modes") and owns the idempotence state:
//   observe  — forward every byte; track sessions and count duplicates / gaps;
//   enforce  — refuse non-idempotent or acks!=all producers (POLICY_VIOLATION); validate the rest;
//   upgrade  — stamp non-idempotent producers with the sidecar's producer id and retry safely;
//              validate already-idempotent ones as enforce does.
// Transactional requests pass through untouched in every mode (KAFKA-NOTES rule 6).
import type { Logger } from 'pino';
import { ErrorCode } from '../codec/errors.js';
import { SessionTable } from '../idempotence/session-table.js';
import { DedupCache, type DedupKey } from '../idempotence/dedup.js';
import { contentFingerprint, exactFingerprint, headerFingerprint, type DecodeLimits } from '../idempotence/fingerprint.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import type { LiveConfig, SidecarConfig } from '../config/load.js';
import type { HookContext, ProduceCall, ProduceDecision, ProduceHook } from '../proxy/produce-hook.js';
import { buildResponse, partKey, partsOf, topicMatcher, type PartBatch, type PartResult } from './batches.js';
import { Upgrader } from './upgrader.js';
import { Validator } from './validator.js';
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
  private dedup?: DedupCache<PartResult>;
  /** Final results of originals still undecided, by dedup ticket, and the upgrader's batch id. */
  private readonly dedupWaiters = new Map<number, { final: Promise<PartResult>; batchId: number }>();
  private covers: (topic: string) => boolean;
  private readonly sweeper: NodeJS.Timeout;
  private summary = { duplicates: 0, outOfSequence: 0, policy: 0 };

  constructor(private readonly deps: EngineDeps) {
    const live = deps.config.live;
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
        if (key && this.dedup) this.track(this.dedup.begin(key, now), result, id);
      }
      this.dedup?.restore(restored.dedup, now);
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
   * The dedup entry of an original follows its FINAL result: kept on success, dropped otherwise.
   * While the original is undecided (even past its deadline, when its client was told to retry),
   * the entry stays, so a retry is attached to the original instead of being written again.
   */
  private track(ticket: ReturnType<DedupCache<PartResult>['begin']>, final: Promise<PartResult>, batchId = -1): Promise<PartResult> {
    const cache = this.dedup!;
    const settled = final.then((r) => {
      cache.finish(ticket, r.errorCode === ErrorCode.NONE ? { ok: true, result: r } : { ok: false }, Date.now());
      this.dedupWaiters.delete(ticket);
      return r;
    });
    this.dedupWaiters.set(ticket, { final: settled, batchId });
    return settled;
  }

  /**
   * A client's copy of an original still in flight: answered with the original's result, or
   * with a retriable error when that is not decided within the copy's own timeout (the client
   * retries again; the original is re-sent at once under its stamp if it was held).
   */
  private attach(ticket: number, timeoutMs: number): Promise<PartResult> {
    const w = this.dedupWaiters.get(ticket);
    if (!w) return Promise.resolve(networkError());
    this.upgrader?.retried(w.batchId);
    let timer: NodeJS.Timeout | undefined;
    const undecided = new Promise<PartResult>((r) => {
      timer = setTimeout(() => r({ errorCode: ErrorCode.REQUEST_TIMED_OUT, baseOffset: -1n, logAppendTimeMs: -1n }), Math.max(1, timeoutMs));
    });
    return Promise.race([w.final, undecided]).finally(() => clearTimeout(timer));
  }

  hook(): ProduceHook {
    return { needsDecoding: true, onProduce: (call) => this.onProduce(call) };
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

  private get live(): LiveConfig {
    return this.deps.config.live;
  }

  private onProduce(call: ProduceCall): ProduceDecision {
    const req = call.request;
    if (req.transactionalId !== null) return { kind: 'forward' };
    const parts = partsOf(req, call.version, this.deps.ctx.cluster);
    if (parts.some((b) => b.header?.isTransactional)) return { kind: 'forward' };
    if (parts.some((b) => b.topicUnknown)) {
      // Produce v13 names topics by id; clients learn ids from Metadata that passes through here,
      // so this is rare (a topic created a moment ago). Forward it and learn the ids for next time.
      this.deps.log.warn({ conn: call.connectionId }, 'produce names a topic id the sidecar has not seen yet; forwarded as is, refreshing metadata');
      void this.deps.ctx.refreshMetadata(null).catch(() => undefined);
      return { kind: 'forward' };
    }
    const covered = parts.filter((b) => this.covers(b.topic));
    if (covered.length === 0) return { kind: 'forward' };
    const now = Date.now();
    const mode = this.live.mode;
    if (mode === 'observe') {
      this.observeCopies(covered, now);
      return this.validator.observe(call, covered, now);
    }
    const plain = covered.filter((b) => b.header !== undefined && b.header.producerId < 0n);
    if (mode === 'enforce' && (plain.length > 0 || req.acks !== -1)) return this.refuse(call, covered);
    if (mode === 'upgrade' && plain.length > 0) {
      // A request comes from one producer, idempotent or not; anything else (a batch the
      // sidecar cannot read, a mix) goes to the broker as is. A request that mixes covered
      // and excluded topics is upgraded whole: one producer's request is one unit.
      if (parts.some((b) => b.header === undefined || b.header.producerId >= 0n)) return { kind: 'forward' };
      return this.upgrade(call, parts);
    }
    return this.validator.enforce(call, covered, now);
  }

  /** enforce: POLICY_VIOLATION for every partition, with a message saying what to change (v8+). */
  private refuse(call: ProduceCall, parts: PartBatch[]): ProduceDecision {
    const why = call.request.acks !== -1 ? `acks=${call.request.acks}` : 'a non-idempotent producer';
    const policy = this.deps.policyName ? `policy ${this.deps.policyName}` : 'the idempo policy';
    const message = `${policy} (mode enforce) refuses ${why}: set enable.idempotence=true and acks=all`;
    for (const b of parts) this.deps.metrics.produceBatches.inc({ topic: b.topic, outcome: 'policy_rejected' });
    this.summary.policy++;
    if (call.request.acks === 0) return { kind: 'close', reason: `acks=0 produce refused by ${policy} (mode enforce); an acks=0 request takes no answer, so the connection is closed` };
    const results = new Map<string, PartResult>();
    call.request.topicData.forEach((td, t) =>
      td.partitionData.forEach((_, p) => results.set(`${t}/${p}`, { errorCode: ErrorCode.POLICY_VIOLATION, baseOffset: -1n, logAppendTimeMs: -1n, errorMessage: call.version >= 8 ? message : null })),
    );
    this.deps.log.debug({ conn: call.connectionId, clientId: call.header.clientId, why }, 'produce refused by policy');
    return { kind: 'answer', response: Promise.resolve(buildResponse(call.request, results)) };
  }

  private upgrade(call: ProduceCall, parts: PartBatch[]): ProduceDecision {
    const upgrader = this.upgraderNow();
    const now = Date.now();
    const results = new Map<string, Promise<PartResult>>();
    const fresh: PartBatch[] = [];
    const tickets = new Map<string, number>();
    const keys = new Map<string, DedupKey>();
    for (const b of parts) {
      const key = this.dedupKey(b);
      if (key && this.dedup) {
        const hit = this.dedup.lookup(key, now);
        if (hit.kind !== 'miss') {
          // An application-level retry of a batch already written (or being written): answer with the original's result.
          this.deps.metrics.duplicatesRejected.inc({ topic: b.topic });
          this.deps.metrics.produceBatches.inc({ topic: b.topic, outcome: 'duplicate' });
          this.summary.duplicates++;
          this.deps.log.debug({ topic: b.topic, partition: b.partition, state: hit.kind }, 'application retry answered with the original result');
          results.set(partKey(b), hit.kind === 'done' ? Promise.resolve(hit.result) : this.attach(hit.ticket, call.request.timeoutMs));
          continue;
        }
        tickets.set(partKey(b), this.dedup.begin(key, now));
        keys.set(partKey(b), key);
      }
      fresh.push(b);
    }
    if (fresh.length > 0) {
      const sent = upgrader.submit(fresh, call.version, call.request.timeoutMs, keys);
      for (const [k, sub] of sent) {
        results.set(k, sub.answer);
        const ticket = tickets.get(k);
        if (ticket !== undefined && this.dedup) this.track(ticket as never, sub.final, sub.id);
      }
    }
    const response = (async () => {
      const done = new Map<string, PartResult>();
      for (const [k, p] of results) done.set(k, await p);
      return call.request.acks === 0 ? null : buildResponse(call.request, done);
    })();
    return { kind: 'answer', response };
  }

  /** observe: app-level copies are counted, never acted on. */
  private observeCopies(parts: PartBatch[], now: number): void {
    if (!this.dedup) return;
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
    const limits: DecodeLimits = { maxDecompressedBytes: observing ? 0 : this.deps.config.limits.maxDecompressBytes };
    if (d.strategy === 'exact' || (observing && b.header.compression !== 0 && d.strategy === 'content')) {
      return { topic: b.topic, partition: b.partition, fingerprint: exactFingerprint(b.records) };
    }
    if (d.strategy === 'content') return { topic: b.topic, partition: b.partition, fingerprint: contentFingerprint(b.records, limits).fingerprint };
    const h = headerFingerprint(b.records, d.header!, limits);
    if (h.fingerprint === null) {
      if (h.reason !== 'absent') this.deps.log.debug({ topic: b.topic, partition: b.partition, reason: h.reason }, 'dedup header not readable; batch not deduplicated');
      return undefined;
    }
    return { topic: b.topic, partition: b.partition, fingerprint: h.fingerprint };
  }

  private dedupSettings = '';

  /** A new cache only when the dedup settings changed: a reload keeps what was remembered. */
  private configureDedup(c: LiveConfig): void {
    const settings = JSON.stringify(c.dedup);
    if (settings === this.dedupSettings) return;
    this.dedupSettings = settings;
    this.dedup = c.dedup.strategy === 'off' ? undefined : new DedupCache<PartResult>({ windowMs: c.dedup.windowMs, maxEntries: c.dedup.maxEntries, maxBytes: this.deps.config.limits.maxDedupBytes });
  }

  private newTable(c: LiveConfig): SessionTable {
    return new SessionTable({
      idleMs: c.sessionIdleMs,
      maxSessions: c.maxSessions,
      maxInFlight: c.maxInFlight,
      onEvict: (reason, count) => {
        if (reason === 'capacity') this.deps.metrics.sessionsEvicted.inc(count);
      },
    });
  }

  private sweep(): void {
    const now = Date.now();
    this.table.sweep(now);
    this.dedup?.sweep(now);
    this.deps.metrics.producerSessions.set(this.table.sessionCount + (this.upgrader?.producer ? 1 : 0));
    // Batches forwarded for idempotent clients plus the sidecar's own upgrade-mode sends.
    if (this.deps.state) this.deps.metrics.stateJournalBytes.set(this.deps.state.store.bytes);
    this.deps.metrics.inflightBatches.set(this.table.inFlightCount + (this.upgrader?.inFlight ?? 0));
    this.logSummary(now);
  }

  private lastSummary = 0;

  /** Rate-limited info line (one per minute at most) of what the sidecar acted on. */
  private logSummary(now: number): void {
    const s = this.summary;
    if (now - this.lastSummary < 60_000 || s.duplicates + s.outOfSequence + s.policy === 0) return;
    this.lastSummary = now;
    this.deps.log.info({ duplicates: s.duplicates, outOfSequence: s.outOfSequence, policyRejected: s.policy }, 'produce summary (last minute)');
    this.summary = { duplicates: 0, outOfSequence: 0, policy: 0 };
  }
}

function networkError(): PartResult {
  return { errorCode: ErrorCode.NETWORK_EXCEPTION, baseOffset: -1n, logAppendTimeMs: -1n };
}
