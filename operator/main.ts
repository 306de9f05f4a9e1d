// Entry point of idempo-operator. Every replica serves the mutating webhook (from shared
// namespace and policy caches); only the Lease holder runs the policy controller.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { type KubeConfig, type V1Namespace } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { LABEL_INJECTION, INJECTION_ENABLED } from '../api/constants.js';
import type { IdempotentProducerPolicy } from '../api/index.js';
import { ensureCertSecret, needsRenewal, patchCABundle, registerWebhook } from './certs/index.js';
import { FlagError } from '../api/flags.js';
import { Backoff, sleep } from '../api/backoff.js';
import { parseConfig, USAGE, type OperatorConfig } from './config.js';
import { LeaderElector } from './election/lease.js';
import { KubeClient, resourcePath, type KubeObject } from './kube/client.js';
import { Reflector } from './kube/reflector.js';
import { createMetrics } from './metrics.js';
import { PolicyController, policyReflector } from './reconcile/controller.js';
import { loadKubeConfig, preflight } from './startup.js';
import { createAdmissionHandler } from './webhook/handler.js';

const WEBHOOK_PATH = '/mutate-pods';
const CERT_CHECK_MS = 10 * 60_000;

type Tls = { certPem: string; keyPem: string; caPem?: string };

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

  // Caches every replica keeps: the webhook answers from them, without an API call per pod.
  let controller: PolicyController | undefined;
  const namespaces = new Reflector<KubeObject>({ client, path: resourcePath('', 'v1', 'namespaces'), log });
  const policies = policyReflector(client, log, {
    onUpsert: (p, old) => controller?.policyChanged(p, old),
    onDelete: (p) => controller?.policyDeleted(p),
  });
  namespaces.start();
  policies.start();

  let webhookServing = false;
  let webhookRegistered = false;
  const ready = () => webhookServing && webhookRegistered && namespaces.synced && policies.synced;

  // Metrics and probes.
  const metricsServer = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(body),
        (e: unknown) => res.writeHead(500).end(String(e)),
      );
    } else if (path === '/healthz') res.writeHead(200).end('ok\n');
    else if (path === '/readyz') {
      const r = ready();
      res.writeHead(r ? 200 : 503).end(r ? 'ok\n' : `not ready: webhookServing=${webhookServing} webhookRegistered=${webhookRegistered} namespacesSynced=${namespaces.synced} policiesSynced=${policies.synced}\n`);
    } else res.writeHead(404).end();
  });
  await listen(metricsServer, cfg.metricsListen, log, 'metrics');

  // Webhook.
  const nativeSidecarsSupported = await detectNativeSidecars(client, cfg, log);
  const admit = createAdmissionHandler({
    lookup: {
      namespace: async (name: string) => namespaces.get(name) as V1Namespace | undefined,
      policies: async (ns: string) => policies.list(ns) as unknown as IdempotentProducerPolicy[],
    },
    log: log.child({ module: 'webhook' }),
    nativeSidecarsSupported,
    onDecision: (reason: string, injected: boolean, seconds: number) => metrics.onDecision(reason, injected, seconds),
  });
  let tls = await loadTls(kc, cfg, log);
  const webhookServer = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === WEBHOOK_PATH && req.method === 'POST') admit(req, res);
    else if (path === '/healthz') res.writeHead(200).end('ok\n');
    else res.writeHead(404).end();
  });
  await listen(webhookServer, cfg.webhookListen, log, 'webhook');
  webhookServing = true;

  const register = async (caPem: string | undefined): Promise<void> => {
    if (cfg.webhookUrl) {
      await registerWebhook(kc, {
        name: cfg.webhookConfigName,
        url: cfg.webhookUrl.toString(),
        caBundle: caPem ?? '',
        namespaceSelector: { matchLabels: { [LABEL_INJECTION]: INJECTION_ENABLED } },
      });
    } else if (caPem && !cfg.certDir) {
      // Chart mode with self-managed certificates: the chart created the configuration, we fill in the CA.
      await patchCABundle(kc, cfg.caBundleSelector, caPem);
    }
    // With --cert-dir, cert-manager's CA injector owns caBundle.
  };
  const registerLoop = async (): Promise<void> => {
    const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
    while (!stopping) {
      try {
        await register(tls.caPem);
        webhookRegistered = true;
        log.info({ url: cfg.webhookUrl?.toString(), msSinceProcessStart: Math.round(performance.now()) }, 'webhook ready');
        return;
      } catch (e) {
        const ms = backoff.next();
        log.warn({ err: String(e), retryInMs: ms }, 'could not register webhook configuration');
        await sleep(ms);
      }
    }
  };
  let stopping = false;
  void registerLoop();

  // Another replica (or cert-manager) may rotate the certificate: pick it up without a restart.
  const certTimer = setInterval(() => {
    void (async () => {
      try {
        const next = await loadTls(kc, cfg, log);
        if (next.certPem !== tls.certPem) {
          webhookServer.setSecureContext({ cert: next.certPem, key: next.keyPem });
          if (next.caPem !== tls.caPem) await register(next.caPem);
          tls = next;
          log.info('webhook serving certificate reloaded');
        }
      } catch (e) {
        log.warn({ err: String(e) }, 'certificate check failed');
      }
    })();
  }, cfg.certDir ? 30_000 : CERT_CHECK_MS);
  certTimer.unref();

  // Reconcilers: on the leader only.
  const signalLeading = new AbortController();
  const startController = () => {
    metrics.leader.set(1);
    const c = new PolicyController({
      client,
      policies,
      log: log.child({ module: 'reconcile' }),
      resyncMs: cfg.resyncMs,
      mayWrite: () => !elector || elector.holdsValidLease(),
      onReconcile: (r, s) => metrics.onReconcile(r, s),
    });
    controller = c;
    c.start(signalLeading.signal).catch((e: unknown) => log.error({ err: String(e) }, 'controller failed to start'));
  };
  const stopController = async () => {
    metrics.leader.set(0);
    const c = controller;
    controller = undefined;
    await c?.stop();
  };
  let elector: LeaderElector | undefined;
  if (cfg.leaderElect) {
    elector = new LeaderElector({
      client,
      namespace: cfg.namespace,
      name: cfg.leaseName,
      identity,
      leaseDurationMs: cfg.leaseDurationMs,
      retryPeriodMs: cfg.leaseRenewMs,
      log,
      onStartedLeading: startController,
      onStoppedLeading: () => void stopController(),
    });
    elector.start();
  } else startController();
  log.info({ identity, namespace: cfg.namespace, leaderElect: cfg.leaderElect }, 'operator started');

  const shutdown = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    clearInterval(certTimer);
    signalLeading.abort();
    await stopController();
    await elector?.stop();
    await Promise.all([namespaces.stop(), policies.stop()]);
    await Promise.all([close(webhookServer), close(metricsServer)]);
    log.info('stopped');
    log.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

