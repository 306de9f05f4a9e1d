#!/usr/bin/env node
// idempo-sidecar's entry point. It turns V8's compile cache on before anything else loads:
// the sidecar's modules are then compiled once per Node version and file content and read
// back on the next start (a restart with the cache directory kept, or an image that ships
// the cache), which shortens the time to ready. IDEMPO_COMPILE_CACHE names the directory
// (default: NODE_COMPILE_CACHE, else the OS temp dir); where it cannot be written, Node
// silently compiles as usual. Then the sidecar itself (sidecar.ts).
import { enableCompileCache } from 'node:module';

enableCompileCache(process.env.IDEMPO_COMPILE_CACHE);
await import('./sidecar.js');
