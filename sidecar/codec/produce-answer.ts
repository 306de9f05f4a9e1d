// A broker's Produce answer (v3-13) read in place. Every produce answer that passes the sidecar
// is looked at (KIP-951 node endpoints to rewrite from v10, the engine's per-partition results),
// but almost always only for a few numbers per partition: the answer is walked once, checked
// as the generated decoder checks it (the same inputs throw CodecError), and what is read
// comes from the bytes on demand. decode() gives the generated objects, for the rare answer the
// sidecar changes (merged with its own results, broker addresses rewritten).
import { CodecError, Reader, int64At } from './reader.js';
import { decodeProduceResponse, type ProduceResponse } from './generated/produce-response.js';

/** A partition's result as the engine reads it. */
export interface AnswerResult {
  errorCode: number;
  baseOffset: bigint;
  logAppendTimeMs: bigint;
  errorMessage: string | null;
}

/** Byte offsets inside a partition entry: index int32, errorCode int16, baseOffset int64, logAppendTimeMs int64. */
const ERROR_CODE = 4;
const BASE_OFFSET = 6;
const LOG_APPEND_TIME = 14;
/** logStartOffset int64 (v5+). */
const LOG_START_OFFSET = 22;
/** Where recordErrors starts (v8+), after logStartOffset (v5+). */
const RECORD_ERRORS = 30;

export class ProduceAnswer {
  readonly throttleTimeMs: number;
  /** The answer carries KIP-951 node endpoints (v10+): their addresses are the broker's, to be rewritten. */
  readonly hasNodeEndpoints: boolean;
  /** Where each topic's name (v3-12) or id (v13) starts. */
  private readonly topicAt: number[];
  /** Topic t's partitions are entries firstPart[t] .. firstPart[t + 1] - 1. */
  private readonly firstPart: number[];
  /** Where each partition entry starts, in answer order. */
  private readonly partAt: number[];

  /** Throws CodecError where decodeProduceResponse would. */
  constructor(
    readonly payload: Buffer,
    readonly bodyOffset: number,
    readonly version: number,
  ) {
    if (version < 3 || version > 13) throw new CodecError(`ProduceResponse v${version} is not supported (v3-13)`);
    const flexible = version >= 9;
    const r = new Reader(payload, bodyOffset);
    const topics = arrayLength(r, flexible, 'ProduceResponse.responses');
    // Arrays of their final size where it is known (one topic: always): a push-grown array
    // reserves room for 17 elements, and this runs for every produce answer.
    this.topicAt = new Array<number>(topics);
    this.firstPart = new Array<number>(topics + 1);
    let partAt: number[] | undefined;
    let entries = 0;
    for (let t = 0; t < topics; t++) {
      this.topicAt[t] = r.offset;
      if (version <= 12) r.skipString('TopicProduceResponse.name', flexible, false);
      else r.skip(16, 'TopicProduceResponse.topicId');
      this.firstPart[t] = entries;
      const parts = arrayLength(r, flexible, 'TopicProduceResponse.partitionResponses');
      partAt ??= new Array<number>(parts);
      for (let p = 0; p < parts; p++) {
        partAt[entries++] = r.offset;
        skipPartition(r, version);
      }
      if (flexible) r.skipTaggedFields('TopicProduceResponse tagged fields');
    }
    this.firstPart[topics] = entries;
    this.partAt = partAt ?? [];
    this.throttleTimeMs = r.int32('ProduceResponse.throttleTimeMs');
    let endpoints = 0;
    if (flexible) {
      for (let n = r.uvarint('ProduceResponse tagged field count'); n > 0; n--) {
        const tag = r.uvarint('ProduceResponse tag');
        const size = r.uvarint('ProduceResponse tag size');
        if (tag === 0 && version >= 10) {
          const end = r.taggedEnd(size, 'ProduceResponse.nodeEndpoints (tag 0)');
          endpoints = arrayLength(r, true, 'ProduceResponse.nodeEndpoints');
          for (let i = 0; i < endpoints; i++) {
            r.skip(4, 'NodeEndpoint.nodeId');
            r.skipString('NodeEndpoint.host', true, false);
            r.skip(4, 'NodeEndpoint.port');
            r.skipString('NodeEndpoint.rack', true, true);
            r.skipTaggedFields('NodeEndpoint tagged fields');
          }
          r.expectAt(end, 'ProduceResponse.nodeEndpoints (tag 0)');
        } else r.skip(size, 'ProduceResponse unknown tagged field');
      }
    }
    this.hasNodeEndpoints = endpoints > 0;
  }

  get topicCount(): number {
    return this.topicAt.length;
  }

  partitionCount(t: number): number {
    return this.firstPart[t + 1] - this.firstPart[t];
  }

  /** How the answer names topic t, as topicKey names a request's topic. */
  topicKey(t: number): string {
    const at = this.topicAt[t];
    if (this.version >= 13) return this.payload.toString('latin1', at, at + 16);
    const r = new Reader(this.payload, at);
    return this.version >= 9 ? r.compactString() : r.string();
  }

