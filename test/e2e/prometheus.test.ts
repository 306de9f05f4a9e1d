// Monitoring against the real thing (DESIGN.md "Metrics", "Real parts in tests"): promtool
// checks and unit-tests the alert rules; a real Prometheus scrapes a real sidecar (upgrade mode,
// real Kafka) that saw written batches, application-level duplicates and refused gaps, and a
// real operator (real kube-apiserver) that reconciled a policy and answered admissions; every
// query of the Grafana dashboard is then evaluated against it, and the alert rules are loaded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { startPrometheus, PROMTOOL_BIN, type Prometheus } from '../support/prometheus.js';
import { kafkajsProduce } from '../support/clients/kafkajs.js';
import { RawConnection } from '../support/raw-kafka.js';
import { repoRoot } from '../support/clients/java.js';
import { startKube, type KubeEnv } from '../support/kube.js';
import { KubeClient, resourcePath, type KubeObject } from '../../operator/kube/client.js';
import { OPERATOR_NS, ensureNamespace, installCrds, startOperator, type OperatorProcess } from './operator-harness.js';
import { waitFor } from '../support/poll.js';
import { runProcess } from '../support/clients/run.js';
import { encodeBatch, initProducerId, produceFrame, sendFrame } from './wire.js';

const ALERTS = path.join(repoRoot, 'charts/idempo/files/alerts.yaml');
const ALERT_TESTS = path.join(repoRoot, 'test/e2e/testdata/alerts.test.yaml');
const DASHBOARD = path.join(repoRoot, 'dashboards/idempo.json');
// Target labels a PodMonitor would add in a cluster; the dashboard and alerts filter on them.
const NAMESPACE = 'shop';
const POD = 'payments-0';
const TOPIC = 'prom-orders';
const OPERATOR_POD = 'idempo-operator-0';

// ---------------------------------------------------------------------------------------------
// promtool
// ---------------------------------------------------------------------------------------------

describe('promtool', () => {
  it('check rules: the chart alert file is valid', async () => {
    const r = await runProcess(PROMTOOL_BIN, ['check', 'rules', ALERTS]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('the rules read only metrics the sidecar or the operator define', () => {
    const doc = parseYaml(readFileSync(ALERTS, 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string; record?: string; expr: string }> }> };
    const defined = definedMetrics();
    const unknown = doc.groups.flatMap((g) => g.rules.flatMap((r) => metricsOf(r.expr).filter((m) => !defined.has(m)).map((m) => `${r.alert ?? r.record}: ${m}`)));
    expect(unknown).toEqual([]);
  });

  it('test rules: IdempoOutOfSequence and IdempoDuplicatesRising fire when their counters rise', async () => {
    const r = await runProcess(PROMTOOL_BIN, ['test', 'rules', ALERT_TESTS]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('SUCCESS');
  });
});

// ---------------------------------------------------------------------------------------------
// Raw frames for the one thing kafkajs cannot do: an idempotent batch with a sequence gap.
// ---------------------------------------------------------------------------------------------

/** An uncompressed RecordBatch v2 (one record per value) with the producer's stamp. */
const batch = (values: string[], producerId: bigint, epoch: number, baseSequence: number): Buffer =>
  encodeBatch(values.map((value) => ({ value })), { producerId, epoch, baseSequence });

/** Sends one Produce (acks=all) for partition 0 and returns the partition's error code. */
const produceRaw = async (c: RawConnection, topic: string, records: Buffer): Promise<number> => (await sendFrame(c, produceFrame(topic, 0, records))).errorCode;

// ---------------------------------------------------------------------------------------------
// Grafana dashboard: every query, with the variables Grafana would fill in.
// ---------------------------------------------------------------------------------------------

interface PanelQuery {
  panel: string;
  legend?: string;
  expr: string;
}

interface Panel {
  title?: string;
  panels?: Panel[];
  targets?: Array<{ expr?: string; legendFormat?: string }>;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; templating?: { list: Array<{ name: string; type: string; query?: unknown; definition?: string }> } };

function panelQueries(): PanelQuery[] {
  const out: PanelQuery[] = [];
  const walk = (ps: Panel[]): void => {
    for (const p of ps) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ panel: p.title ?? '(untitled)', legend: t.legendFormat, expr: t.expr });
      walk(p.panels ?? []); // collapsed rows keep their panels inside
    }
  };
  walk(dashboard.panels);
  return out;
}

