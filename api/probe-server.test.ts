import { afterAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import { closeServer, httpDate, startProbeServer } from './probe-server.js';

describe('probe server', () => {
  it("httpDate writes what Date#toUTCString writes (Node's Date header)", () => {
    let seed = 12345;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const dates = [0, 951782400000, 4102444799000, ...Array.from({ length: 2000 }, () => Math.floor(next() * 7258118400000))].map((ms) => new Date(ms));
    for (const d of dates) expect(httpDate(d)).toBe(d.toUTCString());
  });

  const servers: Awaited<ReturnType<typeof startProbeServer>>[] = [];
  afterAll(async () => {
    for (const s of servers) await closeServer(s);
  });

  it('answers the probes and /metrics, each with a Date header', async () => {
    const registry = { contentType: 'text/plain; version=0.0.4; charset=utf-8', metrics: () => Promise.resolve('# TYPE x gauge\nx 1\n') };
    let ok = false;
    const server = await startProbeServer({ host: '127.0.0.1', port: 0 }, registry, { ready: () => ({ ok, reason: ok ? 'ready' : 'not yet' }) });
    servers.push(server);
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const get = async (path: string): Promise<[number, string, string | null]> => {
      const r = await fetch(base + path);
      return [r.status, await r.text(), r.headers.get('date')];
    };
    expect((await get('/healthz')).slice(0, 2)).toEqual([200, 'ok\n']);
    expect((await get('/readyz')).slice(0, 2)).toEqual([503, 'not yet\n']);
    ok = true;
    expect((await get('/readyz')).slice(0, 2)).toEqual([200, 'ready\n']);
    const [status, text, date] = await get('/metrics');
    expect([status, text]).toEqual([200, '# TYPE x gauge\nx 1\n']);
    expect(date).toMatch(/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/);
    expect(Number.isFinite(Date.parse(date!))).toBe(true);
  });
});
