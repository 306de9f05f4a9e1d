// The reflector against a scripted fake API server: list, watch events, an in-stream 410
// Gone (relist, and objects deleted meanwhile are reported), a failing watch (retried).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { KubeClient, type KubeObject } from './client.js';
import { Reflector } from './reflector.js';

const obj = (name: string, rv: string): KubeObject => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });

type Step = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void;

async function fakeApi(steps: { list: Step[]; watch: Step[] }) {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const isWatch = url.searchParams.get('watch') === 'true';
    seen.push(`${isWatch ? 'WATCH' : 'LIST'} rv=${url.searchParams.get('resourceVersion') ?? ''}`);
    const step = (isWatch ? steps.watch : steps.list).shift();
    if (step) step(req, res, url);
    // Nothing scripted: hold the watch open until the client goes away.
    else if (!isWatch) res.writeHead(500).end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return { client: new KubeClient(kc), seen, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

const list = (items: KubeObject[], rv: string): Step => (_q, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ metadata: { resourceVersion: rv }, items }));
const events = (evs: Array<{ type: string; object: unknown }>, end = true): Step => (_q, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  for (const e of evs) res.write(JSON.stringify(e) + '\n');
  if (end) res.end();
};

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup) await c();
  cleanup = [];
});

describe('Reflector', () => {
  it('lists, watches from the list resourceVersion, and relists on 410 Gone', async () => {
    const api = await fakeApi({
      list: [list([obj('a', '5')], '10'), list([obj('b', '11')], '20')],
      watch: [
        events([{ type: 'ADDED', object: obj('b', '11') }, { type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } }]),
        events([{ type: 'MODIFIED', object: obj('b', '21') }], false),
      ],
    });
    const upserts: string[] = [];
    const deletes: string[] = [];
    const r = new Reflector<KubeObject>({
      client: api.client,
      path: '/api/v1/pods',
      log: pino({ level: 'silent' }),
      handlers: { onUpsert: (o) => upserts.push(`${o.metadata?.name}@${o.metadata?.resourceVersion}`), onDelete: (o) => deletes.push(o.metadata!.name!) },
    });
    cleanup.push(() => r.stop(), api.close);
    r.start();
    expect(await r.waitForSync()).toBe(true);
    await expect.poll(() => upserts).toEqual(['a@5', 'b@11', 'b@21']);
    expect(deletes).toEqual(['a']); // gone while we were not watching: found by the relist
    expect(api.seen).toEqual(['LIST rv=', 'WATCH rv=10', 'LIST rv=', 'WATCH rv=20']);
    expect(r.list().map((o) => o.metadata?.name)).toEqual(['b']);
    expect(r.get('ns/b')?.metadata?.resourceVersion).toBe('21');
  });

  it('re-watches from the last seen resourceVersion after a failed watch or a closed stream', async () => {
    const api = await fakeApi({
      list: [list([], '1')],
      watch: [(_q, res) => res.writeHead(500).end('{"reason":"InternalError"}'), events([{ type: 'ADDED', object: obj('c', '7') }, { type: 'BOOKMARK', object: { metadata: { resourceVersion: '9' } } }])],
    });
    const r = new Reflector<KubeObject>({ client: api.client, path: '/api/v1/pods', log: pino({ level: 'silent' }), backoff: { initialMs: 10, maxMs: 20 } });
    cleanup.push(() => r.stop(), api.close);
    r.start();
    await expect.poll(() => api.seen.length).toBeGreaterThanOrEqual(4);
    expect(api.seen.slice(0, 4)).toEqual(['LIST rv=', 'WATCH rv=1', 'WATCH rv=1', 'WATCH rv=9']);
    expect(r.get('ns/c')).toBeDefined();
  });
});
