// List-then-watch into an in-memory cache, with the restart rules we want to own:
// any stream error restarts the watch from the last seen resourceVersion after a jittered
// backoff; 410 Gone (compacted history) relists; the server closing the stream just re-watches.
import type { Logger } from 'pino';
import { backoffDelay } from '../../api/backoff.js';
import { isGone, type KubeClient, type KubeObject, type List, type WatchEvent } from './client.js';

export type ReflectorHandlers<T> = {
  /** An object appeared or changed (old is undefined on first sight, including after a relist). */
  onUpsert?(obj: T, old: T | undefined): void;
  onDelete?(obj: T): void;
};

export type ReflectorOptions<T extends KubeObject> = {
  client: KubeClient;
  /** Collection path, e.g. /api/v1/pods or /apis/idempo.dev/v1alpha1/idempotentproducerpolicies. */
  path: string;
  labelSelector?: string;
  log: Logger;
  handlers?: ReflectorHandlers<T>;
  /** Keep only what is needed, so a cluster-wide pod cache stays small. */
  transform?(obj: T): T;
  backoff?: { initialMs: number; maxMs: number };
};

export const objectKey = (o: KubeObject): string =>
  o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : (o.metadata?.name ?? '');

export class Reflector<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private resourceVersion = '';
  private ac = new AbortController();
  private running: Promise<void> | undefined;
  private syncedOnce = false;
  private readonly syncWaiters: Array<() => void> = [];
  private failures = 0;

  constructor(private readonly o: ReflectorOptions<T>) {}

  get synced(): boolean {
    return this.syncedOnce;
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(namespace?: string): T[] {
    const out: T[] = [];
    for (const v of this.cache.values()) if (namespace === undefined || v.metadata?.namespace === namespace) out.push(v);
    return out;
  }

  start(): void {
    if (this.running) return;
    this.ac = new AbortController();
    this.running = this.loop(this.ac.signal);
  }

  async stop(): Promise<void> {
    this.ac.abort();
    await this.running;
    this.running = undefined;
  }

  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.syncedOnce) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => resolve(this.syncedOnce);
      this.syncWaiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private async loop(signal: AbortSignal): Promise<void> {
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
        }
        await this.o.client.watch<T>(
          this.o.path,
          { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, labelSelector: this.o.labelSelector, timeoutSeconds: 240 + Math.floor(Math.random() * 60) },
          (ev) => this.apply(ev),
          signal,
        );
        this.failures = 0;
      } catch (e) {
        if (signal.aborted) break;
        if (isGone(e)) {
          this.o.log.info({ path: this.o.path }, 'watch history expired (410 Gone), relisting');
          needList = true;
          continue;
        }
        this.failures++;
        const delay = this.delay();
        this.o.log.warn({ path: this.o.path, err: String(e), retryInMs: delay }, 'list/watch failed, retrying');
        await sleep(delay, signal);
      }
    }
  }

  private delay(): number {
    // Jitter so replicas that lost the API server together do not come back in lockstep.
    return backoffDelay({ ...(this.o.backoff ?? { initialMs: 200, maxMs: 30_000 }), jitter: true }, this.failures);
  }

  private async relist(): Promise<void> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.o.client.get<List<T>>(this.o.path, { query: { limit: 500, continue: cont, labelSelector: this.o.labelSelector } });
      items.push(...page.items);
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion ?? '';
    } while (cont);
    const seen = new Set<string>();
    for (const raw of items) {
      const obj = this.shape(raw);
      const key = objectKey(obj);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old || old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.o.handlers?.onUpsert?.(obj, old);
    }
    // Objects deleted while we were not watching.
    for (const [key, obj] of [...this.cache]) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.o.handlers?.onDelete?.(obj);
      }
    }
    this.resourceVersion = rv;
    if (!this.syncedOnce) {
      this.syncedOnce = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private shape(obj: T): T {
    return this.o.transform ? this.o.transform(obj) : obj;
  }

  private apply(ev: WatchEvent<T>): void {
    const rv = ev.object.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (ev.type === 'BOOKMARK') return;
    const obj = this.shape(ev.object);
    const key = objectKey(obj);
    if (ev.type === 'DELETED') {
      const old = this.cache.get(key);
      this.cache.delete(key);
      this.o.handlers?.onDelete?.(old ?? obj);
      return;
    }
    const old = this.cache.get(key);
    this.cache.set(key, obj);
    this.o.handlers?.onUpsert?.(obj, old);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
