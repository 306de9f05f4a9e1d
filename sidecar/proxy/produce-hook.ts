// The seam between the proxy and the idempotence engine. The proxy decodes each Produce
// request and asks the hook what to do with it; the hook never touches sockets.
import type { ProduceRequest } from '../codec/generated/produce-request.js';
import type { ProduceResponse } from '../codec/generated/produce-response.js';
import type { RequestHeader } from './headers.js';

export interface ProduceCall {
  header: RequestHeader;
  version: number;
  request: ProduceRequest;
  /** The original request frame (without size prefix); forwarding it as is copies nothing. */
  frame: Buffer;
  /** The client connection, for logs. */
  connectionId: number;
  /** The upstream broker this connection is paired with (undefined: bootstrap listener). */
  nodeId: number | undefined;
}

/** Sees the broker's answer; returns a changed answer (maybe later), or undefined to keep the bytes. */
export type OnProduceResponse = (resp: ProduceResponse) => ProduceResponse | undefined | Promise<ProduceResponse | undefined>;

export type ProduceDecision =
  /** Forward the original bytes; onResponse may observe the answer or return a changed one. */
  | { kind: 'forward'; onResponse?: OnProduceResponse }
  /** Forward a changed request; when the client sent acks=0 but the changed one expects an answer, the proxy swallows it. */
  | { kind: 'forward-modified'; request: ProduceRequest; onResponse?: OnProduceResponse }
  /** The hook answers itself (maybe after its own upstream sends); null means "no answer" (acks=0). */
  | { kind: 'answer'; response: Promise<ProduceResponse | null> }
  /** Close the client connection (e.g. an acks=0 request refused by policy: it takes no answer). */
  | { kind: 'close'; reason: string };

export interface ProduceHook {
  /** False lets the proxy skip decoding produce requests it only forwards. */
  readonly needsDecoding: boolean;
  onProduce(call: ProduceCall): ProduceDecision;
}

/** Transparent: every produce goes through unchanged. */
export const passThroughHook: ProduceHook = {
  needsDecoding: false,
  onProduce: () => ({ kind: 'forward' }),
};
