// What happens to a request that was written on a paired upstream connection which then
// failed before the answer came (the outcome is unknown: the broker may have acted on it).
//   resend  — the request is safe to repeat: it only reads, or repeating it changes nothing
//             (idempotent produce: the broker recognises the batch by producer id, epoch and
//             sequence and answers the copy with the original's offset). It is written again,
//             in its original position, on the re-dialled connection.
//   produce — a produce the broker cannot recognise (non-idempotent): written maybe once,
//             maybe not. The client gets NETWORK_EXCEPTION for each partition — what it would
//             see without the sidecar — and decides about its own retry.
//   close   — anything else (group membership, transactions, admin writes): the sidecar cannot
//             answer it for the broker, so the client connection is closed, as the broker's
//             failure would have done, with a log line and a metric.
import { ApiKey, requestHeaderVersion } from '../codec/api.js';
import { Reader } from '../codec/reader.js';
import { parseRequestHeader } from './headers.js';
import type { ProduceRequest } from '../codec/generated/produce-request.js';

export type ReplayClass = 'resend' | 'produce' | 'close';

/** Read-only APIs, or ones whose repeat changes nothing the client relies on. */
const SAFE_TO_REPEAT: ReadonlySet<number> = new Set([
  ApiKey.Fetch,
  ApiKey.ListOffsets,
  ApiKey.Metadata,
  ApiKey.OffsetCommit, // the same offsets again
  ApiKey.OffsetFetch,
  ApiKey.FindCoordinator,
  ApiKey.Heartbeat,
  ApiKey.DescribeGroups,
  ApiKey.ListGroups,
  ApiKey.ApiVersions,
  ApiKey.OffsetForLeaderEpoch,
  ApiKey.DescribeAcls,
  ApiKey.DescribeConfigs,
  ApiKey.DescribeLogDirs,
  ApiKey.DescribeDelegationToken,
  ApiKey.DescribeClientQuotas,
  ApiKey.DescribeUserScramCredentials,
  ApiKey.DescribeCluster,
  ApiKey.DescribeProducers,
  ApiKey.DescribeTransactions,
  ApiKey.ListTransactions,
  ApiKey.ConsumerGroupDescribe,
  ApiKey.DescribeTopicPartitions,
]);

export function replayClassOf(apiKey: number, frame?: Buffer, version?: number): ReplayClass {
  if (SAFE_TO_REPEAT.has(apiKey)) return 'resend';
  // InitProducerId without a transactional id hands out a fresh producer id: a repeat only hands
  // out another one (the first is never used). With a transactional id it fences and bumps: no.
  if (apiKey === ApiKey.InitProducerId && frame && version !== undefined && !hasTransactionalId(frame, version)) return 'resend';
  return 'close';
}

function hasTransactionalId(frame: Buffer, version: number): boolean {
  try {
    const r = new Reader(frame, parseRequestHeader(frame, requestHeaderVersion(ApiKey.InitProducerId, version)).bodyOffset);
    const id = version >= 2 ? r.compactNullableString('transactional id') : r.nullableString('transactional id');
    return id !== null;
  } catch {
    return true;
  }
}

/** APIs after which the upstream connection carries client state the sidecar cannot recreate. */
export function bindsConnection(apiKey: number): boolean {
  return apiKey === ApiKey.SaslHandshake || apiKey === ApiKey.SaslAuthenticate;
}

/**
 * A produce request is safe to repeat when every partition carries one RecordBatch v2 with a
 * producer id (idempotent or transactional): the broker answers a copy as a duplicate.
 */
export function isIdempotentProduce(req: ProduceRequest): boolean {
  // Indexed loops and plain reads: this runs for every forwarded produce (see Engine.observe).
  for (let t = 0; t < req.topicData.length; t++) {
    const parts = req.topicData[t].partitionData;
    for (let p = 0; p < parts.length; p++) {
      const r = parts[p].records;
      // magic at byte 16, producerId at 43 (KAFKA-NOTES, RecordBatch v2; its sign is the sign of
      // its high half: no BigInt); one batch exactly.
      if (!r || r.length < 61 || r[16] !== 2 || r.readInt32BE(43) < 0) return false;
      if (r.readInt32BE(8) + 12 !== r.length) return false;
    }
  }
  return true;
}
