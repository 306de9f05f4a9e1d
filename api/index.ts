// api/: the single source of truth for IdempotentProducerPolicy (schema, defaults, types, validation, names).
export * from './constants.js';
export * from './types.js';
export { DURATION_PATTERN, isDuration, parseDuration } from './duration.js';
export {
  CROSS_FIELD_RULES,
  DEDUP_STRATEGIES,
  DEFAULT_IMAGE,
  DEFAULT_RESOURCES,
  LOG_LEVELS,
  MODES,
  POLICY_SCHEMA,
  POLICY_SPEC_SCHEMA,
  POLICY_STATUS_SCHEMA,
  SASL_MECHANISMS,
  SELECTOR_OPERATORS,
  type CrossFieldRule,
  type SchemaProps,
  type ValidationRule,
} from './schema.js';
export { applyDefaults, parseJsonOrYaml, parsePolicySpec, parsePolicyText, type ParseResult } from './validate.js';
export { buildCrd, CRD_FILE, renderCrdYaml } from './crd.js';
