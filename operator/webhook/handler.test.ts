// The admission handler over real HTTP on 127.0.0.1: AdmissionReview round trips, the
// patch applies to the pod it came from, and malformed requests get clean answers.
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { IdempotentProducerPolicy } from '../../api/index.js';
import { createAdmissionHandler, type AdmissionDeps } from './handler.js';
import { applyPatch, type PatchOp } from './patch.js';

const ns: V1Namespace = { metadata: { name: 'shop', labels: { 'idempo.dev/injection': 'enabled' } } };
const policy = {
  apiVersion: 'idempo.dev/v1alpha1',
  kind: 'IdempotentProducerPolicy',
  metadata: { name: 'payments', namespace: 'shop' },
  spec: { selector: { matchLabels: { app: 'payments' } }, kafka: { bootstrapServers: ['kafka:9092'] } },
} as unknown as IdempotentProducerPolicy;
const pod: V1Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { generateName: 'payments-', labels: { app: 'payments' } },
  spec: { containers: [{ name: 'app', image: 'app', env: [{ name: 'KAFKA_BOOTSTRAP_SERVERS', value: 'kafka:9092' }] }] },
};

const review = (over: Record<string, unknown> = {}, object: unknown = pod) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: 'u-1',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: 'shop',
    operation: 'CREATE',
    object,
    ...over,
  },
});

const decisions: [string, boolean][] = [];
let failLookup = false;
const deps: AdmissionDeps = {
  lookup: {
    namespace: async (name) => {
      if (failLookup) throw new Error('apiserver down');
      return name === 'shop' ? ns : { metadata: { name } };
    },
    policies: async (n) => (n === 'shop' ? [policy] : []),
  },
  log: pino({ level: 'silent' }),
  onDecision: (reason, injected, seconds) => {
    expect(seconds).toBeGreaterThanOrEqual(0);
    decisions.push([reason, injected]);
  },
  maxBodyBytes: 64 * 1024,
};

let server: Server;
let port: number;

