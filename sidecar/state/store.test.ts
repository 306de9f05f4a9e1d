import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SidecarMetrics } from '../metrics/metrics.js';
import { sumMetric } from '../../test/support/prom-text.js';
import { JOURNAL_FILE, StateStore } from './store.js';

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function open(dir: string, upstream?: string) {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) });
  const metrics = new SidecarMetrics();
  const r = StateStore.open(dir, { log, metrics, dedupWindowMs: 60_000, upstream });
  const restores = async (result: string) => sumMetric(await metrics.registry.metrics(), 'idempo_state_restores_total', { result });
  const writeErrors = async (then: string) => sumMetric(await metrics.registry.metrics(), 'idempo_state_write_errors_total', { then });
  return { ...r, lines, restores, writeErrors };
}

async function journalWithProducer(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-store-'));
  dirs.push(dir);
  const { store } = open(dir);
  store.append({ type: 'producer', producer: { producerId: 42n, epoch: 1 } });
  store.append({ type: 'brokers', brokers: [{ nodeId: 1, host: 'h', port: 9092, listenPort: 40000 }] });
  await store.durable();
  await store.close();
  return dir;
}

describe('StateStore.open', () => {
  it('does not restore a journal written for other upstream servers (producer ids are per cluster)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-store-'));
    dirs.push(dir);
    const first = open(dir, 'a:9092,b:9092');
    first.store.append({ type: 'producer', producer: { producerId: 42n, epoch: 1 } });
    await first.store.durable();
    await first.store.close();
    const same = open(dir, 'a:9092,b:9092');
    expect(same.restored?.sequencer.producer?.producerId).toBe(42n);
    await same.store.close();
    const other = open(dir, 'c:9092');
    expect(other.restored).toBeNull();
    expect(await other.restores('other_upstream')).toBe(1);
    expect(fs.readdirSync(dir).some((f) => f.startsWith(`${JOURNAL_FILE}.other-upstream-`))).toBe(true);
    await other.store.close();
    // The new journal belongs to the new servers.
    const again = open(dir, 'c:9092');
    expect(await again.restores('restored')).toBe(1);
    await again.store.close();
  });


  it('starts fresh in an empty directory and restores what was journalled', async () => {
    const dir = await journalWithProducer();
    const again = open(dir);
    expect(again.restored?.sequencer.producer).toEqual({ producerId: 42n, epoch: 1 });
    expect(again.restored?.brokers).toEqual([{ nodeId: 1, host: 'h', port: 9092, listenPort: 40000 }]);
    expect(await again.restores('restored')).toBe(1);
    await again.store.close();
  });

  it('cuts off a torn tail, says so, and restores the rest', async () => {
    const dir = await journalWithProducer();
    fs.appendFileSync(path.join(dir, JOURNAL_FILE), Buffer.from([0, 0, 0, 40, 0xff, 0xff]));
    const again = open(dir);
    expect(again.restored?.sequencer.producer?.producerId).toBe(42n);
    expect(await again.restores('torn_tail')).toBe(1);
    expect(again.lines.some((l) => String(l.msg).includes('torn record'))).toBe(true);
    await again.store.close();
  });

  it('sets a corrupt file aside and starts with nothing: a fresh producer id, not a wrong sequence', async () => {
    const dir = await journalWithProducer();
    const file = path.join(dir, JOURNAL_FILE);
    const bytes = fs.readFileSync(file);
    bytes[30] ^= 0x10; // inside the first record's payload
    fs.writeFileSync(file, bytes);
    const again = open(dir);
    expect(again.restored).toBeNull();
    expect(await again.restores('corrupt')).toBe(1);
    const line = again.lines.find((l) => l.level === 50);
    expect(line?.msg).toMatch(/corrupt.*fresh producer id/);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith(`${JOURNAL_FILE}.corrupt-`))).toHaveLength(1);
    // The new journal works.
    again.store.append({ type: 'producer', producer: { producerId: 43n, epoch: 0 } });
    await again.store.durable();
    await again.store.close();
    const third = open(dir);
    expect(third.restored?.sequencer.producer?.producerId).toBe(43n);
    await third.store.close();
  });
});

// FAKE DISK FAULTS: an fdatasync/rename that fails with EIO and an unlink that fails with EROFS
// (ext4 remounted read-only after an I/O error) cannot be produced for real on this machine (no
// failing device, no remount, tests run as root). The journal calls these through the shared
// node:fs objects, so spying on them makes exactly that one call fail; everything else is real.
const eio = (syscall: string): NodeJS.ErrnoException => Object.assign(new Error(`EIO: i/o error, ${syscall}`), { code: 'EIO', syscall });
function fakeFdatasyncEio(): void {
  vi.spyOn(fs, 'fdatasync').mockImplementation(((_fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    setImmediate(() => cb(eio('fdatasync')));
  }) as unknown as typeof fs.fdatasync);
}

