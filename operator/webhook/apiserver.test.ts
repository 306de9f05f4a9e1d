// The webhook as a real kube-apiserver sees it: certificates from ensureCertSecret, the
// configuration from registerWebhook (url mode, as `--webhook-url` uses it), and pods
// created through the API coming back injected, with the server's own validation of the
// mutated pod. Also the Secret renewal and caBundle patching against the real API.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { AdmissionregistrationV1Api, CoreV1Api, CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { GROUP, PLURAL, VERSION, type IdempotentProducerPolicy } from '../../api/index.js';
import { startKube, type KubeEnv } from '../../test/support/kube.js';
import { certInfo, issueCA } from '../certs/issue.js';
import { ensureCertSecret, patchCABundle, registerWebhook, SECRET_KEYS } from '../certs/kube.js';
import { KubeClient } from '../kube/client.js';
import { createAdmissionHandler } from './handler.js';

const DAY = 86_400_000;
const CFG = 'idempo-test-webhook';

let kube: KubeEnv;
let server: Server | undefined;
const decisions: string[] = [];

const yaml = (o: unknown) => stringify(o, { version: '1.1' });
async function kubectlOk(args: string[], input?: string): Promise<string> {
  const r = await kube.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout + r.stderr;
}

beforeAll(async () => {
  kube = await startKube();
  await kubectlOk(['apply', '-f', 'crds/']);
  await kube.waitForCondition([`crd/${PLURAL}.${GROUP}`], 'Established');
  await kubectlOk(['create', 'namespace', 'idempo-system']);
});
afterAll(async () => {
  server?.close();
  await kube?.stop();
});

