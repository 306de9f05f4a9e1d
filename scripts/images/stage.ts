// Lays out an image's root filesystem in a directory, from spec.ts: the Node binary and the
// shared libraries it and the native addons link (as ldd finds them on this machine), a passwd/group naming the
// non-root user, and /app with package.json, the compiled code the entry point may load and
// the production dependencies it imports (their transitive closure, without type
// declarations, maps or docs). `make images` packs the result into an OCI archive; the
// Dockerfile runs this same file in its build stage and copies the result into `scratch`.
//
//   node dist/scripts/images/stage.js sidecar|operator OUT-DIR
import { execFileSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { APP_DIR, EXCLUDE, IMAGE_USER, IMAGES, NODE_PATH, type ImageKey, type ImageSpec } from './spec.js';

export interface StageOptions {
  /** Repository root holding dist/ and node_modules/ (default: this checkout). */
  repo?: string;
  /** The Node binary to ship (default: the one running this script). */
  nodeBin?: string;
}

export interface StageResult {
  /** Production packages copied, by directory relative to the repo. */
  packages: string[];
  /** Shared libraries copied (paths inside the image). */
  libs: string[];
}

/** The checkout this file is in: compiled (dist/scripts/images) or run from source (scripts/images). */
export const repoRoot = (() => {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'tsconfig.json'))) return dir;
    if (dir === path.dirname(dir)) throw new Error('images: no checkout (package.json + tsconfig.json) above scripts/images');
  }
})();

const builtins = new Set(builtinModules);
const excluded = (rel: string) => EXCLUDE.some((re) => re.test(rel));

/** Files under `dir` (relative paths), skipping excluded ones and nested node_modules. */
function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) {
      if (e.name !== 'node_modules') out.push(...walk(dir, r));
    } else if ((e.isFile() || e.isSymbolicLink()) && !excluded(r)) out.push(r);
  }
  return out;
}

function copy(src: string, dst: string): void {
  mkdirSync(path.dirname(dst), { recursive: true });
  copyFileSync(realpathSync(src), dst);
  const st = statSync(src);
  chmodSync(dst, (st.mode & 0o755) | 0o444);
  // Modification times kept: the sidecar's main.cjs runs bundle.cjs only when it is the newest build.
  utimesSync(dst, st.atime, st.mtime);
}

