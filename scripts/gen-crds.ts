// Writes the CRD generated from api/ (run: npm run gen:crds). With no arguments it writes
// crds/idempo.dev_idempotentproducerpolicies.yaml; arguments name other copies to write
// (e.g. the Helm chart's crds/). Paths are relative to the current directory: npm runs
// scripts from the package root.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CRD_FILE, renderCrdYaml } from '../api/crd.js';

const yaml = renderCrdYaml();
for (const target of process.argv.length > 2 ? process.argv.slice(2) : [CRD_FILE]) {
  const out = resolve(target);
  writeFileSync(out, yaml);
  console.log(`wrote ${out}`);
}
