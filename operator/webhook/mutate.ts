// Builds the injected pod from the original and the chosen policy. Pure: the JSON patch
// is computed afterwards by diffing (patch.ts), never written by hand.
import type { V1Container, V1EnvVar, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import {
  ANNOTATION_INJECTED,
  KAFKA_CA_DIR,
  KAFKA_CA_FILE,
  KAFKA_CLIENT_CERT_DIR,
  KAFKA_SASL_DIR,
  KAFKA_SASL_PASSWORD_FILE,
  KAFKA_SASL_USERNAME_FILE,
  LABEL_INJECTED,
  POLICY_CONFIG_DIR,
  POLICY_CONFIG_KEY,
  POLICY_CONFIG_PATH,
  policyConfigMapName,
  SIDECAR_CONTAINER_NAME,
  type IdempotentProducerPolicy,
  type PolicySpec,
} from '../../api/index.js';

export interface MutateOptions {
  /** Overrides spec.injection.image (the operator's --sidecar-image, e.g. in tests). */
  image?: string;
  /** The cluster runs native sidecars (Kubernetes >= 1.29: init containers with restartPolicy Always). */
  nativeSidecarsSupported: boolean;
}

export const CONFIG_VOLUME = 'idempo-config';
export const KAFKA_CA_VOLUME = 'idempo-kafka-ca';
export const KAFKA_CLIENT_VOLUME = 'idempo-kafka-client';
/** --state-dir: an emptyDir survives the sidecar container's restarts (kill -9, OOM) within the pod. */
export const STATE_VOLUME = 'idempo-state';
export const STATE_DIR = '/var/lib/idempo';
export const KAFKA_SASL_VOLUME = 'idempo-kafka-sasl';
export const METRICS_PORT_NAME = 'idempo-metrics';
export const SIDECAR_UID = 65532;
const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';

/** The sidecar's command line (DESIGN.md "The sidecar's command line"). */
export function sidecarArgs(spec: PolicySpec, policyName: string): string[] {
  const args = [
    '--upstream', spec.kafka.bootstrapServers.join(','),
    '--listen', `127.0.0.1:${spec.injection.listenPort}`,
    // 0.0.0.0 so kubelet probes and Prometheus reach it from outside the pod.
    '--metrics-listen', `0.0.0.0:${spec.sidecar.metricsPort}`,
    // Mode and log level come from the mounted policy file (no --mode flag, which would win
    // over the file), so a policy change reaches running sidecars by hot reload.
    '--config', POLICY_CONFIG_PATH,
    '--policy-name', policyName,
    '--state-dir', STATE_DIR,
  ];
  const tls = spec.kafka.tls;
  if (tls.enabled) {
    args.push('--upstream-tls');
    if (tls.caSecretRef) args.push('--upstream-ca-file', `${KAFKA_CA_DIR}/${KAFKA_CA_FILE}`);
    if (tls.clientCertSecretRef) args.push('--upstream-cert-file', `${KAFKA_CLIENT_CERT_DIR}/tls.crt`, '--upstream-key-file', `${KAFKA_CLIENT_CERT_DIR}/tls.key`);
    if (tls.serverName) args.push('--upstream-server-name', tls.serverName);
  }
  const sasl = spec.kafka.sasl;
  if (sasl) {
    // Paths only: the credentials stay in the mounted Secret (never in args, env or the pod spec).
    args.push('--upstream-sasl-mechanism', sasl.mechanism,
      '--upstream-sasl-username-file', `${KAFKA_SASL_DIR}/${KAFKA_SASL_USERNAME_FILE}`,
      '--upstream-sasl-password-file', `${KAFKA_SASL_DIR}/${KAFKA_SASL_PASSWORD_FILE}`);
  }
  return args;
}

function quantities(m: Record<string, string | number> | undefined): Record<string, string> | undefined {
  return m === undefined ? undefined : Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)]));
}

function sidecarContainer(policy: IdempotentProducerPolicy, opts: MutateOptions, native: boolean): V1Container {
  const spec = policy.spec;
  const port = spec.sidecar.metricsPort;
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port, scheme: 'HTTP' },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: 1,
  });
  const mounts: V1VolumeMount[] = [
    { name: CONFIG_VOLUME, mountPath: POLICY_CONFIG_DIR, readOnly: true },
    { name: STATE_VOLUME, mountPath: STATE_DIR },
  ];
  if (spec.kafka.tls.enabled && spec.kafka.tls.caSecretRef) mounts.push({ name: KAFKA_CA_VOLUME, mountPath: KAFKA_CA_DIR, readOnly: true });
  if (spec.kafka.tls.enabled && spec.kafka.tls.clientCertSecretRef) {
    mounts.push({ name: KAFKA_CLIENT_VOLUME, mountPath: KAFKA_CLIENT_CERT_DIR, readOnly: true });
  }
  if (spec.kafka.sasl) mounts.push({ name: KAFKA_SASL_VOLUME, mountPath: KAFKA_SASL_DIR, readOnly: true });
  const resources = {
    ...(spec.sidecar.resources.requests ? { requests: quantities(spec.sidecar.resources.requests) } : {}),
    ...(spec.sidecar.resources.limits ? { limits: quantities(spec.sidecar.resources.limits) } : {}),
  };
  const c: V1Container = {
    name: SIDECAR_CONTAINER_NAME,
    image: opts.image ?? spec.injection.image,
    imagePullPolicy: 'IfNotPresent',
    args: sidecarArgs(spec, policy.metadata?.name ?? ''),
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ],
    ports: [{ name: METRICS_PORT_NAME, containerPort: port, protocol: 'TCP' }],
    volumeMounts: mounts,
    resources,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: SIDECAR_UID,
      runAsGroup: SIDECAR_UID,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    readinessProbe: probe('/readyz', 2, 3),
    livenessProbe: probe('/healthz', 10, 3),
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (native) {
    c.restartPolicy = 'Always';
    // Holds the later init containers and the app until the proxy is ready (up to 2 min).
    c.startupProbe = probe('/readyz', 1, 120);
  }
  return c;
}

