// Every operator metric in one place. Label values come from closed sets: reconcile
// outcomes, admission decisions and the webhook's reason codes.
import { Registry } from '../api/metrics-registry.js';
import { registerProcessMetrics } from '../api/process-metrics.js';

export function createMetrics() {
  const registry = new Registry();
  registerProcessMetrics(registry, 'idempo_operator_process_', 'operator');
  const reconciles = registry.counter({
    name: 'idempo_operator_reconciles_total',
    help: 'Policy reconciles by result (reconciled, invalid, conflict, gone, error).',
    labelNames: ['result'] as const,
  });
  const reconcileDuration = registry.histogram({
    name: 'idempo_operator_reconcile_duration_seconds',
    help: 'Time to reconcile one policy.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const admissions = registry.counter({
    name: 'idempo_operator_admissions_total',
    help: 'Pod admissions seen by the mutating webhook, by decision (injected, skipped) and reason code.',
    labelNames: ['decision', 'reason'] as const,
  });
  const webhookLatency = registry.histogram({
    name: 'idempo_operator_webhook_latency_seconds',
    help: 'Time to answer one admission review.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  const leader = registry.gauge({
    name: 'idempo_operator_leader',
    help: '1 while this replica holds the leader lease and runs the reconcilers.',
  });
  leader.set(0);
  return {
    registry,
    reconciles,
    reconcileDuration,
    admissions,
    webhookLatency,
    leader,
    onReconcile(result: string, seconds: number): void {
      reconciles.inc({ result });
      reconcileDuration.observe(seconds);
    },
    onDecision(reason: string, injected: boolean, seconds: number): void {
      admissions.inc({ decision: injected ? 'injected' : 'skipped', reason });
      webhookLatency.observe(seconds);
    },
  };
}
