// Produce re-encoding for the proxy: what a hook decided, turned back into frames. Reads
// acks without a full decode, encodes a changed request behind the client's own header,
// encodes the sidecar's own answers, and passes broker answers through the hook and the
// address rewriter (Produce v10+ carries broker endpoints, KIP-951).
import { Reader } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';
import { ApiKey, responseHeaderVersion } from '../codec/api.js';
import { encodeProduceRequest, type ProduceRequest } from '../codec/generated/produce-request.js';
import {
  createPartitionProduceResponse,
  createProduceResponse,
  createTopicProduceResponse,
  encodeProduceResponse,
  type ProduceResponse,
} from '../codec/generated/produce-response.js';
import { ProduceAnswer } from '../codec/produce-answer.js';
import { responseBodyOffset, writeResponseHeader } from './headers.js';
import type { OnProduceResponse } from './produce-hook.js';
import { rewriteProduceResponse, type RewriteDeps } from './rewrite.js';

/** Reads acks without decoding the rest: (transactional_id from v3, then) acks (int16). */
export function peekProduceAcks(frame: Buffer, bodyOffset: number, version: number): number {
  const r = new Reader(frame, bodyOffset);
  if (version < 3) return r.int16('acks');
  if (version >= 9) r.compactNullableString('transactional id');
  else r.nullableString('transactional id');
  return r.int16('acks');
}

/** The client's request header followed by a changed body. */
export function encodeChangedRequest(frame: Buffer, bodyOffset: number, request: ProduceRequest, version: number): Buffer {
  const w = new Writer(frame.length + 64);
  w.raw(frame.subarray(0, bodyOffset));
  encodeProduceRequest(w, request, version);
  return w.toBuffer();
}

/**
 * An answer the sidecar gives itself: the payload, with its size prefix written in the 4 bytes
 * in front of it (frames.ts framed()), so the client gets it in one socket write rather than a
 * writev of a separate 4-byte prefix and the payload.
 */
export function encodeProduceAnswer(correlationId: number, version: number, resp: ProduceResponse): Buffer {
  const w = new Writer(256);
  w.int32(0); // the size prefix, set below
  writeResponseHeader(w, correlationId, responseHeaderVersion(ApiKey.Produce, version));
  encodeProduceResponse(w, resp, version);
  const frame = w.toBuffer();
  frame.writeInt32BE(frame.length - 4, 0);
  return frame.subarray(4);
}

/** Whether a broker answer must be decoded at all (else its bytes go back untouched). */
export function produceAnswerNeedsWork(version: number, onResponse: OnProduceResponse | undefined): boolean {
  return version >= 10 || onResponse !== undefined;
}

/**
 * A broker's Produce answer after the hook saw it and broker addresses were rewritten. The
 * common case stays synchronous and allocates no objects per partition: the answer is read in
 * place (ProduceAnswer), the hook only looked, and it names no broker endpoints, so its bytes
 * go back untouched.
 */
export function transformProduceAnswer(payload: Buffer, version: number, onResponse: OnProduceResponse | undefined, deps: RewriteDeps): Buffer | Promise<Buffer> {
  if (!produceAnswerNeedsWork(version, onResponse)) return payload;
  const answer = new ProduceAnswer(payload, responseBodyOffset(payload, responseHeaderVersion(ApiKey.Produce, version)), version);
  const changed = onResponse?.(answer);
  if (changed === undefined && !answer.hasNodeEndpoints) return payload;
  return reencodeProduceAnswer(answer, changed, deps);
}

async function reencodeProduceAnswer(answer: ProduceAnswer, pending: ReturnType<OnProduceResponse> | undefined, deps: RewriteDeps): Promise<Buffer> {
  const changed = await pending;
  const final = changed ?? answer.decode();
  const rewritten = await rewriteProduceResponse(final, deps);
  if (!rewritten && !changed) return answer.payload;
  const w = new Writer(answer.payload.length + 64);
  w.raw(answer.payload.subarray(0, answer.bodyOffset));
  encodeProduceResponse(w, final, answer.version);
  return w.toBuffer();
}

/**
 * A broker-shaped answer (header included) with `errorCode` for every partition of `req`:
 * what the client gets for a produce whose outcome the sidecar cannot know.
 */
export function produceErrorPayload(correlationId: number, version: number, req: ProduceRequest, errorCode: number): Buffer {
  const resp = createProduceResponse();
  for (const td of req.topicData) {
    const tr = createTopicProduceResponse();
    tr.name = td.name;
    tr.topicId = td.topicId;
    for (const pd of td.partitionData) {
      const pr = createPartitionProduceResponse();
      pr.index = pd.index;
      pr.errorCode = errorCode;
      pr.baseOffset = -1n;
      tr.partitionResponses.push(pr);
    }
    resp.responses.push(tr);
  }
  return encodeProduceAnswer(correlationId, version, resp);
}

/**
 * Detaches a request decoded from lent memory (socket-reads.ts) from it, in place, keeping what
 * its NETWORK_EXCEPTION answer is built from (produceErrorPayload: topic names, topic ids,
 * partition indexes): v13 topic ids are copied, records dropped. Only for the request of a hook
 * that keeps no bytes of the call (ProduceHook.keepsNoBytes), once the hook has decided and
 * nothing else will read its records.
 */
export function detachFromFrame(req: ProduceRequest, version: number): ProduceRequest {
  for (let t = 0; t < req.topicData.length; t++) {
    const td = req.topicData[t];
    if (version >= 13) td.topicId = Buffer.from(td.topicId);
    for (let p = 0; p < td.partitionData.length; p++) td.partitionData[p].records = null;
  }
  return req;
}
