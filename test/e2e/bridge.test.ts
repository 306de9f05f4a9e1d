// The bridge from control plane to data plane: the operator injects a pod on a real API
// server; we take the sidecar container it wrote into the stored pod (args, env, and the
// ConfigMap content standing in for the volume mount), run that command line here against
// a real Kafka broker, and produce through it with kafkajs using the app container's
// rewritten bootstrap env var. The records are read back straight from the broker.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POLICY_CONFIG_KEY, POLICY_CONFIG_PATH } from '../../api/constants.js';
import { STATE_DIR } from '../../operator/webhook/mutate.js';
import { KubeClient, resourcePath, type KubeObject } from '../../operator/kube/client.js';
import { kafkajsConsume, kafkajsProduce } from '../support/clients/kafkajs.js';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startKube, type KubeEnv } from '../support/kube.js';
import { freePorts } from '../support/ports.js';
import { ensureNamespace, installCrds, policyPath, readyOf, repoRoot, startOperator, type OperatorProcess, type Policy } from './operator-harness.js';
import { waitFor } from '../support/poll.js';

type EnvVar = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } };
type Container = { name: string; args?: string[]; env?: EnvVar[] };
type Pod = KubeObject & { spec: { containers: Container[]; initContainers?: Container[] } };

const NS = 'bridge';
const TOPIC = 'bridge-orders';
let kube: KubeEnv;
let kafka: KafkaCluster;
let client: KubeClient;
let op: OperatorProcess;
let sidecar: ChildProcess | undefined;
let sidecarOut = '';
let tmp: string;

beforeAll(async () => {
  if (!existsSync(join(repoRoot, 'dist/sidecar/main.cjs'))) throw new Error('dist/sidecar/main.cjs is missing: run `make build` first');
  tmp = mkdtempSync(join(tmpdir(), 'idempo-bridge-'));
  [kube, kafka] = await Promise.all([startKube(), startKafka({ brokers: 1 })]);
  await kafka.createTopic(TOPIC, 1, 1);
  client = new KubeClient(kube.kubeConfig);
  await installCrds(kube);
  await ensureNamespace(client, NS, { 'idempo.dev/injection': 'enabled' });
  op = await startOperator(kube);
  await op.waitReady();
});

afterAll(async () => {
  if (sidecar && sidecar.exitCode === null) {
    sidecar.kill('SIGKILL');
  }
  await op?.stop();
  await Promise.all([kube?.stop(), kafka?.stop()]);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('operator to sidecar to Kafka', () => {
  it('runs the injected sidecar as written into the pod and produces through it', async () => {
    // Free ports stand in for the pod's own network namespace, which we do not have here.
    const [listenPort, metricsPort] = await freePorts(2);
    await client.create(policyPath(NS), {
      apiVersion: 'idempo.dev/v1alpha1',
      kind: 'IdempotentProducerPolicy',
      metadata: { name: 'orders', namespace: NS },
      spec: {
        selector: { matchLabels: { app: 'orders' } },
        mode: 'upgrade',
        kafka: { bootstrapServers: kafka.bootstrap.split(',') },
        injection: { listenPort, bootstrapEnvVars: ['KAFKA_BOOTSTRAP_SERVERS'] },
        sidecar: { metricsPort },
      },
    });
    await waitFor('policy Ready', async () => readyOf(await client.get<Policy>(policyPath(NS, 'orders')))?.status === 'True');

    const pod = await waitFor('an injected pod', async () => {
      const p = await client.create<Pod>(resourcePath('', 'v1', 'pods', NS), {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'orders-', namespace: NS, labels: { app: 'orders' } },
        spec: { containers: [{ name: 'app', image: 'example/orders:1', env: [{ name: 'KAFKA_BOOTSTRAP_SERVERS', value: 'kafka.example:9092' }] }] },
      });
      return [...(p.spec.initContainers ?? []), ...p.spec.containers].some((c) => c.name === 'idempo-sidecar') ? p : undefined;
    });
    const sc = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c) => c.name === 'idempo-sidecar')!;
    const app = pod.spec.containers.find((c) => c.name === 'app')!;
    const bootstrap = app.env!.find((e) => e.name === 'KAFKA_BOOTSTRAP_SERVERS')!.value!;
    expect(bootstrap).toBe(`127.0.0.1:${listenPort}`);

    // The ConfigMap volume, as the kubelet would project it.
    const cm = await client.get<KubeObject & { data: Record<string, string> }>(resourcePath('', 'v1', 'configmaps', NS, 'idempo-orders'));
    const configFile = join(tmp, POLICY_CONFIG_KEY);
    writeFileSync(configFile, cm.data[POLICY_CONFIG_KEY]);
    // The state emptyDir, as the kubelet would provide it: a fresh directory per pod.
    const stateDir = join(tmp, 'state');
    const args = (sc.args ?? []).map((a) => (a === POLICY_CONFIG_PATH ? configFile : a === STATE_DIR ? stateDir : a));
    expect(args).toContain(configFile);
    expect(args).toContain(stateDir);
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const e of sc.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = pod.metadata?.name;
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = NS;
    }

    sidecar = spawn(join(repoRoot, 'bin/idempo-sidecar'), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    sidecar.stdout!.setEncoding('utf8').on('data', (d: string) => (sidecarOut += d));
    sidecar.stderr!.setEncoding('utf8').on('data', (d: string) => (sidecarOut += d));
    const exited = new Promise<number | null>((res) => sidecar!.once('exit', (c) => res(c)));
    await waitFor(
      'sidecar /readyz',
      async () => {
        if (sidecar!.exitCode !== null) throw new Error(`sidecar exited ${sidecar!.exitCode}: ${sidecarOut}`);
        return (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).ok;
      },
      30_000,
    );

    const messages = Array.from({ length: 20 }, (_, i) => ({ key: `k${i % 3}`, value: `order-${i}` }));
    const answers = await kafkajsProduce({ bootstrap, topic: TOPIC, messages, batchSize: 5, idempotent: false });
    expect(answers.every((a) => a.errorCode === 0)).toBe(true);

    const { records, timedOut } = await kafkajsConsume({ bootstrap: kafka.bootstrap, topics: [TOPIC], count: messages.length, lingerMs: 500, timeoutMs: 30_000 });
    expect(timedOut).toBe(false);
    expect(records.map((r) => r.value)).toEqual(messages.map((m) => m.value));

    // The sidecar did its job: batches were upgraded to idempotent ones on the wire.
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const upgraded = metrics
      .split('\n')
      .filter((l) => l.startsWith('idempo_upgraded_batches_total{'))
      .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    expect(upgraded).toBeGreaterThanOrEqual(4);

    sidecar.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
