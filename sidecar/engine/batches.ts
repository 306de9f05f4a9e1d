// Per-partition view of a Produce request and the builder of answers in the same shape.
// Produce v3+ carries one RecordBatch v2 per partition (KAFKA-NOTES); the header is read
// in place, nothing is copied.
import type { BatchHeader } from '../codec/record-batch.js';
import type { ProduceRequest } from '../codec/generated/produce-request.js';
import { createLeaderIdAndEpoch, type BatchIndexAndErrorMessage, type LeaderIdAndEpoch, type PartitionProduceResponse, type ProduceResponse } from '../codec/generated/produce-response.js';
import { topicKey, type ProduceAnswer } from '../codec/produce-answer.js';
import type { ClusterView } from '../proxy/cluster-view.js';
import { ErrorCode } from '../codec/errors.js';
import { checkPart, PartProblem, topicNameProblem } from './part-check.js';
import { compileGlob } from './glob.js';

export interface PartBatch {
  /** Position in the request (topic index, partition index). */
  readonly t: number;
  readonly p: number;
  /** The same as one number: the part's index among all of the request's parts, in request order (its key in a Plan's results). */
  readonly pos: number;
  readonly topic: string;
  /** Produce v13 named a topic id that metadata has not mapped to a name yet. */
  readonly topicUnknown: boolean;
  readonly partition: number;
  /** A view into the client request; the upgrader moves it to the batch's own copy when the batch outlives its request (upgrader.ts ownBytes). */
  records: Buffer | null;
  /** Set when the records are exactly one valid v2 batch (Produce v3+). */
  readonly header: BatchHeader | undefined;
  /** What a broker would answer for this part when it is malformed (see part-check.ts). */
  readonly invalid: { errorCode: number; message: string } | undefined;
  /** The same topic-partition came earlier in this request (a broker keeps only the last one). */
  readonly repeated: boolean;
}

export interface PartResult {
  errorCode: number;
  baseOffset: bigint;
  logAppendTimeMs: bigint;
  errorMessage?: string | null;
  /** Upgrade mode: the batch may have been written (its client hears a retriable error). */
  outcomeUnknown?: boolean;
}

/** Produce v0–2 carry message sets (magic 0/1): they can never be idempotent. */
export const FIRST_V2_PRODUCE = 3;

/**
 * Splits a request into its partitions, each checked as a broker would (part-check.ts); topic
 * names for v13 (topic ids) come from metadata. Nothing is copied. `verifyCrc` false: observe
 * mode leaves the CRC to the broker (see checkPart).
 */
export function partsOf(req: ProduceRequest, version: number, cluster: ClusterView, verifyCrc = true): PartBatch[] {
  let n = 0;
  for (let t = 0; t < req.topicData.length; t++) n += req.topicData[t].partitionData.length;
  // Sized once (an array pushed to from empty reserves 16 slots), filled in request order.
  const out = new Array<PartBatch>(n);
  let pos = 0;
  let repeats: RepeatSet | undefined; // only for a request of more than PAIRWISE_MAX parts
  // Indexed loops: this runs for every produce, mostly before V8 has optimised it (see Engine.observe).
  for (let t = 0; t < req.topicData.length; t++) {
    const td = req.topicData[t];
    const name = version >= 13 ? cluster.topicName(td.topicId) : td.name;
    const topic = name ?? `id:${td.topicId.toString('hex')}`;
    // A name from metadata (v13: topic ids) is one a broker gave: only a client's own names are checked.
    const nameProblem = name === undefined || version >= 13 ? null : topicNameProblem(name);
    for (let p = 0; p < td.partitionData.length; p++) {
      const pd = td.partitionData[p];
      const repeated = pos < PAIRWISE_MAX ? seenBefore(out, pos, topic, pd.index) : (repeats ??= new RepeatSet(out, pos)).seen(topic, pd.index);
      let header: BatchHeader | undefined;
      let invalid: PartBatch['invalid'];
      if (nameProblem) invalid = new PartProblem(ErrorCode.INVALID_TOPIC_EXCEPTION, nameProblem);
      else if (version >= FIRST_V2_PRODUCE) {
        const c = checkPart(pd.records, version, verifyCrc);
        if (c instanceof PartProblem) invalid = c;
        else header = c;
      }
      out[pos] = { t, p, pos, topic, topicUnknown: name === undefined, partition: pd.index, records: pd.records, header, invalid, repeated };
      pos++;
    }
  }
  return out;
}

/** Parts compared pairwise up to this many (nearly every request); a Set of keys beyond. */
const PAIRWISE_MAX = 32;

/** Whether one of the first `count` parts is this topic-partition (no key string per part). */
function seenBefore(out: readonly PartBatch[], count: number, topic: string, partition: number): boolean {
  for (let i = 0; i < count; i++) if (out[i].partition === partition && out[i].topic === topic) return true;
  return false;
}

/** The topic-partitions of a large request, as keys: made from the parts so far when the request passes PAIRWISE_MAX. */
class RepeatSet {
  private readonly keys = new Set<string>();

