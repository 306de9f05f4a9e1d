// The webhook's serving certificate: where it comes from (a directory cert-manager fills, or the
// Secret the operator manages itself) and keeping up with its rotation by another replica or
// cert-manager, without a restart.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { KubeClient } from '../kube/client.js';
import { needsRenewal } from './issue.js';
import { ensureCertSecret } from './kube.js';

export type ServingTls = { certPem: string; keyPem: string; caPem?: string };

/** The operator's flags that decide where the certificate comes from and which names it covers. */
export interface ServingCertOptions {
  /** --cert-dir: files cert-manager writes; else the Secret `certSecret` in `namespace`, managed here. */
  certDir?: string;
  certSecret: string;
  namespace: string;
  /** --webhook-url: its host is the name to cover; else the in-cluster Service's names. */
  webhookUrl?: URL;
  webhookService: string;
}

/** How often a rotation is looked for: cert-manager rewrites files at any time; our own Secret rarely changes. */
export const rotationCheckMs = (cfg: Pick<ServingCertOptions, 'certDir'>) => (cfg.certDir ? 30_000 : 10 * 60_000);

export async function loadServingTls(client: KubeClient, cfg: ServingCertOptions, log: Logger): Promise<ServingTls> {
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
  const got = await ensureCertSecret(client, cfg.namespace, cfg.certSecret, dnsNames, ips);
  if (needsRenewal(got.certPem)) log.warn('serving certificate is due for renewal and was not renewed');
  return { certPem: got.certPem, keyPem: got.keyPem, caPem: got.caPem };
}

/**
 * Looks for a new certificate every rotationCheckMs and hands it to `onChange` (serve it, and
 * publish a new CA). Returns the stop function.
 */
export function watchServingTls(client: KubeClient, cfg: ServingCertOptions, log: Logger, current: ServingTls, onChange: (next: ServingTls, prev: ServingTls) => Promise<void>): () => void {
  let tls = current;
  const timer = setInterval(() => {
    void (async () => {
      try {
        const next = await loadServingTls(client, cfg, log);
        if (next.certPem === tls.certPem) return;
        await onChange(next, tls);
        tls = next;
        log.info('webhook serving certificate reloaded');
      } catch (e) {
        log.warn({ err: String(e) }, 'certificate check failed');
      }
    })();
  }, rotationCheckMs(cfg));
  timer.unref();
  return () => clearInterval(timer);
}
