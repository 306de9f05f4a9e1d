// crds/ is generated from api/schema.ts; this fails when someone changes one without the other.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CRD_FILE, renderCrdYaml } from './index.js';

describe('crds/', () => {
  it('is up to date with api/schema.ts (run `npm run gen:crds`)', () => {
    const onDisk = readFileSync(new URL(`../${CRD_FILE}`, import.meta.url), 'utf8');
    expect(onDisk === renderCrdYaml(), `${CRD_FILE} is stale: run npm run gen:crds`).toBe(true);
  });

  it('the Helm chart carries the same CRD', () => {
    // Helm installs CRDs only from the chart's crds/: a missing copy is a chart without the CRD.
    const chartCopy = new URL('../charts/idempo/crds/idempo.dev_idempotentproducerpolicies.yaml', import.meta.url);
    expect(existsSync(chartCopy), 'charts/idempo/crds/ has no CRD: run npm run gen:crds').toBe(true);
    expect(readFileSync(chartCopy, 'utf8') === renderCrdYaml(), 'charts/idempo/crds/ is stale: run npm run gen:crds').toBe(true);
  });

  it('renders deterministically', () => {
    expect(renderCrdYaml()).toBe(renderCrdYaml());
  });

  it('reads back as YAML 1.1 (kubectl) with the enum value off still a string', () => {
    const crd = parse(renderCrdYaml(), { version: '1.1' });
    const dedup = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.dedup;
    expect(dedup.properties.strategy.enum).toEqual(['off', 'exact', 'content', 'header']);
    expect(crd.spec.names.shortNames).toEqual(['ipp']);
    expect(crd.spec.versions[0].subresources).toEqual({ status: {} });
  });

  it('never uses additionalProperties: false (not allowed in structural schemas)', () => {
    expect(renderCrdYaml()).not.toMatch(/additionalProperties: false/);
  });
});
