// The proxy's own response handlers: broker address rewriting (Metadata,
// FindCoordinator, DescribeCluster, Produce v10+ NodeEndpoints) and the ApiVersions
// intersection. Everything not listed here passes through as bytes. What the answers say about
// the cluster is handed to ClusterView (cluster-view.ts), which owns that knowledge.
import type { Logger } from '../log/log.js';
import { Reader } from '../codec/reader.js';
import { Writer } from '../codec/writer.js';
import { ApiKey, responseHeaderVersion } from '../codec/api.js';
import { SUPPORTED_VERSIONS } from '../codec/supported.js';
import { decodeMetadataResponse, encodeMetadataResponse } from '../codec/generated/metadata-response.js';
import { decodeFindCoordinatorResponse, encodeFindCoordinatorResponse } from '../codec/generated/find-coordinator-response.js';
import { decodeDescribeClusterResponse, encodeDescribeClusterResponse } from '../codec/generated/describe-cluster-response.js';
import { decodeApiVersionsResponse, encodeApiVersionsResponse } from '../codec/generated/api-versions-response.js';
import type { ProduceResponse } from '../codec/generated/produce-response.js';
import { responseBodyOffset } from './headers.js';
import type { ClusterView } from './cluster-view.js';
import type { ListenerRegistry } from './listeners.js';

export type Rewriter = (payload: Buffer, version: number) => Buffer | Promise<Buffer>;
export type ResponseRewriters = Map<number, Rewriter>;

export interface RewriteDeps {
  cluster: ClusterView;
  listeners: ListenerRegistry;
  log: Logger;
}

/** Applies a body transform and re-encodes behind the original response header. */
async function reencode<T>(
  payload: Buffer,
  apiKey: number,
  version: number,
  decode: (r: Reader, v: number) => T,
  encode: (w: Writer, m: T, v: number) => void,
  change: (m: T) => Promise<void> | void,
): Promise<Buffer> {
  const off = responseBodyOffset(payload, responseHeaderVersion(apiKey, version));
  const msg = decode(new Reader(payload, off), version);
  await change(msg);
  const w = new Writer(payload.length + 64);
  w.raw(payload.subarray(0, off));
  encode(w, msg, version);
  return w.toBuffer();
}

export function buildRewriters(deps: RewriteDeps): ResponseRewriters {
  const { cluster, listeners } = deps;
  const local = (nodeId: number): Promise<number> => listeners.ensure(nodeId);
  const map: ResponseRewriters = new Map();

  map.set(ApiKey.Metadata, (payload, v) =>
    reencode(payload, ApiKey.Metadata, v, decodeMetadataResponse, encodeMetadataResponse, async (m) => {
      cluster.learnMetadata(m);
      await listeners.sync(cluster.brokers.values());
      for (const b of m.brokers) {
        b.port = await local(b.nodeId);
        b.host = listeners.host;
      }
    }),
  );

  map.set(ApiKey.FindCoordinator, (payload, v) =>
    reencode(payload, ApiKey.FindCoordinator, v, decodeFindCoordinatorResponse, encodeFindCoordinatorResponse, async (m) => {
      // v0-3 carry one coordinator at the top level, v4+ a list (KIP-699).
      if (v < 4) {
        if (m.errorCode === 0 && m.nodeId >= 0) {
          cluster.noteBroker({ nodeId: m.nodeId, host: m.host, port: m.port, rack: null });
          m.port = await local(m.nodeId);
          m.host = listeners.host;
        }
        return;
      }
      for (const c of m.coordinators) {
        if (c.errorCode !== 0 || c.nodeId < 0) continue;
        cluster.noteBroker({ nodeId: c.nodeId, host: c.host, port: c.port, rack: null });
        c.port = await local(c.nodeId);
        c.host = listeners.host;
      }
    }),
  );

  map.set(ApiKey.DescribeCluster, (payload, v) =>
    reencode(payload, ApiKey.DescribeCluster, v, decodeDescribeClusterResponse, encodeDescribeClusterResponse, async (m) => {
      // endpointType 2 (KIP-919) lists controllers, which clients do not reach through us.
      if ((m.endpointType ?? 1) !== 1) return;
      for (const b of m.brokers) {
        cluster.noteBroker({ nodeId: b.brokerId, host: b.host, port: b.port, rack: b.rack ?? null });
        b.port = await local(b.brokerId);
        b.host = listeners.host;
      }
    }),
  );

  map.set(ApiKey.ApiVersions, (payload, v) => {
    const off = responseBodyOffset(payload, responseHeaderVersion(ApiKey.ApiVersions, v));
    // On UNSUPPORTED_VERSION the broker answers in the v0 layout: pass that through untouched.
    if (payload.length < off + 2 || payload.readInt16BE(off) !== 0) return payload;
    return reencode(payload, ApiKey.ApiVersions, v, decodeApiVersionsResponse, encodeApiVersionsResponse, (m) => {
      m.apiKeys = intersectVersions(m.apiKeys);
    });
  });
  return map;
}

/**
 * Advertises, for the APIs the sidecar decodes, the broker's range capped at what the
 * sidecar parses. The minimum is never raised (librdkafka reads the advertised minimum);
 * an API whose ranges do not overlap is left out.
 */
export function intersectVersions<T extends { apiKey: number; minVersion: number; maxVersion: number }>(keys: T[]): T[] {
  const out: T[] = [];
  for (const k of keys) {
    const ours = SUPPORTED_VERSIONS.get(k.apiKey);
    if (!ours) {
      out.push(k);
      continue;
    }
    const max = Math.min(k.maxVersion, ours.max);
    if (max < k.minVersion || max < ours.min) continue;
    out.push({ ...k, maxVersion: max });
  }
  return out;
}

/** Rewrites KIP-951 NodeEndpoints in a Produce answer; true when something changed. */
export async function rewriteProduceResponse(resp: ProduceResponse, deps: { cluster: ClusterView; listeners: ListenerRegistry }): Promise<boolean> {
  const eps = resp.nodeEndpoints;
  if (!eps || eps.length === 0) return false;
  for (const e of eps) {
    deps.cluster.noteBroker({ nodeId: e.nodeId, host: e.host, port: e.port, rack: e.rack ?? null });
    e.port = await deps.listeners.ensure(e.nodeId);
    e.host = deps.listeners.host;
  }
  return true;
}
