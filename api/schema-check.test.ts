// checkSchema replaces ajv in the sidecar's start-up path: it must find exactly what ajv
// finds (same keyword at the same place, in the same order) for the policy schema, on valid
// specs and on generated breakages of them. ajv stays the reference, in this test only.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Ajv } from 'ajv';
import { applyDefaults, POLICY_SPEC_SCHEMA, type SchemaProps } from './index.js';
import { checkSchema } from './schema-check.js';

/** ajv's view of the schema: unknown fields are errors, Kubernetes-only keywords dropped. */
function forAjv(s: SchemaProps): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') || k === 'description' || k === 'default' || k === 'format') continue;
    if (k === 'properties') out.properties = Object.fromEntries(Object.entries(v as Record<string, SchemaProps>).map(([pk, pv]) => [pk, forAjv(pv)]));
    else if (k === 'items' || k === 'additionalProperties') out[k] = forAjv(v as SchemaProps);
    else if (k === 'anyOf') out.anyOf = (v as SchemaProps[]).map(forAjv);
    else out[k] = v;
  }
  if (s.properties && s.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}
const ajvValidate = new Ajv({ allErrors: true, strict: true, strictTypes: false }).compile(forAjv(POLICY_SPEC_SCHEMA));

function ajvFindings(value: unknown): string[] {
  if (ajvValidate(value)) return [];
  return (ajvValidate.errors ?? []).filter((e) => !e.schemaPath.includes('/anyOf/')).map((e) => `${e.keyword} ${e.instancePath}`);
}
const ours = (value: unknown): string[] => checkSchema(value, POLICY_SPEC_SCHEMA).map((e) => `${e.keyword} ${e.instancePath}`);

const valid = () =>
  applyDefaults({
    selector: { matchLabels: { app: 'a' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['x'] }] },
    kafka: { bootstrapServers: ['k1:9092'], tls: { enabled: true, caSecretRef: { name: 'ca', key: 'ca.crt' } } },
    dedup: { strategy: 'header', header: 'idempotency-key' },
    sidecar: { resources: { requests: { cpu: '10m', memory: 1024 } } },
  }) as unknown as Record<string, unknown>;

/** Every path (object keys and array indexes) inside a value. */
function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(v)) return v.flatMap((x, i) => [[...prefix, i], ...paths(x, [...prefix, i])]);
  if (typeof v === 'object' && v !== null) return Object.entries(v).flatMap(([k, x]) => [[...prefix, k], ...paths(x, [...prefix, k])]);
  return [];
}

function setAt(root: Record<string, unknown>, path: (string | number)[], value: unknown, remove: boolean): void {
  let o = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (remove) delete o[last];
  else o[last] = value;
}

describe('checkSchema', () => {
  it('accepts a valid spec, as ajv does', () => {
    expect(ajvFindings(valid())).toEqual([]);
    expect(ours(valid())).toEqual([]);
  });

  it('reports what ajv reports, in its order, for generated breakages', () => {
    const all = paths(valid());
    const odd = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('', 'x', 'k:0', '5 minutes', '10m', -1, 0, 2.5, 70000, 'In', 'header', true, null, [], {}));
    const mutation = fc.record({ at: fc.constantFrom(...all), value: odd, remove: fc.boolean(), extraKey: fc.option(fc.string({ maxLength: 8 })) });
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => {
        const spec = valid();
        for (const m of ms) {
          try {
            if (m.extraKey !== null) setAt(spec, [...m.at.slice(0, -1), m.extraKey], m.value, false);
            else setAt(spec, m.at, m.value, m.remove);
          } catch {
            // an earlier mutation replaced a parent: nothing to change here
          }
        }
        expect(ours(spec)).toEqual(ajvFindings(spec));
      }),
      { numRuns: 3000, seed: 9 },
    );
  });
});
