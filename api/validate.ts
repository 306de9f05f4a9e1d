// Defaulting and validation of a spec outside the API server (sidecar config files, the
// webhook's own check, tests), following the API server's order: default, then schema,
// then the CEL rules (here their TS twins from CROSS_FIELD_RULES).
import { requireCjs } from './require-cjs.js';
import { KIND } from './constants.js';
import { checkSchema, type SchemaError } from './schema-check.js';
import { CROSS_FIELD_RULES, defaultInto, PATTERN_HINTS, POLICY_SPEC_SCHEMA } from './schema.js';
import type { PolicySpec, PolicySpecInput } from './types.js';

export type ParseResult = { ok: true; spec: PolicySpec } | { ok: false; errors: string[] };

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** A defaulted deep copy of a spec; the input is left alone. Malformed input comes back defaulted as far as it goes. */
export function applyDefaults(spec: PolicySpecInput): PolicySpec;
export function applyDefaults(spec: unknown): unknown;
export function applyDefaults(spec: unknown): unknown {
  const copy = structuredClone(spec);
  defaultInto(copy, POLICY_SPEC_SCHEMA);
  return copy;
}

function pointerToPath(pointer: string): string {
  let path = 'spec';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^[0-9]+$/.test(seg)) path += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) path += `.${seg}`;
    else path += `[${JSON.stringify(seg)}]`;
  }
  return path;
}

const article = (t: string) => (t === 'integer' || t === 'array' || t === 'object' ? `an ${t}` : `a ${t}`);
const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;

function describe(e: SchemaError): string {
  const p = e.params as Record<string, unknown>;
  const at = pointerToPath(e.instancePath);
  switch (e.keyword) {
    case 'required':
      return `${at}.${String(p.missingProperty)}: required`;
    case 'additionalProperties':
      return `${at}.${String(p.additionalProperty)}: unknown field`;
    case 'enum':
      return `${at}: must be one of ${(p.allowedValues as unknown[]).join(', ')}`;
    case 'pattern':
      return `${at}: ${PATTERN_HINTS[String(p.pattern)] ?? `must match ${String(p.pattern)}`}`;
    case 'type':
      return `${at}: must be ${article(String(p.type))}`;
    case 'minimum':
      return `${at}: must be at least ${String(p.limit)}`;
    case 'maximum':
      return `${at}: must be at most ${String(p.limit)}`;
    case 'minItems':
      return `${at}: must have at least ${plural(Number(p.limit), 'item')}`;
    case 'maxItems':
      return `${at}: must have at most ${plural(Number(p.limit), 'item')}`;
    case 'minLength':
      return Number(p.limit) === 1 ? `${at}: must not be empty` : `${at}: must be at least ${plural(Number(p.limit), 'character')}`;
    case 'maxLength':
      return `${at}: must be at most ${plural(Number(p.limit), 'character')}`;
    case 'anyOf':
      return `${at}: must be an integer or a string`;
  }
}

function schemaErrors(spec: unknown): string[] {
  return checkSchema(spec, POLICY_SPEC_SCHEMA).map(describe);
}

/** Every value at `at` below `root`, with its path ('*' walks array items). */
function valuesAt(root: unknown, at: string[], path = 'spec'): { value: unknown; path: string }[] {
  if (at.length === 0) return [{ value: root, path }];
  const [head, ...rest] = at;
  if (head === '*') {
    return Array.isArray(root) ? root.flatMap((v, i) => valuesAt(v, rest, `${path}[${i}]`)) : [];
  }
  if (!isObject(root) || root[head] === undefined) return [];
  return valuesAt(root[head], rest, `${path}.${head}`);
}

function crossFieldErrors(spec: unknown): string[] {
  const errors: string[] = [];
  for (const r of CROSS_FIELD_RULES) {
    for (const { value, path } of valuesAt(spec, r.at)) {
      let ok: boolean;
      try {
        ok = r.check(value);
      } catch {
        ok = true; // malformed input: the schema errors already say why
      }
      if (!ok) errors.push(`${path}${r.fieldPath ?? ''}: ${r.message}`);
    }
  }
  return errors;
}

/**
 * Defaults then validates a spec (or a whole IdempotentProducerPolicy object, whose spec is
 * used). Each error is one line starting with the field path, e.g.
 * `spec.dedup.header: required when spec.dedup.strategy is header`.
 */
export function parsePolicySpec(input: unknown): ParseResult {
  const raw = isObject(input) && input.kind === KIND && 'spec' in input ? input.spec : input;
  if (!isObject(raw)) return { ok: false, errors: ['spec: must be an object'] };
  const spec = applyDefaults(raw);
  const errors = [...new Set([...schemaErrors(spec), ...crossFieldErrors(spec)])];
  return errors.length ? { ok: false, errors } : { ok: true, spec: spec as PolicySpec };
}


/**
 * File contents as a document: JSON (what the operator renders) without loading the YAML
 * parser, which the sidecar then never needs at start-up; anything else as YAML (a superset
 * of JSON). Throws the parser's error.
 */
export function parseJsonOrYaml(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // not JSON
  }
  return (requireCjs('yaml') as typeof import('yaml')).parse(text);
}

/** parsePolicySpec for file contents: JSON or YAML (YAML is a superset of JSON). */
export function parsePolicyText(text: string): ParseResult {
  let doc: unknown;
  try {
    doc = parseJsonOrYaml(text);
  } catch (err) {
    return { ok: false, errors: [`spec: not valid JSON or YAML: ${(err as Error).message.split('\n')[0]}`] };
  }
  return parsePolicySpec(doc);
}
