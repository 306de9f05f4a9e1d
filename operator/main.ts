// Entry point of idempo-operator: wiring only. Every replica serves the mutating webhook (from
// shared namespace and policy caches); only the Lease holder runs the policy controller.
//   config.ts flags · startup.ts kubeconfig + preflight · kube/ caches and version ·
//   certs/serving.ts certificate + rotation · webhook/server.ts HTTPS · webhook/registration.ts
//   caBundle · election/leadership.ts controller on the leader · api/probe-server.ts probes.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { V1Namespace } from '@kubernetes/client-node';
import { pino } from 'pino';
import { FlagError } from '../api/flags.js';
import type { IdempotentProducerPolicy } from '../api/index.js';
import { closeServer, startProbeServer } from '../api/probe-server.js';
import { loadServingTls, watchServingTls } from './certs/serving.js';
import { parseConfig, USAGE, type OperatorConfig } from './config.js';
import { runLeadership, type Leadership } from './election/leadership.js';
import { KubeClient, resourcePath, type KubeObject } from './kube/client.js';
import { Reflector } from './kube/reflector.js';
import { nativeSidecarsSupported } from './kube/version.js';
import { createMetrics } from './metrics.js';
import { policyReflector } from './reconcile/controller.js';
import { loadKubeConfig, preflight } from './startup.js';
import { createAdmissionHandler } from './webhook/handler.js';
import { publishWebhook, publishWebhookUntilDone } from './webhook/registration.js';
import { startWebhookServer } from './webhook/server.js';

async function main(): Promise<void> {
  let cfg: OperatorConfig;
  try {
    const parsed = parseConfig(process.argv.slice(2));
    if (parsed === 'help') {
      process.stdout.write(USAGE + '\n');
      return;
    }
    cfg = parsed;
  } catch (e) {
    if (e instanceof FlagError) {
      process.stderr.write(`idempo-operator: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = pino({ level: cfg.logLevel, base: { component: 'idempo-operator' } });
  // A missing kubeconfig, namespace, CRD or permission: one line saying what and how to fix (startup.ts).
  const kc = loadKubeConfig(cfg);
  const client = new KubeClient(kc);
  await preflight(client, cfg, kc.getCurrentCluster()!.server);
  const metrics = createMetrics();
  const identity = `${process.env.POD_NAME || hostname()}_${randomBytes(4).toString('hex')}`;
  let stopping = false;

  // Caches every replica keeps: the webhook answers from them, without an API call per pod.
  let leadership: Leadership | undefined;
  const namespaces = new Reflector<KubeObject>({ client, path: resourcePath('', 'v1', 'namespaces'), log });
  const policies = policyReflector(client, log, {
    onUpsert: (p, old) => leadership?.controller()?.policyChanged(p, old),
    onDelete: (p) => leadership?.controller()?.policyDeleted(p),
  });
  namespaces.start();
  policies.start();

  let webhookServing = false;
  let webhookRegistered = false;
  const probes = await startProbeServer(cfg.metricsListen, metrics.registry, {
    ready: () => {
      const ok = webhookServing && webhookRegistered && namespaces.synced && policies.synced;
      return { ok, reason: ok ? 'ok' : `not ready: webhookServing=${webhookServing} webhookRegistered=${webhookRegistered} namespacesSynced=${namespaces.synced} policiesSynced=${policies.synced}` };
    },
  });
  const at = probes.address();
  log.info({ listen: typeof at === 'object' && at ? `${at.address}:${at.port}` : at }, 'metrics server listening');

  const admit = createAdmissionHandler({
    lookup: {
      namespace: async (name: string) => namespaces.get(name) as V1Namespace | undefined,
      policies: async (ns: string) => policies.list(ns) as unknown as IdempotentProducerPolicy[],
    },
    log: log.child({ module: 'webhook' }),
    nativeSidecarsSupported: await nativeSidecarsSupported(client, cfg.nativeSidecars, log),
    image: cfg.sidecarImage,
    onDecision: (reason: string, injected: boolean, seconds: number) => metrics.onDecision(reason, injected, seconds),
  });
  let tls = await loadServingTls(client, cfg, log);
  const webhook = await startWebhookServer(cfg.webhookListen, tls, admit, log);
  webhookServing = true;
  void publishWebhookUntilDone(client, cfg, () => tls.caPem, log, () => stopping).then((done) => (webhookRegistered = done));
  // Another replica (or cert-manager) may rotate the certificate: pick it up without a restart.
  const stopWatchingTls = watchServingTls(client, cfg, log, tls, async (next, prev) => {
    webhook.setTls(next);
    if (next.caPem !== prev.caPem) await publishWebhook(client, cfg, next.caPem);
    tls = next;
  });

  leadership = runLeadership({ client, cfg, identity, policies, metrics, log });
  log.info({ identity, namespace: cfg.namespace, leaderElect: cfg.leaderElect }, 'operator started');

  const shutdown = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    stopWatchingTls();
    await leadership?.stop();
    await Promise.all([namespaces.stop(), policies.stop()]);
    await Promise.all([closeServer(webhook.server), closeServer(probes)]);
    log.info('stopped');
    log.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((e: unknown) => {
  process.stderr.write(`idempo-operator: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