  /**
   * Whether topic t is the one `key` names (as topicKey names a request's topic), compared in
   * the bytes: matching an answer to its request makes no string per answer (in a cold process,
   * the latin1 string of a v13 id was observe's costliest step per answer).
   */
  topicIs(t: number, key: string): boolean {
    const buf = this.payload;
    let at = this.topicAt[t];
    let n = 16; // v13: the id, which key holds one byte per character
    if (this.version <= 12) {
      if (this.version >= 9) {
        const r = new Reader(buf, at);
        n = r.uvarint() - 1;
        at = r.offset;
      } else {
        n = buf.readInt16BE(at);
        at += 2;
      }
    }
    if (n !== key.length) return this.version <= 12 && this.topicKey(t) === key; // a non-ASCII name: its UTF-8 is longer
    for (let i = 0; i < n; i++) {
      const c = key.charCodeAt(i);
      if (c >= 0x80 && this.version <= 12) return this.topicKey(t) === key;
      if (buf[at + i] !== c) return false;
    }
    return true;
  }

  /** From v13: whether topic t is the one with this 16-byte id, compared in the bytes. */
  topicIdIs(t: number, id: Buffer): boolean {
    if (this.version < 13) return false;
    const at = this.topicAt[t];
    for (let i = 0; i < 16; i++) if (this.payload[at + i] !== id[i]) return false;
    return true;
  }

  /** The number (in answer order) of topic t's p-th partition entry. */
  entry(t: number, p: number): number {
    return this.firstPart[t] + p;
  }

  index(e: number): number {
    return this.payload.readInt32BE(this.partAt[e]);
  }

  errorCode(e: number): number {
    return this.payload.readInt16BE(this.partAt[e] + ERROR_CODE);
  }

  baseOffset(e: number): bigint {
    return int64At(this.payload, this.partAt[e] + BASE_OFFSET);
  }

  logAppendTimeMs(e: number): bigint {
    return int64At(this.payload, this.partAt[e] + LOG_APPEND_TIME);
  }

  /** -1 before v5 (as the generated decoder gives it). */
  logStartOffset(e: number): bigint {
    return this.version >= 5 ? int64At(this.payload, this.partAt[e] + LOG_START_OFFSET) : -1n;
  }

  errorMessage(e: number): string | null {
    if (this.version < 8) return null;
    const flexible = this.version >= 9;
    const r = new Reader(this.payload, this.partAt[e] + RECORD_ERRORS);
    for (let n = arrayLength(r, flexible, 'recordErrors'); n > 0; n--) skipRecordError(r, flexible);
    return flexible ? r.compactNullableString() : r.nullableString();
  }

  result(e: number): AnswerResult {
    return { errorCode: this.errorCode(e), baseOffset: this.baseOffset(e), logAppendTimeMs: this.logAppendTimeMs(e), errorMessage: this.errorMessage(e) };
  }

  /** The answer as objects (the generated decoder), for an answer that is changed. */
  decode(): ProduceResponse {
    return decodeProduceResponse(new Reader(this.payload, this.bodyOffset), this.version);
  }
}

/** A topic as a request or an answer names it: by name, or from Produce v13 by id (as a 16-character latin1 string). */
export function topicKey(t: { name: string; topicId: Buffer }, version: number): string {
  return version >= 13 ? t.topicId.toString('latin1') : t.name;
}

function arrayLength(r: Reader, flexible: boolean, what: string): number {
  const n = flexible ? r.compactArrayLength(what, 1) : r.arrayLength(what, 1);
  if (n < 0) throw r.error(`${what} is null but not nullable here`);
  return n;
}

function skipPartition(r: Reader, v: number): void {
  const flexible = v >= 9;
  r.skip(v >= 5 ? RECORD_ERRORS : RECORD_ERRORS - 8, 'PartitionProduceResponse');
  if (v >= 8) {
    for (let n = arrayLength(r, flexible, 'PartitionProduceResponse.recordErrors'); n > 0; n--) skipRecordError(r, flexible);
    r.skipString('PartitionProduceResponse.errorMessage', flexible, true);
  }
  if (!flexible) return;
  for (let n = r.uvarint('PartitionProduceResponse tagged field count'); n > 0; n--) {
    const tag = r.uvarint('PartitionProduceResponse tag');
    const size = r.uvarint('PartitionProduceResponse tag size');
    if (tag === 0 && v >= 10) {
      const end = r.taggedEnd(size, 'PartitionProduceResponse.currentLeader (tag 0)');
      r.skip(8, 'LeaderIdAndEpoch');
      r.skipTaggedFields('LeaderIdAndEpoch tagged fields');
      r.expectAt(end, 'PartitionProduceResponse.currentLeader (tag 0)');
    } else r.skip(size, 'PartitionProduceResponse unknown tagged field');
  }
}

function skipRecordError(r: Reader, flexible: boolean): void {
  r.skip(4, 'BatchIndexAndErrorMessage.batchIndex');
  r.skipString('BatchIndexAndErrorMessage.batchIndexErrorMessage', flexible, true);
  if (flexible) r.skipTaggedFields('BatchIndexAndErrorMessage tagged fields');
}
