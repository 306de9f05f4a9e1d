import { describe, expect, it } from 'vitest';
import { ErrorCode, classifyProduceError, classifyTransportFailure, toBatchOutcome } from './errors.js';

describe('classifyProduceError', () => {
  it('0 and 46 are success (46 without offset)', () => {
    expect(classifyProduceError(0)).toEqual({ kind: 'success', offsetKnown: true });
    expect(classifyProduceError(46)).toEqual({ kind: 'success', offsetKnown: false });
  });
  it.each([
    [6, 'not_leader_or_follower'],
    [5, 'leader_not_available'],
    [7, 'request_timed_out'],
    [13, 'network_exception'],
    [19, 'not_enough_replicas'],
    [20, 'not_enough_replicas_after_append'],
    [56, 'kafka_storage_error'],
    [74, 'fenced_leader_epoch'],
    [75, 'unknown_leader_epoch'],
    [3, 'unknown_topic_or_partition'],
    [2, 'corrupt_message'],
    [89, 'throttling_quota_exceeded'],
  ])('%i is retriable (%s)', (code, reason) => {
    expect(classifyProduceError(code)).toEqual({ kind: 'retriable_resend', reason });
  });
  it.each([47, 87, 10, 18, 29, 31, 32, 44, 59, -1, 21])('%i is fatal', (code) => {
    expect(classifyProduceError(code)).toEqual({ kind: 'fatal', errorCode: code });
  });
  it('45 is retriable only while an earlier batch is pending', () => {
    expect(classifyProduceError(45)).toEqual({ kind: 'fatal', errorCode: 45 });
    expect(classifyProduceError(45, { earlierBatchPending: true })).toEqual({ kind: 'retriable_resend', reason: 'out_of_order_sequence_number' });
  });
  it('no response = unknown outcome', () => {
    expect(classifyTransportFailure('connection_lost')).toEqual({ kind: 'unknown_outcome', reason: 'connection_lost' });
    expect(classifyTransportFailure('timeout')).toEqual({ kind: 'unknown_outcome', reason: 'timeout' });
  });
  it('toBatchOutcome', () => {
    expect(toBatchOutcome(0, 12n, 34n)).toEqual({ kind: 'ok', baseOffset: 12n, logAppendTime: 34n });
    expect(toBatchOutcome(46, 12n, 34n)).toEqual({ kind: 'ok', baseOffset: -1n, logAppendTime: -1n });
    expect(toBatchOutcome(6, -1n, -1n)).toEqual({ kind: 'retriable', reason: 'not_leader_or_follower', errorCode: 6 });
    expect(toBatchOutcome(ErrorCode.INVALID_PRODUCER_EPOCH, -1n, -1n)).toEqual({ kind: 'fatal', errorCode: 47 });
  });
});