async function loadTls(kc: KubeConfig, cfg: OperatorConfig, log: Logger): Promise<Tls> {
  if (cfg.certDir) {
    const read = (f: string) => readFileSync(join(cfg.certDir!, f), 'utf8');
    let caPem: string | undefined;
    try {
      caPem = read('ca.crt');
    } catch {
      /* cert-manager writes ca.crt only for some issuers */
    }
    return { certPem: read('tls.crt'), keyPem: read('tls.key'), caPem };
  }
  let dnsNames: string[];
  let ips: string[] = [];
  if (cfg.webhookUrl) {
    const host = cfg.webhookUrl.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) {
      ips = [host];
      dnsNames = ['localhost'];
    } else dnsNames = [host];
  } else {
    const svc = cfg.webhookService;
    const ns = cfg.namespace;
    dnsNames = [svc, `${svc}.${ns}`, `${svc}.${ns}.svc`, `${svc}.${ns}.svc.cluster.local`];
  }
  const got = await ensureCertSecret(kc, cfg.namespace, cfg.certSecret, dnsNames, ips);
  if (needsRenewal(got.certPem)) log.warn('serving certificate is due for renewal and was not renewed');
  return { certPem: got.certPem, keyPem: got.keyPem, caPem: got.caPem };
}

async function detectNativeSidecars(client: KubeClient, cfg: OperatorConfig, log: Logger): Promise<boolean> {
  if (cfg.nativeSidecars !== 'auto') return cfg.nativeSidecars === 'true';
  try {
    const v = await client.get<{ major?: string; minor?: string }>('/version');
    // Native sidecars (restartPolicy: Always init containers) are on by default from 1.29.
    const minor = parseInt(v.minor ?? '0', 10);
    return Number(v.major) > 1 || minor >= 29;
  } catch (e) {
    log.warn({ err: String(e) }, 'could not read the server version; assuming native sidecars are supported');
    return true;
  }
}

function listen(server: http.Server, at: { host: string; port: number }, log: Logger, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      const a = server.address();
      log.info({ listen: typeof a === 'object' && a ? `${a.address}:${a.port}` : a }, `${what} server listening`);
      resolve();
    });
  });
}

function close(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`idempo-operator: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
