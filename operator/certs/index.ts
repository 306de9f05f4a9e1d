// operator/certs/: issue and renew the webhook's certificates; keep the cluster's Secret and webhook caBundle in step.
export { certInfo, coversAndChains, issueCA, issueServing, needsRenewal, type CertInfo, type CertKeyPair } from './issue.js';
export {
  ensureCertSecret,
  patchCABundle,
  registerWebhook,
  SECRET_KEYS,
  WEBHOOK_NAME,
  webhookConfiguration,
  type CertBundle,
  type EnsureCertOptions,
  type RegisterWebhookOptions,
} from './kube.js';