  constructor(out: readonly PartBatch[], count: number) {
    for (let i = 0; i < count; i++) this.keys.add(`${out[i].partition}\u0000${out[i].topic}`);
  }

  /** Whether this topic-partition was seen; it is then counted as seen. */
  seen(topic: string, partition: number): boolean {
    const key = `${partition}\u0000${topic}`;
    if (this.keys.has(key)) return true;
    this.keys.add(key);
    return false;
  }
}

/**
 * Parts' results by their position in the request (PartBatch.pos: the index among all its parts,
 * in request order): a number, so no key string per part and lookup.
 */
export interface ResultsByPos {
  get(pos: number): PartResult | undefined;
}

/**
 * What every partition answer the sidecar builds carries empty, shared (the encoder only reads
 * them; frozen so nothing can change them for all): no record errors, no new leader.
 */
const NO_RECORD_ERRORS = Object.freeze([]) as unknown as BatchIndexAndErrorMessage[];
const NO_LEADER: LeaderIdAndEpoch = Object.freeze(createLeaderIdAndEpoch());

/** Builds the answer to `req`, one entry per partition in request order. */
export function buildResponse(req: ProduceRequest, results: ResultsByPos): ProduceResponse {
  let pos = 0;
  return {
    responses: req.topicData.map((td) => ({
      name: td.name,
      topicId: td.topicId,
      partitionResponses: td.partitionData.map((pd): PartitionProduceResponse => {
        const r = results.get(pos++);
        // (createPartitionProduceResponse's fields, in its order: one shape for the encoder)
        return {
          index: pd.index,
          // NETWORK_EXCEPTION for a partition without a result: never answer one as success
          errorCode: r ? r.errorCode : ErrorCode.NETWORK_EXCEPTION,
          baseOffset: r && r.errorCode === 0 ? r.baseOffset : -1n,
          logAppendTimeMs: r ? r.logAppendTimeMs : -1n,
          logStartOffset: -1n,
          recordErrors: NO_RECORD_ERRORS,
          errorMessage: r?.errorMessage ?? null,
          currentLeader: NO_LEADER,
          _tagged: undefined,
        };
      }),
    })),
    throttleTimeMs: 0,
    nodeEndpoints: [],
  };
}

/** Each part's result in a broker's answer to `req`, by the part's position in `req` (see ResultsByPos). */
export function resultsByPosition(req: ProduceRequest, answer: ProduceAnswer): Map<number, PartResult> {
  const out = new Map<number, PartResult>();
  // Brokers answer topics and partitions in request order: checked in place first (no index to
  // build), matched by topic and partition otherwise.
  let pos = 0;
  if (inRequestOrder(req, answer)) {
    for (let t = 0; t < req.topicData.length; t++) {
      for (let p = 0; p < req.topicData[t].partitionData.length; p++) out.set(pos++, answer.result(answer.entry(t, p)));
    }
    return out;
  }
  const index = new Map<string, number>();
  for (let t = 0; t < answer.topicCount; t++) {
    const tk = answer.topicKey(t);
    for (let p = 0; p < answer.partitionCount(t); p++) {
      const e = answer.entry(t, p);
      index.set(`${tk}\u0000${answer.index(e)}`, e);
    }
  }
  for (const td of req.topicData) {
    const tk = topicKey(td, answer.version);
    for (const pd of td.partitionData) {
      const e = index.get(`${tk}\u0000${pd.index}`);
      if (e !== undefined) out.set(pos, answer.result(e));
      pos++;
    }
  }
  return out;
}

/** Whether the answer names the request's topics and partitions at the same positions. */
function inRequestOrder(req: ProduceRequest, answer: ProduceAnswer): boolean {
  if (answer.topicCount !== req.topicData.length) return false;
  for (let t = 0; t < req.topicData.length; t++) {
    const td = req.topicData[t];
    if (answer.partitionCount(t) !== td.partitionData.length || !answer.topicIs(t, topicKey(td, answer.version))) return false;
    for (let p = 0; p < td.partitionData.length; p++) if (answer.index(answer.entry(t, p)) !== td.partitionData[p].index) return false;
  }
  return true;
}

/** Keeps only the listed partitions (by position, see ResultsByPos) of a request (for forwarding what the sidecar did not answer). */
export function subsetRequest(req: ProduceRequest, keep: ReadonlySet<number>): ProduceRequest {
  let pos = 0;
  return {
    ...req,
    topicData: req.topicData
      .map((td) => ({ ...td, partitionData: td.partitionData.filter(() => keep.has(pos++)) }))
      .filter((td) => td.partitionData.length > 0),
  };
}

/** Glob match for topics.include/exclude (glob.ts); exclude wins. Answers are cached (bounded). */
export function topicMatcher(include: readonly string[], exclude: readonly string[]): (topic: string) => boolean {
  const inc = include.map(compileGlob);
  const exc = exclude.map(compileGlob);
  const cache = new Map<string, boolean>();
  return (topic) => {
    let v = cache.get(topic);
    if (v === undefined) {
      v = inc.some((g) => g(topic)) && !exc.some((g) => g(topic));
      if (cache.size < 10_000) cache.set(topic, v);
    }
    return v;
  };
}