describe('StateStore after a failed write (finding 3: stale state is worse than none)', () => {
  async function stampedJournal() {
    const dir = await journalWithProducer();
    const s = open(dir);
    expect(s.restored?.sequencer.producer?.producerId).toBe(42n);
    s.store.append({ type: 'accepted', batch: { id: 1, tp: { topic: 't', partition: 0 }, recordCount: 1, version: 9, timeoutMs: 30_000, dedupKey: null, bytes: Buffer.alloc(70) } });
    s.store.append({ type: 'stamped', id: 1, stamp: { producerId: 42n, epoch: 1, baseSequence: 0 } });
    await s.store.durable();
    return { dir, s };
  }

  it('removes the journal when fdatasync fails, so a restart gets a fresh producer id instead of reusing sequences', async () => {
    const { dir, s } = await stampedJournal();
    fakeFdatasyncEio();
    s.store.append({ type: 'finished', id: 1, result: { errorCode: 0, baseOffset: 0n, logAppendTimeMs: -1n }, at: Date.now() });
    s.store.append({ type: 'stamped', id: 2, stamp: { producerId: 42n, epoch: 1, baseSequence: 1 } });
    await s.store.durable(); // resolves: sends may go on, unjournalled, because nothing is left to restore
    expect(s.store.stopped).toBeNull();
    expect(await s.writeErrors('journal_removed')).toBe(1);
    expect(s.lines.find((l) => l.level === 50)?.msg).toMatch(/cannot write the state journal: removed it/);
    expect(fs.readdirSync(dir)).toEqual([]);
    s.store.append({ type: 'stamped', id: 3, stamp: { producerId: 42n, epoch: 1, baseSequence: 2 } });
    await s.store.durable();
    await s.store.close();
    vi.restoreAllMocks();
    const again = open(dir);
    expect(again.restored).toBeNull(); // no producer id 42 with stale sequences
    expect(await again.restores('fresh')).toBe(1);
    await again.store.close();
  });

  it('removes the old journal and the temp file when a compaction fails', async () => {
    const { dir, s } = await stampedJournal();
    vi.spyOn(fsp, 'rename').mockRejectedValue(eio('rename'));
    s.store.compact();
    await s.store.durable();
    expect(await s.writeErrors('journal_removed')).toBe(1);
    expect(fs.readdirSync(dir)).toEqual([]);
    await s.store.close();
    vi.restoreAllMocks();
    const again = open(dir);
    expect(again.restored).toBeNull();
    await again.store.close();
  });

  it('when the journal cannot be removed either: durable() rejects (nothing unjournalled may be sent), says so, and the file restores only what was durable', async () => {
    const { dir, s } = await stampedJournal();
    fakeFdatasyncEio();
    vi.spyOn(fs, 'unlinkSync').mockImplementation(() => {
      throw Object.assign(new Error('EROFS: read-only file system, unlink'), { code: 'EROFS' });
    });
    s.store.append({ type: 'accepted', batch: { id: 2, tp: { topic: 't', partition: 0 }, recordCount: 1, version: 9, timeoutMs: 30_000, dedupKey: null, bytes: Buffer.alloc(70) } });
    s.store.append({ type: 'stamped', id: 2, stamp: { producerId: 42n, epoch: 1, baseSequence: 1 } });
    await expect(s.store.durable()).rejects.toThrow(/could not be removed \(EROFS/);
    await expect(s.store.durable()).rejects.toThrow(/could not be removed/); // and every later one
    expect(s.store.stopped).toMatch(/EROFS/);
    expect(await s.writeErrors('sends_stopped')).toBe(1);
    expect(await s.writeErrors('journal_removed')).toBe(0);
    expect(s.lines.find((l) => l.level === 50)?.msg).toMatch(/nor remove it.*stops stamping/);
    await s.store.close();
    vi.restoreAllMocks();
    // A restart restores the file as the failure left it (the unsynced write may or may not be in
    // it): safe only because nothing stamped after the last good fdatasync was sent.
    const again = open(dir);
    expect(again.restored?.sequencer.producer?.producerId).toBe(42n);
    expect(again.restored?.sequencer.partitions[0]?.batches.map((b) => b.id)).toContain(1);
    await again.store.close();
  });
});
