// Telling the API server where the webhook is and which CA to trust. Three set-ups:
// --webhook-url (outside a cluster): the operator owns its MutatingWebhookConfiguration;
// chart with self-managed certificates: the chart's configuration gets our CA as caBundle;
// --cert-dir (cert-manager): cert-manager's CA injector owns caBundle, nothing to do.
import type { Logger } from 'pino';
import { Backoff, sleep } from '../../api/backoff.js';
import { INJECTION_ENABLED, LABEL_INJECTION } from '../../api/constants.js';
import { patchCABundle, registerWebhook } from '../certs/kube.js';
import type { KubeClient } from '../kube/client.js';

/** The operator's flags that say which of the three set-ups is in force. */
export interface RegistrationOptions {
  webhookUrl?: URL;
  webhookConfigName: string;
  certDir?: string;
  caBundleSelector: string;
}

export async function publishWebhook(client: KubeClient, cfg: RegistrationOptions, caPem: string | undefined): Promise<void> {
  if (cfg.webhookUrl) {
    await registerWebhook(client, {
      name: cfg.webhookConfigName,
      url: cfg.webhookUrl.toString(),
      caBundle: caPem ?? '',
      namespaceSelector: { matchLabels: { [LABEL_INJECTION]: INJECTION_ENABLED } },
    });
  } else if (caPem && !cfg.certDir) {
    await patchCABundle(client, cfg.caBundleSelector, caPem);
  }
}

/** publishWebhook until it succeeds (the API server may not be ready) or `stopped()`; true when published. */
export async function publishWebhookUntilDone(client: KubeClient, cfg: RegistrationOptions, caPem: () => string | undefined, log: Logger, stopped: () => boolean): Promise<boolean> {
  const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  while (!stopped()) {
    try {
      await publishWebhook(client, cfg, caPem());
      log.info({ url: cfg.webhookUrl?.toString(), msSinceProcessStart: Math.round(performance.now()) }, 'webhook ready');
      return true;
    } catch (e) {
      const ms = backoff.next();
      log.warn({ err: String(e), retryInMs: ms }, 'could not register webhook configuration');
      await sleep(ms);
    }
  }
  return false;
}
