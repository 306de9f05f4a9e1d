/**
 * Classification of the outcome of one partition of a Produce response, as the
 * idempotent producer sees it. Pure: the driver passes the partition's error code (or the
 * transport failure) and whether an earlier batch of the same partition is still pending.
 *
 * Sources: org.apache.kafka.common.protocol.Errors (which exceptions extend RetriableException),
 * the Java producer's Sender.canRetry / TransactionManager.canRetry, librdkafka's
 * rd_kafka_handle_Produce_error.
 */

// The one table of Kafka error codes lives in the codec (sidecar/codec/errors.ts).
import { ErrorCode } from '../codec/errors.js';

export { ErrorCode };

/**
 * Error codes after which the same bytes may be re-sent. These are the produce-relevant errors
 * whose Java exception extends RetriableException. Notes:
 * - CORRUPT_MESSAGE (CorruptRecordException) is retriable in Kafka: the broker saw a CRC mismatch,
 *   most likely damage in transit; the resend is bounded by deliveryTimeout.
 * - NOT_ENOUGH_REPLICAS_AFTER_APPEND and REQUEST_TIMED_OUT may mean "written but not fully
 *   replicated": with a sequence the re-send is recognised as a duplicate by the broker.
 * - CONCURRENT_TRANSACTIONS only concerns transactional batches (which pass through untouched).
 */
const RETRIABLE: ReadonlyMap<number, RetryReason> = new Map<number, RetryReason>([
  [ErrorCode.CORRUPT_MESSAGE, 'corrupt_message'],
  [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, 'unknown_topic_or_partition'],
  [ErrorCode.LEADER_NOT_AVAILABLE, 'leader_not_available'],
  [ErrorCode.NOT_LEADER_OR_FOLLOWER, 'not_leader_or_follower'],
  [ErrorCode.REQUEST_TIMED_OUT, 'request_timed_out'],
  [ErrorCode.NETWORK_EXCEPTION, 'network_exception'],
  [ErrorCode.NOT_ENOUGH_REPLICAS, 'not_enough_replicas'],
  [ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND, 'not_enough_replicas_after_append'],
  [ErrorCode.CONCURRENT_TRANSACTIONS, 'concurrent_transactions'],
  [ErrorCode.KAFKA_STORAGE_ERROR, 'kafka_storage_error'],
  [ErrorCode.FENCED_LEADER_EPOCH, 'fenced_leader_epoch'],
  [ErrorCode.UNKNOWN_LEADER_EPOCH, 'unknown_leader_epoch'],
  [ErrorCode.THROTTLING_QUOTA_EXCEEDED, 'throttling_quota_exceeded'],
]);

/** Bounded label set for `idempo_retries_total{reason}`. */
export type RetryReason =
  | 'corrupt_message'
  | 'unknown_topic_or_partition'
  | 'leader_not_available'
  | 'not_leader_or_follower'
  | 'request_timed_out'
  | 'network_exception'
  | 'not_enough_replicas'
  | 'not_enough_replicas_after_append'
  | 'concurrent_transactions'
  | 'kafka_storage_error'
  | 'fenced_leader_epoch'
  | 'unknown_leader_epoch'
  | 'throttling_quota_exceeded'
  | 'out_of_order_sequence_number'
  | 'connection_lost'
  | 'timeout';

export const RETRY_REASONS: readonly RetryReason[] = [...RETRIABLE.values(), 'out_of_order_sequence_number', 'connection_lost', 'timeout'];

/** No response arrived: the request may or may not have been written. */
export type TransportFailure = 'connection_lost' | 'timeout';

export type Classification =
  /** Written. `offsetKnown` is false for DUPLICATE_SEQUENCE_NUMBER (46): success without an offset. */
  | { kind: 'success'; offsetKnown: boolean }
  /** Not written (or written and recognisable as a duplicate): re-send the same bytes. */
  | { kind: 'retriable_resend'; reason: RetryReason }
  /** Outcome unknown (no response): must re-send the same bytes; never renumber. */
  | { kind: 'unknown_outcome'; reason: TransportFailure }
  /** Give up on this batch; the error goes back to the client. */
  | { kind: 'fatal'; errorCode: number };

export interface ClassifyContext {
  /**
   * An earlier batch of the same (producerId, partition) is in flight or waiting to be re-sent.
   * Then OUT_OF_ORDER_SEQUENCE_NUMBER only means "the predecessor is not written yet" and is
   * retriable (Java TransactionManager.canRetry / KAFKA-5793; librdkafka treats it as fatal only
   * for the head request of the partition).
   */
  earlierBatchPending: boolean;
}

/** Classify the error code of one partition of a Produce response. */
export function classifyProduceError(errorCode: number, ctx: ClassifyContext = { earlierBatchPending: false }): Classification {
  if (errorCode === ErrorCode.NONE) return { kind: 'success', offsetKnown: true };
  // Not sent by brokers since Kafka 1.1; clients (Java, librdkafka) treat it as success without offset.
  if (errorCode === ErrorCode.DUPLICATE_SEQUENCE_NUMBER) return { kind: 'success', offsetKnown: false };
  const reason = RETRIABLE.get(errorCode);
  if (reason !== undefined) return { kind: 'retriable_resend', reason };
  if (errorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER && ctx.earlierBatchPending) {
    return { kind: 'retriable_resend', reason: 'out_of_order_sequence_number' };
  }
  // Everything else: INVALID_PRODUCER_EPOCH (47, fenced), INVALID_RECORD (87), MESSAGE_TOO_LARGE (10),
  // authorization errors, UNKNOWN_SERVER_ERROR, and UNKNOWN_PRODUCER_ID (59: not sent on produce by
  // brokers since KIP-360 / 2.5; treated as fatal for the batch, which then needs an epoch bump).
  return { kind: 'fatal', errorCode };
}

export function classifyTransportFailure(failure: TransportFailure): Classification {
  return { kind: 'unknown_outcome', reason: failure };
}

/**
 * The outcome of one sent batch as the upgrade-mode Sequencer consumes it. Build it with
 * `toBatchOutcome` from a response, or `{kind:'unknown', reason}` for a lost connection/timeout.
 * OUT_OF_ORDER_SEQUENCE_NUMBER can be passed as `{kind:'fatal', errorCode: 45}`: the Sequencer
 * knows whether an earlier batch is pending and turns it into a retry itself.
 */
export type BatchOutcome =
  | { kind: 'ok'; baseOffset: bigint; logAppendTime: bigint }
  | { kind: 'retriable'; reason: RetryReason; errorCode: number }
  | { kind: 'unknown'; reason: TransportFailure }
  | { kind: 'fatal'; errorCode: number };

/** Outcome of a partition response (no context: 45 comes back as fatal, see BatchOutcome). */
export function toBatchOutcome(errorCode: number, baseOffset: bigint, logAppendTime: bigint): BatchOutcome {
  const c = classifyProduceError(errorCode);
  switch (c.kind) {
    case 'success':
      return c.offsetKnown ? { kind: 'ok', baseOffset, logAppendTime } : { kind: 'ok', baseOffset: -1n, logAppendTime: -1n };
    case 'retriable_resend':
      return { kind: 'retriable', reason: c.reason, errorCode };
    case 'unknown_outcome':
      return { kind: 'unknown', reason: c.reason };
    case 'fatal':
      return { kind: 'fatal', errorCode: c.errorCode };
  }
}

/** Error code handed to a client whose batch's outcome stayed unknown until its deadline. */
export function errorCodeForTransport(_failure: TransportFailure): number {
  return ErrorCode.REQUEST_TIMED_OUT;
}
