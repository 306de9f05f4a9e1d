// The HTTP side of the mutating webhook: AdmissionReview v1 in, AdmissionReview out.
// All judgement lives in decide/mutate/patch; this file only reads, guards and answers.
//
// Failure behaviour: the webhook never blocks a pod. A review with a uid always gets
// `allowed: true` (plus a warning when something is off); a body that is not an
// AdmissionReview with a request uid gets HTTP 400 (413 when over the size limit), which
// the API server treats as a failed call and, with failurePolicy Ignore, admits the pod.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { IdempotentProducerPolicy } from '../../api/index.js';
import { decide, HANDLER_REASONS, type HandlerReasonCode, type ReasonCode } from './decide.js';
import { mutate } from './mutate.js';
import { createPatch } from './patch.js';

export const MUTATE_PATH = '/mutate-pods';
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;

export interface AdmissionDeps {
  lookup: {
    namespace(name: string): Promise<V1Namespace | undefined>;
    policies(ns: string): Promise<IdempotentProducerPolicy[]>;
  };
  log: Logger;
  /** Default true (Kubernetes >= 1.29). */
  nativeSidecarsSupported?: boolean;
  /** Overrides every policy's spec.injection.image. */
  image?: string;
  /** Called once per answered review: for idempo_operator_admissions_total and idempo_operator_webhook_latency_seconds. */
  onDecision?(reason: string, injected: boolean, seconds: number): void;
  maxBodyBytes?: number;
}

/** Reasons whose users should hear about it at `kubectl apply` time. */
const WARN: ReadonlySet<string> = new Set<ReasonCode | HandlerReasonCode>([
  'multiple_policies',
  'policy_not_found',
  'invalid_spec',
  'policy_not_ready',
  'lookup_failed',
  'internal_error',
]);

interface AdmissionResponse {
  uid: string;
  allowed: true;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function sendJson(res: ServerResponse, status: number, body: unknown, close = false): void {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(data),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(data);
}

function sendStatus(res: ServerResponse, status: number, message: string, close = false): void {
  sendJson(res, status, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code: status }, close);
}

/** Resolves to the body, or undefined after answering 413 itself. */
function readBody(req: IncomingMessage, res: ServerResponse, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      sendStatus(res, 413, `request body over ${limit} bytes`, true);
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        // Node discards the rest of the body; connection: close ends the socket after.
        sendStatus(res, 413, `request body over ${limit} bytes`, true);
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

export function createAdmissionHandler(deps: AdmissionDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const limit = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const native = deps.nativeSidecarsSupported ?? true;

  async function review(body: Buffer, res: ServerResponse, started: bigint): Promise<void> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      sendStatus(res, 400, 'request body is not JSON');
      return;
    }
    const request = isObj(parsed) ? parsed.request : undefined;
    if (!isObj(parsed) || parsed.kind !== 'AdmissionReview' || !isObj(request) || typeof request.uid !== 'string' || !request.uid) {
      sendStatus(res, 400, 'expected an AdmissionReview with request.uid');
      return;
    }
    const uid = request.uid;
    let podName: string | undefined;
    let nsName: string | undefined;
    const answer = (reason: string, injected: boolean, message: string, extra: Partial<AdmissionResponse> = {}) => {
      const response: AdmissionResponse = { uid, allowed: true, ...extra };
      if (WARN.has(reason)) response.warnings = [`idempo: ${reason}: ${message}`];
      sendJson(res, 200, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      deps.onDecision?.(reason, injected, seconds);
      const level = injected || WARN.has(reason) ? 'info' : 'debug';
      deps.log[level]({ uid, reason, injected, pod: podName, namespace: nsName, seconds }, message);
    };

    const pod = request.object;
    const kind = isObj(request.kind) ? request.kind.kind : undefined;
    const podShaped = isObj(pod) && isObj(pod.spec) && Array.isArray(pod.spec.containers);
    if (request.operation !== 'CREATE' || kind !== 'Pod' || request.subResource || !podShaped) {
      answer('not_a_pod', false, HANDLER_REASONS.not_a_pod);
      return;
    }
    const p = pod as V1Pod;
    podName = p.metadata?.name ?? p.metadata?.generateName;
    // Pods created through a controller often have no namespace in the object yet.
    nsName = typeof request.namespace === 'string' ? request.namespace : (p.metadata?.namespace ?? 'default');

    let ns: V1Namespace | undefined;
    let policies: IdempotentProducerPolicy[];
    try {
      [ns, policies] = await Promise.all([deps.lookup.namespace(nsName), deps.lookup.policies(nsName)]);
    } catch (err) {
      answer('lookup_failed', false, `${HANDLER_REASONS.lookup_failed} (${(err as Error).message})`);
      return;
    }

    try {
      const d = decide(p, ns, policies);
      if (!d.inject || !d.policy) {
        answer(d.reason, false, d.message);
        return;
      }
      const ops = createPatch(p, mutate(p, d.policy, { nativeSidecarsSupported: native, image: deps.image }));
      answer(d.reason, true, d.message, { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(ops)).toString('base64') });
    } catch (err) {
      answer('internal_error', false, `injection failed; the pod is admitted without the sidecar (${(err as Error).message})`);
    }
  }

  return (req, res) => {
    const started = process.hrtime.bigint();
    const path = (req.url ?? '').split('?')[0];
    if (path !== MUTATE_PATH) {
      sendStatus(res, 404, `not found: ${path}`);
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      sendStatus(res, 405, 'use POST');
      return;
    }
    readBody(req, res, limit)
      .then((body) => (body === undefined ? undefined : review(body, res, started)))
      .catch((err: unknown) => {
        deps.log.warn({ err }, 'admission request failed');
        if (!res.headersSent) sendStatus(res, 400, 'could not read the request');
        else res.destroy();
      });
  };
}

