// Writes crds/idempo.dev_idempotentproducerpolicies.yaml from api/ (run: npm run gen:crds).
// Paths are relative to the current directory: npm runs scripts from the package root.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CRD_FILE, renderCrdYaml } from '../api/crd.js';

const out = resolve(process.argv[2] ?? CRD_FILE);
writeFileSync(out, renderCrdYaml());
console.log(`wrote ${out}`);