// What Grafana substitutes for its built-ins at a 1m-ish zoom with a 1s scrape interval.
const BUILTINS: Record<string, string> = {
  __rate_interval: '1m',
  __interval: '15s',
  __interval_ms: '15000',
  __range: '5m',
  __range_s: '300',
  __range_ms: '300000',
};

/** The dashboard's own variables: each one's value from `values`, else its "All" value `.*`. */
function dashboardVars(values: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of dashboard.templating?.list ?? []) out[v.name] = values[v.name] ?? '.*';
  return out;
}

/**
 * Replaces $var, ${var} and ${var:format}. A variable the dashboard does not define is an error:
 * Grafana would send it literally and the panel would break or match nothing.
 */
function substitute(expr: string, vars: Record<string, string>): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    const v = vars[name] ?? BUILTINS[name];
    if (v === undefined) throw new Error(`variable $${name} is not defined by the dashboard: ${expr}`);
    return v;
  });
}

/** Metric names a query reads (identifiers followed by a selector or range). */
function metricsOf(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b(idempo_[a-zA-Z0-9_:]+)\s*[{[]/g)].map((m) => m[1]))];
}

/** Every metric the sidecar and the operator define (`name: '...'`), histogram series included. */
function definedMetrics(): Set<string> {
  const out = new Set<string>();
  for (const f of ['sidecar/metrics/metrics.ts', 'operator/metrics.ts']) {
    for (const m of readFileSync(path.join(repoRoot, f), 'utf8').matchAll(/name:\s*'(idempo_[a-z0-9_]+)'/g)) {
      for (const suffix of ['', '_bucket', '_sum', '_count']) out.add(m[1] + suffix);
    }
  }
  return out;
}

