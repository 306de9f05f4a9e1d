// One Produce request, partition by partition: each part is either answered by the sidecar
// (an error a broker would give, a policy refusal, a copy, an upgrade-mode send over the
// sidecar's own connections) or forwarded to the client's broker. Every mode builds a Plan
// and the Plan alone turns it into the proxy's decision, so the paths cannot disagree:
// - nothing answered locally → the original bytes are forwarded (no copy);
// - nothing forwarded → the sidecar answers the whole request;
// - both → the forwarded parts go as a smaller request and both answers are merged, in the
//   client's order.
import type { OnWritten, ProduceCall, ProduceDecision } from '../proxy/produce-hook.js';
import type { ProduceResponse } from '../codec/generated/produce-response.js';
import { buildResponse, resultsByPosition, subsetRequest, type PartResult, type ResultsByPos } from './batches.js';

/** A part of the request, by its position (PartBatch.pos). */
type Part = { readonly pos: number };

/**
 * Told whether the answer reached the client's socket (see OnWritten), with every part's result
 * (undefined when the connection closed before they were all decided). An object with a method,
 * not a callback: upgrade mode registers one per request, not a closure per part.
 */
export interface WrittenListener {
  written(written: boolean, results: ResultsByPos | undefined): void;
}

/** Told every part's result once the sidecar's own answers are all decided (before the answer is written). */
export interface SettledListener {
  settled(results: ResultsByPos): void;
}

export class Plan {
  /** The sidecar's answers by part position; undefined while one is not decided (answerLater, or a promise pending). */
  private readonly local: LocalAnswers;
  /** Local answers not decided yet. */
  private open = 0;
  /**
   * Set by decide() while answers are open: the one promise of the local answers, settled when the
   * last is decided (or one failed). `whole`: it is the client's whole answer ('answer'), else the
   * results map ('forward-modified').
   */
  private pending?: { resolve: (v: ProduceResponse | null | LocalAnswers) => void; reject: (err: unknown) => void; whole: boolean };
  // What a plan usually does not need is made on first use (one Plan per produce request).
  private forwarded?: Set<number>;
  private hooks?: Array<(byPos: ResultsByPos) => void>;
  // (made as one-element literals: an array pushed to from empty reserves 16 slots)
  private written?: WrittenListener[];
  private settled?: SettledListener[];
  /** Every part's result, once the sidecar's answers are all decided. */
  private results?: ResultsByPos;

  /** How many parts the request has (positions 0..parts-1). */
  private readonly parts: number;

  constructor(readonly call: ProduceCall) {
    let parts = 0;
    const topics = call.request.topicData;
    for (let t = 0; t < topics.length; t++) parts += topics[t].partitionData.length;
    this.parts = parts;
    this.local = new LocalAnswers(parts);
  }

  /** The sidecar answers this part (now, or when the promise settles). */
  answer(b: Part, r: PartResult | Promise<PartResult>): void {
    if (!(r instanceof Promise)) {
      this.local.set(b.pos, r);
      return;
    }
    this.answerLater(b);
    r.then(
      (v) => this.decided(b, v),
      (err: unknown) => this.pending?.reject(err),
    );
  }

  /** The sidecar answers this part with decided(), later (no promise per part: upgrade mode's originals). */
  answerLater(b: Part): void {
    this.local.set(b.pos, null);
    this.open++;
  }

  /** The answer of a part given to answerLater. */
  decided(b: Part, r: PartResult): void {
    this.local.set(b.pos, r);
    if (--this.open === 0 && this.pending) this.allDecided(this.pending);
  }

  /** This part goes to the client's broker. */
  forward(b: Part): void {
    (this.forwarded ??= new Set()).add(b.pos);
  }

  /** Called with the broker's results of the forwarded parts (by part position) when they come. */
  whenAnswered(hook: (byPos: ResultsByPos) => void): void {
    (this.hooks ??= []).push(hook);
  }

  /**
   * Told whether the answer reached the client's socket (see OnWritten), with every part's
   * result (undefined when the connection closed before they were all decided); only when
   * something is answered locally.
   */
  onWritten(l: WrittenListener): void {
    if (this.written) this.written.push(l);
    else this.written = [l];
  }

