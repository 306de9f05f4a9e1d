// Kafka errors, one table: generated/errors.ts is org.apache.kafka.common.protocol.Errors of
// kafka-clients 4.3.1 (code, name, exception, retriable, invalid-metadata), and this module adds
// what a Produce answer means to the sidecar. The produce rule is the Java producer's: re-send
// the same bytes when the exception is a RetriableException (Sender.canRetry), with the few
// overrides below, each citing the Java source that makes it (kafka-clients 4.3.1,
// org.apache.kafka.clients.producer.internals).
import { ErrorCode, KAFKA_ERRORS, type ErrorName, type KafkaError } from './generated/errors.js';

export { ErrorCode, KAFKA_ERRORS, type ErrorName, type KafkaError };

const BY_CODE = new Map<number, KafkaError>(KAFKA_ERRORS.map((e) => [e.code, e]));

export function kafkaError(code: number): KafkaError | undefined {
  return BY_CODE.get(code);
}

/** The error's NAME, or "UNKNOWN_ERROR_CODE(<code>)" for codes Kafka 4.3.1 does not define. */
export function errorName(code: number): string {
  return BY_CODE.get(code)?.name ?? `UNKNOWN_ERROR_CODE(${code})`;
}

/**
 * The `error` label of idempo_upstream_errors_total for a Kafka error code: its name. Codes
 * Kafka does not define share one value, so a broker cannot grow the label set.
 */
export function errorLabel(code: number): string {
  return BY_CODE.get(code)?.name ?? 'UNKNOWN_ERROR_CODE';
}

/** Kafka's own view: the code's exception is a RetriableException. Unknown codes are not. */
export function isRetriable(code: number): boolean {
  return BY_CODE.get(code)?.retriable ?? false;
}

// ---------------------------------------------------------------------------------------------
// What one partition of a Produce answer means for the batch
// ---------------------------------------------------------------------------------------------

/** No answer arrived: the request may or may not have been written. */
export type TransportFailure = 'connection_lost' | 'timeout';

/**
 * Label of idempo_retries_total{reason}: the retried error's name in lower case, or the
 * transport failure. Bounded by the table.
 */
export type RetryReason = Lowercase<ErrorName> | TransportFailure;

export type Classification =
  /** Written. `offsetKnown` is false for DUPLICATE_SEQUENCE_NUMBER (46): success without an offset. */
  | { kind: 'success'; offsetKnown: boolean }
  /** Not written (or written and recognisable as a duplicate): re-send the same bytes. */
  | { kind: 'retriable_resend'; reason: RetryReason }
  /** Give up on this batch; the error goes back to the client. */
  | { kind: 'fatal'; errorCode: number };

export interface ClassifyContext {
  /** An earlier batch of the same (producerId, partition) is in flight or waiting to be re-sent. */
  earlierBatchPending: boolean;
}

const reasonOf = (code: number): RetryReason => errorName(code).toLowerCase() as RetryReason;

/** Classify the error code of one partition of a Produce answer. */
export function classifyProduceError(errorCode: number, ctx: ClassifyContext = { earlierBatchPending: false }): Classification {
  if (errorCode === ErrorCode.NONE) return { kind: 'success', offsetKnown: true };
  // Override: DuplicateSequenceException is not retriable, yet the batch IS written. Sender.completeBatch
  // completes such a batch as a success without offset (the broker no longer holds its metadata).
  // Brokers stopped sending it in Kafka 1.1 (they answer NONE with the original offset).
  if (errorCode === ErrorCode.DUPLICATE_SEQUENCE_NUMBER) return { kind: 'success', offsetKnown: false };
  // Override: OutOfOrderSequenceException is not retriable, but TransactionManager.canRetry retries it
  // while the partition has an earlier batch unresolved: the predecessor is not written yet, so
  // this batch's sequence looks like a gap (KAFKA-5793). Without one pending it is a real gap.
  if (errorCode === ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER) {
    return ctx.earlierBatchPending ? { kind: 'retriable_resend', reason: 'out_of_order_sequence_number' } : { kind: 'fatal', errorCode };
  }
  // Everything else follows the table. Not retriable there, so fatal here: INVALID_PRODUCER_EPOCH
  // and PRODUCER_FENCED (fenced), UNKNOWN_PRODUCER_ID (an OutOfOrderSequenceException; brokers stopped
  // sending it on Produce with KIP-360 / 2.5; the sequencer bumps the epoch), INVALID_RECORD,
  // MESSAGE_TOO_LARGE, authorization errors, UNKNOWN_SERVER_ERROR, and codes Kafka does not define.
  if (isRetriable(errorCode)) return { kind: 'retriable_resend', reason: reasonOf(errorCode) };
  return { kind: 'fatal', errorCode };
}

/**
 * The outcome of one sent batch as the upgrade-mode Sequencer consumes it: `toBatchOutcome` of an
 * answer, or `{kind:'unknown', reason}` when no answer came (lost connection, timeout): the batch
 * may or may not be written, so it is re-sent with the same bytes and never renumbered.
 * OUT_OF_ORDER_SEQUENCE_NUMBER comes as `{kind:'fatal', errorCode: 45}`: the Sequencer knows
 * whether an earlier batch is pending and turns it into a retry itself.
 */
export type BatchOutcome =
  | { kind: 'ok'; baseOffset: bigint; logAppendTime: bigint }
  | { kind: 'retriable'; reason: RetryReason; errorCode: number }
  | { kind: 'unknown'; reason: TransportFailure }
  | { kind: 'fatal'; errorCode: number };

/** Outcome of a partition answer (no context: 45 comes back as fatal, see BatchOutcome). */
export function toBatchOutcome(errorCode: number, baseOffset: bigint, logAppendTime: bigint): BatchOutcome {
  const c = classifyProduceError(errorCode);
  switch (c.kind) {
    case 'success':
      return c.offsetKnown ? { kind: 'ok', baseOffset, logAppendTime } : { kind: 'ok', baseOffset: -1n, logAppendTime: -1n };
    case 'retriable_resend':
      return { kind: 'retriable', reason: c.reason, errorCode };
    case 'fatal':
      return { kind: 'fatal', errorCode: c.errorCode };
  }
}
