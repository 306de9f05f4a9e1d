import { describe, expect, it } from 'vitest';
import { RefusalGate } from './refusal-gate.js';
import { encodeRecordBatch } from '../codec/records.js';

const batch = (values: string[], ts = 1_700_000_000_000n): Buffer => encodeRecordBatch({ records: values.map((v) => ({ key: v, value: `value-${v}` })), baseTimestamp: ts });
const limits = () => ({ maxDecompressedBytes: 1 << 20 });

describe('RefusalGate', () => {
  it('holds later batches of the partition on that connection until the refused one comes back, re-batched or re-encoded', () => {
    const g = new RefusalGate(() => 60_000, limits);
    g.refused(1, 't', 0, batch(['1', '2']), 0);
    expect(g.admit(1, 't', 0, batch(['3', '4']), 10)).toBe(false); // a later batch
    expect(g.admit(1, 't', 1, batch(['3', '4']), 10)).toBe(true); // another partition
    expect(g.admit(2, 't', 0, batch(['3', '4']), 10)).toBe(true); // another connection
    // librdkafka re-batches a retry with the records queued behind it; kafkajs re-stamps the time.
    expect(g.admit(1, 't', 0, batch(['1', '2', '3', '4'], 1_800_000_000_000n), 20)).toBe(true);
    expect(g.size).toBe(0);
    expect(g.admit(1, 't', 0, batch(['5']), 30)).toBe(true);
  });

  it('opens after its hold when the refused batch never comes back (the client gave up on it)', () => {
    const g = new RefusalGate(() => 1_000, limits);
    g.refused(1, 't', 0, batch(['1']), 0);
    expect(g.admit(1, 't', 0, batch(['2']), 999)).toBe(false);
    expect(g.admit(1, 't', 0, batch(['2']), 1_000)).toBe(true);
    g.refused(1, 't', 0, batch(['3']), 2_000);
    g.sweep(3_000);
    expect(g.size).toBe(0);
  });
});
