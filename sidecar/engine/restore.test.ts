// The engine after a restart with --state-dir, on a MODEL cluster: a batch that finished just
// before the kill may never have had its answer written (answers leave a connection in request
// order, behind an undecided one), so its client sends it again — kafkajs re-encoded, with a new
// timestamp. Found by make faults SEED=2 CELL=kafkajs/all (100 duplicates, docs/faults.md).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine } from './engine.js';
import { ModelCluster, engineConfig, produceCall, produceRequest } from './model-cluster.test-support.js';
import { StateStore } from '../state/store.js';
import { encodeRecordBatch } from '../codec/records.js';
import { exactFingerprint } from '../idempotence/fingerprint.js';

const TOPICS = [{ name: 'orders', partitions: 1, id: Buffer.alloc(16, 1) }];
const dirs: string[] = [];
const engines: Engine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const request = (batch: Buffer) => produceRequest([['orders', 0, batch]]);

describe('engine restore (--state-dir)', () => {
  it('a batch finished just before the kill: its client\'s re-encoded copy is answered with its result, not written again', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-restore-'));
    dirs.push(dir);
    const model = new ModelCluster(TOPICS);
    const deps = { log: model.log, metrics: model.metrics, dedupWindowMs: 300_000 };
    const records = [{ key: 'k1', value: 'pay-1' }];
    const original = encodeRecordBatch({ records, baseTimestamp: 1_700_000_000_000n });
    // What the killed process journalled: the batch accepted, stamped, written at offset 733.
    const before = StateStore.open(dir, deps);
    const tp = { topic: 'orders', partition: 0 };
    before.store.append({ type: 'producer', producer: { producerId: 7n, epoch: 0 } });
    before.store.append({ type: 'accepted', batch: { id: 1, tp, recordCount: 1, version: 9, timeoutMs: 1000, dedupKey: { ...tp, fingerprint: exactFingerprint(original) }, bytes: original } });
    before.store.append({ type: 'stamped', id: 1, stamp: { producerId: 7n, epoch: 0, baseSequence: 0 } });
    before.store.append({ type: 'finished', id: 1, result: { errorCode: 0, baseOffset: 733n, logAppendTimeMs: -1n }, at: Date.now() - 1_000 });
    await before.store.durable();
    await before.store.close();

    const engine = new Engine({ ctx: model, metrics: model.metrics, log: model.log, config: engineConfig({ mode: 'upgrade' }), state: StateStore.open(dir, deps) });
    engines.push(engine);
    // kafkajs re-sends it on its new connection, re-encoded with a new timestamp.
    const copy = encodeRecordBatch({ records, baseTimestamp: 1_700_000_005_000n });
    const call = produceCall(request(copy), 9, 5);
    const out = await model.run(call, engine.hook().onProduce(call));
    if (out.kind !== 'answer') throw new Error(out.kind);
    expect(out.response.responses[0].partitionResponses[0]).toMatchObject({ errorCode: 0, baseOffset: 733n });
    expect(model.written.get('orders/0')).toBeUndefined();
  });

  it('a batch whose success reached its client in time (journal record known) is not matched: the same records again are a new write', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-restore-'));
    dirs.push(dir);
    const model = new ModelCluster(TOPICS);
    const deps = { log: model.log, metrics: model.metrics, dedupWindowMs: 300_000 };
    const records = [{ key: 'k1', value: 'pay-1' }];
    const original = encodeRecordBatch({ records, baseTimestamp: 1_700_000_000_000n });
    const before = StateStore.open(dir, deps);
    const tp = { topic: 'orders', partition: 0 };
    before.store.append({ type: 'producer', producer: { producerId: 7n, epoch: 0 } });
    before.store.append({ type: 'accepted', batch: { id: 1, tp, recordCount: 1, version: 9, timeoutMs: 1000, dedupKey: { ...tp, fingerprint: exactFingerprint(original) }, bytes: original } });
    before.store.append({ type: 'stamped', id: 1, stamp: { producerId: 7n, epoch: 0, baseSequence: 0 } });
    before.store.append({ type: 'finished', id: 1, result: { errorCode: 0, baseOffset: 733n, logAppendTimeMs: -1n }, at: Date.now() - 1_000 });
    before.store.append({ type: 'known', tp, baseOffset: 733n });
    await before.store.durable();
    await before.store.close();

    const engine = new Engine({ ctx: model, metrics: model.metrics, log: model.log, config: engineConfig({ mode: 'upgrade' }), state: StateStore.open(dir, deps) });
    engines.push(engine);
    const again = encodeRecordBatch({ records, baseTimestamp: 1_700_000_005_000n });
    const call = produceCall(request(again), 9, 5);
    const out = await model.run(call, engine.hook().onProduce(call));
    if (out.kind !== 'answer') throw new Error(out.kind);
    expect(out.response.responses[0].partitionResponses[0].errorCode).toBe(0);
    expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
  });
});
