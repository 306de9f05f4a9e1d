// operator/webhook/: the pod injector — decide (pure), mutate (pure), diff → JSON patch, thin HTTP handler.
export { decide, HANDLER_REASONS, REASONS, type Decision, type HandlerReasonCode, type ReasonCode } from './decide.js';
export { CONFIG_VOLUME, METRICS_PORT_NAME, mutate, sidecarArgs, type MutateOptions } from './mutate.js';
export { applyPatch, createPatch, escapePointer, type JsonValue, type PatchOp } from './patch.js';
export { selectorMatches } from './selector.js';
export { createAdmissionHandler, DEFAULT_MAX_BODY_BYTES, MUTATE_PATH, type AdmissionDeps } from './handler.js';
