// Leader election on a coordination.k8s.io/v1 Lease, following client-go's rules:
// a candidate takes the Lease when it has no holder or when the holder has not renewed it
// for leaseDuration *as observed on our own clock* (so clock skew between replicas cannot
// steal a live lease); every write carries the resourceVersion read, so of two candidates
// racing for an expired Lease exactly one wins (the other gets 409 Conflict).
import type { Logger } from 'pino';
import { isConflict, isNotFound, resourcePath, type KubeClient } from '../kube/client.js';
import { sleep } from '../kube/reflector.js';

type LeaseSpec = {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
};
type Lease = { apiVersion: string; kind: string; metadata: { name: string; namespace: string; resourceVersion?: string }; spec: LeaseSpec };

export type LeaderElectorOptions = {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  /** How often the leader renews and candidates retry (default leaseDuration / 7.5, i.e. 2 s of 15 s). */
  retryPeriodMs?: number;
  /** The leader gives up if it could not renew for this long (default 2/3 of leaseDuration), before anyone else may take over. */
  renewDeadlineMs?: number;
  log: Logger;
  onStartedLeading(): void;
  onStoppedLeading(): void;
};

/** MicroTime: RFC 3339 with microseconds. */
const microTime = (ms: number): string => new Date(ms).toISOString().replace(/Z$/, '000Z');

export class LeaderElector {
  private leading = false;
  private ac = new AbortController();
  private loop: Promise<void> | undefined;
  private lease: Lease | undefined;
  // What we last saw of the Lease and when (our clock), to judge expiry without trusting theirs.
  private observed: { key: string; at: number } | undefined;
  private lastRenew = 0;

  constructor(private readonly o: LeaderElectorOptions) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * True only while our last successful renewal is recent enough that nobody else can have
   * taken the Lease. Checked before each reconcile: after a long pause (GC, SIGSTOP, a
   * frozen VM) queued work must not run before the election loop notices the loss.
   */
  holdsValidLease(now = Date.now()): boolean {
    return this.leading && now - this.lastRenew < this.renewDeadlineMs;
  }

  private get retryMs(): number {
    return this.o.retryPeriodMs ?? Math.max(200, Math.round(this.o.leaseDurationMs / 7.5));
  }

  private get renewDeadlineMs(): number {
    return this.o.renewDeadlineMs ?? Math.round((this.o.leaseDurationMs * 2) / 3);
  }

  private get path(): string {
    return resourcePath('coordination.k8s.io', 'v1', 'leases', this.o.namespace, this.o.name);
  }

  start(): void {
    if (this.loop) return;
    this.ac = new AbortController();
    this.loop = this.run(this.ac.signal);
  }

  /** Stops campaigning; a leader hands the Lease back (empty holder) so a standby takes over at once. */
  async stop(): Promise<void> {
    this.ac.abort();
    await this.loop;
    this.loop = undefined;
    if (this.leading) {
      await this.release().catch((e: unknown) => this.o.log.warn({ err: String(e) }, 'could not release lease'));
      this.setLeading(false);
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (e) {
        this.o.log.warn({ err: String(e) }, 'lease update failed');
      }
      if (signal.aborted) break;
      if (ok) {
        this.lastRenew = Date.now();
        this.setLeading(true);
      } else if (this.leading && Date.now() - this.lastRenew > this.renewDeadlineMs) {
        this.o.log.error({ lease: this.o.name }, 'lost leadership: could not renew the lease in time');
        this.setLeading(false);
      } else if (this.leading && this.lease && this.lease.spec.holderIdentity !== this.o.identity) {
        this.setLeading(false);
      }
      // A little jitter so candidates do not hit the API server in lockstep.
      await sleep(this.leading ? this.retryMs : this.retryMs * (1 + Math.random() * 0.2), signal);
    }
  }

  private setLeading(v: boolean): void {
    if (v === this.leading) return;
    this.leading = v;
    this.o.log.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity, leading: v }, v ? 'started leading' : 'stopped leading');
    if (v) this.o.onStartedLeading();
    else this.o.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = Date.now();
    const durationS = Math.max(1, Math.round(this.o.leaseDurationMs / 1000));
    let current: Lease | undefined;
    try {
      current = await this.o.client.get<Lease>(this.path, { timeoutMs: this.retryMs * 2 });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    if (!current) {
      const lease: Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.o.name, namespace: this.o.namespace },
        spec: { holderIdentity: this.o.identity, leaseDurationSeconds: durationS, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
      };
      try {
        this.lease = await this.o.client.create<Lease>(resourcePath('coordination.k8s.io', 'v1', 'leases', this.o.namespace), lease);
        return true;
      } catch (e) {
        if (isConflict(e)) return false; // someone created it first (409 AlreadyExists)
        throw e;
      }
    }
    this.lease = current;
    const spec = current.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const key = `${holder}|${spec.renewTime ?? ''}|${current.metadata.resourceVersion}`;
    if (this.observed?.key !== key) this.observed = { key, at: now };
    const theirDurationMs = (spec.leaseDurationSeconds ?? durationS) * 1000;
    const mine = holder === this.o.identity;
    if (holder && !mine && now - this.observed.at < theirDurationMs) return false;

    const next: Lease = {
      ...current,
      spec: {
        ...spec,
        holderIdentity: this.o.identity,
        leaseDurationSeconds: durationS,
        renewTime: microTime(now),
        acquireTime: mine ? spec.acquireTime : microTime(now),
        leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
      },
    };
    try {
      this.lease = await this.o.client.replace<Lease>(this.path, next);
      return true;
    } catch (e) {
      if (isConflict(e)) return false;
      throw e;
    }
  }

  private async release(): Promise<void> {
    const current = await this.o.client.get<Lease>(this.path);
    if (current.spec?.holderIdentity !== this.o.identity) return;
    await this.o.client.replace(this.path, {
      ...current,
      spec: { ...current.spec, holderIdentity: '', acquireTime: null, leaseDurationSeconds: 1, renewTime: microTime(Date.now()) },
    });
    this.o.log.info({ lease: `${this.o.namespace}/${this.o.name}` }, 'lease released');
  }
}
