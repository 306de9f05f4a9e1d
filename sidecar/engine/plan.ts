// One Produce request, partition by partition: each part is either answered by the sidecar
// (an error a broker would give, a policy refusal, a copy, an upgrade-mode send over the
// sidecar's own connections) or forwarded to the client's broker. Every mode builds a Plan
// and the Plan alone turns it into the proxy's decision, so the paths cannot disagree:
// - nothing answered locally → the original bytes are forwarded (no copy);
// - nothing forwarded → the sidecar answers the whole request;
// - both → the forwarded parts go as a smaller request and both answers are merged, in the
//   client's order.
import type { OnWritten, ProduceCall, ProduceDecision } from '../proxy/produce-hook.js';
import { buildResponse, resultsByPosition, subsetRequest, type PartResult, type ResultsByPos } from './batches.js';

/** A part of the request, by its position (PartBatch.pos). */
type Part = { readonly pos: number };

export class Plan {
  /** The sidecar's answers by part position; undefined while one is not decided (answerLater, or a promise pending). */
  private readonly local = new Map<number, PartResult | undefined>();
  /** Local answers not decided yet. */
  private open = 0;
  /** Set by decide() while answers are open: called when the last is decided, or one failed. */
  private whenDecided?: { resolve: () => void; reject: (err: unknown) => void };
  // What a plan usually does not need is made on first use (one Plan per produce request).
  private forwarded?: Set<number>;
  private hooks?: Array<(byPos: ResultsByPos) => void>;
  private written?: Array<(written: boolean, results: ResultsByPos | undefined) => void>;
  private settled?: Array<(results: ResultsByPos) => void>;
  /** Every part's result, once the sidecar's answers are all decided. */
  private results?: ResultsByPos;

  constructor(readonly call: ProduceCall) {}

  /** The sidecar answers this part (now, or when the promise settles). */
  answer(b: Part, r: PartResult | Promise<PartResult>): void {
    if (!(r instanceof Promise)) {
      this.local.set(b.pos, r);
      return;
    }
    this.answerLater(b);
    r.then(
      (v) => this.decided(b, v),
      (err: unknown) => this.whenDecided?.reject(err),
    );
  }

  /** The sidecar answers this part with decided(), later (no promise per part: upgrade mode's originals). */
  answerLater(b: Part): void {
    this.local.set(b.pos, undefined);
    this.open++;
  }

  /** The answer of a part given to answerLater. */
  decided(b: Part, r: PartResult): void {
    this.local.set(b.pos, r);
    if (--this.open === 0) this.whenDecided?.resolve();
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
  onWritten(cb: (written: boolean, results: ResultsByPos | undefined) => void): void {
    (this.written ??= []).push(cb);
  }

  /** Called with every part's result once the sidecar's own answers are all decided (before the answer is written). */
  whenSettled(cb: (results: ResultsByPos) => void): void {
    (this.settled ??= []).push(cb);
  }

  get answersLocally(): boolean {
    return this.local.size > 0;
  }

  decide(): ProduceDecision {
    const req = this.call.request;
    // A part nobody claimed goes to the broker as is (it judges).
    let parts = 0;
    for (let t = 0; t < req.topicData.length; t++) parts += req.topicData[t].partitionData.length;
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
            for (let i = 0; i < written.length; i++) written[i](w, this.results);
          };
    // The sidecar's own answers, once all are decided (then the settled hooks run).
    const settle = (): Promise<Map<number, PartResult>> => {
      const all = (): Map<number, PartResult> => {
        const results = this.local as Map<number, PartResult>; // every answer decided now
        const settled = this.settled ?? [];
        for (let i = 0; i < settled.length; i++) settled[i](results);
        return results;
      };
      if (this.open === 0) return Promise.resolve().then(all);
      return new Promise((resolve, reject) => {
        this.whenDecided = {
          // (called from the decider's stack: a settled hook's throw rejects, as it did in a promise chain)
          resolve: () => {
            try {
              resolve(all());
            } catch (err) {
              reject(err);
            }
          },
          reject,
        };
      });
    };
    const forwarded = this.forwarded;
    if (forwarded === undefined) {
      const response = settle().then((results) => {
        this.results = results;
        return req.acks === 0 ? null : buildResponse(req, results);
      });
      return { kind: 'answer', response, onWritten };
    }
    const local = settle();
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

  private run(byPos: ResultsByPos): void {
    for (const h of this.hooks ?? []) h(byPos);
  }
}
