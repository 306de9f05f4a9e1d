// Upgrade mode when the --state-dir journal fails and cannot be removed (README "When a write
// fails"): a stamp sent now might be missing from the file a restart restores, so nothing more is
// sent and new batches are answered KAFKA_STORAGE_ERROR (retriable). Engine and Upgrader are real;
// the broker is the in-process MODEL cluster (engine/model-cluster.test-support.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { Engine } from '../engine/engine.js';
import { ModelCluster, engineConfig, produceCall, produceRequest, type ClientOutcome } from '../engine/model-cluster.test-support.js';
import { encodeRecordBatch } from '../codec/records.js';
import { ErrorCode } from '../codec/errors.js';
import { StateStore } from './store.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const f of cleanup.splice(0)) f();
});

const request = (value: string) => produceRequest([['orders', 0, encodeRecordBatch({ records: [{ value }], baseTimestamp: 1_700_000_000_000n })]]);

const codes = (o: ClientOutcome): number[] => (o.kind === 'answer' ? o.response.responses.flatMap((t) => t.partitionResponses.map((p) => p.errorCode)) : [-1000]);

it('a journal that failed and could not be removed: nothing more is sent, new batches get KAFKA_STORAGE_ERROR', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-stop-'));
  cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const model = new ModelCluster([{ name: 'orders', partitions: 1, id: Buffer.alloc(16, 1) }]);
  const state = StateStore.open(dir, { log: model.log, metrics: model.metrics, dedupWindowMs: 2_000 });
  const engine = new Engine({ ctx: model, metrics: model.metrics, log: model.log, config: engineConfig({ mode: 'upgrade' }), policyName: 'p', state });
  cleanup.push(() => engine.close());
  const hook = engine.hook();
  const send = (value: string): Promise<ClientOutcome> => {
    const call = produceCall(request(value), 9);
    return model.run(call, hook.onProduce(call));
  };
  expect(codes(await send('a'))).toEqual([0]);
  expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });

  // FAKE DISK FAULTS (cannot be produced for real here): fdatasync fails with EIO, and the unlink
  // that would retire the journal fails with EROFS (ext4 remounted read-only after the error).
  vi.spyOn(fs, 'fdatasync').mockImplementation(((_fd: number, cb: (err: Error) => void) => {
    setImmediate(() => cb(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })));
  }) as unknown as typeof fs.fdatasync);
  vi.spyOn(fs, 'unlinkSync').mockImplementation(() => {
    throw Object.assign(new Error('EROFS: read-only file system, unlink'), { code: 'EROFS' });
  });
  // Stamped in the turn whose flush fails: keeps its stamp, is never sent, fails by its deadline.
  const b = send('b');
  await expect(state.store.durable()).rejects.toThrow(/could not be removed/);
  expect(state.store.stopped).toMatch(/EROFS/);
  // A new batch is not stamped at all.
  expect(codes(await send('c'))).toEqual([ErrorCode.KAFKA_STORAGE_ERROR]);
  expect(codes(await b)).not.toEqual([0]);
  expect(model.written.get('orders/0')).toEqual({ idempotent: 1, plain: 0 });
});
