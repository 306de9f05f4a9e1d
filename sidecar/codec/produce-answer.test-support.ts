// Tests hand the engine broker answers the way the proxy does: encoded, then read in place.
import { Writer } from './writer.js';
import { encodeProduceResponse, type ProduceResponse } from './generated/produce-response.js';
import { ProduceAnswer } from './produce-answer.js';

/** `resp` as a broker sends it (body only), read as the sidecar reads answers. */
export function answerOf(resp: ProduceResponse, version: number): ProduceAnswer {
  const w = new Writer(256);
  encodeProduceResponse(w, resp, version);
  return new ProduceAnswer(Buffer.from(w.toBuffer()), 0, version);
}
