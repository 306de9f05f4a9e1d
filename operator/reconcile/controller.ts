// The policy controller: caches (policies, pods, owned ConfigMaps) feed one work queue keyed
// namespace/name; a few workers run reconcilePolicy; failures retry with per-key backoff;
// everything is requeued periodically (resync) to repair drift nobody told us about.
import type { Logger } from 'pino';
import { ANNOTATION_INJECTED, GROUP, LABEL_MANAGED_BY, MANAGED_BY, PLURAL, VERSION } from '../../api/constants.js';
import { resourcePath, type KubeClient, type KubeObject } from '../kube/client.js';
import { objectKey, Reflector } from '../kube/reflector.js';
import { LABEL_CONFIG_POLICY, reconcilePolicy, type PolicyObject, type ReconcileOutcome } from './policy.js';
import { WorkQueue } from './queue.js';

export type PodLite = KubeObject & { injected?: string; terminal?: boolean };

export type ControllerOptions = {
  client: KubeClient;
  /** Shared with the webhook, which reads policies from the same cache. */
  policies: Reflector<PolicyObject>;
  log: Logger;
  workers?: number;
  resyncMs?: number;
  /** Whether writes are allowed right now (leader election); when false, work waits. */
  mayWrite?(): boolean;
  onReconcile?(result: ReconcileOutcome | 'error', seconds: number): void;
};

export class PolicyController {
  private readonly queue = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 60_000 });
  private readonly pods: Reflector<PodLite>;
  private readonly configMaps: Reflector<KubeObject>;
  private readonly injected = new Map<string, number>(); // "ns/policy" -> live injected pods
  private active = false;
  private workers: Promise<void>[] = [];
  private resync: NodeJS.Timeout | undefined;

  constructor(private readonly o: ControllerOptions) {
    this.pods = new Reflector<PodLite>({
      client: o.client,
      path: resourcePath('', 'v1', 'pods'),
      log: o.log,
      // Only the fields the count needs: a cluster-wide pod cache must stay small.
      transform: (p) => {
        const phase = (p as { status?: { phase?: string } }).status?.phase;
        return {
          metadata: { name: p.metadata?.name, namespace: p.metadata?.namespace, resourceVersion: p.metadata?.resourceVersion },
          injected: p.metadata?.annotations?.[ANNOTATION_INJECTED],
          terminal: phase === 'Succeeded' || phase === 'Failed',
        };
      },
      handlers: {
        onUpsert: (p, old) => {
          if (old) this.count(old, -1);
          this.count(p, +1);
        },
        onDelete: (p) => this.count(p, -1),
      },
    });
    this.configMaps = new Reflector<KubeObject>({
      client: o.client,
      path: resourcePath('', 'v1', 'configmaps'),
      labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY}`,
      log: o.log,
      // Someone edited or deleted a rendered ConfigMap: put it back.
      handlers: { onUpsert: (cm) => this.enqueueOwner(cm), onDelete: (cm) => this.enqueueOwner(cm) },
    });
  }

  /** Called by the policy reflector's handlers (it runs on every replica; we only listen while leading). */
  policyChanged(p: PolicyObject, old: PolicyObject | undefined): void {
    if (!this.active) return;
    // Status-only updates (ours) bump resourceVersion but not generation; skip them unless
    // selectors of neighbours may have changed, which needs a spec change anyway.
    if (old && old.metadata?.generation === p.metadata?.generation && old.metadata?.deletionTimestamp === p.metadata?.deletionTimestamp) return;
    this.enqueueNamespace(p.metadata?.namespace ?? '');
  }

  policyDeleted(p: PolicyObject): void {
    if (!this.active) return;
    this.enqueueNamespace(p.metadata?.namespace ?? '');
  }

  get synced(): boolean {
    return this.pods.synced && this.configMaps.synced;
  }

  async start(signal: AbortSignal): Promise<void> {
    this.active = true;
    this.pods.start();
    this.configMaps.start();
    await Promise.all([this.o.policies.waitForSync(signal), this.pods.waitForSync(signal), this.configMaps.waitForSync(signal)]);
    if (signal.aborted || !this.active) return;
    for (const p of this.o.policies.list()) this.queue.add(objectKey(p));
    const n = this.o.workers ?? 2;
    for (let i = 0; i < n; i++) this.workers.push(this.work());
    const resyncMs = this.o.resyncMs ?? 5 * 60_000;
    this.resync = setInterval(() => {
      for (const p of this.o.policies.list()) this.queue.add(objectKey(p));
    }, resyncMs);
    this.resync.unref();
    this.o.log.info({ workers: n, resyncMs }, 'policy controller started');
  }

  async stop(): Promise<void> {
    if (!this.active) return;
    this.active = false;
    clearInterval(this.resync);
    this.queue.shutdown();
    await Promise.all([this.pods.stop(), this.configMaps.stop(), ...this.workers]);
    this.workers = [];
  }

  private enqueueNamespace(ns: string): void {
    // Conflicts are a property of the namespace: a change to one policy can flip its neighbours.
    for (const p of this.o.policies.list(ns)) this.queue.add(objectKey(p));
  }

  private enqueueOwner(cm: KubeObject): void {
    const policy = cm.metadata?.labels?.[LABEL_CONFIG_POLICY];
    if (policy && cm.metadata?.namespace && this.o.policies.get(`${cm.metadata.namespace}/${policy}`)) this.queue.add(`${cm.metadata.namespace}/${policy}`);
  }

  private count(p: PodLite, delta: number): void {
    if (!p.injected || p.terminal) return;
    const key = `${p.metadata?.namespace}/${p.injected}`;
    const n = (this.injected.get(key) ?? 0) + delta;
    if (n <= 0) this.injected.delete(key);
    else this.injected.set(key, n);
    if (this.active && this.o.policies.get(key)) this.queue.add(key);
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      if (this.o.mayWrite && !this.o.mayWrite()) {
        // Not sure we still lead: put the key back; the elector stops us or renews shortly.
        this.queue.done(key);
        this.queue.addAfter(key, 500);
        continue;
      }
      const t0 = performance.now();
      try {
        const result = await reconcilePolicy(
          {
            client: this.o.client,
            policies: { get: (k) => this.o.policies.get(k), list: (ns) => this.o.policies.list(ns) },
            injectedPods: (ns, name) => this.injected.get(`${ns}/${name}`) ?? 0,
            log: this.o.log,
          },
          key,
        );
        this.queue.forget(key);
        this.o.onReconcile?.(result, (performance.now() - t0) / 1000);
      } catch (e) {
        const retryInMs = this.queue.addRateLimited(key);
        this.o.onReconcile?.('error', (performance.now() - t0) / 1000);
        this.o.log.warn({ policy: key, err: String(e), retryInMs }, 'reconcile failed');
      } finally {
        this.queue.done(key);
      }
    }
  }
}

export function policyReflector(client: KubeClient, log: Logger, handlers: { onUpsert(p: PolicyObject, old?: PolicyObject): void; onDelete(p: PolicyObject): void }): Reflector<PolicyObject> {
  return new Reflector<PolicyObject>({ client, path: resourcePath(GROUP, VERSION, PLURAL), log, handlers });
}
