// The webhook's HTTPS listener: POST MUTATE_PATH (/mutate-pods) to the admission handler, /healthz, and a
// serving certificate that can be swapped while connections stay up.
import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import type { HostPort } from '../../api/flags.js';
import { listen } from '../../api/probe-server.js';
import type { ServingTls } from '../certs/serving.js';
import { MUTATE_PATH } from './handler.js';

export interface WebhookServer {
  server: https.Server;
  /** Serve a new certificate from the next TLS handshake on. */
  setTls(tls: ServingTls): void;
}

export async function startWebhookServer(at: HostPort, tls: ServingTls, admit: (req: http.IncomingMessage, res: http.ServerResponse) => void, log: Logger): Promise<WebhookServer> {
  const server = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === MUTATE_PATH && req.method === 'POST') admit(req, res);
    else if (path === '/healthz') res.writeHead(200).end('ok\n');
    else res.writeHead(404).end();
  });
  await listen(server, at);
  const a = server.address();
  log.info({ listen: typeof a === 'object' && a ? `${a.address}:${a.port}` : a }, 'webhook server listening');
  return { server, setTls: (next) => server.setSecureContext({ cert: next.certPem, key: next.keyPem }) };
}