/** Package names a compiled ES module imports (static, dynamic with a literal, require, api/require-cjs.ts's requireCjs). */
export function bareImports(js: string): string[] {
  const names = new Set<string>();
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s*|\brequire(?:Cjs)?\s*\(\s*)(['"])([^'"\n]+)\1/gm;
  const packageSpec = /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(\/[\w.@/-]*)?$/i;
  for (const m of js.matchAll(re)) {
    const spec = m[2];
    if (spec.startsWith('node:') || !packageSpec.test(spec)) continue; // relative, absolute, #imports
    const parts = spec.split('/');
    const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
    if (!builtins.has(name)) names.add(name);
  }
  return [...names];
}

/** Node's resolution of package `name` required from directory `from` (walking up to `repo`). */
function resolvePackage(repo: string, from: string, name: string): string | undefined {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (dir === repo || !dir.startsWith(repo)) return undefined;
  }
}

/** Directories of `roots` and every package they depend on (optional ones when installed). */
export function packageClosure(repo: string, roots: string[]): string[] {
  const seen = new Set<string>();
  const visit = (from: string, name: string, optional: boolean) => {
    const dir = resolvePackage(repo, from, name);
    if (!dir) {
      if (optional) return;
      throw new Error(`images: ${name} (needed from ${path.relative(repo, from) || '.'}) is not installed; run make build`);
    }
    if (seen.has(dir)) return;
    seen.add(dir);
    const pj = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    for (const d of Object.keys(pj.dependencies ?? {})) visit(dir, d, false);
    for (const d of Object.keys(pj.optionalDependencies ?? {})) visit(dir, d, true);
    // Peers are the requirer's to provide; they only come in when installed.
    for (const d of Object.keys(pj.peerDependencies ?? {})) visit(dir, d, true);
  };
  for (const r of roots) visit(repo, r, false);
  return [...seen].map((d) => path.relative(repo, d)).sort();
}

/** Shared libraries `bin` loads, as ldd reports them: [path in the image, file on this machine]. */
export function sharedLibs(bin: string): Array<[string, string]> {
  const out = execFileSync('ldd', [bin], { encoding: 'utf8' });
  const libs: Array<[string, string]> = [];
  for (const line of out.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push([m[1], realpathSync(m[1])]);
  }
  return libs;
}

export function stageImage(key: ImageKey, out: string, opts: StageOptions = {}): StageResult {
  const spec: ImageSpec = IMAGES[key];
  const repo = path.resolve(opts.repo ?? repoRoot);
  const nodeBin = opts.nodeBin ?? process.execPath;
  const app = path.join(out, APP_DIR);
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`images: ${out} is not empty`);

  // The runtime: Node, stripped of its debug info when binutils is there (126 -> 108 MB).
  const node = path.join(out, NODE_PATH);
  copy(nodeBin, node);
  try {
    execFileSync('strip', ['--strip-all', node], { stdio: 'ignore' });
  } catch {
    /* no strip here (e.g. node:*-slim in the Dockerfile): the binary works unstripped */
  }
  chmodSync(node, 0o755);
  const [uid, gid] = IMAGE_USER.split(':');
  mkdirSync(path.join(out, 'etc'), { recursive: true });
  writeFileSync(path.join(out, 'etc/passwd'), `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${uid}:${gid}:nonroot:/home/nonroot:/sbin/nologin\n`, { mode: 0o644 });
  writeFileSync(path.join(out, 'etc/group'), `root:x:0:\nnonroot:x:${gid}:\n`, { mode: 0o644 });

  // The application: ESM needs "type": "module" beside dist/.
  const pkg = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { name: string; version: string; license?: string };
  mkdirSync(app, { recursive: true });
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module', license: pkg.license, private: true }, null, 2) + '\n', { mode: 0o644 });
  const imports = new Set<string>();
  for (const d of spec.distDirs) {
    const dir = path.join(repo, 'dist', d);
    if (!existsSync(dir)) throw new Error(`images: ${path.relative(repo, dir)} missing; run make build`);
    for (const f of walk(dir)) {
      copy(path.join(dir, f), path.join(app, 'dist', d, f));
      if (f.endsWith('.js')) for (const n of bareImports(readFileSync(path.join(dir, f), 'utf8'))) imports.add(n);
    }
  }
  // The scan is textual, so it may see a quoted word; only declared dependencies count, and
  // a devDependency the shipped code imports would break the image: refuse it here.
  const declared = pkg as { dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
  const dev = [...imports].filter((n) => declared.devDependencies?.[n] !== undefined && declared.dependencies?.[n] === undefined);
  if (dev.length > 0) throw new Error(`images: dist/{${spec.distDirs.join(',')}} imports devDependencies ${dev.join(', ')}; make them dependencies`);
  const packages = packageClosure(repo, [...imports].filter((n) => declared.dependencies?.[n] !== undefined).sort());
  const addons: string[] = [];
  for (const p of packages) {
    for (const f of walk(path.join(repo, p))) {
      copy(path.join(repo, p, f), path.join(app, p, f));
      if (f.endsWith('.node')) addons.push(path.join(repo, p, f));
    }
  }
  // Native addons (e.g. @node-rs/crc32) link libraries Node itself does not (librt).
  const libs = new Map<string, string>();
  for (const bin of [nodeBin, ...addons]) for (const [inImage, file] of sharedLibs(bin)) libs.set(inImage, file);
  for (const [inImage, file] of libs) copy(file, path.join(out, inImage));
  return { packages, libs: [...libs.keys()].sort() };
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [key, out] = process.argv.slice(2);
  if (!key || !out || !(key in IMAGES)) {
    process.stderr.write(`usage: stage.js ${Object.keys(IMAGES).join('|')} OUT-DIR\n`);
    process.exit(2);
  }
  const r = stageImage(key as ImageKey, out);
  process.stderr.write(`images: staged ${key} in ${out} (${r.packages.length} packages, ${r.libs.length} libraries)\n`);
}
