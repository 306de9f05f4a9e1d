// The error table is generated from Java's Errors (generated.test.ts keeps it fresh); here it is
// checked against a table no one here wrote, kafkajs's, and the produce overrides against the
// Java producer's behaviour they cite.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ErrorCode, KAFKA_ERRORS, classifyProduceError, errorLabel, errorName, isRetriable, kafkaError, toBatchOutcome } from './errors.js';

const require = createRequire(import.meta.url);
const kafkajs: Array<{ type: string; code: number; retriable: boolean }> = require('kafkajs/src/protocol/error.js').errorCodes;
/** Codes kafkajs still calls by their names from before a Kafka rename. */
const KAFKAJS_OLD_NAMES: Record<number, string> = {
  [-1]: 'UNKNOWN',
  6: 'NOT_LEADER_FOR_PARTITION',
  14: 'GROUP_LOAD_IN_PROGRESS',
  15: 'GROUP_COORDINATOR_NOT_AVAILABLE',
  16: 'NOT_COORDINATOR_FOR_GROUP',
};
const kafkajsKnown = kafkajs.filter((k) => k.code >= -1); // -99 is kafkajs's own "unknown code"

describe('the Kafka error table', () => {
  it('agrees with kafkajs on every code both know: name (bar renames) and retriable', () => {
    expect(kafkajsKnown.length).toBeGreaterThan(80);
    for (const k of kafkajsKnown) {
      const e = kafkaError(k.code);
      expect(e, `code ${k.code}`).toBeDefined();
      expect(KAFKAJS_OLD_NAMES[k.code] ?? e!.name, `code ${k.code}`).toBe(k.type);
      expect(e!.retriable, `${e!.name} retriable`).toBe(k.retriable);
    }
  });

  it('has every code once, names for unknown codes, and a bounded metric label', () => {
    const codes = KAFKA_ERRORS.map((e) => e.code);
    expect(new Set(codes).size).toBe(codes.length);
    expect(errorName(ErrorCode.NOT_LEADER_OR_FOLLOWER)).toBe('NOT_LEADER_OR_FOLLOWER');
    expect(errorName(12345)).toBe('UNKNOWN_ERROR_CODE(12345)');
    expect(errorLabel(6)).toBe('NOT_LEADER_OR_FOLLOWER');
    expect(errorLabel(12345)).toBe('UNKNOWN_ERROR_CODE');
    expect(errorLabel(-32768)).toBe('UNKNOWN_ERROR_CODE');
    expect(isRetriable(12345)).toBe(false);
    // The one the two hand tables disagreed on: UnknownTopicIdException is an InvalidMetadataException.
    expect(kafkaError(ErrorCode.UNKNOWN_TOPIC_ID)).toMatchObject({ retriable: true, invalidMetadata: true, exception: 'UnknownTopicIdException' });
  });
});

describe('classifyProduceError', () => {
  it('NONE is success; DUPLICATE_SEQUENCE_NUMBER is success without an offset (Sender.completeBatch)', () => {
    expect(classifyProduceError(ErrorCode.NONE)).toEqual({ kind: 'success', offsetKnown: true });
    expect(classifyProduceError(ErrorCode.DUPLICATE_SEQUENCE_NUMBER)).toEqual({ kind: 'success', offsetKnown: false });
  });

  it('OUT_OF_ORDER_SEQUENCE_NUMBER is retried only while an earlier batch is pending (TransactionManager.canRetry)', () => {
    expect(classifyProduceError(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER)).toEqual({ kind: 'fatal', errorCode: 45 });
    expect(classifyProduceError(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, { earlierBatchPending: true })).toEqual({ kind: 'retriable_resend', reason: 'out_of_order_sequence_number' });
  });

  it('otherwise re-sends exactly what kafkajs calls retriable, with the error name as the reason', () => {
    for (const k of kafkajsKnown) {
      if ([0, 45, 46].includes(k.code)) continue;
      const c = classifyProduceError(k.code);
      expect(c.kind, `${k.type}`).toBe(k.retriable ? 'retriable_resend' : 'fatal');
    }
    expect(classifyProduceError(ErrorCode.NOT_LEADER_OR_FOLLOWER)).toEqual({ kind: 'retriable_resend', reason: 'not_leader_or_follower' });
    expect(classifyProduceError(ErrorCode.REQUEST_TIMED_OUT)).toEqual({ kind: 'retriable_resend', reason: 'request_timed_out' });
  });

  it('fencing, a lost producer id, bad records and unknown codes give up on the batch', () => {
    for (const code of [ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.PRODUCER_FENCED, ErrorCode.UNKNOWN_PRODUCER_ID, ErrorCode.INVALID_RECORD, ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.TOPIC_AUTHORIZATION_FAILED, ErrorCode.UNKNOWN_SERVER_ERROR, 12345]) {
      expect(classifyProduceError(code), errorName(code)).toEqual({ kind: 'fatal', errorCode: code });
    }
  });

  it('toBatchOutcome', () => {
    expect(toBatchOutcome(0, 12n, 34n)).toEqual({ kind: 'ok', baseOffset: 12n, logAppendTime: 34n });
    expect(toBatchOutcome(46, 12n, 34n)).toEqual({ kind: 'ok', baseOffset: -1n, logAppendTime: -1n });
    expect(toBatchOutcome(6, -1n, -1n)).toEqual({ kind: 'retriable', reason: 'not_leader_or_follower', errorCode: 6 });
    expect(toBatchOutcome(47, -1n, -1n)).toEqual({ kind: 'fatal', errorCode: 47 });
  });
});
