// The probes-and-metrics listener of both binaries: GET /metrics (Prometheus text), /healthz
// (the process is alive) and /readyz (whatever the binary calls ready, with the reason as text).
import { requireCjs } from './require-cjs.js';
import type * as Http from 'node:http';
import type { HostPort } from './flags.js';

// node:http through require, not `import`: an ES import of a built-in module reads every export
// to build its namespace, and node:http's lazy exports (WebSocket, EventSource...) then load
// undici, TLS, HTTP/2, zlib and worker_threads — ~12 MiB of resident memory for nothing.
const http = requireCjs('node:http') as typeof Http;

/** What /metrics serves (api/metrics-registry.ts's Registry). */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface Readiness {
  ready(): { ok: boolean; reason: string };
}

export function startProbeServer(at: HostPort, registry: MetricsSource, health: Readiness): Promise<Http.Server> {
  const server = http.createServer((req, res) => {
    res.sendDate = false;
    res.setHeader('date', httpDate(new Date()));
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

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number): string => String(n).padStart(2, '0');

/**
 * The Date header (IMF-fixdate, RFC 9110), from the date's UTC fields. Node's own uses
 * Date#toUTCString, for which V8 looks up the local time zone's display name: ICU's time zone
 * data, ~0.9 MiB of resident memory from the first probe on, for a string that never shows it.
 */
export function httpDate(d: Date): string {
  return `${DAYS[d.getUTCDay()]}, ${two(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} GMT`;
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
