// A small Kubernetes REST client over node:https: typed errors, JSON bodies, and a
// line-delimited watch stream we control (restart, 410 handling) instead of client-node's Informer.
import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';

export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: OwnerReference[];
    deletionTimestamp?: string;
  };
  [k: string]: unknown;
};

export type OwnerReference = {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
};

export type List<T> = { metadata?: { resourceVersion?: string; continue?: string }; items: T[] };

export type WatchEvent<T> = { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'; object: T };

/** An API answer other than 2xx; `code` is the HTTP status, `reason` the Status reason (NotFound, Conflict, Gone...). */
export class KubeError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'KubeError';
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof KubeError && e.code === 404;
export const isConflict = (e: unknown): boolean => e instanceof KubeError && e.code === 409;
export const isGone = (e: unknown): boolean => e instanceof KubeError && e.code === 410;

export type RequestOptions = {
  query?: Record<string, string | number | boolean | undefined>;
  contentType?: string;
  /** Accept header (default application/json); e.g. PartialObjectMetadata to read metadata only. */
  accept?: string;
  timeoutMs?: number;
};

export class KubeClient {
  private readonly server: URL;

  constructor(readonly kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  private async open(method: string, path: string, opts: RequestOptions & { signal?: AbortSignal }, body?: string): Promise<http.IncomingMessage> {
    const url = new URL(this.server.pathname.replace(/\/$/, '') + path, this.server);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const o: https.RequestOptions = { method, headers: { Accept: opts.accept ?? 'application/json' } };
    // Re-applied per request so rotated service-account tokens and exec credentials are picked up.
    await this.kc.applyToHTTPSOptions(o);
    const headers = (o.headers ?? {}) as Record<string, string>;
    if (body !== undefined) {
      headers['Content-Type'] = opts.contentType ?? 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(body));
    }
    o.headers = headers;
    o.agent = false;
    if (opts.signal) o.signal = opts.signal;
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, o, resolve);
      req.on('error', reject);
      if (opts.timeoutMs) req.setTimeout(opts.timeoutMs, () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.end(body);
    });
  }

  async request<T = KubeObject>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    const res = await this.open(method, path, { timeoutMs: 30_000, ...opts }, body === undefined ? undefined : JSON.stringify(body));
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw toError(status, text, `${method} ${path}`);
    return (text ? JSON.parse(text) : {}) as T;
  }

  get<T = KubeObject>(path: string, opts?: RequestOptions): Promise<T> {
    return this.request<T>('GET', path, undefined, opts);
  }
  create<T = KubeObject>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }
  replace<T = KubeObject>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }
  mergePatch<T = KubeObject>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body, { contentType: 'application/merge-patch+json' });
  }
  delete<T = KubeObject>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  /**
   * Streams watch events until the server closes the stream (resolves), the signal aborts
   * (resolves) or something fails (rejects; an in-stream ERROR event with 410 rejects with a Gone KubeError).
   */
  async watch<T>(path: string, query: RequestOptions['query'], onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const res = await this.open('GET', path, { query: { ...query, watch: true }, signal });
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      throw toError(status, Buffer.concat(chunks).toString('utf8'), `WATCH ${path}`);
    }
    const lines = createInterface({ input: res, crlfDelay: Infinity });
    // readline ends on the stream's 'end' only; a destroyed stream must close it explicitly.
    const abort = () => {
      lines.close();
      res.destroy();
    };
    signal.addEventListener('abort', abort, { once: true });
    res.once('close', () => lines.close());
    // The server ends every watch within timeoutSeconds (and sends bookmarks meanwhile), so a
    // stream silent for longer sits on a dead connection: drop it and let the caller re-watch.
    const idleMs = ((Number(query?.timeoutSeconds) || 300) + 60) * 1000;
    res.socket?.setTimeout(idleMs, () => res.destroy());
    try {
      for await (const line of lines) {
        if (!line.trim()) continue;
        const ev = JSON.parse(line) as WatchEvent<T>;
        if (ev.type === 'ERROR') {
          const st = ev.object as unknown as { code?: number; reason?: string; message?: string };
          throw new KubeError(st.code ?? 500, st.reason ?? 'Unknown', `WATCH ${path}: ${st.message ?? 'error event'}`);
        }
        onEvent(ev);
      }
    } catch (e) {
      if (signal.aborted) return;
      throw e;
    } finally {
      signal.removeEventListener('abort', abort);
      res.destroy();
    }
  }
}

function toError(status: number, text: string, what: string): KubeError {
  let reason = 'Unknown';
  let message = text.slice(0, 500);
  try {
    const st = JSON.parse(text) as { reason?: string; message?: string };
    reason = st.reason ?? reason;
    message = st.message ?? message;
  } catch {
    /* not a Status object */
  }
  return new KubeError(status, reason, `${what}: ${status} ${reason}: ${message}`);
}

/** Path of a namespaced or cluster-scoped collection / object. `group` '' is the core API. */
export function resourcePath(group: string, version: string, plural: string, namespace?: string, name?: string, sub?: string): string {
  let p = group ? `/apis/${group}/${version}` : `/api/${version}`;
  if (namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (sub) p += `/${sub}`;
  return p;
}
