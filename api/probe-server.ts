// The probes-and-metrics listener of both binaries: GET /metrics (Prometheus text), /healthz
// (the process is alive) and /readyz (whatever the binary calls ready, with the reason as text).
import { createRequire } from 'node:module';
import type * as Http from 'node:http';
import type { HostPort } from './flags.js';

// node:http through require, not `import`: an ES import of a built-in module reads every export
// to build its namespace, and node:http's lazy exports (WebSocket, EventSource...) then load
// undici, TLS, HTTP/2, zlib and worker_threads — ~12 MiB of resident memory for nothing.
const http = createRequire(import.meta.url)('node:http') as typeof Http;

/** prom-client's Registry and the sidecar's own both fit. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface Readiness {
  ready(): { ok: boolean; reason: string };
}

export function startProbeServer(at: HostPort, registry: MetricsSource, health: Readiness): Promise<Http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const r = health.ready();
      res.writeHead(r.ok ? 200 : 503, { 'content-type': 'text/plain' }).end(`${r.reason}\n`);
    } else {
      res.writeHead(404).end();
    }
  });
  server.keepAliveTimeout = 5_000;
  return listen(server, at);
}

/** Binds a server; rejects with the bind error (port in use) instead of emitting it. */
export function listen<S extends Http.Server>(server: S, at: HostPort): Promise<S> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: at.host, port: at.port }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** Stops accepting and drops kept-alive connections (scrapers would hold close() open). */
export function closeServer(server: Http.Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}