function post(body: string | Buffer, opts: { path?: string; method?: string; headers?: Record<string, string> } = {}) {
  return new Promise<{ status: number; json: any; text: string }>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: opts.path ?? '/mutate-pods', method: opts.method ?? 'POST', headers: { 'content-type': 'application/json', ...opts.headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  server = createServer(createAdmissionHandler(deps));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('admission handler', () => {
  it('injects: uid echoed, base64 JSONPatch that turns the pod into the injected pod', async () => {
    decisions.length = 0;
    const r = await post(JSON.stringify(review()));
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u-1', allowed: true, patchType: 'JSONPatch' } });
    const ops = JSON.parse(Buffer.from(r.json.response.patch, 'base64').toString()) as PatchOp[];
    expect(ops.every((o) => ['add', 'remove', 'replace'].includes(o.op))).toBe(true);
    const out = applyPatch(pod, ops) as any;
    expect(out.spec.initContainers[0].name).toBe('idempo-sidecar');
    expect(out.spec.containers[0].env[0]).toEqual({ name: 'KAFKA_BOOTSTRAP_SERVERS', value: '127.0.0.1:19092' });
    expect(out.metadata.annotations['idempo.dev/injected']).toBe('payments');
    // Annotation keys with '/' are escaped as ~1 inside the patch paths.
    expect(ops.some((o) => o.path.includes('~1'))).toBe(true);
    expect(decisions).toEqual([['injected', true]]);
  });

  it('uses a plain container when native sidecars are not supported', async () => {
    const s = createServer(createAdmissionHandler({ ...deps, nativeSidecarsSupported: false, image: 'x/y:z' }));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const saved = port;
    port = (s.address() as AddressInfo).port;
    try {
      const r = await post(JSON.stringify(review()));
      const out = applyPatch(pod, JSON.parse(Buffer.from(r.json.response.patch, 'base64').toString())) as any;
      expect(out.spec.initContainers).toBeUndefined();
      expect(out.spec.containers.map((c: any) => c.name)).toEqual(['idempo-sidecar', 'app']);
      expect(out.spec.containers[0].image).toBe('x/y:z');
    } finally {
      port = saved;
      await new Promise<void>((r) => s.close(() => r()));
    }
  });

  it('admits without a patch when the namespace is not enabled', async () => {
    decisions.length = 0;
    const r = await post(JSON.stringify(review({ namespace: 'plain' })));
    expect(r.status).toBe(200);
    expect(r.json.response).toEqual({ uid: 'u-1', allowed: true });
    expect(decisions).toEqual([['namespace_not_enabled', false]]);
  });

  it('warns the user when a named policy does not exist', async () => {
    const p = { ...pod, metadata: { ...pod.metadata, annotations: { 'idempo.dev/policy': 'nope' } } };
    const r = await post(JSON.stringify(review({}, p)));
    expect(r.json.response.allowed).toBe(true);
    expect(r.json.response.patch).toBeUndefined();
    expect(r.json.response.warnings[0]).toMatch(/^idempo: policy_not_found: /);
  });

  it('admits with a warning when lookups fail', async () => {
    failLookup = true;
    try {
      const r = await post(JSON.stringify(review()));
      expect(r.status).toBe(200);
      expect(r.json.response).toMatchObject({ uid: 'u-1', allowed: true });
      expect(r.json.response.warnings[0]).toMatch(/lookup_failed.*apiserver down/);
    } finally {
      failLookup = false;
    }
  });

  it.each([
    ['an UPDATE', { operation: 'UPDATE' }],
    ['a non-pod kind', { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }],
    ['a subresource', { subResource: 'status' }],
    ['no object', { object: null }],
  ])('admits %s untouched', async (_n, over) => {
    const r = await post(JSON.stringify(review(over as Record<string, unknown>)));
    expect(r.status).toBe(200);
    expect(r.json.response).toEqual({ uid: 'u-1', allowed: true });
  });

  it('admits a pod object of the wrong shape untouched', async () => {
    decisions.length = 0;
    const r = await post(JSON.stringify(review({}, { metadata: 'x', spec: { containers: 'nope' } })));
    expect(r.status).toBe(200);
    expect(r.json.response).toEqual({ uid: 'u-1', allowed: true });
    expect(decisions).toEqual([['not_a_pod', false]]);
  });

  it.each([
    ['not JSON', '{"kind": "AdmissionReview", '],
    ['empty', ''],
    ['JSON null', 'null'],
    ['an array', '[]'],
    ['the wrong kind', JSON.stringify({ ...review(), kind: 'Pod' })],
    ['no request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' })],
    ['no uid', JSON.stringify(review({ uid: undefined }))],
    ['a numeric uid', JSON.stringify(review({ uid: 7 }))],
  ])('answers 400 to %s', async (_n, body) => {
    const r = await post(body);
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ kind: 'Status', status: 'Failure', code: 400 });
  });

  it('answers 413 to a body over the limit (declared length)', async () => {
    const big = JSON.stringify(review({}, { ...pod, metadata: { ...pod.metadata, annotations: { pad: 'x'.repeat(100_000) } } }));
    const r = await post(big);
    expect(r.status).toBe(413);
  });

  it('answers 413 to a chunked body over the limit', async () => {
    const r = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/mutate-pods', method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'EPIPE' || (e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
      for (let i = 0; i < 20; i++) req.write('x'.repeat(8192));
      req.end();
    });
    expect(r).toBe(413);
  });

  it('answers 404 elsewhere and 405 to GET', async () => {
    expect((await post('{}', { path: '/other' })).status).toBe(404);
    expect((await post('', { method: 'GET' })).status).toBe(405);
  });

  it('keeps serving after all of that', async () => {
    const r = await post(JSON.stringify(review()));
    expect(r.json.response.patchType).toBe('JSONPatch');
  });
});