  /** `l` is told every part's result once the sidecar's own answers are all decided (before the answer is written). */
  whenSettled(l: SettledListener): void {
    if (this.settled) this.settled.push(l);
    else this.settled = [l];
  }

  get answersLocally(): boolean {
    return this.local.size > 0;
  }

  decide(): ProduceDecision {
    const req = this.call.request;
    const parts = this.parts;
    // A part nobody claimed goes to the broker as is (it judges).
    if (this.local.size + (this.forwarded?.size ?? 0) < parts) {
      for (let pos = 0; pos < parts; pos++) if (!this.local.has(pos)) (this.forwarded ??= new Set()).add(pos);
    }
    if (this.local.size === 0) {
      if (!this.hooks) return { kind: 'forward' };
      return {
        kind: 'forward',
        onResponse: (answer) => {
          this.run(resultsByPosition(req, answer));
          return undefined;
        },
      };
    }
    const written = this.written;
    const onWritten: OnWritten | undefined =
      written === undefined
        ? undefined
        : (w) => {
            for (let i = 0; i < written.length; i++) written[i].written(w, this.results);
          };
    const forwarded = this.forwarded;
    // Nothing forwarded (upgrade mode's usual request): one promise, of the whole answer.
    if (forwarded === undefined) return { kind: 'answer', response: this.localAnswers(true) as Promise<ProduceResponse | null>, onWritten };
    const local = this.localAnswers(false) as Promise<LocalAnswers>;
    const sub = subsetRequest(req, forwarded);
    // Positions in the subset, in order, are the forwarded positions of the client's request in order.
    const order = [...forwarded].sort((a, b) => a - b);
    return {
      kind: 'forward-modified',
      request: sub,
      onWritten,
      onResponse: async (answer) => {
        const byPos = resultsByPosition(sub, answer);
        const throttleTimeMs = answer.throttleTimeMs;
        const nodeEndpoints = answer.hasNodeEndpoints ? answer.decode().nodeEndpoints : [];
        const back = new Map<number, PartResult>();
        for (let i = 0; i < order.length; i++) {
          const r = byPos.get(i);
          if (r) back.set(order[i], r);
        }
        this.run(back);
        const results = await local;
        for (const [k, r] of back) results.set(k, r);
        this.results = results;
        const merged = buildResponse(req, results);
        merged.throttleTimeMs = throttleTimeMs;
        merged.nodeEndpoints = nodeEndpoints;
        return merged;
      },
    };
  }

  /**
   * The sidecar's own answers, once all are decided (then the settled listeners run): the client's
   * whole answer (`whole`) or the results map. (A settled listener's throw rejects it.)
   */
  private localAnswers(whole: boolean): Promise<ProduceResponse | null | LocalAnswers> {
    if (this.open > 0) return new Promise((resolve, reject) => (this.pending = { resolve, reject, whole }));
    return new Promise((resolve, reject) => this.allDecided({ resolve, reject, whole }));
  }

  private allDecided(p: NonNullable<Plan['pending']>): void {
    try {
      const results = this.local; // every answer decided now
      const settled = this.settled;
      if (settled) for (let i = 0; i < settled.length; i++) settled[i].settled(results);
      if (!p.whole) return p.resolve(results);
      this.results = results;
      p.resolve(this.call.request.acks === 0 ? null : buildResponse(this.call.request, results));
    } catch (err) {
      p.reject(err);
    }
  }

  private run(byPos: ResultsByPos): void {
    for (const h of this.hooks ?? []) h(byPos);
  }
}

/**
 * The sidecar's answers by part position: positions are 0..n-1, so an array rather than a Map per
 * request. null: answered here, not decided yet (answerLater, or a promise pending); undefined:
 * not answered here. Once all are decided, it is the request's results (ResultsByPos).
 */
class LocalAnswers implements ResultsByPos {
  private readonly byPos: Array<PartResult | null | undefined>;
  /** Parts answered here. */
  size = 0;

  constructor(parts: number) {
    this.byPos = new Array<PartResult | null | undefined>(parts);
  }

  has(pos: number): boolean {
    return this.byPos[pos] !== undefined;
  }

  get(pos: number): PartResult | undefined {
    return this.byPos[pos] ?? undefined;
  }

  set(pos: number, r: PartResult | null): void {
    if (this.byPos[pos] === undefined) this.size++;
    this.byPos[pos] = r;
  }
}