function exposes(text: string, name: string): boolean {
  return text.split('\n').some((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

// ---------------------------------------------------------------------------------------------
// Real Kafka, a real sidecar, a real Prometheus
// ---------------------------------------------------------------------------------------------

describe('Prometheus scraping a sidecar and the operator', () => {
  let kafka: KafkaCluster | undefined;
  let sidecar: Sidecar | undefined;
  let kube: KubeEnv | undefined;
  let op: OperatorProcess | undefined;
  let prom: Prometheus | undefined;
  let raw: RawConnection | undefined;
  let producer: { producerId: bigint; epoch: number };
  let nextSeq = 0;

  beforeAll(async () => {
    // Kafka + sidecar and kube-apiserver + operator start side by side; allSettled so that a
    // failure on one side still leaves the other assigned (and stopped by afterAll).
    const started = await Promise.allSettled([
      (async () => {
        kafka = await startKafka({ brokers: 1 });
        await kafka.createTopic(TOPIC, 1);
        // Upgrade mode with content dedup: the traffic includes an application sending the same
        // record twice, which the default (exact) rightly writes twice (different timestamps).
        const dir = mkdtempSync(path.join(os.tmpdir(), 'idempo-prom-'));
        const config = path.join(dir, 'policy.json');
        writeFileSync(config, JSON.stringify({ selector: {}, dedup: { strategy: 'content', window: '5m' } }));
        sidecar = await startSidecar({ upstream: kafka.bootstrap, mode: 'upgrade', config });
      })(),
      (async () => {
        kube = await startKube();
        await installCrds(kube);
        op = await startOperator(kube, { name: OPERATOR_POD, extraArgs: ['--leader-elect', '--lease-duration', '4s', '--lease-renew', '1s'] });
        await op.waitReady();
      })(),
    ]);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    prom = await startPrometheus({
      targets: [
        { job: 'idempo-sidecar', url: sidecar!.metricsUrl, labels: { namespace: NAMESPACE, pod: POD, policy: 'payments' } },
        { job: 'idempo-operator', url: `http://127.0.0.1:${op!.metricsPort}`, labels: { namespace: OPERATOR_NS, pod: OPERATOR_POD } },
      ],
      ruleFiles: [ALERTS],
    });
    raw = await RawConnection.connect(sidecar!.bootstrap);
    producer = await initProducerId(sidecar!.bootstrap); // through the sidecar, as a client would
  });

  afterAll(async () => {
    // Every stop runs even when an earlier one fails: nothing is left behind.
    const steps = [() => raw?.close(), () => prom?.stop(), () => sidecar?.stop(), () => kafka?.stop(), () => op?.stop(), () => kube?.stop()];
    const errors: unknown[] = [];
    for (const step of steps) {
      try {
        await step();
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length) throw errors[0];
  });

  /**
   * Operator work: a policy reconciled, a pod injected by the webhook the API server calls, one
   * skipped (no policy selects it).
   */
  async function operatorWork(): Promise<void> {
    const client = new KubeClient(kube!.kubeConfig);
    await ensureNamespace(client, NAMESPACE, { 'idempo.dev/injection': 'enabled' });
    await client.create(resourcePath('idempo.dev', 'v1alpha1', 'idempotentproducerpolicies', NAMESPACE), {
      apiVersion: 'idempo.dev/v1alpha1',
      kind: 'IdempotentProducerPolicy',
      metadata: { name: 'payments', namespace: NAMESPACE },
      spec: { selector: { matchLabels: { app: 'payments' } }, kafka: { bootstrapServers: ['kafka.kafka:9092'] } },
    });
    let n = 0;
    const pod = (app: string) =>
      client.create<KubeObject & { spec: { containers: Array<{ name: string }>; initContainers?: Array<{ name: string }> } }>(resourcePath('', 'v1', 'pods', NAMESPACE), {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `${app}-${++n}`, namespace: NAMESPACE, labels: { app } },
        spec: { containers: [{ name: 'app', image: 'example/app:1' }] },
      });
    // The API server picks up the operator's webhook configuration asynchronously, and the
    // policy must be Ready first: create pods until one comes back injected (the sidecar is a
    // native sidecar, i.e. an init container, on servers that support it).
    const injected = (p: { spec: { containers: Array<{ name: string }>; initContainers?: Array<{ name: string }> } }) =>
      [...(p.spec.initContainers ?? []), ...p.spec.containers].some((c) => c.name === 'idempo-sidecar');
    try {
      await waitFor('an injected pod', async () => injected(await pod('payments')) || undefined, 30_000, 200);
    } catch (e) {
      const admissions = (await op!.metrics()).split('\n').filter((l) => l.startsWith('idempo_operator_admissions_total'));
      throw new Error(`${(e as Error).message}\n${admissions.join('\n')}\n${op!.logs().slice(-3000)}`);
    }
    await pod('other');
    await expect.poll(() => op!.metric('idempo_operator_admissions_total', { decision: 'skipped', reason: 'no_policy' }), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
  }

  /**
   * One round of traffic: two written batches from a non-idempotent kafkajs producer (stamped by
   * the sidecar), the same batch sent twice (the copy answered by the sidecar with the original's
   * offset), an idempotent batch in sequence and one with a gap (refused with 45).
   */
  async function traffic(round: number): Promise<void> {
    const fresh = Array.from({ length: 4 }, (_, i) => ({ key: `k${i}`, value: `r${round}-${i}`, partition: 0 }));
    const acks = await kafkajsProduce({ bootstrap: sidecar!.bootstrap, topic: TOPIC, messages: fresh, batchSize: 2 });
    expect(acks.map((a) => a.errorCode)).toEqual([0, 0]);

    const dup = [{ key: 'dup', value: `dup-${round}`, partition: 0 }];
    const twice = await kafkajsProduce({ bootstrap: sidecar!.bootstrap, topic: TOPIC, messages: [...dup, ...dup], batchSize: 1 });
    expect(twice.map((a) => a.errorCode)).toEqual([0, 0]);
    expect(twice[1].baseOffset).toBe(twice[0].baseOffset); // the copy was not written again

    const { producerId, epoch } = producer;
    expect(await produceRaw(raw!, TOPIC, batch([`seq-${round}-a`, `seq-${round}-b`], producerId, epoch, nextSeq))).toBe(0);
    nextSeq += 2;
    expect(await produceRaw(raw!, TOPIC, batch([`gap-${round}`], producerId, epoch, nextSeq + 10))).toBe(45); // OUT_OF_ORDER_SEQUENCE_NUMBER
  }

  /** Waits until Prometheus holds the sidecar's current counter values (a scrape after the traffic). */
  async function waitScraped(): Promise<void> {
    const want = {
      written: await sidecar!.metric('idempo_produce_batches_total', { topic: TOPIC, outcome: 'written' }),
      dups: await sidecar!.metric('idempo_duplicates_rejected_total', { topic: TOPIC }),
      oos: await sidecar!.metric('idempo_out_of_sequence_total', { topic: TOPIC }),
    };
    const one = async (expr: string): Promise<number> => (await prom!.vector(expr))[0]?.value ?? -1;
    await expect
      .poll(
        async () => ({
          written: await one(`sum(idempo_produce_batches_total{topic="${TOPIC}", outcome="written"})`),
          dups: await one(`sum(idempo_duplicates_rejected_total{topic="${TOPIC}"})`),
          oos: await one(`sum(idempo_out_of_sequence_total{topic="${TOPIC}"})`),
        }),
        { timeout: 20_000, interval: 250 },
      )
      .toEqual(want);
  }

  let exposedAfterTraffic = '';

  it('scrapes both targets; counters from two rounds of traffic visible', async () => {
    await expect.poll(() => prom!.targetsUp(), { timeout: 20_000, interval: 200 }).toBe(true);
    const jobs = (await prom!.targets()).map((t) => ({ job: t.labels.job, namespace: t.labels.namespace, pod: t.labels.pod })).sort((a, b) => a.job.localeCompare(b.job));
    expect(jobs).toEqual([
      { job: 'idempo-operator', namespace: OPERATOR_NS, pod: OPERATOR_POD },
      { job: 'idempo-sidecar', namespace: NAMESPACE, pod: POD },
    ]);

    // Two rounds with a scrape in between: labelled counters only appear when first incremented,
    // so rate() is > 0 only for increases Prometheus saw happen.
    await traffic(1);
    await waitScraped();
    await operatorWork();
    await traffic(2);
    await waitScraped();
    const snapshot = Date.now() / 1000;
    exposedAfterTraffic = (await sidecar!.metrics()) + (await op!.metrics());
    // Two more scrapes of every target (the latest started 1.5 intervals after the snapshot, so
    // the one before it also started after it): every series exposed now has two samples in
    // any rate() window.
    const oldestScrape = async (): Promise<number> => Math.min(...(await prom!.vector('timestamp(up)')).map((s) => s.value));
    await expect.poll(oldestScrape, { timeout: 10_000, interval: 200 }).toBeGreaterThan(snapshot + 1.5);

    expect((await prom!.vector('sum(idempo_duplicates_rejected_total)'))[0].value).toBeGreaterThanOrEqual(2);
    expect((await prom!.vector('sum(idempo_out_of_sequence_total)'))[0].value).toBeGreaterThanOrEqual(2);
    expect((await prom!.vector(`sum(idempo_upgraded_batches_total{topic="${TOPIC}"})`))[0].value).toBeGreaterThanOrEqual(4);
  });

  it('every dashboard query parses and evaluates; those over exposed metrics return data', async () => {
    const queries = panelQueries();
    expect(queries.length).toBeGreaterThan(0);
    const all = dashboardVars({});
    const mine = dashboardVars({ namespace: NAMESPACE, topic: TOPIC });
    const problems: string[] = [];
    const defined = definedMetrics();
    for (const q of queries) {
      // A misspelt metric would evaluate fine and stay empty: names must be ones the code defines.
      for (const m of metricsOf(q.expr)) if (!defined.has(m)) problems.push(`${q.panel}: ${m} is defined by neither the sidecar nor the operator`);
      for (const vars of [all, mine]) {
        let expr = q.expr;
        let data;
        try {
          expr = substitute(q.expr, vars);
          data = await prom!.query(expr);
        } catch (e) {
          problems.push(`${q.panel}: ${(e as Error).message}`);
          continue;
        }
        // Counters never incremented here (retries, upstream errors) are legitimately empty;
        // anything the sidecar or the operator exposes must show up.
        const needed = metricsOf(q.expr);
        if (needed.length && needed.every((m) => exposes(exposedAfterTraffic, m)) && (data.resultType !== 'vector' || data.result.length === 0)) {
          problems.push(`${q.panel}: ${expr} returned no data although ${needed.join(', ')} is exposed`);
        }
      }
      // Sidecar panels follow the dashboard's namespace selector (operator panels need not: one
      // operator serves the cluster), and the filter really filters.
      if (metricsOf(q.expr).some((m) => !m.startsWith('idempo_operator_')) && !q.expr.includes('$namespace')) problems.push(`${q.panel}: ${q.expr} ignores $namespace`);
      if (q.expr.includes('$namespace') && !problems.some((p) => p.startsWith(`${q.panel}: `))) {
        const other = await prom!.query(substitute(q.expr, { ...all, namespace: 'no-such-namespace' }));
        if (other.resultType === 'vector' && other.result.length > 0) problems.push(`${q.panel}: ${q.expr} ignores $namespace`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('the headline panels show the traffic', async () => {
    const vars = dashboardVars({ namespace: NAMESPACE, topic: TOPIC });
    const byPanel = (title: string, legend?: string): string => {
      const q = panelQueries().find((x) => x.panel === title && (legend === undefined || x.legend === legend));
      if (!q) throw new Error(`dashboard has no panel "${title}"${legend ? ` with legend ${legend}` : ''}`);
      return substitute(q.expr, vars);
    };
    const scalar = async (title: string, legend?: string): Promise<number> => {
      const v = await prom!.vector(byPanel(title, legend));
      expect(v, title).toHaveLength(1);
      return v[0].value;
    };
    expect(await scalar('Batches written /s')).toBeGreaterThan(0);
    expect(await scalar('Duplicates rejected /s')).toBeGreaterThan(0);
    expect(await scalar('Out-of-sequence /s')).toBeGreaterThan(0);
    expect(await scalar('Producer sessions')).toBeGreaterThanOrEqual(1);

    const outcomes = Object.fromEntries((await prom!.vector(byPanel('Batches by outcome'))).map((s) => [s.metric.outcome, s.value]));
    expect(Object.keys(outcomes)).toEqual(expect.arrayContaining(['written', 'duplicate', 'out_of_sequence']));
    for (const o of ['written', 'duplicate', 'out_of_sequence']) expect(outcomes[o], o).toBeGreaterThan(0);

    for (const title of ['Duplicates rejected by topic', 'Out-of-sequence by topic', 'Upgraded batches by topic']) {
      const v = await prom!.vector(byPanel(title));
      expect(v.map((s) => s.metric.topic), title).toEqual([TOPIC]);
      expect(v[0].value, title).toBeGreaterThan(0);
    }
    for (const legend of ['p50', 'p99']) {
      const q = await scalar('Produce latency', legend);
      expect(Number.isFinite(q) && q > 0, `${legend} = ${q}`).toBe(true);
    }

    // Operator panels: the series exist (their rates may be 0: labelled counters first appear
    // already incremented, and each happened once here).
    const labelsOf = async (title: string, ...names: string[]): Promise<string[]> =>
      (await prom!.vector(byPanel(title))).map((s) => names.map((n) => s.metric[n]).join(' '));
    expect(await prom!.vector(byPanel('Leader'))).toEqual([{ metric: { pod: OPERATOR_POD }, value: 1 }]);
    expect(await labelsOf('Reconciles by result', 'result')).toContain('reconciled');
    expect(await labelsOf('Admissions by decision and reason', 'decision', 'reason')).toEqual(expect.arrayContaining(['injected injected', 'skipped no_policy']));

    // The variables' own queries (Grafana's label_values) as label-values API calls.
    for (const v of dashboard.templating?.list ?? []) {
      if (v.type !== 'query' || !v.definition) continue;
      const m = /^label_values\((?:(.+),\s*)?(\w+)\)$/.exec(v.definition.trim());
      expect(m, `variable ${v.name}: ${v.definition}`).not.toBeNull();
      const match = m![1] ? `?${new URLSearchParams({ 'match[]': substitute(m![1], dashboardVars({})) })}` : '';
      const values = await prom!.api<string[]>(`label/${m![2]}/values${match}`);
      const want = ({ namespace: NAMESPACE, topic: TOPIC } as Record<string, string>)[v.name];
      if (want) expect(values, `variable ${v.name}`).toContain(want);
      else expect(values.length, `variable ${v.name} offers no values`).toBeGreaterThan(0);
    }
  });

  it('loads the alert rules (health ok) and IdempoOutOfSequence goes pending on the live gaps', async () => {
    await expect
      .poll(
        async () => {
          const groups = await prom!.rules();
          return groups.flatMap((g) => g.rules.map((r) => `${g.name}/${r.name}: ${r.health}${r.lastError ? ` ${r.lastError}` : ''}`)).sort();
        },
        { timeout: 10_000, interval: 250 },
      )
      .toEqual(
        [
          ...['IdempoDuplicatesRising', 'IdempoOutOfSequence', 'IdempoStateJournalCorrupt', 'IdempoStateJournalFailing', 'IdempoUpstreamErrors'].map((n) => `idempo-sidecar/${n}: ok`),
          ...['IdempoOperatorReconcileErrors', 'IdempoWebhookFailures'].map((n) => `idempo-operator/${n}: ok`),
        ].sort(),
      );
    // rate > 0 with `for: 5m`: pending (not firing) within this test's lifetime.
    await expect
      .poll(
        async () => (await prom!.alerts()).filter((a) => a.labels.alertname === 'IdempoOutOfSequence').map((a) => ({ state: a.state, namespace: a.labels.namespace, topic: a.labels.topic })),
        { timeout: 10_000, interval: 250 },
      )
      .toEqual([{ state: 'pending', namespace: NAMESPACE, topic: TOPIC }]);
  });
});
