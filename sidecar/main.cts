#!/usr/bin/env node
// idempo-sidecar's entry point: bundle.cjs (make build's one-file build of sidecar.ts,
// scripts/bundle-sidecar.ts) when it is at least as new as the compiled sidecar.js — a tsc
// build after a change rewrites every module, and then they run as they are.
//
// CommonJS, like the bundle: an ES module entry starts Node's ES module loader (its modules,
// and path and URL work enough for V8 to optimise Node's path functions, which brings its
// optimising compiler's code into memory): 1.1 MiB more idle RSS. No compile cache either: it
// did the same, and the image (a read-only root filesystem) could never write one.
import fs = require('node:fs');
import path = require('node:path');

const mtime = (file: string): number => fs.statSync(path.join(__dirname, file), { throwIfNoEntry: false })?.mtimeMs ?? -1;
if (mtime('bundle.cjs') >= mtime('sidecar.js')) require('./bundle.cjs');
else void import('./sidecar.js');
