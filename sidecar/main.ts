#!/usr/bin/env node
// idempo-sidecar's entry point. It turns V8's compile cache on before anything else loads:
// the sidecar's modules are then compiled once per Node version and file content and read
// back on the next start (a restart with the cache directory kept, or an image that ships
// the cache), which shortens the time to ready. IDEMPO_COMPILE_CACHE names the directory
// (default: NODE_COMPILE_CACHE, else the OS temp dir); where it cannot be written, Node
// silently compiles as usual. Then the sidecar itself: bundle.cjs (make build's one-file
// build of sidecar.ts, scripts/bundle-sidecar.ts) when it is at least as new as the compiled
// sidecar.js — a tsc build after a change rewrites every module, and then they run as they are.
import { createRequire, enableCompileCache } from 'node:module';

enableCompileCache(process.env.IDEMPO_COMPILE_CACHE);

const require = createRequire(import.meta.url);
const fs = require('node:fs') as typeof import('node:fs'); // not an ES import: see bundle-sidecar.ts
const mtime = (file: string): number => fs.statSync(new URL(file, import.meta.url), { throwIfNoEntry: false })?.mtimeMs ?? -1;
if (mtime('./bundle.cjs') >= mtime('./sidecar.js')) require('./bundle.cjs');
else await import('./sidecar.js');