function volumes(policy: IdempotentProducerPolicy): V1Volume[] {
  const tls = policy.spec.kafka.tls;
  const v: V1Volume[] = [
    {
      name: CONFIG_VOLUME,
      configMap: { name: policyConfigMapName(policy.metadata.name ?? ''), items: [{ key: POLICY_CONFIG_KEY, path: POLICY_CONFIG_KEY }] },
    },
    // No sizeLimit: exceeding one evicts the pod; the journal compacts itself (sidecar/state/README.md).
    { name: STATE_VOLUME, emptyDir: {} },
  ];
  if (tls.enabled && tls.caSecretRef) {
    v.push({ name: KAFKA_CA_VOLUME, secret: { secretName: tls.caSecretRef.name, items: [{ key: tls.caSecretRef.key, path: KAFKA_CA_FILE }] } });
  }
  if (tls.enabled && tls.clientCertSecretRef) {
    v.push({ name: KAFKA_CLIENT_VOLUME, secret: { secretName: tls.clientCertSecretRef.name } });
  }
  const sasl = policy.spec.kafka.sasl;
  if (sasl) {
    // Only the two keys, under fixed names. Default file mode: the volume is mounted into the
    // sidecar alone, and a mode without fsGroup would keep its non-root user out.
    v.push({
      name: KAFKA_SASL_VOLUME,
      secret: {
        secretName: sasl.secretRef.name,
        items: [
          { key: sasl.secretRef.usernameKey, path: KAFKA_SASL_USERNAME_FILE },
          { key: sasl.secretRef.passwordKey, path: KAFKA_SASL_PASSWORD_FILE },
        ],
      },
    });
  }
  return v;
}

/**
 * Points the app at the sidecar. Only variables the container already sets are rewritten:
 * adding one the app does not read would do nothing, and adding one it reads differently
 * could break it. Apps that take the bootstrap servers from elsewhere (envFrom, files,
 * flags) must point at 127.0.0.1:<listenPort> themselves.
 */
function rewriteEnv(env: V1EnvVar[] | undefined, names: string[], value: string): V1EnvVar[] | undefined {
  return env?.map((e) => (names.includes(e.name) ? { name: e.name, value } : e));
}

/** The pod with the sidecar injected for `policy` (whose spec must be defaulted and valid). */
export function mutate(pod: V1Pod, policy: IdempotentProducerPolicy, opts: MutateOptions): V1Pod {
  const out: V1Pod = structuredClone(pod);
  const spec = policy.spec;
  const name = policy.metadata.name ?? '';
  const native = opts.nativeSidecarsSupported && spec.injection.nativeSidecar;
  out.spec ??= { containers: [] };
  const podSpec = out.spec;

  const listen = `127.0.0.1:${spec.injection.listenPort}`;
  for (const c of [...podSpec.containers, ...(podSpec.initContainers ?? [])]) {
    const env = rewriteEnv(c.env, spec.injection.bootstrapEnvVars, listen);
    if (env) c.env = env;
  }

  const sidecar = sidecarContainer(policy, opts, native);
  const firstApp = podSpec.containers[0]?.name;
  if (native) {
    // First init container, so every later init container and the app can use it.
    podSpec.initContainers = [sidecar, ...(podSpec.initContainers ?? [])];
  } else {
    // First container: kubelet starts containers in order, so the proxy gets a head start.
    podSpec.containers = [sidecar, ...podSpec.containers];
  }

  const ours = new Set(volumes(policy).map((v) => v.name));
  podSpec.volumes = [...(podSpec.volumes ?? []).filter((v) => !ours.has(v.name)), ...volumes(policy)];

  const meta = (out.metadata ??= {});
  const annotations = (meta.annotations ??= {});
  annotations[ANNOTATION_INJECTED] = name;
  // Keep the app's own scrape annotations: overwriting them would hide its metrics. The
  // chart's PodMonitor finds the sidecar by its port name either way.
  if (annotations['prometheus.io/scrape'] === undefined) {
    annotations['prometheus.io/scrape'] = 'true';
    annotations['prometheus.io/port'] = String(spec.sidecar.metricsPort);
    annotations['prometheus.io/path'] = '/metrics';
  }
  if (!native && firstApp !== undefined && annotations[DEFAULT_CONTAINER_ANNOTATION] === undefined) {
    // kubectl logs/exec would otherwise pick the sidecar, now containers[0].
    annotations[DEFAULT_CONTAINER_ANNOTATION] = firstApp;
  }
  // Label too, so the operator can count injected pods per policy with a label selector
  // (the CRD limits policy names to 63 characters, a label value's maximum).
  if (name.length <= 63) (meta.labels ??= {})[LABEL_INJECTED] = name;
  return out;
}
