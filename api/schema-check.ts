// Checks a value against the schema subset of schema.ts (SchemaProps), the way ajv does with
// { allErrors: true } and additionalProperties: false wherever properties are listed. A walk
// over the schema instead of ajv: ajv compiles the schema to code when it loads (~100 ms and
// ~6 MiB in a sidecar that must be ready fast), for a schema this small.
//
// Order of errors at one place, as ajv reports them: type, then the keywords for any type
// (enum, anyOf), then those for the value's own type (number, string, array, object), each
// group only when the value has that type.
import type { SchemaProps } from './schema.js';

export interface SchemaError {
  keyword: 'type' | 'enum' | 'anyOf' | 'minimum' | 'maximum' | 'minLength' | 'maxLength' | 'pattern' | 'minItems' | 'maxItems' | 'required' | 'additionalProperties';
  /** JSON pointer of the value, e.g. /kafka/bootstrapServers/0 (ajv's instancePath). */
  instancePath: string;
  params: Record<string, unknown>;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function hasType(value: unknown, type: NonNullable<SchemaProps['type']>): boolean {
  switch (type) {
    case 'object':
      return isObject(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return Number.isInteger(value);
  }
}

const patterns = new Map<string, RegExp>();
function regex(pattern: string): RegExp {
  let r = patterns.get(pattern);
  if (!r) patterns.set(pattern, (r = new RegExp(pattern, 'u')));
  return r;
}

const pointerSegment = (key: string | number): string => `/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;

/** Every way `value` breaks `schema`, in ajv's order; empty when it conforms. */
export function checkSchema(value: unknown, schema: SchemaProps, at = '', errors: SchemaError[] = []): SchemaError[] {
  const fail = (keyword: SchemaError['keyword'], params: Record<string, unknown>): void => void errors.push({ keyword, instancePath: at, params });
  if (schema.type && !hasType(value, schema.type)) fail('type', { type: schema.type });
  if (schema.enum && !schema.enum.includes(value as string | number)) fail('enum', { allowedValues: schema.enum });
  if (schema.anyOf && !schema.anyOf.some((branch) => checkSchema(value, branch, at).length === 0)) fail('anyOf', {});
  if (typeof value === 'number') {
    if (schema.maximum !== undefined && value > schema.maximum) fail('maximum', { limit: schema.maximum });
    if (schema.minimum !== undefined && value < schema.minimum) fail('minimum', { limit: schema.minimum });
  }
  if (typeof value === 'string') {
    const length = [...value].length; // code points, as ajv counts
    if (schema.maxLength !== undefined && length > schema.maxLength) fail('maxLength', { limit: schema.maxLength });
    if (schema.minLength !== undefined && length < schema.minLength) fail('minLength', { limit: schema.minLength });
    if (schema.pattern !== undefined && !regex(schema.pattern).test(value)) fail('pattern', { pattern: schema.pattern });
  }
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) fail('maxItems', { limit: schema.maxItems });
    if (schema.minItems !== undefined && value.length < schema.minItems) fail('minItems', { limit: schema.minItems });
    if (schema.items) for (let i = 0; i < value.length; i++) checkSchema(value[i], schema.items, at + pointerSegment(i), errors);
  }
  if (isObject(value)) {
    for (const name of schema.required ?? []) if (value[name] === undefined) fail('required', { missingProperty: name });
    const props = schema.properties;
    for (const [key, v] of Object.entries(value)) {
      if (props && Object.hasOwn(props, key)) continue;
      if (schema.additionalProperties) checkSchema(v, schema.additionalProperties, at + pointerSegment(key), errors);
      else if (props) fail('additionalProperties', { additionalProperty: key });
    }
    if (props) {
      for (const [key, sub] of Object.entries(props)) if (value[key] !== undefined) checkSchema(value[key], sub, at + pointerSegment(key), errors);
    }
  }
  return errors;
}
