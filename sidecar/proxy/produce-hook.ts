// The seam between the proxy and the idempotence engine. The proxy decodes each Produce
// request and asks the hook what to do with it; the hook never touches sockets. What a hook
// may use of the proxy comes in ONE context object (as Kroxylicious hands its filters a
// FilterContext): its own requests to brokers, the cluster view, metrics and the log. A hook
// never reaches into the concrete proxy or its connection pool.
import type { Logger } from '../log/log.js';
import type { Writer } from '../codec/writer.js';
import type { ProduceRequest } from '../codec/generated/produce-request.js';
import type { ProduceResponse } from '../codec/generated/produce-response.js';
import type { ProduceAnswer } from '../codec/produce-answer.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import type { ClusterView } from './cluster-view.js';
import type { RequestHeader } from './headers.js';
import type { FrameLease } from './frame-pool.js';

export interface ProduceCall {
  header: RequestHeader;
  version: number;
  request: ProduceRequest;
  /**
   * The original request frame (without size prefix); forwarding it as is copies nothing. With
   * `request`, lent (valid during onProduce only) to a hook whose keepsNoBytes() said so.
   */
  frame: Buffer;
  /**
   * The pooled memory `frame` lies in (frame-pool.ts), when it does. The proxy holds it until an
   * 'answer' decision's answer is decided and written (or dropped); a hook that keeps views of the
   * frame longer holds it too (hold/drop). Without a drop it is left to the garbage collector.
   */
  lease?: FrameLease;
  /** The client connection, for logs. */
  connectionId: number;
  /** The upstream broker this connection is paired with (undefined: bootstrap listener). */
  nodeId: number | undefined;
  /**
   * The earliest time (ms since epoch) the client may have sent this request: when it was read,
   * or when reads of its connection stopped before it (flow-control.ts). The client's request
   * timeout runs from its send, so the sidecar's "in time" (claim.ts) counts from here.
   */
  sentAfter: number;
}

/**
 * Sees the broker's answer (read in place, see ProduceAnswer); returns a changed answer (maybe
 * later), or undefined to keep the bytes.
 */
export type OnProduceResponse = (answer: ProduceAnswer) => ProduceResponse | undefined | Promise<ProduceResponse | undefined>;

/**
 * Told once whether the answer reached the client's socket (true) or the connection closed
 * before it was written (false): whether the client can know the outcome of its request.
 */
export type OnWritten = (written: boolean) => void;

export type ProduceDecision =
  /** Forward the original bytes; onResponse may observe the answer or return a changed one. */
  | { kind: 'forward'; onResponse?: OnProduceResponse }
  /** Forward a changed request; when the client sent acks=0 but the changed one expects an answer, the proxy swallows it. */
  | { kind: 'forward-modified'; request: ProduceRequest; onResponse?: OnProduceResponse; onWritten?: OnWritten }
  /** The hook answers itself (maybe after its own upstream sends); null means "no answer" (acks=0). */
  | { kind: 'answer'; response: Promise<ProduceResponse | null>; onWritten?: OnWritten }
  /** Close the client connection (e.g. an acks=0 request refused by policy: it takes no answer). */
  | { kind: 'close'; reason: string };

export interface ProduceHook {
  /** False lets the proxy skip decoding produce requests it only forwards. */
  readonly needsDecoding: boolean;
  onProduce(call: ProduceCall): ProduceDecision;
  /**
   * True when onProduce, as the hook runs now, keeps no Buffer of the call (call.frame,
   * call.request's records or topic ids) past its return, in its state or its answer
   * handler. The proxy then hands it a request still in the socket's reused read buffer, and
   * forwards a request it will not re-send from there, without copying it. Absent: false.
   */
  keepsNoBytes?(): boolean;
  /**
   * Produce v0–2 carry message sets (magic 0/1) the proxy does not decode: forward them, or close
   * the connection (the mode refuses producers that cannot be idempotent). Absent: forward.
   */
  onLegacyProduce?(call: { header: RequestHeader; version: number; connectionId: number }): { kind: 'forward' } | { kind: 'close'; reason: string };
}

/**
 * One request a hook sends over the sidecar's own connections, told how it ends by calls (no
 * promise per send: the upgrader sends one per Produce it makes): `answered` or `failed`, once,
 * never from within `send`.
 */
export interface OwnRequest {
  apiKey: number;
  /** A fixed version (e.g. the client's Produce version), or omitted: the highest both sides speak. */
  version?: number;
  /** Writes the body (the header is written by the proxy). */
  encode(w: Writer, version: number): void;
  /** How long to wait for the answer; then the outcome is unknown (UpstreamError 'timeout'). */
  timeoutMs: number;
  /**
   * Expected size of what `encode` copies, so the writer does not grow by copies. Byte strings of
   * 1 KiB or more (record batches) are not copied: they go to the socket from the caller's
   * buffers, which must not change until the request is answered or has failed.
   */
  sizeHint?: number;
  /** The broker's answer at `version`: its body starts at `bodyAt` in `payload`, lent (valid during the call only: a view of a read buffer). */
  answered(version: number, payload: Buffer, bodyAt: number): void;
  /** No answer: an UpstreamError (connection lost, or no answer by the deadline: the outcome is unknown), or it could not be sent. */
  failed(err: Error): void;
}

/**
 * Everything a hook may use of the proxy. A request `send` makes fails with an UpstreamError
 * (proxy/broker-client.ts) when the connection fails or the answer does not come in time:
 * the outcome of the request is then unknown.
 */
export interface HookContext {
  /** Brokers, partition leaders, topic ids (learned from every Metadata answer that passes). */
  readonly cluster: ClusterView;
  readonly metrics: SidecarMetrics;
  readonly log: Logger;
  /** Whether the sidecar knows an address for this broker (so `send` to it can be tried). */
  knowsBroker(nodeId: number): boolean;
  /** Sends over the sidecar's own connection to a broker (by node id) or to any reachable one; `req` is told how it ends. */
  send(to: number | 'any', req: OwnRequest): void;
  /** Refreshes metadata (all topics when null) from some broker. */
  refreshMetadata(topics: string[] | null): Promise<void>;
}

/** Transparent: every produce goes through unchanged. */
export const passThroughHook: ProduceHook = {
  needsDecoding: false,
  onProduce: () => ({ kind: 'forward' }),
  keepsNoBytes: () => true,
};
