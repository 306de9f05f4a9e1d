// make build's last step (after tsc): the compiled sidecar as one CommonJS file,
// dist/sidecar/bundle.cjs, which dist/sidecar/main.cjs loads when it is newer than the compiled
// modules. One file instead of ~110 modules: the ES module loader's per-file work (resolving,
// linking, the path and URL functions it makes hot enough for V8 to optimise at start-up) is
// gone, and Node's built-ins are loaded with require (an ES import of a built-in reads all its
// exports, loading what their lazy getters name). Measured: idle RSS -7 MiB, half the CPU to
// ready. Native addons and the YAML parser (loaded only for a YAML config) stay outside it.
import { build, type Plugin } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * api/require-cjs.js (createRequire(import.meta.url) for the ES modules) becomes the bundle's own
 * `require`: no import.meta in a CommonJS file, and no path work at start-up (resolving a file
 * URL and its node_modules paths; enough of it makes V8 optimise Node's path functions, which
 * brings ~2.5 MiB of its optimising compiler's code into memory).
 */
const ownRequire: Plugin = {
  name: 'own-require',
  setup(b) {
    b.onLoad({ filter: /[\\/]api[\\/]require-cjs\.js$/ }, () => ({ contents: 'export const requireCjs = require;', loader: 'js' }));
  },
};

const outfile = path.join(dist, 'sidecar/bundle.cjs');
await build({
  entryPoints: [path.join(dist, 'sidecar/sidecar.js')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  external: ['@node-rs/*', 'yaml'],
  plugins: [ownRequire],
  banner: { js: '"use strict";' },
  logLevel: 'warning',
});

/**
 * V8 keeps the bundle's source for the life of the process, one byte per character only when every
 * character is Latin-1: one '—' in a comment made all of it two bytes per character (+0.45 MiB of
 * old space, at idle too). esbuild escapes what is not ASCII in code (its default charset); what is
 * left is in comments, spelled in ASCII here.
 */
const ASCII_FOR: Record<string, string> = { '—': '--', '–': '-', '→': '->', '←': '<-', '≥': '>=', '≤': '<=', '×': 'x', '…': '...', '≈': '~' };
const source = readFileSync(outfile, 'utf8');
writeFileSync(outfile, source.replace(/[^\x00-\xff]/g, (c) => ASCII_FOR[c] ?? '?'));