describe('ensureCertSecret', () => {
  it('creates, reuses, re-issues for new names and renews near expiry', async () => {
    const kc = kube.kubeConfig;
    const first = await ensureCertSecret(new KubeClient(kc), 'idempo-system', 'certs-a', ['svc.ns.svc'], ['127.0.0.1']);
    const secret = await kc.makeApiClient(CoreV1Api).readNamespacedSecret({ name: 'certs-a', namespace: 'idempo-system' });
    expect(secret.type).toBe('kubernetes.io/tls');
    expect(Object.keys(secret.data ?? {}).sort()).toEqual(Object.values(SECRET_KEYS).sort());
    expect(secret.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('idempo-operator');

    expect(await ensureCertSecret(new KubeClient(kc), 'idempo-system', 'certs-a', ['svc.ns.svc'], ['127.0.0.1'])).toEqual(first);

    const more = await ensureCertSecret(new KubeClient(kc), 'idempo-system', 'certs-a', ['svc.ns.svc', 'other.ns.svc'], ['127.0.0.1']);
    expect(more.caPem).toBe(first.caPem); // same CA: the caBundle stays valid
    expect(more.certPem).not.toBe(first.certPem);
    expect(certInfo(more.certPem).dnsNames).toEqual(['svc.ns.svc', 'other.ns.svc']);

    const later = new Date(Date.now() + 340 * DAY);
    const renewed = await ensureCertSecret(new KubeClient(kc), 'idempo-system', 'certs-a', ['svc.ns.svc', 'other.ns.svc'], ['127.0.0.1'], { now: later });
    expect(renewed.caPem).toBe(first.caPem);
    expect(certInfo(renewed.certPem).notAfter.getTime()).toBeGreaterThan(later.getTime() + 300 * DAY);

    const muchLater = new Date(Date.now() + 3640 * DAY);
    const newCa = await ensureCertSecret(new KubeClient(kc), 'idempo-system', 'certs-a', ['svc.ns.svc'], [], { now: muchLater });
    expect(newCa.caPem).not.toBe(first.caPem);
  });

  it('converges when several callers race to create the Secret', async () => {
    const results = await Promise.all([1, 2, 3].map(() => ensureCertSecret(new KubeClient(kube.kubeConfig), 'idempo-system', 'certs-race', ['x.svc'], [])));
    const stored = await ensureCertSecret(new KubeClient(kube.kubeConfig), 'idempo-system', 'certs-race', ['x.svc'], []);
    // One create wins; the others see 409, re-read and adopt it.
    for (const r of results) expect(r).toEqual(stored);
  });
});

describe('injection through the API server', () => {
  beforeAll(async () => {
    const kc = kube.kubeConfig;
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const certs = await ensureCertSecret(new KubeClient(kc), 'idempo-system', 'idempo-webhook-certs', ['localhost'], ['127.0.0.1']);
    const handler = createAdmissionHandler({
      lookup: {
        namespace: async (name) => core.readNamespace({ name }),
        policies: async (namespace) =>
          ((await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })) as { items: IdempotentProducerPolicy[] }).items,
      },
      log: pino({ level: 'silent' }),
      onDecision: (reason) => decisions.push(reason),
    });
    server = createServer({ cert: certs.certPem, key: certs.keyPem }, handler);
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as AddressInfo;
    // Registered with a wrong CA first, then fixed by patchCABundle: the rotation path.
    await registerWebhook(new KubeClient(kc), { name: CFG, url: `https://127.0.0.1:${port}/mutate-pods`, caBundle: issueCA().certPem });
    await registerWebhook(new KubeClient(kc), { name: CFG, url: `https://127.0.0.1:${port}/mutate-pods`, caBundle: issueCA().certPem });
    expect(await patchCABundle(new KubeClient(kc), 'app.kubernetes.io/managed-by=idempo-operator', certs.caPem)).toBe(1);
    expect(await patchCABundle(new KubeClient(kc), 'app.kubernetes.io/managed-by=idempo-operator', certs.caPem)).toBe(0);

    const cfg = await kc.makeApiClient(AdmissionregistrationV1Api).readMutatingWebhookConfiguration({ name: CFG });
    expect(cfg.webhooks?.[0]).toMatchObject({
      failurePolicy: 'Ignore',
      sideEffects: 'None',
      timeoutSeconds: 5,
      reinvocationPolicy: 'Never',
      admissionReviewVersions: ['v1'],
      namespaceSelector: { matchLabels: { 'idempo.dev/injection': 'enabled' } },
    });

    await kubectlOk(['create', 'namespace', 'shop']);
    await kubectlOk(['label', 'namespace', 'shop', 'idempo.dev/injection=enabled']);
    await kubectlOk(['create', 'namespace', 'plain']);
    await kubectlOk(
      ['apply', '-f', '-'],
      yaml({
        apiVersion: 'idempo.dev/v1alpha1',
        kind: 'IdempotentProducerPolicy',
        metadata: { name: 'payments', namespace: 'shop' },
        spec: { selector: { matchLabels: { app: 'payments' } }, kafka: { bootstrapServers: ['kafka:9092'] } },
      }),
    );
  });

  const pod = (name: string, namespace: string, labels: Record<string, string>) =>
    yaml({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace, labels },
      spec: { containers: [{ name: 'app', image: 'app:1', env: [{ name: 'KAFKA_BOOTSTRAP_SERVERS', value: 'kafka:9092' }] }] },
    });
  const get = async (name: string, namespace: string) => JSON.parse(await kubectlOk(['get', 'pod', '-n', namespace, name, '-o', 'json'])) as V1Pod;

  it('injects a selected pod, and the API server accepts the mutated pod', async () => {
    await kubectlOk(['apply', '-f', '-'], pod('payments-1', 'shop', { app: 'payments' }));
    const p = await get('payments-1', 'shop');
    expect(p.metadata?.annotations?.['idempo.dev/injected']).toBe('payments');
    expect(p.spec?.initContainers?.[0]).toMatchObject({ name: 'idempo-sidecar', restartPolicy: 'Always' });
    expect(p.spec?.containers[0].env?.[0]).toEqual({ name: 'KAFKA_BOOTSTRAP_SERVERS', value: '127.0.0.1:19092' });
    expect(p.spec?.volumes?.some((v) => v.configMap?.name === 'idempo-payments')).toBe(true);
  });

  it('leaves other pods alone', async () => {
    await kubectlOk(['apply', '-f', '-'], pod('other', 'shop', { app: 'other' }));
    await kubectlOk(['apply', '-f', '-'], pod('payments-2', 'plain', { app: 'payments' }));
    expect((await get('other', 'shop')).spec?.initContainers).toBeUndefined();
    expect((await get('payments-2', 'plain')).spec?.initContainers).toBeUndefined();
    expect(decisions).toContain('no_policy');
    expect(decisions).not.toContain('namespace_not_enabled'); // the namespaceSelector filtered it out first
  });

  it('injects a plain-container sidecar with Kafka TLS volumes that the API server accepts', async () => {
    await kubectlOk(['create', 'namespace', 'legacy']);
    await kubectlOk(['label', 'namespace', 'legacy', 'idempo.dev/injection=enabled']);
    await kubectlOk(
      ['apply', '-f', '-'],
      yaml({
        apiVersion: 'idempo.dev/v1alpha1',
        kind: 'IdempotentProducerPolicy',
        metadata: { name: 'tls', namespace: 'legacy' },
        spec: {
          selector: {},
          mode: 'enforce',
          kafka: {
            bootstrapServers: ['kafka:9093'],
            tls: { enabled: true, caSecretRef: { name: 'kafka-ca', key: 'ca.pem' }, clientCertSecretRef: { name: 'kafka-client' } },
          },
          injection: { nativeSidecar: false, bootstrapEnvVars: ['KAFKA_BOOTSTRAP_SERVERS'] },
          dedup: { strategy: 'off' },
          sidecar: { resources: { requests: { cpu: '10m' }, limits: { cpu: 1, memory: '256Mi' } } },
        },
      }),
    );
    await kubectlOk(['apply', '-f', '-'], pod('job', 'legacy', { app: 'job' }));
    const p = await get('job', 'legacy');
    expect(p.spec?.containers.map((c) => c.name)).toEqual(['idempo-sidecar', 'app']);
    expect(p.spec?.containers[0].args).toContain('--upstream-ca-file');
    // (the API server defaults missing requests from limits)
    expect(p.spec?.containers[0].resources).toMatchObject({ requests: { cpu: '10m' }, limits: { cpu: '1', memory: '256Mi' } });
    expect(p.spec?.volumes?.map((v) => v.name)).toEqual(expect.arrayContaining(['idempo-config', 'idempo-kafka-ca', 'idempo-kafka-client']));
    expect(p.metadata?.annotations?.['kubectl.kubernetes.io/default-container']).toBe('app');
  });

  it('tells the user when two policies select a pod', async () => {
    await kubectlOk(
      ['apply', '-f', '-'],
      yaml({
        apiVersion: 'idempo.dev/v1alpha1',
        kind: 'IdempotentProducerPolicy',
        metadata: { name: 'everything', namespace: 'shop' },
        spec: { selector: {}, kafka: { bootstrapServers: ['kafka:9092'] } },
      }),
    );
    const out = await kubectlOk(['apply', '-f', '-'], pod('payments-3', 'shop', { app: 'payments' }));
    expect(out).toMatch(/Warning: idempo: multiple_policies: .*\(everything, payments\)/);
    expect((await get('payments-3', 'shop')).spec?.initContainers).toBeUndefined();
  });

  it('admits pods when the webhook is down (failurePolicy Ignore)', async () => {
    await new Promise<void>((r) => {
      server!.close(() => r());
      server!.closeAllConnections(); // the API server keeps connections alive
    });
    server = undefined;
    await kubectlOk(['apply', '-f', '-'], pod('payments-4', 'shop', { app: 'payments' }));
    expect((await get('payments-4', 'shop')).metadata?.name).toBe('payments-4');
  });
});
