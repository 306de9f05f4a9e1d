import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SidecarMetrics } from '../metrics/metrics.js';
import { sumMetric } from '../../test/support/prom-text.js';
import { JOURNAL_FILE, StateStore } from './store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function open(dir: string, upstream?: string) {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) });
  const metrics = new SidecarMetrics();
  const r = StateStore.open(dir, { log, metrics, dedupWindowMs: 60_000, upstream });
  const restores = async (result: string) => sumMetric(await metrics.registry.metrics(), 'idempo_state_restores_total', { result });
  return { ...r, lines, restores };
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
