// The whole user journey on a real node (issue 10): `make cluster-up`'s single-node cluster
// (kubelet + containerd running the images `make images` builds), `kubectl apply -f crds/`,
// `helm install` of charts/idempo, the operator's two replicas Ready with a leader, the
// webhook called by the API server through its Service, a labelled namespace, a policy, and a
// producer Deployment whose pods start with the injected native sidecar. Its app (kafkajs)
// writes numbered records through the sidecar to a real broker on the node's bridge address,
// while the sidecar's broker connections are faulted (a seeded relay), while the policy's mode
// changes (the running sidecar reloads, no restart), and while the sidecar is SIGKILLed (it
// comes back from its state dir on the pod's emptyDir). The topic is then read from outside:
// every record the app counted, once, in order. A real Prometheus discovers the pod the way
// the chart's PodMonitor says, and the dashboard's queries return the pod's series. Then two
// more brokers: one whose listener wants SASL (the sidecar's own credentials from a Secret
// the webhook mounts as files), one that speaks TLS (CA from a Secret); a Job writes through
// the injected sidecar to each.
import { spawn } from 'node:child_process';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { issueCA, issueServing } from '../../operator/certs/issue.js';
import { kcatConsume } from '../support/clients/kcat.js';
import { repoRoot } from '../support/clients/java.js';
import { FaultRelay } from '../support/fault-relay.js';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { waitFor } from '../support/poll.js';
import { startPrometheus, type Prometheus } from '../support/prometheus.js';
import { findHelm } from './helm.js';
import { buildImages, run, startNodeCluster, waitDeploymentReady, type NodeCluster } from './node-harness.js';

const OP_NS = 'idempo-system';
const NS = 'shop';
const TOPIC = 'numbered';
const SEED = 1010;

const policy = (bootstrap: string, mode: string) => `apiVersion: idempo.dev/v1alpha1
kind: IdempotentProducerPolicy
metadata: { name: numbered, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: producer } }
  mode: ${mode}
  kafka: { bootstrapServers: ["${bootstrap}"] }
  producer: { deliveryTimeout: 60s }
  injection: { image: "idempo-sidecar:dev", bootstrapEnvVars: [KAFKA_BOOTSTRAP_SERVERS] }
  sidecar: { logLevel: info }
`;

// The app runs on the sidecar image (it has Node); kafkajs comes from the repo, read-only.
const producerDeployment = (bootstrap: string) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: producer, namespace: ${NS} }
spec:
  replicas: 1
  selector: { matchLabels: { app: producer } }
  template:
    metadata: { labels: { app: producer } }
    spec:
      terminationGracePeriodSeconds: 90
      securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 }
      containers:
        - name: app
          image: idempo-sidecar:dev
          imagePullPolicy: Never
          command: ["/nodejs/bin/node", "/producer/numbered-producer.mjs"]
          env:
            - { name: KAFKA_BOOTSTRAP_SERVERS, value: "${bootstrap}" }
            - { name: TOPIC, value: ${TOPIC} }
          volumeMounts:
            - { name: script, mountPath: /producer, readOnly: true }
            - { name: kafkajs, mountPath: /opt/kafkajs, readOnly: true }
          securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: [ALL] } }
      volumes:
        - { name: script, configMap: { name: producer-script } }
        - { name: kafkajs, hostPath: { path: "${path.join(repoRoot, 'node_modules/kafkajs')}", type: Directory } }
`;

/** A pod the policy selects, only ever created with --dry-run=server: is the webhook reachable yet? */
const webhookProbePod = (bootstrap: string) => `apiVersion: v1
kind: Pod
metadata: { name: webhook-probe, namespace: ${NS}, labels: { app: producer } }
spec:
  containers:
    - name: app
      image: idempo-sidecar:dev
      env: [ { name: KAFKA_BOOTSTRAP_SERVERS, value: "${bootstrap}" } ]
