/**
 * MODEL of a Kafka broker's idempotence rules, for tests only (KAFKA-NOTES "What the broker
 * does"): per (producerId, partition) the epoch, the last sequence and the metadata of the last
 * 5 batches. Not a real broker; the e2e tests use the real one.
 */
import { isNext } from './sequence.js';

export interface ModelBatch {
  producerId: bigint;
  epoch: number;
  firstSeq: number;
  lastSeq: number;
  /** What the test writes into the log, to check for duplicates and order. */
  payload: number;
}

export type ModelAnswer = { errorCode: 0; baseOffset: bigint; duplicate: boolean } | { errorCode: 45 | 47; baseOffset: -1n; duplicate: false };

interface Entry {
  epoch: number;
  lastSeq: number;
  cache: Array<{ firstSeq: number; lastSeq: number; offset: bigint }>;
}

export class ModelBroker {
  /** Per partition: payloads in log order (index = offset). */
  readonly logs = new Map<string, number[]>();
  private readonly state = new Map<string, Entry>();

  produce(tp: string, b: ModelBatch): ModelAnswer {
    const key = `${b.producerId}/${tp}`;
    const log = this.logs.get(tp) ?? [];
    this.logs.set(tp, log);
    const e = this.state.get(key);
    if (e) {
      if (b.epoch < e.epoch) return { errorCode: 47, baseOffset: -1n, duplicate: false };
      if (b.epoch === e.epoch) {
        const d = e.cache.find((m) => m.firstSeq === b.firstSeq && m.lastSeq === b.lastSeq);
        if (d) return { errorCode: 0, baseOffset: d.offset, duplicate: true };
        if (!isNext(e.lastSeq, b.firstSeq)) return { errorCode: 45, baseOffset: -1n, duplicate: false };
      } else if (b.firstSeq !== 0) {
        return { errorCode: 45, baseOffset: -1n, duplicate: false };
      }
    }
    // No entry: any sequence is accepted (KIP-360).
    const offset = BigInt(log.length);
    log.push(b.payload);
    const next: Entry = e && e.epoch === b.epoch ? e : { epoch: b.epoch, lastSeq: -1, cache: [] };
    next.lastSeq = b.lastSeq;
    next.cache.push({ firstSeq: b.firstSeq, lastSeq: b.lastSeq, offset });
    if (next.cache.length > 5) next.cache.shift();
    this.state.set(key, next);
    return { errorCode: 0, baseOffset: offset, duplicate: false };
  }

  /** The broker forgets the producer on a partition (producer.id.expiration.ms, retention, recreation). */
  forget(producerId: bigint, tp: string): void {
    this.state.delete(`${producerId}/${tp}`);
  }

  log(tp: string): number[] {
    return this.logs.get(tp) ?? [];
  }
}
