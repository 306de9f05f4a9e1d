// What runs on the leader only: the policy controller, started when this replica takes the
// Lease and stopped when it loses it (or at once, without --leader-elect).
import type { Logger } from 'pino';
import type { KubeClient } from '../kube/client.js';
import type { Reflector } from '../kube/reflector.js';
import { PolicyController, type ControllerOptions } from '../reconcile/controller.js';
import type { PolicyObject } from '../reconcile/policy.js';
import { LeaderElector } from './lease.js';

export interface Leadership {
  /** The running controller, if this replica leads. */
  controller(): PolicyController | undefined;
  stop(): Promise<void>;
}

export function runLeadership(o: {
  client: KubeClient;
  cfg: { leaderElect: boolean; namespace: string; leaseName: string; leaseDurationMs: number; leaseRenewMs: number; resyncMs: number };
  identity: string;
  policies: Reflector<PolicyObject>;
  metrics: { leader: { set(v: number): void }; onReconcile: NonNullable<ControllerOptions['onReconcile']> };
  log: Logger;
}): Leadership {
  const leading = new AbortController();
  let controller: PolicyController | undefined;
  let elector: LeaderElector | undefined;
  const start = () => {
    o.metrics.leader.set(1);
    controller = new PolicyController({
      client: o.client,
      policies: o.policies,
      log: o.log.child({ module: 'reconcile' }),
      resyncMs: o.cfg.resyncMs,
      // Writes stop the moment the Lease may have passed to another replica.
      mayWrite: () => !elector || elector.holdsValidLease(),
      onReconcile: (r, s) => o.metrics.onReconcile(r, s),
    });
    controller.start(leading.signal).catch((e: unknown) => o.log.error({ err: String(e) }, 'controller failed to start'));
  };
  const stopController = async () => {
    o.metrics.leader.set(0);
    const c = controller;
    controller = undefined;
    await c?.stop();
  };
  if (o.cfg.leaderElect) {
    elector = new LeaderElector({
      client: o.client,
      namespace: o.cfg.namespace,
      name: o.cfg.leaseName,
      identity: o.identity,
      leaseDurationMs: o.cfg.leaseDurationMs,
      retryPeriodMs: o.cfg.leaseRenewMs,
      log: o.log,
      onStartedLeading: start,
      onStoppedLeading: () => void stopController(),
    });
    elector.start();
  } else start();
  return {
    controller: () => controller,
    stop: async () => {
      leading.abort();
      await stopController();
      await elector?.stop();
    },
  };
}