`;

/** Prometheus' role: pod discovery for `pods` (a PodList's items): one target per container port. */
function podTargets(pods: any[]): Array<{ targets: string[]; labels: Record<string, string> }> {
  const name = (s: string) => s.replace(/[^a-zA-Z0-9_]/g, '_');
  const out: Array<{ targets: string[]; labels: Record<string, string> }> = [];
  for (const p of pods) {
    if (!p.status?.podIP) continue;
    const common: Record<string, string> = {
      __meta_kubernetes_namespace: p.metadata.namespace,
      __meta_kubernetes_pod_name: p.metadata.name,
      __meta_kubernetes_pod_ip: p.status.podIP,
      __meta_kubernetes_pod_node_name: p.spec.nodeName ?? '',
      __meta_kubernetes_pod_phase: p.status.phase ?? '',
    };
    for (const [k, v] of Object.entries<string>(p.metadata.labels ?? {})) {
      common[`__meta_kubernetes_pod_label_${name(k)}`] = v;
      common[`__meta_kubernetes_pod_labelpresent_${name(k)}`] = 'true';
    }
    for (const [k, v] of Object.entries<string>(p.metadata.annotations ?? {})) {
      common[`__meta_kubernetes_pod_annotation_${name(k)}`] = v;
      common[`__meta_kubernetes_pod_annotationpresent_${name(k)}`] = 'true';
    }
    const containers = [...(p.spec.initContainers ?? []).map((c: any) => [c, true]), ...p.spec.containers.map((c: any) => [c, false])];
    for (const [c, init] of containers) {
      for (const port of c.ports ?? []) {
        out.push({
          targets: [`${p.status.podIP}:${port.containerPort}`],
          labels: {
            ...common,
            __meta_kubernetes_pod_container_name: c.name,
            __meta_kubernetes_pod_container_init: String(init),
            __meta_kubernetes_pod_container_port_name: port.name ?? '',
            __meta_kubernetes_pod_container_port_number: String(port.containerPort),
            __meta_kubernetes_pod_container_port_protocol: port.protocol ?? 'TCP',
          },
        });
      }
    }
  }
  return out;
}

interface AppEvent {
  event: string;
  next?: number;
  from?: number;
  err?: string;
}

describe('the user journey on a real node', () => {
  let cluster: NodeCluster | undefined;
  let kafka: KafkaCluster | undefined;
  let relay: FaultRelay | undefined;
  let prom: Prometheus | undefined;
  let sd: http.Server | undefined;
  let helm: string;
  let bootstrap = '';
  let podName = '';
  const t0 = Date.now();
  const phase = (what: string) => console.log(`node e2e: ${what} at ${((Date.now() - t0) / 1000).toFixed(1)}s`);

  const appEvents = async (): Promise<AppEvent[]> => {
    const out = await cluster!.k(['logs', '-n', NS, podName, '-c', 'app']);
    return out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as AppEvent);
  };
  const acked = async () => Math.max(0, ...(await appEvents()).filter((e) => e.event === 'acked').map((e) => e.next!));
  /** Waits until the app has acknowledged `more` records beyond what it had now. */
  const progress = async (more: number, timeoutMs = 90_000) => {
    const from = await acked();
    await waitFor(`the app to get ${more} more records acknowledged (from ${from})`, async () => (await acked()) >= from + more, timeoutMs, 500);
  };
  const pod = async () => cluster!.json(['pod', '-n', NS, podName]);
  const sidecarStatus = async () => ((await pod()).status.initContainerStatuses ?? []).find((s: any) => s.name === 'idempo-sidecar');
  const sidecarLogs = () => cluster!.k(['logs', '-n', NS, podName, '-c', 'idempo-sidecar']);

  beforeAll(async () => {
    helm = await findHelm();
    const images = buildImages();
    phase(`images built: sidecar ${(images.sidecar.bytes / 1e6).toFixed(1)} MB, operator ${(images.operator.bytes / 1e6).toFixed(1)} MB`);
    cluster = await startNodeCluster();
    phase(`node Ready (up.sh: ${cluster.upSeconds}s)\n${cluster.upLog}`);
    const nodeIp = cluster.nodeIp;
    // Pods reach the broker through a relay on the node's bridge address, which the broker
    // advertises; the relay is where the sidecar's upstream connections get faulted.
    relay = new FaultRelay({ seed: SEED, host: nodeIp, weights: { reset: 1, half_write: 1, stall: 0 } });
    kafka = await startKafka({ brokers: 1, externalHost: nodeIp, externalListener: (_id, port) => relay!.addLink({ host: '127.0.0.1', port }) });
    bootstrap = kafka.externalBootstrap!;
    await kafka.createTopic(TOPIC, 2);
    phase(`Kafka ready, advertised to pods as ${bootstrap}`);
  });

  afterAll(async () => {
    const steps = [
      () => prom?.stop(),
      () => new Promise<void>((r) => (sd ? sd.close(() => r()) : r())),
      // The app's pod first (SIGTERM is harmless if the test already stopped it), then the node.
      () => cluster?.kubectl(['delete', 'namespace', NS, '--wait=false']),
      () => cluster?.stop(),
      () => relay?.close(),
      () => kafka?.stop(),
    ];
    const errors: unknown[] = [];
    for (const s of steps) {
      try {
        await s();
      } catch (e) {
        errors.push(e);
      }
    }
    phase('torn down');
    if (errors.length) throw errors[0];
  });

  it('helm install: the operator Deployment is Ready with both replicas and a leader', async () => {
    const c = cluster!;
    await c.k(['apply', '-f', path.join(repoRoot, 'crds/')]);
    const r = await run(helm, ['install', 'idempo', path.join(repoRoot, 'charts/idempo'), '--kubeconfig', c.kubeconfig, '-n', OP_NS, '--create-namespace',
      '--set', 'image.repository=idempo-operator', '--set', 'image.tag=dev', '--set', 'image.pullPolicy=Never',
      '--set', 'leaderElection.leaseDuration=6s', '--set', 'leaderElection.renewPeriod=1s']);
    expect(r.code, r.stderr).toBe(0);
    await waitDeploymentReady(c, OP_NS, 'idempo-operator', 2);
    const lease = await waitFor('a leader in the Lease', async () => {
      const l = await c.json(['lease', '-n', OP_NS, 'idempo-operator-leader']);
      return l.spec?.holderIdentity ? l : undefined;
    }, 60_000, 500);
    const pods = await c.json(['pods', '-n', OP_NS, '-l', 'app.kubernetes.io/component=operator']);
    expect(pods.items.map((p: any) => p.metadata.name)).toContain(lease.spec.holderIdentity.split('_')[0]);
    // The chart's webhook goes through its Service, with the caBundle the operator patched in.
    const mwc = await c.json(['mutatingwebhookconfiguration', 'idempo']);
    expect(mwc.webhooks[0].clientConfig.service).toMatchObject({ namespace: OP_NS, name: 'idempo-webhook' });
    expect(mwc.webhooks[0].clientConfig.caBundle?.length ?? 0).toBeGreaterThan(0);
    phase('operator Ready (2/2, leader elected)');
  });

  it('a producer Deployment in a labelled namespace starts with the injected native sidecar', async () => {
    const c = cluster!;
    await c.k(['create', 'namespace', NS]);
    await c.k(['label', 'namespace', NS, 'idempo.dev/injection=enabled']);
    await c.k(['apply', '-f', '-'], policy(bootstrap, 'upgrade'));
    await waitFor('policy Ready', async () => {
      const p = await c.json(['ipp', '-n', NS, 'numbered']);
      return p.status?.conditions?.find((x: any) => x.type === 'Ready')?.status === 'True';
    }, 60_000, 500);
    // The operator's pods are Ready before kube-proxy routes the webhook Service to them, and with
    // failurePolicy Ignore a pod created meanwhile starts uninjected: wait until the API server
    // reaches the webhook through the Service (a server-side dry-run pod comes back injected).
    await waitFor('the API server to reach the webhook through its Service (a dry-run pod comes back injected)', async () => {
      const out = await c.k(['create', '--dry-run=server', '-o', 'json', '-f', '-'], webhookProbePod(bootstrap));
      return JSON.parse(out).metadata?.annotations?.['idempo.dev/injected'] === 'numbered';
    }, 60_000, 500);
    await c.k(['create', 'configmap', '-n', NS, 'producer-script', `--from-file=${path.join(repoRoot, 'test/e2e/testdata/node/numbered-producer.mjs')}`]);
    await c.k(['apply', '-f', '-'], producerDeployment(bootstrap));
    await waitDeploymentReady(c, NS, 'producer', 1);
    const pods = await c.json(['pods', '-n', NS, '-l', 'app=producer']);
    expect(pods.items).toHaveLength(1);
    const p = pods.items[0];
    podName = p.metadata.name;
    // Injected by the webhook the API server reached through the Service: native sidecar first,
    // the app's bootstrap rewritten to it, the state dir on an emptyDir.
    expect(p.metadata.annotations['idempo.dev/injected']).toBe('numbered');
    const sc = p.spec.initContainers[0];
    expect(sc).toMatchObject({ name: 'idempo-sidecar', image: 'idempo-sidecar:dev', restartPolicy: 'Always' });
    expect(p.spec.containers[0].env.find((e: any) => e.name === 'KAFKA_BOOTSTRAP_SERVERS').value).toMatch(/^127\.0\.0\.1:\d+$/);
    const stateMount = sc.volumeMounts.find((m: any) => sc.args.includes(m.mountPath));
    expect(p.spec.volumes.find((v: any) => v.name === stateMount?.name)?.emptyDir).toBeDefined();
    await progress(200);
    phase(`producer pod ${podName} running and producing`);
  });

  it('writes through faults on the broker connections', async () => {
    relay!.start();
    await waitFor('10 faults on the sidecar\'s broker connections', () => relay!.totalFaults() >= 10, 120_000, 200);
    relay!.stop();
    await progress(200);
    expect(relay!.counters.faults.reset + relay!.counters.faults.half_write).toBeGreaterThanOrEqual(10);
    phase(`faults done (${JSON.stringify(relay!.counters.faults)})`);
  });

  it('follows a mode change applied with kubectl, without a restart', async () => {
    const c = cluster!;
    const restartsBefore = (await sidecarStatus()).restartCount;
    const reloaded = (mode: string) => async () => (await sidecarLogs()).split('\n').some((l) => l.includes('configuration reloaded') && l.includes(`"mode":"${mode}"`));
    await c.k(['apply', '-f', '-'], policy(bootstrap, 'observe'));
    await waitFor('the sidecar to reload mode observe', reloaded('observe'), 120_000, 1000);
    await progress(100);
    await c.k(['apply', '-f', '-'], policy(bootstrap, 'upgrade'));
    await waitFor('the sidecar to reload mode upgrade', reloaded('upgrade'), 120_000, 1000);
    await progress(100);
    expect((await sidecarStatus()).restartCount).toBe(restartsBefore);
    phase('mode observe and back to upgrade, no restart');
  });

  it('the sidecar SIGKILLed: kubelet restarts it, the app keeps producing', async () => {
    const c = cluster!;
    const st = await sidecarStatus();
    const id = String(st.containerID).replace(/^containerd:\/\//, '');
    const tasks = await c.ctr(['tasks', 'ls']);
    const line = tasks.stdout.split('\n').find((l) => l.startsWith(id));
    expect(line, tasks.stdout).toBeDefined();
    const pid = Number(line!.split(/\s+/)[1]);
    process.kill(pid, 'SIGKILL');
    await waitFor('the sidecar restarted and ready', async () => {
      const s = await sidecarStatus();
      return s.restartCount === st.restartCount + 1 && s.ready === true;
    }, 120_000, 500);
    // The new process found its predecessor's state on the pod's emptyDir.
    expect(await sidecarLogs()).toContain('"msg":"state restored"');
    await progress(200);
    phase('sidecar killed and back');
  });

  it('Prometheus discovers the pod as the chart\'s PodMonitor says; the dashboard queries return its series', async () => {
    const c = cluster!;
    // The PodMonitor the chart renders, turned into the scrape config Prometheus Operator would make.
    const rendered = await run(helm, ['template', 'idempo', path.join(repoRoot, 'charts/idempo'), '-n', OP_NS, '--kube-version', '1.35.0', '--set', 'podMonitor.enabled=true']);
    expect(rendered.code, rendered.stderr).toBe(0);
    const pm = parseAllDocuments(rendered.stdout).map((d) => d.toJS()).find((d: any) => d?.kind === 'PodMonitor');
    expect(pm).toBeDefined();
    const ep = pm.spec.podMetricsEndpoints[0];
    const sel = pm.spec.selector.matchExpressions[0];
    expect(sel.operator).toBe('Exists');
    const metaLabel = (l: string) => l.replace(/[^a-zA-Z0-9_]/g, '_');
    const relabels = [
      `      - { source_labels: [__meta_kubernetes_pod_labelpresent_${metaLabel(sel.key)}], regex: "true", action: keep }`,
      `      - { source_labels: [__meta_kubernetes_pod_container_port_name], regex: "${ep.port}", action: keep }`,
      '      - { source_labels: [__meta_kubernetes_namespace], target_label: namespace }',
      '      - { source_labels: [__meta_kubernetes_pod_name], target_label: pod }',
      '      - { source_labels: [__meta_kubernetes_pod_container_name], target_label: container }',
      ...ep.relabelings.map((r: any) => `      - { source_labels: [${r.sourceLabels.join(', ')}], target_label: ${r.targetLabel} }`),
    ];
    // Debian's Prometheus is built without kubernetes_sd_configs, so discovery comes over
    // http_sd from this test: the pods the API server lists, with the __meta_kubernetes_pod_*
    // labels Kubernetes discovery gives each container port (named so: an emulation of that one
    // part). The PodMonitor's selection and relabelings then run in Prometheus itself.
    sd = http.createServer((req, res) => {
      void c.json(['pods', '-A']).then(
        (list) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(podTargets(list.items))),
        (e: unknown) => res.writeHead(500).end(String(e)),
      );
    });
    await new Promise<void>((r) => sd!.listen(0, '127.0.0.1', () => r()));
    const sdUrl = `http://127.0.0.1:${(sd.address() as AddressInfo).port}/pods`;
    prom = await startPrometheus({
      targets: [],
      extraScrapeConfigs: [
        '  - job_name: idempo-sidecars',
        `    metrics_path: ${ep.path}`,
        '    http_sd_configs:',
        `      - { url: "${sdUrl}", refresh_interval: 1s }`,
        '    relabel_configs:',
        ...relabels,
      ],
    });
    await waitFor('Prometheus to scrape the injected pod', async () => {
      const ts = await prom!.targets();
      return ts.some((t) => t.labels.pod === podName && t.health === 'up');
    }, 120_000, 1000);
    await waitFor('produce batches of the pod in Prometheus', async () => (await prom!.vector(`idempo_produce_batches_total{pod="${podName}"}`)).length > 0, 60_000, 1000);

    // Every dashboard query, with the dashboard's variables set to this pod's namespace.
    const dash = JSON.parse(readFileSync(path.join(repoRoot, 'dashboards/idempo.json'), 'utf8'));
    const exprs: string[] = [];
    const walk = (ps: any[]) => {
      for (const p of ps) {
        if (p.panels) walk(p.panels);
        for (const t of p.targets ?? []) if (t.expr) exprs.push(t.expr);
      }
    };
    walk(dash.panels);
    const subst = (e: string, namespace: string) => {
      const vars: Record<string, string> = { namespace, __rate_interval: '1m', __interval: '15s', __range: '5m' };
      return e.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (_: string, a?: string, b?: string) => vars[(a ?? b)!] ?? '.*');
    };
    // The Namespace variable offers the pod's namespace.
    const nsValues = await prom!.api<string[]>(`/label/namespace/values?${new URLSearchParams({ 'match[]': 'idempo_produce_batches_total' })}`);
    expect(nsValues).toContain(NS);
    // Each sidecar panel (filtered by $namespace) whose metrics the pod exposes shows its series
    // for namespace=shop, and nothing for another namespace.
    const sidecarExprs = exprs.filter((e) => e.includes('$namespace') || e.includes('${namespace'));
    const checked: string[] = [];
    for (const e of sidecarExprs) {
      const metrics = [...new Set([...e.matchAll(/\b(idempo_[a-zA-Z0-9_:]+)\s*[{[]/g)].map((m) => m[1]))];
      let exposed = true;
      for (const m of metrics) if ((await prom!.vector(`count(${m}{pod="${podName}"})`)).length === 0) exposed = false;
      if (!exposed) continue;
      await waitFor(`dashboard query with the pod's series: ${e}`, async () => {
        const r = await prom!.query(subst(e, NS));
        return r.resultType === 'vector' && r.result.length > 0;
      }, 60_000, 1000);
      const other = await prom!.query(subst(e, 'no-such-namespace'));
      expect(other.resultType === 'vector' ? other.result : [], e).toEqual([]);
      checked.push(e);
    }
    expect(checked.some((e) => e.includes('idempo_produce_batches_total')), `checked:\n${checked.join('\n')}`).toBe(true);
    expect(checked.length).toBeGreaterThanOrEqual(5);
    phase(`Prometheus: ${checked.length}/${sidecarExprs.length} sidecar dashboard queries return the pod's series (the others read metrics it has not emitted)`);
  });

  it('the topic read from outside holds every record the app counted, once, in order', { timeout: 240_000 }, async () => {
    const c = cluster!;
    // The app finishes its batch in flight on SIGTERM and prints how far it got. Its log is
    // followed from before the scale-down: the pod may be gone by the time a poll would read it.
    let followed = '';
    const follower = spawn(c.kubectlPath, ['--kubeconfig', c.kubeconfig, 'logs', '-f', '-n', NS, podName, '-c', 'app'], { stdio: ['ignore', 'pipe', 'ignore'] });
    follower.stdout.setEncoding('utf8').on('data', (d: string) => (followed += d));
    const ended = new Promise<void>((r) => follower.once('close', () => r()));
    try {
      await waitFor('the log follower attached', () => followed.includes('"event"'), 30_000, 200);
      await c.k(['scale', 'deployment', '-n', NS, 'producer', '--replicas=0']);
      await waitFor('the app to exit after SIGTERM', () => follower.exitCode !== null || follower.signalCode !== null, 150_000, 500);
      await ended;
    } finally {
      follower.kill();
    }
    const doneEvent = followed.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as AppEvent).find((e) => e.event === 'done');
    expect(doneEvent?.next, followed.slice(-2000)).toBeGreaterThan(0);
    const done = doneEvent!.next!;
    const records = await kcatConsume({ bootstrap: kafka!.bootstrap, topic: TOPIC, timeoutMs: 60_000 });
    const values = records.map((r) => Number(r.value));
    const seen = new Map<number, number>();
    for (const v of values) seen.set(v, (seen.get(v) ?? 0) + 1);
    const dups = [...seen].filter(([, n]) => n > 1).map(([v]) => v);
    expect(done, 'the app reported how many records it acknowledged').toBeDefined();
    const lost = Array.from({ length: done! }, (_, i) => i).filter((i) => !seen.has(i));
    const extra = values.filter((v) => v >= done!);
    expect({ dups: dups.slice(0, 20), lost: lost.slice(0, 20), extra: extra.slice(0, 20) }).toEqual({ dups: [], lost: [], extra: [] });
    for (const p of new Set(records.map((r) => r.partition))) {
      const vs = records.filter((r) => r.partition === p).sort((a, b) => a.offset - b.offset).map((r) => Number(r.value));
      expect(vs.every((v, i) => i === 0 || v > vs[i - 1]), `partition ${p} in order`).toBe(true);
    }
    phase(`${done} records: 0 duplicates, 0 lost, in order`);
  });

  // --- SASL and TLS for injected pods --------------------------------------------------------
  const COUNT = 300;
  const jobYaml = (name: string, bootstrap: string, appSecret?: string) => `apiVersion: batch/v1
kind: Job
metadata: { name: ${name}, namespace: ${NS} }
spec:
  backoffLimit: 0
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      restartPolicy: Never
      securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 }
      containers:
        - name: app
          image: idempo-sidecar:dev
          imagePullPolicy: Never
          command: ["/nodejs/bin/node", "/producer/numbered-producer.mjs"]
          env:
            - { name: KAFKA_BOOTSTRAP_SERVERS, value: "${bootstrap}" }
            - { name: TOPIC, value: ${name} }
            - { name: COUNT, value: "${COUNT}" }
            ${appSecret ? '- { name: SASL_DIR, value: /sasl }' : ''}
          volumeMounts:
            - { name: script, mountPath: /producer, readOnly: true }
            - { name: kafkajs, mountPath: /opt/kafkajs, readOnly: true }
            ${appSecret ? '- { name: sasl, mountPath: /sasl, readOnly: true }' : ''}
      volumes:
        - { name: script, configMap: { name: producer-script } }
        - { name: kafkajs, hostPath: { path: "${path.join(repoRoot, 'node_modules/kafkajs')}", type: Directory } }
        ${appSecret ? `- { name: sasl, secret: { secretName: ${appSecret} } }` : ''}
`;

  /**
   * A broker whose EXTERNAL listener (`props`) pods reach through a plain relay on the bridge;
   * a policy for app=NAME with `kafkaExtra`; a Job writing COUNT numbered records through the
   * injected sidecar. Returns the Job's pod once it completed and the topic held 0..COUNT-1.
   */
  const secureCase = async (name: string, props: (dir: string) => Record<string, string>, kafkaExtra: string, objects: string, appSecret?: string) => {
    const c = cluster!;
    const dir = mkdtempSync(path.join(tmpdir(), `idempo-${name}-`));
    const r = new FaultRelay({ seed: SEED, host: c.nodeIp });
    let k: KafkaCluster | undefined;
    try {
      k = await startKafka({ brokers: 1, externalHost: c.nodeIp, externalListener: (_id, port) => r.addLink({ host: '127.0.0.1', port }), serverProps: props(dir) });
      await k.createTopic(name, 1);
      if (objects) await c.k(['apply', '-f', '-'], objects);
      await c.k(['apply', '-f', '-'], `apiVersion: idempo.dev/v1alpha1
kind: IdempotentProducerPolicy
metadata: { name: ${name}, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: ${name} } }
  kafka:
    bootstrapServers: ["${k.externalBootstrap}"]
${kafkaExtra}
  injection: { image: "idempo-sidecar:dev", bootstrapEnvVars: [KAFKA_BOOTSTRAP_SERVERS] }
`);
      await waitFor(`policy ${name} Ready`, async () => (await c.json(['ipp', '-n', NS, name])).status?.conditions?.find((x: any) => x.type === 'Ready')?.status === 'True', 60_000, 500);
      await c.k(['apply', '-f', '-'], jobYaml(name, k.externalBootstrap!, appSecret));
      const job = await waitFor(`job ${name} finished`, async () => {
        const j = await c.json(['job', '-n', NS, name]);
        return j.status?.conditions?.find((x: any) => (x.type === 'Complete' || x.type === 'Failed') && x.status === 'True') ? j : undefined;
      }, 180_000, 1000);
      const p = (await c.json(['pods', '-n', NS, '-l', `app=${name}`])).items[0];
      const logs = async (container: string) => (await c.kubectl(['logs', '-n', NS, p.metadata.name, '-c', container])).stdout;
      const failed = job.status.conditions.find((x: any) => x.type === 'Failed' && x.status === 'True');
      expect(failed, `app:\n${await logs('app')}\nsidecar:\n${await logs('idempo-sidecar')}`).toBeUndefined();
      expect(p.metadata.annotations['idempo.dev/injected']).toBe(name);
      const records = await kcatConsume({ bootstrap: k.bootstrap, topic: name, timeoutMs: 60_000 });
      expect(records.map((x) => Number(x.value))).toEqual(Array.from({ length: COUNT }, (_, i) => i));
      return { pod: p, sidecarLogs: await logs('idempo-sidecar') };
    } finally {
      await r.close();
      await k?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('SASL: the sidecar authenticates with credentials mounted from a Secret (never in env, args or logs)', async () => {
    const sidecarSecret = randomBytes(12).toString('hex');
    const appSecret = randomBytes(12).toString('hex');
    const { pod, sidecarLogs } = await secureCase(
      'sasl-job',
      () => ({
        'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT',
        'sasl.enabled.mechanisms': 'PLAIN',
        'listener.name.external.plain.sasl.jaas.config': `org.apache.kafka.common.security.plain.PlainLoginModule required user_idempo="${sidecarSecret}" user_app="${appSecret}";`,
      }),
      '    sasl: { mechanism: PLAIN, secretRef: { name: idempo-kafka-user } }',
      `apiVersion: v1
kind: Secret
metadata: { name: idempo-kafka-user, namespace: ${NS} }
stringData: { username: idempo, password: "${sidecarSecret}" }
---
apiVersion: v1
kind: Secret
metadata: { name: app-kafka-user, namespace: ${NS} }
stringData: { username: app, password: "${appSecret}" }
`,
      'app-kafka-user',
    );
    const sc = pod.spec.initContainers.find((x: any) => x.name === 'idempo-sidecar');
    expect(sc.args).toEqual(expect.arrayContaining(['--upstream-sasl-mechanism', 'PLAIN', '--upstream-sasl-password-file']));
    // The pod spec holds a reference only; the sidecar's logs never print the password.
    expect(JSON.stringify(pod)).not.toContain(sidecarSecret);
    expect(JSON.stringify(sc.env ?? [])).not.toMatch(/secretKeyRef/);
    expect(sidecarLogs).not.toContain(sidecarSecret);
    phase('SASL broker: job complete, 0..299 once each');
  });

  it('TLS: the sidecar verifies the broker against the CA from a Secret', async () => {
    const ca = issueCA({ commonName: 'idempo node e2e CA' });
    const serving = issueServing(ca, ['kafka.node.test'], [cluster!.nodeIp]);
    await secureCase(
      'tls-job',
      (dir) => {
        const keystore = path.join(dir, 'broker.pem');
        // Kafka's PEM keystore: PKCS#8 key and certificate chain in one file.
        writeFileSync(keystore, (createPrivateKey(serving.keyPem).export({ type: 'pkcs8', format: 'pem' }) as string) + serving.certPem);
        return {
          'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,EXTERNAL:SSL',
          'listener.name.external.ssl.keystore.type': 'PEM',
          'listener.name.external.ssl.keystore.location': keystore,
        };
      },
      '    tls: { enabled: true, caSecretRef: { name: kafka-ca, key: ca.crt } }',
      `apiVersion: v1
kind: Secret
metadata: { name: kafka-ca, namespace: ${NS} }
stringData:
  ca.crt: |
${ca.certPem.trim().split('\n').map((l) => `    ${l}`).join('\n')}
`,
    );
    phase('TLS broker: job complete, 0..299 once each');
  });
});
